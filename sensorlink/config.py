"""Service configuration: one TOML file lists the sensors and the service settings.

```toml
[service]
listen = "127.0.0.1:8765"      # loopback unless you say otherwise
token = "change-me"            # generated and printed when left out
ice_servers = [{ urls = "stun:stun.example.org:3478" }]
record_dir = "recordings"

[[sensors]]
name = "spindle-cam"
driver = "gy-mcu90640"
port = "/dev/ttyUSB0"          # every key but name/driver is a driver option
rate_hz = 4

[[dashboard.links]]            # optional: what the dashboard's selector offers besides this service
name = "press-2"
url = "http://press-2.plant:8765/"   # another service (token optional, operators only get it)
[[dashboard.links]]
name = "hall A"
url = "ws://janus.plant:8188/"       # a Janus VideoRoom: its WebSocket API and the room
room = 1234
```
Every error names the file, the sensor and the field.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sensorlink.config_monitoring import ANALYSIS_KEYS, MonitorConfig, parse_monitoring
from sensorlink.config_plant import MetricsConfig, OpcuaConfig
from sensorlink.config_recording import RecordingConfig, parse_recording
from sensorlink.config_whip import WhepConfig, WhipConfig, parse_whep, parse_whip
from sensorlink.errors import ConfigError
from sensorlink.options import parse_table

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class SensorConfig:
    name: str
    driver: str
    options: dict[str, Any]


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    ice_servers: list[IceServer] = field(default_factory=list)
    # "relay": offer only TURN candidates, so every byte goes through the TURN server.
    ice_transport_policy: str = "all"
    record_dir: str | None = None
    # Who may do what: "viewer" tokens look; the operator token may steer, record, replay.
    viewer_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    whep: WhepConfig | None = None     # [whep] or --whep: serve WHEP players (sensorlink.config_whip)


@dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``: export readings and sensor status to a broker (see sensorlink.bridges.mqtt)."""

    host: str
    port: int | None = None            # 1883, or 8883 with tls
    site: str = "site"
    machine: str = "machine"
    topic_prefix: str = "sensorlink"
    qos: int = 1
    encoding: str = "json"             # or "msgpack"
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    queue: int = 100_000               # readings held while the broker is away; beyond: dropped
    batch: int = 500                   # readings per message at most
    status_interval_s: float = 10.0

    def __post_init__(self) -> None:
        # One topic level each (the prefix may hold several): wildcards would break subscribers.
        for key, pattern in (("site", r"^[^#+/\x00]+$"), ("machine", r"^[^#+/\x00]+$"),
                             ("topic_prefix", r"^[^#+/\x00]([^#+\x00]*[^#+/\x00])?$")):
            if not re.match(pattern, getattr(self, key)):
                raise ValueError(f"{key}: must be non-empty, without '#', '+' or a stray '/'")
        if self.qos not in (0, 1, 2):
            raise ValueError("qos: must be 0, 1 or 2")
        if self.encoding not in ("json", "msgpack"):
            raise ValueError("encoding: must be \"json\" or \"msgpack\"")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError("port: must be 1-65535")
        if self.queue < 1 or self.batch < 1:
            raise ValueError(f"{'queue' if self.queue < 1 else 'batch'}: must be at least 1")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("key_file: cert_file and key_file go together")
        if self.password is not None and self.username is None:
            raise ValueError("username: a password needs a username")


