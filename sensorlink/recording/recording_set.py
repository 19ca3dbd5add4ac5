"""Several segments read as one recording: one timeline across segment boundaries.

A recorder rolls to a new segment every few minutes; a replay or an export of an afternoon
spans many of them. :class:`RecordingSet` has the reading interface of
:class:`sensorlink.recording.reader.Recording` (start, end, ``events`` in log-time order from any
time) over a list of segment files, so the replay source and the exporters take either.

The merge is lazy: a segment is opened only when the timeline reaches its first log time, and
closed once it is read, so a week of segments costs one or two open files at a time. Segments
of one recorder run follow each other without overlap (the next opens when the last closes),
and their samples continue each stream's seq, so a replay across a boundary has no gap; where
segments do overlap (two recorders), events interleave by log time as within one file.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorlink.errors import RecordingError
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Part:
    path: Path
    start_ns: int
    end_ns: int
    counts: dict[str, int]  # messages per schema


class RecordingSet:
    """Segments read as one recording. Use as a context manager, or call :meth:`close`."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        if not paths:
            raise RecordingError("no segments to read")
        parts = []
        self.cut_short = False
        for path in paths:
            with Recording(path) as rec:
                counts: dict[str, int] = {}
                for s in rec.streams.values():
                    counts[s.schema] = counts.get(s.schema, 0) + rec.message_counts.get(
                        s.channel_id, 0)
                parts.append(_Part(rec.path, rec.start_ns, rec.end_ns, counts))
                self.cut_short = self.cut_short or rec.cut_short
        self.parts = sorted(parts, key=lambda p: (p.start_ns, p.path.name))
        self.path = self.parts[0].path
        self.start_ns = min(p.start_ns for p in self.parts)
        self.end_ns = max(p.end_ns for p in self.parts)
        self.problem = ""
        self._open: list[Recording] = []

    @property
    def label(self) -> str:
        more = len(self.parts) - 1
        return self.path.name + (f" (+{more} more segment{'s' * (more > 1)})" if more else "")

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    def count(self, schemas: Collection[str]) -> int:
        """Messages of these schemas in every segment (for progress reports)."""
        return sum(n for p in self.parts for schema, n in p.counts.items() if schema in schemas)

    def events(self, *, start_ns: int | None = None, end_ns: int | None = None,
               schemas: Collection[str] | None = None, topics: Collection[str] | None = None
               ) -> Iterator[tuple[int, mm.RecordedEvent]]:
        """(log_time, event) of every segment, in log-time order, ``start_ns <= t < end_ns``."""
        todo = [p for p in self.parts
                if (start_ns is None or p.end_ns >= start_ns)
                and (end_ns is None or p.start_ns < end_ns)]
        heap: list[tuple[int, int, int, Any, Iterator[tuple[int, Any]]]] = []
        order = itertools.count()
        i = 0
        while heap or i < len(todo):
            # Open every segment that may hold something before the earliest event in hand.
            while i < len(todo) and (not heap or todo[i].start_ns <= heap[0][0]):
                stream = self._events_of(todo[i], start_ns, end_ns, schemas, topics)
                first = next(stream, None)
                if first is not None:
                    heapq.heappush(heap, (first[0], i, next(order), first[1], stream))
                i += 1
            if not heap:
                continue
            t, part, _, event, stream = heap[0]
            yield t, event
            following = next(stream, None)
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following[0], part, next(order), following[1], stream))

    def _events_of(self, part: _Part, start_ns: int | None, end_ns: int | None,
                   schemas: Collection[str] | None,
                   topics: Collection[str] | None) -> Iterator[tuple[int, Any]]:
        try:
            rec = Recording(part.path)
        except RecordingError as exc:
            # Deleted by retention since this set was made, say: the timeline goes on.
            log.warning("segment %s skipped: %s", part.path.name, exc)
            return
        self._open.append(rec)
        try:
            yield from rec.events(start_ns=start_ns, end_ns=end_ns, schemas=schemas,
                                  topics=topics)
        finally:
            rec.close()
            if rec in self._open:
                self._open.remove(rec)

    def close(self) -> None:
        for rec in self._open:
            rec.close()
        self._open.clear()

    def __enter__(self) -> RecordingSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_recordings(paths: str | Path | Sequence[str | Path]) -> Recording | RecordingSet:
    """One file as a Recording, several (a list) as one RecordingSet."""
    if isinstance(paths, (str, Path)):
        return Recording(paths)
    return Recording(paths[0]) if len(paths) == 1 else RecordingSet(paths)
