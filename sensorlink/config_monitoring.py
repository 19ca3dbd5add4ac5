"""What a config says about watching the sensors: thermal regions of interest and sound bands
per sensor (``[[sensors.regions]]``, ``[sensors.bands]``), gathered with the alarm rules and
webhooks (:mod:`sensorlink.config_alarms`) into one :class:`MonitorConfig`.

```toml
[[sensors]]
name = "spindle-cam"
driver = "sim-thermal"

[[sensors.regions]]            # spot: 1 point, box: 2 corners, line: 2 ends, polygon: 3-64
name = "bearing"
kind = "box"
points = [[4, 4], [27, 19]]    # [x, y] pixels of the picture as shown (row 0 at the top)
emissivity = 0.95              # optional (default 1: no correction)
reflected_c = 22.0             # optional: what the surface reflects (default 20 °C)

[[sensors]]
name = "spindle-mic"
driver = "sim-microphone"
[sensors.bands]                # band levels of the beam, in dBFS
set = "third-octave"           # or "octave", or "none" (then only custom bands)
custom = [{ name = "bearing", low_hz = 1500, high_hz = 3000 }]
```

A region's check is the same for the TOML and for a region an operator draws on the dashboard:
:func:`check_region` raises :class:`FieldError` naming the key, which each caller turns into
its own error (a ConfigError naming the file, sensor and region; a ControlError naming the
control message's field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from sensorlink.config_alarms import NAME, AlarmRule, WebhookConfig, parse_rules, parse_webhooks
from sensorlink.errors import ConfigError, SensorlinkError
from sensorlink.options import parse_table

RegionKind = Literal["spot", "box", "line", "polygon"]
REGION_KINDS: dict[str, tuple[int, int]] = {"spot": (1, 1), "box": (2, 2), "line": (2, 2),
                                             "polygon": (3, 64)}
#: the keys of a [[sensors]] table that belong to monitoring, not to the driver's options
ANALYSIS_KEYS = ("regions", "bands")
MAX_PIXEL = 4096


class FieldError(SensorlinkError):
    """A value is wrong; ``key`` is the field inside the table that holds it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class RegionConfig:
    """A region of interest on one camera, in pixels of the oriented picture (x = column from
    the left, y = row from the top), both ends included."""

    name: str
    kind: RegionKind
    points: tuple[tuple[int, int], ...]
    emissivity: float = 1.0
    reflected_c: float = 20.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "points": [list(p) for p in self.points],
                "emissivity": self.emissivity, "reflected_c": self.reflected_c}


def check_name(value: Any, key: str = "name") -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise FieldError(key, "a name of letters, digits, '.', '_' or '-' (max 64, no '/') is "
                              f"required, got {value!r}")
    return value


def _number(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FieldError(key, f"expected a number, got {value!r}")
    if not low <= value <= high:
        raise FieldError(key, f"must be from {low:g} to {high:g}, got {value:g}")
    return float(value)


def check_region(raw: Any) -> RegionConfig:
    """A region table (TOML or a control message's ``region``) → RegionConfig, or FieldError."""
    if not isinstance(raw, dict):
        raise FieldError("", f"expected a table, got {raw!r}")
    unknown = sorted(set(raw) - {"name", "kind", "points", "emissivity", "reflected_c"})
    if unknown:
        raise FieldError(unknown[0], "unknown key; known: ['emissivity', 'kind', 'name', "
                                     "'points', 'reflected_c']")
    name = check_name(raw.get("name"))
    kind = raw.get("kind")
    if kind not in REGION_KINDS:
        raise FieldError("kind", f"expected one of {list(REGION_KINDS)}, got {kind!r}")
    low, high = REGION_KINDS[kind]
    points = raw.get("points")
    if not isinstance(points, (list, tuple)) or not low <= len(points) <= high:
        count = f"{low}" if low == high else f"{low}-{high}"
        raise FieldError("points", f"a {kind} needs {count} points [x, y], got {points!r}")
    out = []
    for p in points:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < MAX_PIXEL for c in p)):
            raise FieldError("points", f"each point is [x, y] in whole pixels from 0, got {p!r}")
        out.append((int(p[0]), int(p[1])))
    emissivity = _number(raw.get("emissivity", 1.0), "emissivity", 0.01, 1.0)
    reflected = _number(raw.get("reflected_c", 20.0), "reflected_c", -100.0, 1000.0)
    return RegionConfig(name, kind, tuple(out), emissivity, reflected)


def check_fits(region: RegionConfig, width: int, height: int) -> None:
    """FieldError("points") unless every point of ``region`` lies on a width×height picture."""
    for x, y in region.points:
        if x >= width or y >= height:
            raise FieldError("points", f"point [{x}, {y}] is outside the {width}×{height} picture "
                                       f"(x 0-{width - 1}, y 0-{height - 1})")


@dataclass(frozen=True)
class BandSpec:
    name: str
    low_hz: float
    high_hz: float


