"""``[whep]`` and ``[whip]``: serve WHEP players, publish to a WHIP endpoint.

```toml
[whep]                               # any WHEP player pulls a camera and its microphone
listen = "127.0.0.1:8889"            # host defaults to the service's; loopback like the rest
allow_origins = ["*"]                # CORS: web players elsewhere; or a list of origins

[whip]                               # publish each camera (and a microphone) to a WHIP endpoint
url = "http://mediamtx.plant:8889/press-1/{sensor}/whip"   # one session per camera
token = "stream-key"                 # sent as "Authorization: Bearer"; optional
audio = "spindle-mic"                # the microphone every session carries; "none"; default: first
```
Kept out of config.py so several sections can grow at once (see the house rules).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sensorlink.errors import ConfigError

_ORIGIN = re.compile(r"^https?://[^/\s]+$")


@dataclass(frozen=True)
class WhepConfig:
    host: str | None = None            # None: the service's own host
    port: int = 8889
    allow_origins: list[str] = field(default_factory=lambda: ["*"])
    max_players: int = 16              # sessions at once; beyond: 503 with Retry-After


@dataclass(frozen=True)
class WhipConfig:
    url: str
    token: str | None = None
    audio: str | None = None           # a microphone's name, "none", or None: the first one

    @property
    def template(self) -> bool:
        return "{sensor}" in self.url


def parse_whep_listen(value: Any, where: str) -> tuple[str | None, int]:
    """``PORT`` or ``HOST:PORT``."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        raise ConfigError(f"expected \"[HOST:]PORT\", got {value!r}", field=where)
    host, _, port = text.rpartition(":")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"expected \"[HOST:]PORT\" with a port 0-65535, got {value!r}",
                          field=where)
    return host.strip("[]") or None, int(port)


def _check_keys(raw: Any, table: str, known: set[str], source: str) -> None:
    """``raw`` is a table holding only ``known`` keys; else an error naming the table or key."""
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", source=source, field=table)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key; known: {sorted(known)}", source=source,
                          field=f"{table}.{unknown[0]}")


def parse_whep(raw: Any, source: str) -> WhepConfig:
    known = {"listen", "allow_origins", "max_players"}
    _check_keys(raw, "whep", known, source)
    try:
        host, port = parse_whep_listen(raw.get("listen", "8889"), "whep.listen")
    except ConfigError as exc:
        raise ConfigError(str(exc).split(": ", 1)[-1], source=source, field="whep.listen") from exc
    origins = raw.get("allow_origins", ["*"])
    if not isinstance(origins, list) or not all(
            isinstance(o, str) and (o == "*" or _ORIGIN.match(o)) for o in origins):
        raise ConfigError('expected a list of origins like "https://player.example" or "*", '
                          f"got {origins!r}", source=source, field="whep.allow_origins")
    players = raw.get("max_players", 16)
    if not isinstance(players, int) or isinstance(players, bool) or players < 1:
        raise ConfigError(f"expected a positive integer, got {players!r}", source=source,
                          field="whep.max_players")
    return WhepConfig(host=host, port=port, allow_origins=origins, max_players=players)


def whip_http_url(url: str) -> str:
    """The http(s):// URL a ``--publish``/``[whip] url`` names: ``whip://`` is plain HTTP
    (RFC 9725 names no scheme of its own; this one tells our publish targets apart), and
    ``whips://`` HTTPS."""
    scheme, sep, rest = url.partition("://")
    mapped = {"whip": "http", "whips": "https", "http": "http", "https": "https"}.get(scheme)
    if not sep or mapped is None:
        raise ConfigError(f"expected whip://, whips://, http:// or https://HOST[:PORT]/PATH, "
                          f"got {url!r}", field="whip.url")
    out = f"{mapped}://{rest}"
    try:
        parts = urllib.parse.urlsplit(out.replace("{sensor}", "x"))
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ConfigError(f"bad URL {url!r}: {exc}", field="whip.url") from exc
    if not parts.hostname or any(c.isspace() for c in url):
        raise ConfigError(f"expected a host in {url!r}", field="whip.url")
    if "{" in out.replace("{sensor}", "") or "}" in out.replace("{sensor}", ""):
        raise ConfigError(f"the only placeholder is {{sensor}}, got {url!r}", field="whip.url")
    return out


def parse_whip(raw: Any, source: str) -> WhipConfig:
    known = {"url", "token", "audio"}
    _check_keys(raw, "whip", known, source)
    for key in known:
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"expected a string, got {raw[key]!r}", source=source,
                              field=f"whip.{key}")
    if "url" not in raw:
        raise ConfigError("the endpoint's URL is required", source=source, field="whip.url")
    try:
        whip_http_url(raw["url"])
    except ConfigError as exc:
        raise ConfigError(str(exc).split(": ", 1)[-1], source=source, field="whip.url") from exc
    return WhipConfig(url=raw["url"], token=raw.get("token"), audio=raw.get("audio"))
