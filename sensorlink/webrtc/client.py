"""How a client reaches a sensorlink service: the signaling URL behind a dashboard URL, TLS trust
for wss://, and the refusals that no retry can change (used by the headless viewer and
``sensorlink view``)."""

from __future__ import annotations

import ssl as ssl_module
import urllib.parse

from sensorlink.errors import SignalingError


class Refused(SignalingError):
    """The service refused us (wrong token, locked out): retrying will not help."""


class OfferRefused(Refused):
    """The service cannot answer our offer (no codec it can send, no ICE candidate to pair):
    the same offer again would be refused again."""


class CertificateNotTrusted(SignalingError):
    """The service's TLS certificate did not verify: no retry can change that, only trust can."""

    def __init__(self, url: str, exc: ssl_module.SSLCertVerificationError) -> None:
        where = urllib.parse.urlsplit(url).netloc
        why = exc.verify_message or exc.reason or str(exc)
        super().__init__(
            f"TLS certificate verify failed for {where}: {why}. Trust the service's certificate "
            "(or the CA that signed it) with --ca-file PEM, or skip the check with --insecure")


def tls_context(ca_file: str | None = None, *, insecure: bool = False) -> ssl_module.SSLContext:
    """A client context for wss://: the system's CAs, plus ``ca_file`` (PEM); or, ``insecure``,
    one that verifies nothing (the caller warns)."""
    try:
        context = ssl_module.create_default_context(cafile=ca_file)
    except (OSError, ssl_module.SSLError) as exc:
        raise SignalingError(f"--ca-file {ca_file}: cannot load it as PEM certificates: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def signaling_url(url: str) -> tuple[str, str | None]:
    """Dashboard URL (http://host:port/#token=T) → (ws://host:port/ws, token or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise SignalingError(f"expected an http(s):// or ws(s):// URL, got {url!r}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    token = urllib.parse.parse_qs(parts.fragment).get("token", [None])[0]
    return urllib.parse.urlunsplit((scheme, parts.netloc, "/ws", "", "")), token