@dataclass(frozen=True)
class BandsConfig:
    """``[sensors.bands]`` of a microphone: which band levels its beam (and, with ``channels``,
    each raw microphone) yields, every ``interval_s``, over the last ``window_s`` of audio."""

    set: Literal["third-octave", "octave", "none"] = "third-octave"
    min_hz: float = 100.0
    max_hz: float | None = None        # default: the highest whole band below half the rate
    custom: tuple[BandSpec, ...] = ()
    channels: bool = False
    interval_s: float = 0.1
    window_s: float = 0.128

    def __post_init__(self) -> None:
        if not 10.0 <= self.min_hz <= 20_000.0:
            raise ValueError("min_hz: must be from 10 to 20000")
        if self.max_hz is not None and not self.min_hz < self.max_hz <= 100_000.0:
            raise ValueError("max_hz: must be above min_hz (and at most 100000)")
        if not 0.02 <= self.interval_s <= 10.0:
            raise ValueError("interval_s: must be from 0.02 to 10")
        if not 0.016 <= self.window_s <= 2.0:
            raise ValueError("window_s: must be from 0.016 to 2")


@dataclass(frozen=True)
class _BandsTable:
    """The scalar keys of [sensors.bands], checked by parse_table; ``custom`` apart."""

    set: Literal["third-octave", "octave", "none"] = "third-octave"
    min_hz: float = 100.0
    max_hz: float | None = None
    custom: list[Any] = field(default_factory=list)
    channels: bool = False
    interval_s: float = 0.1
    window_s: float = 0.128


def _parse_bands(raw: Any, source: str, sensor: str) -> BandsConfig:
    try:
        table = parse_table(_BandsTable, raw, "bands", source)
    except ConfigError as exc:
        raise ConfigError(str(exc).partition(f"{source}: ")[2], source=source, sensor=sensor) \
            from exc
    custom: list[BandSpec] = []
    for i, entry in enumerate(table.custom):
        where = f"bands.custom[{i}]"
        try:
            if not isinstance(entry, dict) or set(entry) != {"name", "low_hz", "high_hz"}:
                raise FieldError("", "expected { name = ..., low_hz = ..., high_hz = ... }")
            name = check_name(entry["name"])
            low = _number(entry["low_hz"], "low_hz", 1.0, 100_000.0)
            high = _number(entry["high_hz"], "high_hz", 1.0, 100_000.0)
            if high <= low:
                raise FieldError("high_hz", f"must be above low_hz ({low:g}), got {high:g}")
            if any(b.name == name for b in custom):
                raise FieldError("name", f"two custom bands are named {name!r}")
        except FieldError as exc:
            raise ConfigError(str(exc), source=source, sensor=sensor,
                              field=f"{where}.{exc.key}" if exc.key else where) from exc
        custom.append(BandSpec(name, low, high))
    values = {k: getattr(table, k) for k in ("set", "min_hz", "max_hz", "channels",
                                             "interval_s", "window_s")}
    try:
        return BandsConfig(custom=tuple(custom), **values)
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        raise ConfigError(message, source=source, sensor=sensor, field=f"bands.{key}") from exc


def parse_regions(raw: Any, source: str, sensor: str) -> tuple[RegionConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("expected [[sensors.regions]] tables", source=source, sensor=sensor,
                          field="regions")
    regions: list[RegionConfig] = []
    for i, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, dict) else None
        label = name if isinstance(name, str) and NAME.fullmatch(name) else f"[{i}]"
        try:
            region = check_region(entry)
        except FieldError as exc:
            raise ConfigError(str(exc), source=source, sensor=sensor,
                              field=f"regions.{label}.{exc.key}" if exc.key
                              else f"regions.{label}") from exc
        if any(r.name == region.name for r in regions):
            raise ConfigError("two regions of this camera have this name", source=source,
                              sensor=sensor, field=f"regions.{label}.name")
        regions.append(region)
    return tuple(regions)


@dataclass(frozen=True)
class MonitorConfig:
    """Everything that watches the sensors: regions and bands per sensor, alarm rules, webhooks."""

    regions: dict[str, tuple[RegionConfig, ...]] = field(default_factory=dict)
    bands: dict[str, BandsConfig] = field(default_factory=dict)
    alarms: tuple[AlarmRule, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()


def parse_monitoring(per_sensor: dict[str, dict[str, Any]], alarms: Any, webhooks: Any,
                     source: str) -> MonitorConfig:
    """``per_sensor`` maps each sensor's name to its ANALYSIS_KEYS entries (may be empty)."""
    regions = {name: parse_regions(keys["regions"], source, name)
               for name, keys in per_sensor.items() if "regions" in keys}
    bands = {name: _parse_bands(keys["bands"], source, name)
             for name, keys in per_sensor.items() if "bands" in keys}
    return MonitorConfig(regions=regions, bands=bands,
                         alarms=parse_rules(alarms, source) if alarms is not None else (),
                         webhooks=parse_webhooks(webhooks, source) if webhooks is not None
                         else ())
