"""The recordings library as the dashboard reads it: days, runs, segments, trends, as JSON.

The signaling server serves these on ``GET /api/...`` to a request that carries a token
(``Authorization: Bearer TOKEN``); both roles may read. Nothing here takes a path from the
client: a segment is named by what the index holds, a window by two times. Deleting is a
control action (operators only), not a GET (sensorlink.service).

- ``/api/recordings?tz_offset_min=N`` every day that has recordings (in the viewer's time
  zone: N minutes east of UTC), each with its runs of contiguous segments, their alarm marks,
  sizes and states; plus the reading streams that have trends, and the deletion log.
- ``/api/recordings/segments?from_ns=&to_ns=`` the segments of a window, with their alarms.
- ``/api/trend?stream=S&stream=S2&from_ns=&to_ns=&points=N`` a trend (sensorlink.recording.trends).

Queries run in a thread (SQLite and file reads must not hold up the event loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sensorlink.errors import MessageError
from sensorlink.recording.library import Library
from sensorlink.recording.segment_files import Segment
from sensorlink.recording.trends import DEFAULT_POINTS, MAX_STREAMS, trend

Route = Callable[[dict[str, list[str]], str], Awaitable[Any]]
RUN_GAP_NS = 90 * 1_000_000_000  # segments further apart than this are separate runs
MAX_MARKS = 200                  # alarm marks per run in a listing


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int:
    values = query.get(name)
    if not values:
        if default is None:
            raise MessageError("required", field=name)
        return default
    try:
        return int(values[0])
    except ValueError as exc:
        raise MessageError(f"expected an integer, got {values[0][:40]!r}", field=name) from exc


def sessions_of(segments: list[Segment]) -> dict[str, str]:
    """Segment name → its recorder run: the session id it carries, or its chain of previous."""
    names = {s.name: s for s in segments}
    out: dict[str, str] = {}
    for s in segments:  # oldest first, so a previous one is resolved before it is needed
        out[s.name] = s.session or (out.get(s.previous) if s.previous in names else None) or s.name
    return out


def runs(segments: list[Segment], alarms: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Contiguous segments of one recorder run, as one entry each."""
    session = sessions_of(segments)
    out: list[dict[str, Any]] = []
    for s in segments:
        run = out[-1] if out else None
        if run is None or run["session"] != session[s.name] or \
                s.start_ns - run["end_ns"] > RUN_GAP_NS:
            run = {"session": session[s.name], "start_ns": s.start_ns, "end_ns": s.end_ns,
                   "segments": 0, "bytes": 0, "samples": 0, "sensors": [], "alarms": [],
                   "states": {}, "holds_alarm": False, "first": s.name}
            out.append(run)
        run["end_ns"] = max(run["end_ns"], s.end_ns)
        run["segments"] += 1
        run["bytes"] += s.size
        run["samples"] += s.samples
        run["sensors"] = sorted(set(run["sensors"]) | set(s.sensors))
        run["states"][s.state] = run["states"].get(s.state, 0) + 1
        run["holds_alarm"] = run["holds_alarm"] or s.holds_alarm
        room = MAX_MARKS - len(run["alarms"])
        run["alarms"] += [[a.t_wall_ns, a.rule, a.level, a.transition]
                          for a in alarms.get(s.name, [])[:max(room, 0)]]
    return out


def days(library: Library, tz_offset_min: int) -> dict[str, Any]:
    segments = library.segments()
    alarms = library.alarms()
    now = time.time_ns()
    # An open segment's end is now: it is being recorded.
    segments = [s if s.state != "open" else dataclasses.replace(s, end_ns=max(s.end_ns, now))
                for s in segments]
    by_day: dict[str, list[Segment]] = {}
    for s in segments:
        local = time.gmtime(s.start_ns / 1e9 + tz_offset_min * 60)
        by_day.setdefault(time.strftime("%Y-%m-%d", local), []).append(s)
    return {"directory": library.directory.name,
            "days": [{"day": day, "segments": len(segs), "bytes": sum(s.size for s in segs),
                      "start_ns": segs[0].start_ns, "end_ns": max(s.end_ns for s in segs),
                      "runs": runs(segs, alarms)}
                     for day, segs in sorted(by_day.items(), reverse=True)],
            "streams": library.trend_streams(),
            "deleted": library.deletions(20)}


def segments_in(library: Library, from_ns: int, to_ns: int) -> dict[str, Any]:
    segments = library.segments(from_ns, to_ns)
    alarms = library.alarms([s.name for s in segments])
    return {"segments": [{**s.to_dict(), "alarm_marks": [
        [a.t_wall_ns, a.rule, a.level, a.transition, a.message] for a in alarms.get(s.name, [])]}
        for s in segments]}


def routes(library: Library) -> dict[str, Route]:
    """URL path → handler(query, role) for the signaling server's ``/api/`` hook."""

    async def recordings(query: dict[str, list[str]], role: str) -> Any:
        offset = _int(query, "tz_offset_min", 0)
        if not -16 * 60 <= offset <= 16 * 60:
            raise MessageError("a time zone offset in minutes, -960 to 960", field="tz_offset_min")
        return await asyncio.to_thread(days, library, offset)

    async def segments(query: dict[str, list[str]], role: str) -> Any:
        return await asyncio.to_thread(segments_in, library, _int(query, "from_ns"),
                                       _int(query, "to_ns"))

    async def trends(query: dict[str, list[str]], role: str) -> Any:
        streams = query.get("stream", [])
        if not 0 < len(streams) <= MAX_STREAMS:
            raise MessageError(f"1 to {MAX_STREAMS} streams, e.g. stream=probes/t0",
                               field="stream")
        from_ns, to_ns = _int(query, "from_ns"), _int(query, "to_ns")
        if to_ns <= from_ns:
            raise MessageError("to_ns must be after from_ns", field="to_ns")
        points = _int(query, "points", DEFAULT_POINTS)
        if not 10 <= points <= 5000:
            raise MessageError("10 to 5000", field="points")
        return await asyncio.to_thread(trend, library, streams, from_ns, to_ns, points=points)

    return {"/api/recordings": recordings, "/api/recordings/segments": segments,
            "/api/trend": trends}
