"""What a segment holds, in brief: per-bucket trend aggregates of every reading stream and the
alarms raised in it.

The recorder keeps a :class:`SegmentStats` for the segment it writes and stores it in the file
when the segment closes (metadata record ``sensorlink.segment``), so the recordings library
(:mod:`sensorlink.recording.library`) indexes a finished segment from its summary alone and a
trend over a week never decodes a frame. A segment cut short (crash, full disk) has no such
record: :meth:`SegmentStats.from_recording` computes the same from its readings, decoding
readings and alarm events only.

Trend buckets are aligned to multiples of ``bucket_ns`` since the epoch, so the buckets of two
segments line up and a bucket split by a segment boundary merges by plain addition.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from sensorlink.alarm_event import AlarmEvent
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.samples import Reading

SEGMENT_METADATA = "sensorlink.segment"
DEFAULT_BUCKET_NS = 10 * 1_000_000_000


@dataclass(frozen=True)
class AlarmMark:
    """One alarm state change as the library lists it."""

    t_wall_ns: int
    rule: str
    level: str
    transition: str
    message: str = ""

    def to_list(self) -> list[Any]:
        return [self.t_wall_ns, self.rule, self.level, self.transition, self.message]

    @classmethod
    def from_list(cls, row: list[Any]) -> AlarmMark:
        return cls(int(row[0]), str(row[1]), str(row[2]), str(row[3]),
                   str(row[4]) if len(row) > 4 else "")


@dataclass
class SegmentStats:
    bucket_ns: int = DEFAULT_BUCKET_NS
    #: stream ("sensor/channel") → bucket start ns → [count, min, max, sum]
    trend: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    alarms: list[AlarmMark] = field(default_factory=list)
    #: rules whose alarm was already active when the segment opened
    active_at_open: list[str] = field(default_factory=list)

    @property
    def holds_alarm(self) -> bool:
        return bool(self.alarms or self.active_at_open)

    def add_reading(self, reading: Reading) -> None:
        value = reading.value
        if not math.isfinite(value):
            return  # a NaN says "no value" (quality tells why): nothing to aggregate
        buckets = self.trend.get(f"{reading.sensor}/{reading.channel}")
        if buckets is None:
            buckets = self.trend[f"{reading.sensor}/{reading.channel}"] = {}
        start = reading.t_wall_ns - reading.t_wall_ns % self.bucket_ns
        b = buckets.get(start)
        if b is None:
            buckets[start] = [1, value, value, value]
        else:
            b[0] += 1
            if value < b[1]:
                b[1] = value
            if value > b[2]:
                b[2] = value
            b[3] += value

    def add_alarm(self, event: AlarmEvent) -> None:
        self.alarms.append(AlarmMark(event.t_wall_ns, event.rule, event.level, event.transition,
                                     event.message))

    def rows(self) -> list[tuple[str, int, int, float, float, float]]:
        """(stream, bucket start ns, count, min, max, sum), sorted: what the index stores."""
        return [(stream, start, int(b[0]), b[1], b[2], b[3])
                for stream in sorted(self.trend) for start, b in sorted(self.trend[stream].items())]

    # -- in the file -----------------------------------------------------------------------
    def metadata(self) -> dict[str, str]:
        trend = {s: [[start, int(b[0]), b[1], b[2], b[3]] for start, b in sorted(bs.items())]
                 for s, bs in sorted(self.trend.items())}
        return {"bucket_ns": str(self.bucket_ns),
                "trend": json.dumps(trend, separators=(",", ":")),
                "alarms": json.dumps([a.to_list() for a in self.alarms], ensure_ascii=False),
                "active_at_open": json.dumps(self.active_at_open, ensure_ascii=False)}

    @classmethod
    def from_metadata(cls, data: dict[str, str]) -> SegmentStats:
        trend = {stream: {int(r[0]): [int(r[1]), float(r[2]), float(r[3]), float(r[4])]
                          for r in rows}
                 for stream, rows in json.loads(data.get("trend", "{}")).items()}
        return cls(int(data.get("bucket_ns", DEFAULT_BUCKET_NS)), trend,
                   [AlarmMark.from_list(a) for a in json.loads(data.get("alarms", "[]"))],
                   list(json.loads(data.get("active_at_open", "[]"))))

    @classmethod
    def from_recording(cls, rec: Recording, bucket_ns: int = DEFAULT_BUCKET_NS) -> SegmentStats:
        """The stats of ``rec``: from its own record when it has one, else from its readings
        and alarm events (a segment cut short, or one written before this record existed)."""
        stored = rec.metadata_named(SEGMENT_METADATA)
        if stored is not None:
            return cls.from_metadata(stored)
        stats = cls(bucket_ns, active_at_open=_active_at_open(rec))
        for _, event in rec.events(schemas={mm.READING}):
            if isinstance(event, Reading):
                stats.add_reading(event)
        stats.alarms = alarm_marks(rec)
        return stats


def _active_at_open(rec: Recording) -> list[str]:
    try:
        return list(json.loads(rec.session.get("alarms_active", "[]")))
    except (TypeError, ValueError):
        return []


def is_alarm_stream(stream: Any) -> bool:
    """Whether a recorded channel carries alarm events. The alarm channel's schema belongs to
    the monitoring work (messages.py); any channel whose schema names an alarm event counts."""
    return "alarm" in stream.schema.lower() and stream.message_encoding == mm.MESSAGE_ENCODING


def alarm_marks(rec: Recording) -> list[AlarmMark]:
    """Every alarm event the recording holds, read as JSON bodies (field names as in
    :meth:`AlarmEvent.to_dict`); a body that does not look like one is passed over."""
    ids = [s.channel_id for s in rec.streams.values() if is_alarm_stream(s)]
    out = []
    if not ids:
        return out
    for _, msg in rec.messages(channel_ids=ids):
        try:
            d = json.loads(msg.data)
            out.append(AlarmMark(int(d.get("t_wall_ns", msg.log_time)), str(d["rule"]),
                                 str(d.get("level", "")), str(d.get("transition", "")),
                                 str(d.get("message", ""))))
        except (ValueError, KeyError, TypeError):
            continue
    return out