@dataclass(frozen=True)
class DashboardLink:
    """One entry of the dashboard's selector: another sensorlink service (``url`` = its
    dashboard address) or a Janus VideoRoom (``url`` = Janus' WebSocket API, plus ``room``)."""

    name: str
    url: str
    token: str | None = None           # the token to use there; only operators are given it
    room: int | None = None            # set: a Janus room, not a service
    display: str = "sensorlink"        # the publisher to subscribe to in that room
    pin: str | None = None             # the room's pin, a secret like a token

    @property
    def kind(self) -> str:
        return "service" if self.room is None else "janus"

    def for_client(self, role: str) -> dict[str, Any]:
        """What the signaling ``hello`` carries. Secrets go to the operator role only: a viewer
        token must never open another service, nor another service's room pin."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "url": self.url}
        if self.room is not None:
            out.update(room=self.room, display=self.display)
        if role == "operator":
            out.update({k: v for k, v in (("token", self.token), ("pin", self.pin)) if v})
        return out


def parse_links(raw: Any, source: str) -> list[DashboardLink]:
    """``[dashboard]`` with ``[[dashboard.links]]`` tables."""
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", source=source, field="dashboard")
    unknown = sorted(set(raw) - {"links"})
    if unknown:
        raise ConfigError("unknown key; known: ['links']", source=source,
                          field=f"dashboard.{unknown[0]}")
    entries = raw.get("links", [])
    if not isinstance(entries, list):
        raise ConfigError("expected [[dashboard.links]] tables", source=source,
                          field="dashboard.links")
    links: list[DashboardLink] = []
    for i, entry in enumerate(entries):
        where = f"dashboard.links[{i}]"
        link = parse_table(DashboardLink, entry, where, source)
        # Shown in a selector and used as a key: printable, short, one of a kind.
        if not 0 < len(link.name) <= 64 or not link.name.isprintable() \
                or link.name != link.name.strip():
            raise ConfigError(f"a printable name of 1-64 characters is required, got {link.name!r}",
                              source=source, field=f"{where}.name")
        if any(other.name == link.name for other in links):
            raise ConfigError("two links have this name", source=source, field=f"{where}.name")
        schemes = ("http", "https") if link.room is None else ("ws", "wss")
        try:
            parts = urllib.parse.urlsplit(link.url)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in schemes or not parts.hostname \
                or any(c.isspace() for c in link.url):
            what = "a service's dashboard address" if link.room is None else \
                "Janus' WebSocket API (with room)"
            expected = " or ".join(f"{scheme}://HOST[:PORT]/" for scheme in schemes)
            raise ConfigError(f"{what}: expected {expected}, got {link.url!r}", source=source,
                              field=f"{where}.url")
        if link.room is not None and not 0 < link.room < 2**53:
            raise ConfigError("a room id is a positive integer", source=source,
                              field=f"{where}.room")
        if link.room is None and link.pin is not None:
            raise ConfigError("a pin belongs to a Janus room (set room)", source=source,
                              field=f"{where}.pin")
        links.append(link)
    return links


@dataclass(frozen=True)
class Config:
    service: ServiceConfig
    sensors: list[SensorConfig]
    source: str = "<config>"
    mqtt: MqttConfig | None = None
    links: list[DashboardLink] = field(default_factory=list)
    #: regions, bands, [[alarms]] and [[webhooks]] (sensorlink.config_monitoring)
    monitoring: MonitorConfig = field(default_factory=MonitorConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    whip: WhipConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    opcua: OpcuaConfig | None = None


def parse_listen(value: Any, source: str) -> tuple[str, int]:
    if not isinstance(value, str):
        raise ConfigError(f"expected \"HOST:PORT\", got {value!r}", source=source, field="listen")
    host, sep, port = value.rpartition(":")
    # isascii: "²" passes isdigit() but not int(), and "٣" would be read as port 3.
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"expected \"HOST:PORT\" with a port 0-65535, got {value!r}",
                          source=source, field="listen")
    return host.strip("[]") or "127.0.0.1", int(port)


def _ice_servers(raw: Any, source: str) -> list[IceServer]:
    if not isinstance(raw, list):
        raise ConfigError("expected a list of tables", source=source, field="ice_servers")
    out = []
    for i, entry in enumerate(raw):
        where = f"ice_servers[{i}]"
        if not isinstance(entry, dict) or "urls" not in entry:
            raise ConfigError("expected a table with 'urls'", source=source, field=where)
        unknown = set(entry) - {"urls", "username", "credential"}
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)}", source=source, field=where)
        urls = entry["urls"] if isinstance(entry["urls"], list) else [entry["urls"]]
        if not all(isinstance(u, str) and re.match(r"^(stun|stuns|turn|turns):", u) for u in urls):
            raise ConfigError(f"urls must start with stun:, stuns:, turn: or turns:, got {urls!r}",
                              source=source, field=f"{where}.urls")
        for key in ("username", "credential"):
            # aiortc and the browser both need strings here; fail now, naming the field.
            if key in entry and not isinstance(entry[key], str):
                raise ConfigError(f"expected a string, got {entry[key]!r}", source=source,
                                  field=f"{where}.{key}")
        out.append(IceServer(urls=urls, username=entry.get("username"),
                             credential=entry.get("credential")))
    return out


def parse_service(raw: dict[str, Any], source: str) -> ServiceConfig:
    known = {"listen", "token", "viewer_token", "ice_servers", "ice_transport_policy", "record_dir",
             "tls_cert", "tls_key"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)}; known: {sorted(known)}",
                          source=source, field=f"service.{sorted(unknown)[0]}")
    host, port = parse_listen(raw.get("listen", "127.0.0.1:8765"), source)
    for key in ("token", "viewer_token", "record_dir", "tls_cert", "tls_key"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"expected a string, got {raw[key]!r}", source=source,
                              field=f"service.{key}")
    for key in ("token", "viewer_token"):
        if key in raw and len(raw[key]) < 8:
            raise ConfigError("tokens must be at least 8 characters", source=source,
                              field=f"service.{key}")
    policy = raw.get("ice_transport_policy", "all")
    if policy not in ("all", "relay"):
        raise ConfigError(f"expected \"all\" or \"relay\", got {policy!r}", source=source,
                          field="service.ice_transport_policy")
    if ("tls_cert" in raw) != ("tls_key" in raw):
        raise ConfigError("tls_cert and tls_key go together", source=source, field="service.tls_key")
    return ServiceConfig(host=host, port=port, token=raw.get("token"),
                         viewer_token=raw.get("viewer_token"),
                         ice_servers=_ice_servers(raw.get("ice_servers", []), source),
                         ice_transport_policy=policy,
                         record_dir=raw.get("record_dir"), tls_cert=raw.get("tls_cert"),
                         tls_key=raw.get("tls_key"))


#: the top-level tables a config may have besides [service] and [[sensors]]
OPTIONAL_TABLES = ("[mqtt]", "[dashboard]", "[recording]", "[[alarms]]", "[[webhooks]]",
                   "[whep]", "[whip]", "[metrics]", "[opcua]")


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    unknown = set(data) - {"service", "sensors", *(t.strip("[]") for t in OPTIONAL_TABLES)}
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}; expected [service], "
                          f"[[sensors]] and optionally {', '.join(OPTIONAL_TABLES)}",
                          source=source,
                          field=sorted(unknown)[0])
    service = data.get("service", {})
    if not isinstance(service, dict):
        raise ConfigError("expected a table", source=source, field="service")
    sensors_raw = data.get("sensors", [])
    if not isinstance(sensors_raw, list) or not sensors_raw:
        raise ConfigError("expected at least one [[sensors]] table", source=source, field="sensors")
    sensors: list[SensorConfig] = []
    seen: set[str] = set()
    analysis: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(sensors_raw):
        if not isinstance(entry, dict):
            raise ConfigError("expected a table", source=source, field=f"sensors[{i}]")
        name = entry.get("name")
        label = name if isinstance(name, str) else f"#{i + 1}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):  # match() lets "cam\n" in
            raise ConfigError("a name of letters, digits, '.', '_' or '-' (max 64) is required, "
                              f"got {name!r}", source=source, sensor=label, field="name")
        if name in seen:
            raise ConfigError("two sensors have this name", source=source, sensor=name, field="name")
        seen.add(name)
        driver = entry.get("driver")
        if not isinstance(driver, str):
            raise ConfigError(f"expected a driver name, got {driver!r}", source=source, sensor=name,
                              field="driver")
        options = {k: v for k, v in entry.items() if k not in ("name", "driver", *ANALYSIS_KEYS)}
        analysis[name] = {k: entry[k] for k in ANALYSIS_KEYS if k in entry}
        sensors.append(SensorConfig(name=name, driver=driver, options=options))
    settings = parse_service(service, source)
    if "whep" in data:
        settings = replace(settings, whep=parse_whep(data["whep"], source))
    return Config(service=settings, sensors=sensors, source=source,
                  mqtt=parse_table(MqttConfig, data["mqtt"], "mqtt", source) if "mqtt" in data
                  else None,
                  links=parse_links(data["dashboard"], source) if "dashboard" in data else [],
                  monitoring=parse_monitoring(analysis, data.get("alarms"), data.get("webhooks"),
                                              source),
                  recording=parse_recording(data.get("recording", {}), source),
                  whip=parse_whip(data["whip"], source) if "whip" in data else None,
                  metrics=parse_table(MetricsConfig, data.get("metrics", {}), "metrics", source),
                  opcua=parse_table(OpcuaConfig, data["opcua"], "opcua", source) if "opcua" in data
                  else None)


# Triple-quoted strings first, or '""' would match the start of '"""...'.
_SECRET = re.compile(r"(\b(?:token|viewer_token|credential|password|pin)\s*=\s*)"
                     r"(\"{3}[\s\S]*?\"{3}|'{3}[\s\S]*?'{3}|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')")


def redact_secrets(text: str) -> str:
    """The config file's text with tokens, TURN credentials and passwords blanked: what may be
    copied into a recording's metadata, which travels further than the config file does."""
    return _SECRET.sub(lambda m: f'{m.group(1)}"<redacted>"', text)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("file not found", source=str(path)) from exc
    except UnicodeDecodeError as exc:  # found by tests/test_fuzz.py: TOML must be UTF-8
        raise ConfigError(f"not UTF-8 text (byte {exc.start}): save it as UTF-8",
                          source=str(path)) from exc
    except OSError as exc:  # a directory, no permission: say so instead of a traceback
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from exc
    return parse_config(data, source=str(path))
