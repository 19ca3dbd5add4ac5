"""The plant-facing tables of the config: ``[metrics]`` (Prometheus) and ``[opcua]``.

```toml
[metrics]                          # /metrics on the dashboard's HTTP server
token = "scrape-token-123"         # a Bearer token for the scraper (the service's tokens work too)
loopback_without_token = false     # true: a scraper on this machine needs no token

[opcua]
endpoint = "opc.tcp://127.0.0.1:4840/sensorlink/"   # loopback unless you say otherwise
security = ["None", "Basic256Sha256_SignAndEncrypt"]
users = [{ name = "scada", password = "a-long-password" }]   # none: anonymous allowed
history_hours = 1.0                                 # what HistoryRead can reach back
```
Kept out of config.py so that file stays small while several sections are added at once.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

#: the security policies sensorlink's OPC UA server can offer (see SECURITY.md)
OPCUA_SECURITY = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt",
                  "Aes128Sha256RsaOaep_Sign", "Aes128Sha256RsaOaep_SignAndEncrypt")


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: who may scrape ``/metrics`` (sensorlink.bridges.prometheus)."""

    enabled: bool = True
    token: str | None = None
    loopback_without_token: bool = False

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < 8:
            raise ValueError("token: tokens must be at least 8 characters")


@dataclass(frozen=True)
class OpcuaConfig:
    """``[opcua]``: the OPC UA server for SCADA and historians (sensorlink.bridges.opcua)."""

    endpoint: str = "opc.tcp://127.0.0.1:4840/sensorlink/"
    namespace: str = "urn:sensorlink"
    server_name: str = "sensorlink"
    #: policies offered; "None" allows unsecured sessions (drop it to require encryption)
    security: list[str] = field(default_factory=lambda: ["None",
                                                         "Basic256Sha256_SignAndEncrypt"])
    #: ``{name, password}`` tables; none means anonymous sessions are allowed. A list of
    #: tables, not a name → password table, so that redact_secrets finds every ``password =``.
    users: list[dict[str, str]] = field(default_factory=list)
    #: the server's own certificate and key (PEM or DER); generated at start when left out
    cert_file: str | None = None
    key_file: str | None = None
    #: client certificates (PEM/DER files) that are trusted; empty trusts any client certificate
    trusted_certs: list[str] = field(default_factory=list)
    history_hours: float = 1.0
    #: values kept per variable for HistoryRead at most (bounds memory whatever the rate)
    history_values: int = 36_000
    #: readings the bridge may fall behind before the oldest are dropped (counted)
    queue: int = 10_000
    #: a sensor whose newest reading is older than this is shown Bad (stale)
    stale_after_s: float = 5.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.endpoint)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError(f"endpoint: expected opc.tcp://HOST:PORT/PATH, got {self.endpoint!r}")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError as exc:
            raise ValueError(f"endpoint: {exc}") from exc
        unknown = [p for p in self.security if p not in OPCUA_SECURITY]
        if unknown or not self.security:
            raise ValueError(f"security: expected some of {list(OPCUA_SECURITY)}, got "
                             f"{list(self.security)!r}")
        for i, user in enumerate(self.users):
            if not isinstance(user, dict) or set(user) != {"name", "password"} \
                    or not all(isinstance(v, str) for v in user.values()):
                raise ValueError(f"users: entry {i + 1} must be {{ name = \"...\", password = "
                                 "\"...\" }")
            if len(user["password"]) < 8 or not user["name"]:
                raise ValueError(f"users: {user['name']!r} needs a name and a password of at "
                                 "least 8 characters")
        if self.users and self.security == ["None"]:
            # asyncua encrypts a password only for a secure policy's certificate
            raise ValueError("security: with users, offer a Sign or SignAndEncrypt policy, or "
                             "their passwords cross the network in clear")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("key_file: cert_file and key_file go together")
        if not 0 < self.history_hours <= 24 * 31:
            raise ValueError("history_hours: must be more than 0 and at most 744 (31 days)")
        if self.history_values < 1 or self.queue < 1:
            raise ValueError(f"{'queue' if self.queue < 1 else 'history_values'}: must be at "
                             "least 1")
        if self.stale_after_s <= 0:
            raise ValueError("stale_after_s: must be more than 0")

    @property
    def passwords(self) -> dict[str, str]:
        return {user["name"]: user["password"] for user in self.users}

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.endpoint).port or 4840
