"""``[[alarms]]`` rules and ``[[webhooks]]`` in the config, checked field by field.

```toml
[[alarms]]
name = "bearing-hot"                    # unique; letters, digits, . _ -
stream = "spindle-cam/bearing/max"      # any reading stream: probe, region, band, DOA level
condition = "above"                     # above | below | outside | rate | stale | disconnected
warning = 60.0                          # pre-alarm level (either level may be left out)
alarm = 70.0
deadband = 2.0                          # clears only below limit - deadband (above: limit + ...)
on_delay_s = 3                          # the condition must hold this long before it is raised
off_delay_s = 5                         # ... and be gone this long before it clears
latch = true                            # stays in the list once cleared, until acknowledged

[[alarms]]
name = "probes-gone"
sensor = "bearing-probes"               # a sensor's state: not connected for N seconds
condition = "disconnected"
alarm = 60

[[webhooks]]
url = "https://ops.example.org/hooks/sensorlink"
token = "sent as Authorization: Bearer ..."
```

``outside`` takes a band per level (``warning = [20, 80]``); ``rate`` compares the change per
minute over the last ``window_s`` seconds (``direction`` rising, falling or either); ``stale``
and ``disconnected`` take seconds. Every mistake names the rule and the field:
``plant.toml: field 'alarms.bearing-hot.alarm': must be above warning (60) for 'above'``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from sensorlink.errors import ConfigError
from sensorlink.options import parse_table

Condition = Literal["above", "below", "outside", "rate", "stale", "disconnected"]
CONDITIONS: tuple[str, ...] = ("above", "below", "outside", "rate", "stale", "disconnected")
Limit = float | tuple[float, float]
#: a rule's, region's or band's name: one level of a stream name and an MQTT topic (no '/')
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TRANSITIONS = ("raised", "escalated", "deescalated", "cleared", "acknowledged", "reset")


@dataclass(frozen=True)
class AlarmRule:
    """One alarm rule. ``stream`` is ``sensor/channel`` (the sensor name for ``disconnected``)."""

    name: str
    stream: str
    condition: Condition
    warning: Limit | None = None
    alarm: Limit | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    latch: bool = False
    window_s: float = 60.0
    direction: Literal["rising", "falling", "either"] = "rising"
    include_suspect: bool = False
    message: str = ""

    @property
    def sensor(self) -> str:
        return self.stream.split("/", 1)[0]

    @property
    def watches_state(self) -> bool:
        return self.condition == "disconnected"


_KEYS = {f.name for f in dataclasses.fields(AlarmRule)} | {"sensor"}


class _RuleError(Exception):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def _seconds(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise _RuleError(key, f"expected seconds (a number >= 0), got {value!r}")
    return float(value)


def _limit(raw: dict[str, Any], key: str, band: bool) -> Limit | None:
    value = raw.get(key)
    if value is None:
        return None
    def finite(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if band:
        if not (isinstance(value, list) and len(value) == 2 and all(map(finite, value))
                and value[0] < value[1]):
            raise _RuleError(key, f"'outside' takes a band [low, high] with low < high, "
                                  f"got {value!r}")
        return (float(value[0]), float(value[1]))
    if not finite(value):
        raise _RuleError(key, f"expected a number, got {value!r}")
    return float(value)


def _check_order(rule: AlarmRule) -> None:
    w, a = rule.warning, rule.alarm
    if w is None or a is None:
        return
    c = rule.condition
    if c == "outside":
        assert isinstance(w, tuple) and isinstance(a, tuple)
        if not (a[0] <= w[0] and w[1] <= a[1]):
            raise _RuleError("alarm", f"the alarm band {list(a)} must hold the warning band "
                                      f"{list(w)} (the alarm is the wider one)")
    elif c == "below":
        if not a < w:
            raise _RuleError("alarm", f"must be below warning ({w:g}) for 'below'")
    elif not a > w:
        raise _RuleError("alarm", f"must be above warning ({w:g}) for {c!r}")


def _rule(raw: Any) -> AlarmRule:
    if not isinstance(raw, dict):
        raise _RuleError("", "expected a table")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _RuleError(unknown[0], f"unknown key; known: {sorted(_KEYS)}")
    condition = raw.get("condition")
    if condition not in CONDITIONS:
        raise _RuleError("condition", f"expected one of {list(CONDITIONS)}, got {condition!r}")
    if condition == "disconnected":
        if "stream" in raw or not isinstance(raw.get("sensor"), str) \
                or not NAME.fullmatch(raw["sensor"]):
            raise _RuleError("sensor", "'disconnected' watches a sensor: sensor = \"NAME\" "
                                       "(and no stream)")
        stream = raw["sensor"]
    else:
        stream = raw.get("stream")
        if "sensor" in raw or not isinstance(stream, str) or "/" not in stream.strip("/") \
                or not NAME.fullmatch(stream.split("/", 1)[0]) or len(stream) > 160:
            raise _RuleError("stream", f"expected \"SENSOR/CHANNEL\" (e.g. \"probes/t0\"), "
                                       f"got {stream!r}")
    band = condition == "outside"
    warning, alarm = _limit(raw, "warning", band), _limit(raw, "alarm", band)
    if warning is None and alarm is None:
        raise _RuleError("alarm", "a rule needs a warning level, an alarm level, or both")
    if condition in ("stale", "disconnected"):
        for key, value in (("warning", warning), ("alarm", alarm)):
            if value is not None and value <= 0:  # type: ignore[operator]
                raise _RuleError(key, f"seconds must be above 0, got {value:g}")
    deadband = raw.get("deadband", 0.0)
    if isinstance(deadband, bool) or not isinstance(deadband, (int, float)) \
            or not math.isfinite(deadband) or deadband < 0:
        raise _RuleError("deadband", f"expected a number >= 0, got {deadband!r}")
    window = _seconds(raw, "window_s", 60.0)
    if window <= 0:
        raise _RuleError("window_s", "must be above 0 seconds")
    direction = raw.get("direction", "rising")
    if direction not in ("rising", "falling", "either"):
        raise _RuleError("direction", f"expected rising, falling or either, got {direction!r}")
    for key in ("latch", "include_suspect"):
        if key in raw and not isinstance(raw[key], bool):
            raise _RuleError(key, f"expected true or false, got {raw[key]!r}")
    message = raw.get("message", "")
    if not isinstance(message, str) or len(message) > 500:
        raise _RuleError("message", "expected a string of at most 500 characters")
    rule = AlarmRule(name=raw.get("name", ""), stream=stream, condition=condition,
                     warning=warning, alarm=alarm, deadband=float(deadband),
                     on_delay_s=_seconds(raw, "on_delay_s", 0.0),
                     off_delay_s=_seconds(raw, "off_delay_s", 0.0),
                     latch=raw.get("latch", False), window_s=window, direction=direction,
                     include_suspect=raw.get("include_suspect", False), message=message)
    _check_order(rule)
    return rule


def parse_rule(raw: Any, source: str, index: int = 0) -> AlarmRule:
    """One ``[[alarms]]`` table; a mistake raises ConfigError naming the rule and the field."""
    name = raw.get("name") if isinstance(raw, dict) else None
    label = name if isinstance(name, str) and NAME.fullmatch(name) else f"[{index}]"
    if label != name:
        raise ConfigError(f"a name of letters, digits, '.', '_' or '-' (max 64) is required, "
                          f"got {name!r}", source=source, field=f"alarms{label}.name")
    try:
        return _rule(raw)
    except _RuleError as exc:
        raise ConfigError(str(exc), source=source,
                          field=f"alarms.{label}.{exc.key}" if exc.key else f"alarms.{label}") \
            from exc


def parse_rules(raw: Any, source: str) -> tuple[AlarmRule, ...]:
    if not isinstance(raw, list):
        raise ConfigError("expected [[alarms]] tables", source=source, field="alarms")
    rules: list[AlarmRule] = []
    for i, entry in enumerate(raw):
        rule = parse_rule(entry, source, i)
        if any(r.name == rule.name for r in rules):
            raise ConfigError("two rules have this name", source=source,
                              field=f"alarms.{rule.name}.name")
        rules.append(rule)
    return tuple(rules)


@dataclass(frozen=True)
class WebhookConfig:
    """``[[webhooks]]``: each alarm event is POSTed as JSON (schemas/alarm-event.schema.json)."""

    url: str
    name: str = "webhook"
    token: str | None = None           # sent as "Authorization: Bearer <token>"
    site: str = "site"
    machine: str = "machine"
    transitions: list[str] = dataclasses.field(default_factory=lambda: list(TRANSITIONS))
    timeout_s: float = 5.0
    queue: int = 1000                  # events held while the receiver is away; beyond: dropped
    max_attempts: int = 10             # tries per event before it is given up (and counted)
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname \
                or any(c.isspace() for c in self.url):
            raise ValueError(f"url: expected http(s)://HOST[:PORT]/PATH, got {self.url!r}")
        if not NAME.fullmatch(self.name):
            raise ValueError("name: letters, digits, '.', '_' or '-' (max 64)")
        unknown = sorted(set(self.transitions) - set(TRANSITIONS))
        if unknown or not self.transitions:
            raise ValueError(f"transitions: expected some of {list(TRANSITIONS)}")
        if not 0.1 <= self.timeout_s <= 120:
            raise ValueError("timeout_s: must be from 0.1 to 120")
        if self.queue < 1 or self.max_attempts < 1:
            raise ValueError(f"{'queue' if self.queue < 1 else 'max_attempts'}: must be at least 1")
        if not 0 < self.retry_initial_s <= self.retry_max_s:
            raise ValueError("retry_initial_s: must be above 0 and at most retry_max_s")


def parse_webhooks(raw: Any, source: str) -> tuple[WebhookConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("expected [[webhooks]] tables", source=source, field="webhooks")
    hooks = [parse_table(WebhookConfig, entry, f"webhooks[{i}]", source)
             for i, entry in enumerate(raw)]
    names = [h.name for h in hooks]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError("two webhooks have this name (set name = ...)", source=source,
                              field=f"webhooks[{i}].name")
    return tuple(hooks)
