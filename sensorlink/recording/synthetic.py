"""A synthetic recordings library: days of probe segments written without waiting for them.

For the trend benchmark (bench/bench_library.py), the browser tests and a demo of the
Recordings view: ``write_library(directory, days=7, probes=4)`` writes 15-minute segments of a
``probes`` sensor as the recorder does (the same messages, session header, trend and summary
records, file names and part chain), each probe a daily cycle plus drift and noise, ending now.
A segment index ``alarm_every`` apart holds an alarm event. The library then indexes them like
any others (:meth:`sensorlink.recording.library.Library.sync`).
"""

from __future__ import annotations

import datetime
import math
import os
import time
from pathlib import Path

import numpy as np

from sensorlink.alarm_event import AlarmEvent
from sensorlink.recording import messages as mm
from sensorlink.recording.mcap_file import McapFile
from sensorlink.recording.segment_stats import DEFAULT_BUCKET_NS, SEGMENT_METADATA, SegmentStats
from sensorlink.recording.segment_writer import (
    SESSION_METADATA, SUMMARY_METADATA, library_name, session_header,
)
from sensorlink.samples import Reading, SensorInfo

SEGMENT_S = 900


def probe_value(probe: int, t_s: float, rng: np.random.Generator | None = None) -> float:
    """Probe ``probe``'s temperature at ``t_s``: a daily cycle, a slow drift, some noise."""
    day = 2 * math.pi * t_s / 86_400
    value = 40.0 + 5.0 * probe + 8.0 * math.sin(day + probe) + 2.0 * math.sin(day * 7.3)
    return round(value + (float(rng.normal(0, 0.2)) if rng is not None else 0.0), 4)


def write_library(directory: str | Path, *, days: float = 7.0, probes: int = 4,
                  rate_hz: float = 0.2, segment_s: int = SEGMENT_S, end_ns: int | None = None,
                  sensor: str = "probes", alarm_every: int = 97, seed: int = 1) -> list[Path]:
    """Write ``days`` of segments into ``directory``, the last ending at ``end_ns`` (now)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    count = int(days * 86_400 // segment_s)
    end_ns = time.time_ns() if end_ns is None else end_ns
    first_ns = end_ns - count * segment_s * 1_000_000_000
    first_ns -= first_ns % 1_000_000_000
    step_ns = int(1e9 / rate_hz)
    info = SensorInfo(sensor, "probe", "synthetic", {
        "streams": {f"t{i}": {"quantity": "temperature", "unit": "°C"} for i in range(probes)},
        "rate_hz": rate_hz})
    paths: list[Path] = []
    seq = 0
    for k in range(count):
        start = first_ns + k * segment_s * 1_000_000_000
        when = datetime.datetime.fromtimestamp(start / 1e9, datetime.UTC)
        path = folder / f"sensorlink-{when:%Y%m%dT%H%M%SZ}.mcap"
        f = McapFile(path, open(path, "xb"), 1 << 20)  # noqa: SIM115 (closed below)
        f.writer.start(profile="", library=library_name())
        f.writer.add_metadata(SESSION_METADATA, session_header(
            {"synthetic": True}, when, start, k + 1, paths[-1].name if paths else "",
            f"synthetic-{first_ns}", []))
        stats = SegmentStats(DEFAULT_BUCKET_NS)
        _add(f, mm.encode(info, start))
        t = start
        while t < start + segment_s * 1_000_000_000:
            for i in range(probes):
                r = Reading(sensor, f"t{i}", "temperature", probe_value(i, t / 1e9, rng), "°C",
                            seq, t - first_ns, t)
                stats.add_reading(r)
                _add(f, mm.encode(r))
            seq += 1
            t += step_ns
        if alarm_every and k % alarm_every == alarm_every // 2:
            at = start + segment_s * 500_000_000
            stats.add_alarm(AlarmEvent(f"{sensor}.t0.high", f"{sensor}/t0", "raised", "alarm",
                                       True, False, "t0 above its limit", k, at - first_ns, at,
                                       at, 60.0, 55.0))
        f.writer.add_metadata(SEGMENT_METADATA, stats.metadata())
        f.writer.add_metadata(SUMMARY_METADATA, {"reason": "rolled over", "samples": str(seq),
                                                 "stop_time_ns": str(t), "dropped": "0"})
        f.writer.finish()
        f.stream.close()
        os.utime(path, ns=(t, t))
        paths.append(path)
    return paths


def _add(f: McapFile, msg: mm.EncodedMessage) -> None:
    f.writer.add_message(f.channel(msg), msg.log_time, msg.data, msg.log_time, msg.sequence)
