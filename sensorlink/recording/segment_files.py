"""Segment files as the recordings library sees them: which files are segments, and what one
holds (:class:`Segment`), read from the file itself.

A finished segment is described from its summary, its channels' metadata and the
``sensorlink.segment`` record the recorder wrote when it closed it, without reading a chunk. A
segment cut short is first recovered in place (:mod:`sensorlink.recording.recovery`), then
described like any other (its state says "recovered"); one that cannot be recovered is
described from what its complete chunks hold ("cut"). A file a running recorder holds locked
is "open": only its name and size are looked at.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorlink.errors import RecordingError
from sensorlink.recording.reader import Recording
from sensorlink.recording.recovery import RECOVERY_METADATA, is_locked, recover
from sensorlink.recording.segment_stats import SegmentStats
from sensorlink.recording.segment_writer import SESSION_METADATA

COLUMNS = ("name", "size", "mtime_ns", "start_ns", "end_ns", "state", "problem", "session",
           "part", "previous", "host", "messages", "samples", "sensors", "streams", "alarms",
           "holds_alarm", "bucket_ns")


@dataclass(frozen=True)
class Segment:
    """One segment as the index knows it."""

    name: str
    size: int
    mtime_ns: int
    start_ns: int
    end_ns: int
    #: "complete", "recovered" (was cut, rewritten complete), "cut" (could not be recovered)
    #: or "open" (being recorded)
    state: str
    problem: str = ""
    #: one id for all the segments of one recorder run (the first one's name)
    session: str = ""
    part: int = 1
    previous: str = ""
    host: str = ""
    messages: int = 0
    samples: int = 0
    sensors: list[str] = field(default_factory=list)
    #: samples per stream (MCAP topic)
    streams: dict[str, int] = field(default_factory=dict)
    alarms: int = 0
    holds_alarm: bool = False
    bucket_ns: int = 0

    @property
    def replayable(self) -> bool:
        return self.state in ("complete", "recovered", "cut")

    def row(self) -> tuple[Any, ...]:
        return (self.name, self.size, self.mtime_ns, self.start_ns, self.end_ns, self.state,
                self.problem, self.session, self.part, self.previous, self.host, self.messages,
                self.samples, json.dumps(self.sensors), json.dumps(self.streams, sort_keys=True),
                self.alarms, int(self.holds_alarm), self.bucket_ns)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Segment:
        d = dict(zip(COLUMNS, row, strict=True))
        d["sensors"], d["streams"] = json.loads(d["sensors"]), json.loads(d["streams"])
        d["holds_alarm"] = bool(d["holds_alarm"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in COLUMNS if k not in ("mtime_ns", "bucket_ns")}


def segment_files(directory: Path, prefix: str) -> dict[Path, tuple[int, int]]:
    """``<prefix>-*.mcap`` in ``directory`` → (size, mtime_ns)."""
    out = {}
    try:
        paths = sorted(directory.glob(f"{prefix}-*.mcap"))
    except OSError:
        return {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue  # deleted meanwhile
        out[path] = (st.st_size, st.st_mtime_ns)
    return out


def start_from_name(path: Path) -> int:
    """The time in a recorder's file name (``sensorlink-20261201T120000Z.mcap``), in ns."""
    stamp = path.stem.split("-")[1] if path.stem.count("-") >= 1 else ""
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return path.stat().st_mtime_ns
    return int(when.timestamp()) * 1_000_000_000


def describe_file(path: Path, *, recover_cut: bool = True) -> tuple[Segment, SegmentStats | None]:
    """What ``path`` holds; its stats (None for an open file)."""
    st = path.stat()
    if is_locked(path):
        return Segment(path.name, st.st_size, st.st_mtime_ns, start_from_name(path),
                       max(st.st_mtime_ns, start_from_name(path)), "open"), None
    rec = Recording(path)
    if not rec.indexed and recover_cut:
        rec.close()
        try:
            recover(path)
        except RecordingError:
            pass  # described as cut, from its complete chunks; the problem says why
        st = path.stat()
        rec = Recording(path)
    with rec:
        stats = SegmentStats.from_recording(rec)
        header = rec.metadata_named(SESSION_METADATA) or {}
        streams = {s.topic: rec.message_counts.get(s.channel_id, 0)
                   for s in rec.streams.values() if s.is_sample}
        recovered = rec.metadata_named(RECOVERY_METADATA)
        state = "cut" if rec.cut_short else "recovered" if recovered else "complete"
        problem = rec.problem or (recovered or {}).get("problem", "")
        segment = Segment(
            path.name, st.st_size, st.st_mtime_ns, rec.start_ns, rec.end_ns, state, problem,
            session=header.get("session_id", ""), part=_int(header.get("part"), 1),
            previous=header.get("previous", ""), host=header.get("host", ""),
            messages=rec.message_count, samples=sum(streams.values()),
            sensors=sorted({s.metadata["sensor"] for s in rec.streams.values()
                            if s.metadata.get("sensor")}),
            streams=streams, alarms=len(stats.alarms), holds_alarm=stats.holds_alarm,
            bucket_ns=stats.bucket_ns)
    return segment, stats


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
