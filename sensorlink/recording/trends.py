"""Trends across files: any reading stream over hours to weeks, from the library's aggregates,
down to the raw samples when the window is small.

A trend over a window asks the index for the stream's per-bucket aggregates, grouped by SQLite
into about ``points`` bins (count, min, max, sum → mean), so a week is a few hundred rows read
from one table and nothing is decoded. When the window holds few enough samples (a few per
point, at most ``raw_limit``) it reads them instead, from the segment files that overlap it, decoding only
that stream's readings (the chunk index says which chunks hold them): a zoom goes from a week
of 10 s buckets down to every sample of one segment.

Time goes out in seconds (what uPlot draws); a bin with no data after one that had some is sent
as a null point, so a plot shows where nothing was recorded instead of a line across it.
"""

from __future__ import annotations

import math
from typing import Any

from sensorlink.recording import messages as mm
from sensorlink.recording.library import Library
from sensorlink.recording.recording_set import RecordingSet
from sensorlink.recording.segment_stats import DEFAULT_BUCKET_NS
from sensorlink.samples import Reading

DEFAULT_POINTS = 600
RAW_LIMIT = 6000  # samples per stream below which a trend sends the samples themselves
MAX_STREAMS = 16


def bin_for(from_ns: int, to_ns: int, points: int, bucket_ns: int = DEFAULT_BUCKET_NS) -> int:
    """A bin width for about ``points`` bins: a whole number of buckets."""
    wanted = max((to_ns - from_ns) // max(points, 1), 1)
    return max(bucket_ns, math.ceil(wanted / bucket_ns) * bucket_ns)


def trend(library: Library, streams: list[str], from_ns: int, to_ns: int, *,
          points: int = DEFAULT_POINTS, raw_limit: int = RAW_LIMIT) -> dict[str, Any]:
    """Each stream's trend over ``[from_ns, to_ns)``: aggregates, or the raw samples."""
    bin_ns = bin_for(from_ns, to_ns, points)
    out: dict[str, Any] = {"from_ns": from_ns, "to_ns": to_ns, "streams": {}}
    rows = {s: library.trend_rows(s, from_ns, to_ns, bin_ns) for s in streams}
    counts = {s: sum(r[1] for r in rows[s]) for s in streams}
    # The samples themselves when there are few (a handful per point drawn), else aggregates.
    raw = 0 < max(counts.values(), default=0) <= min(raw_limit, 4 * points)
    out["resolution"] = "raw" if raw else "aggregate"
    out["bin_s"] = 0 if raw else bin_ns / 1e9
    if raw:
        out["streams"] = raw_samples(library, streams, from_ns, to_ns)
        return out
    for stream in streams:
        t: list[float | None] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        mean: list[float | None] = []
        last = None
        for start, n, mn, mx, total in rows[stream]:
            if last is not None and start - last > bin_ns:  # a gap: nothing recorded there
                t.append((last + bin_ns) / 1e9)
                for col in (lo, hi, mean):
                    col.append(None)
            t.append(start / 1e9)
            lo.append(mn)
            hi.append(mx)
            mean.append(total / n)
            last = start
        out["streams"][stream] = {"t": t, "min": lo, "max": hi, "mean": mean,
                                  "count": counts[stream]}
    return out


def raw_samples(library: Library, streams: list[str], from_ns: int,
                to_ns: int) -> dict[str, dict[str, list[Any]]]:
    """Every recorded value of ``streams`` in the window, read from the segment files."""
    topics = {f"/{s}" for s in streams}  # a reading stream "sensor/channel" is topic /sensor/channel
    segments = [s for s in library.segments(from_ns, to_ns)
                if s.replayable and topics & set(s.streams)]
    out: dict[str, dict[str, list[Any]]] = {s: {"t": [], "value": [], "seq": []} for s in streams}
    if not segments:
        return out
    with RecordingSet([library.path_of(s) for s in segments]) as rec:
        for _, r in rec.events(start_ns=from_ns, end_ns=to_ns, schemas={mm.READING},
                               topics=topics):
            assert isinstance(r, Reading)
            series = out.get(f"{r.sensor}/{r.channel}")
            if series is not None:
                series["t"].append(r.t_wall_ns / 1e9)
                series["value"].append(r.value if math.isfinite(r.value) else None)
                series["seq"].append(r.seq)
    for series in out.values():
        series["count"] = len(series["t"])  # type: ignore[assignment]
    return out
