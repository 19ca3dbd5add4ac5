"""sensorlink alarms test RULES.toml FILE.mcap: the alarms some rules would have raised.

The recording's readings and sensor states go through the same engine the service runs
(:mod:`sensorlink.analysis.alarms`), in log time and without sleeping: an engineer tunes limits,
deadbands and delays on last week's data in a second. RULES.toml holds ``[[alarms]]`` tables
(a whole service config works too: only its rules are used).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import tomllib
from pathlib import Path

from sensorlink.alarm_event import AlarmEvent
from sensorlink.analysis.alarms import AlarmEngine
from sensorlink.config_alarms import AlarmRule, parse_rules
from sensorlink.errors import ConfigError
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.samples import Reading
from sensorlink.status import SensorStatus

HELP = "alarms: 'test RULES.toml FILE.mcap' prints the alarms those rules raise on a recording"
STEP_NS = 100_000_000  # how often the clock ticks between events (stale, delays), log time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = sub.add_parser("test", help="re-evaluate a recording with rules, print the alarms",
                          description=__doc__.splitlines()[0])
    test.add_argument("rules", help="TOML file with [[alarms]] tables")
    test.add_argument("file", help="an .mcap recording")
    test.add_argument("--json", action="store_true", help="one JSON object per alarm event")


def load_rules(path: str) -> tuple[AlarmRule, ...]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("file not found", source=path) from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=path) from exc
    if not data.get("alarms"):
        raise ConfigError("no [[alarms]] tables", source=path, field="alarms")
    return parse_rules(data["alarms"], path)


def check_streams(rules: tuple[AlarmRule, ...], rec: Recording, source: str) -> None:
    """Refuse a rule whose stream (or sensor) the recording does not hold."""
    sensors = rec.sensors()
    streams = {f"{name}/{s}" for name, info in sensors.items()
               for s in info.meta.get("streams") or {}}
    streams |= {f"{s.metadata['sensor']}/{s.metadata['channel']}"
                for s in rec.streams_with({mm.READING}) if "channel" in s.metadata}
    for rule in rules:
        known = set(sensors) if rule.watches_state else streams
        if rule.stream not in known:
            field = "sensor" if rule.watches_state else "stream"
            near = sorted(s for s in known if s.startswith(rule.sensor))
            raise ConfigError(f"{rule.stream!r} is not in {rec.path.name} (it has "
                              f"{near or sorted(known)[:20]})", source=source,
                              field=f"alarms.{rule.name}.{field}")


def evaluate(rules: tuple[AlarmRule, ...], rec: Recording) -> list[AlarmEvent]:
    """Every alarm event the rules raise over the recording, in log time."""
    events: list[AlarmEvent] = []
    engine = AlarmEngine(rules, events.append)
    clock: int | None = None
    for t, event in rec.events(schemas={mm.READING, mm.SENSOR_STATUS}):
        if clock is None:
            engine.start(t)
            clock = t
        while clock + STEP_NS <= t:  # the time between two samples passes in steps
            clock += STEP_NS
            engine.tick(clock, clock)
        if isinstance(event, Reading):
            engine.reading(event, t, t)
        elif isinstance(event, SensorStatus):
            engine.status(event.sensor, event.state, t, t)
    if clock is not None:
        engine.tick(max(clock, rec.end_ns), max(clock, rec.end_ns))
    return events


def _line(event: AlarmEvent, start_ns: int) -> str:
    when = datetime.datetime.fromtimestamp(event.t_wall_ns / 1e9, datetime.UTC)
    offset = (event.t_wall_ns - start_ns) / 1e9
    value = "" if event.value is None else f"  value {event.value:g}"
    limit = "" if event.limit is None else f"  limit {event.limit:g}"
    return (f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d}  +{offset:9.3f} s  "
            f"{event.rule:<20} {event.transition:<11} {event.level:<7}{value}{limit}")


def main(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules)
    with Recording(args.file) as rec:
        check_streams(rules, rec, args.rules)
        events = evaluate(rules, rec)
        start = rec.start_ns
    for event in events:
        print(json.dumps(event.to_dict(), ensure_ascii=False) if args.json
              else _line(event, start))
    if not args.json:
        counts = collections.Counter((e.rule, e.level) for e in events
                                     if e.transition in ("raised", "escalated"))
        summary = ", ".join(f"{rule} {level} ×{n}" for (rule, level), n in sorted(counts.items()))
        print(f"{len(events)} alarm events from {len(rules)} rules"
              + (f": {summary}" if summary else ""))
    return 0
