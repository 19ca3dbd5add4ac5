"""Who may open an OPC UA session, and how the channel is secured (SECURITY.md, "OPC UA").

- Channel: the policies in ``[opcua] security``; any policy but "None" needs the server's
  certificate and key (``cert_file``/``key_file``, or a self-signed pair made at start, which a
  client then has to trust once, as with any OPC UA server).
- Identity: anonymous when no ``users`` and no ``trusted_certs`` are configured; otherwise a
  username and password from ``users`` (compared in constant time), or a certificate that is in
  ``trusted_certs`` (an X509 identity token, or the client's channel certificate).
"""

from __future__ import annotations

import hmac
import socket
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from sensorlink.config_plant import OpcuaConfig
from sensorlink.errors import ConfigError

POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes128Sha256RsaOaep_Sign": ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    "Aes128Sha256RsaOaep_SignAndEncrypt": ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
}
APPLICATION_URI = "urn:sensorlink:opcua-server"


def _der(certificate: Any) -> bytes | None:
    if certificate is None:
        return None
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(Encoding.DER)
    data = bytes(certificate)
    if data.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


class SensorlinkUsers(UserManager):
    """Username/password from the config, or a trusted client certificate."""

    def __init__(self, passwords: dict[str, str], trusted: list[bytes]) -> None:
        self.passwords = passwords
        self.trusted = trusted
        self.refused = 0

    @property
    def anonymous(self) -> bool:
        return not self.passwords and not self.trusted

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None:
            expected = self.passwords.get(username)
            if expected is not None and password is not None and hmac.compare_digest(
                    password.encode("utf-8"), expected.encode("utf-8")):
                return User(role=UserRole.User, name=username)
            self.refused += 1
            return None
        if self.anonymous:
            return User(role=UserRole.User)
        der = _der(certificate)
        if der is not None and any(hmac.compare_digest(der, known) for known in self.trusted):
            return User(role=UserRole.User, name="certificate")
        self.refused += 1
        return None


def _format(content: bytes) -> str:
    return "pem" if content.lstrip().startswith(b"-----BEGIN") else "der"


def _read(path: str, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}",
                          field=f"opcua.{field}") from exc


async def secure(server: Server, settings: OpcuaConfig) -> SensorlinkUsers:
    """Apply the policies, the server certificate and the user manager to ``server``."""
    server.set_security_policy([POLICIES[name] for name in settings.security])
    if any(name != "None" for name in settings.security):
        if settings.cert_file and settings.key_file:
            cert, key = _read(settings.cert_file, "cert_file"), _read(settings.key_file, "key_file")
        else:
            cert, key = self_signed(settings.host)
        try:
            # asyncua takes content as DER unless told the format
            await server.load_certificate(cert, _format(cert))
            await server.load_private_key(key, None, _format(key))
        except Exception as exc:  # noqa: BLE001 (asyncua raises whatever cryptography does)
            raise ConfigError(f"cannot load the server certificate/key: {exc}",
                              field="opcua.cert_file") from exc
    trusted = [_der(_read(path, "trusted_certs")) or b"" for path in settings.trusted_certs]
    users = SensorlinkUsers(settings.passwords, trusted)
    server.iserver.user_manager = users
    tokens: list[type] = []
    if users.anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if users.passwords:
        tokens.append(ua.UserNameIdentityToken)
    if users.trusted:
        tokens.append(ua.X509IdentityToken)
    server.set_identity_tokens(tokens)
    return users


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A server certificate (DER) and key (PEM) for this start, when none is configured."""
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(APPLICATION_URI),
                                     x509.DNSName(socket.gethostname())]
    if host not in ("0.0.0.0", "::"):
        names.append(x509.DNSName(host))
    cert = cert_gen.generate_self_signed_app_certificate(
        key, APPLICATION_URI, {"commonName": "sensorlink OPC UA server"}, names,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=365)
    return cert.public_bytes(Encoding.DER), cert_gen.dump_private_key_as_pem(key)
