"""Retention: which segments go when, so that recording can go on for months on a small disk.

The rules (``[recording]``, :mod:`sensorlink.config_recording`):

- a segment older than ``keep_days`` (by its end) is deleted; one that holds an alarm (an alarm
  raised, changed or active while it was recorded) is kept until ``keep_alarm_days`` instead,
  and with no ``keep_alarm_days`` it is not deleted for its age at all;
- while the recordings take more than ``max_total_gb``, the oldest complete segments go first:
  every segment without an alarm before any that holds one;
- the segment being recorded is never deleted, nor any file a recorder holds open.

Every deletion is logged and recorded in the library's deletion log with its reason. The
recorder applies the rules each time it closes a segment, in its worker thread (never on the
event loop); ``sensorlink recordings prune`` applies them by hand.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sensorlink.config_recording import DAY_NS, GB, RecordingConfig
from sensorlink.errors import RecordingError
from sensorlink.recording.library import Library
from sensorlink.recording.recovery import is_locked
from sensorlink.recording.segment_files import Segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_days: float | None = None
    keep_alarm_days: float | None = None
    max_total_bytes: int | None = None

    @classmethod
    def from_config(cls, config: RecordingConfig) -> RetentionPolicy:
        return cls(config.keep_days, config.keep_alarm_days, config.max_total_bytes)

    @property
    def prunes(self) -> bool:
        return any(v is not None for v in (self.keep_days, self.keep_alarm_days,
                                           self.max_total_bytes))


def plan(segments: list[Segment], policy: RetentionPolicy,
         now_ns: int) -> list[tuple[Segment, str]]:
    """The segments the policy deletes, oldest first, each with its reason."""
    closed = sorted((s for s in segments if s.state != "open"), key=lambda s: (s.start_ns, s.name))
    doomed: dict[str, str] = {}
    for s in closed:
        days = policy.keep_alarm_days if s.holds_alarm else policy.keep_days
        if days is not None and s.end_ns < now_ns - days * DAY_NS:
            what = "keep_alarm_days" if s.holds_alarm else "keep_days"
            doomed[s.name] = f"older than {what} = {days:g}"
    if policy.max_total_bytes is not None:
        total = sum(s.size for s in segments if s.name not in doomed)
        for holding in (False, True):  # every segment without an alarm before any with one
            for s in closed:
                if total <= policy.max_total_bytes:
                    break
                if s.holds_alarm == holding and s.name not in doomed:
                    doomed[s.name] = (f"the recordings took {total / GB:.3f} GB, more than "
                                      f"max_total_gb = {policy.max_total_bytes / GB:g}")
                    total -= s.size
    return [(s, doomed[s.name]) for s in closed if s.name in doomed]


def prune(library: Library, policy: RetentionPolicy, *, now_ns: int | None = None,
          dry_run: bool = False) -> list[tuple[Segment, str]]:
    """Apply ``policy`` to the library's directory; the segments deleted (or, with
    ``dry_run``, that would be) and why."""
    if not policy.prunes:
        return []
    segments = []
    for s in library.segments():
        path = library.path_of(s)
        if s.state == "open" or is_locked(path):
            # Being written: counts towards the total at its size now, never deleted.
            try:
                size = path.stat().st_size
            except OSError:
                continue
            s = Segment(s.name, size, s.mtime_ns, s.start_ns, s.end_ns, "open")
        segments.append(s)
    doomed = plan(segments, policy, time.time_ns() if now_ns is None else now_ns)
    if not dry_run:
        for segment, reason in doomed:
            library.delete(segment, reason)
    return doomed


class Keeper:
    """The recorder's catalog: indexes each segment as it opens and closes, then applies the
    retention policy. Runs in the recorder's worker thread."""

    def __init__(self, library: Library, policy: RetentionPolicy) -> None:
        self.library = library
        self.policy = policy
        self.deleted = 0

    def segment_opened(self, path: Path, start_ns: int, session: str, previous: str) -> None:
        self.library.segment_opened(path, start_ns, session, previous)

    def segment_closed(self, path: Path) -> None:
        self.library.segment_closed(path)
        self.prune()

    def sync(self) -> None:
        try:
            self.library.sync()
        except (OSError, sqlite3.Error, RecordingError) as exc:  # a full disk, say: next time
            log.warning("recordings index %s not brought up to date: %s",
                        self.library.directory, exc)
            return
        self.prune()

    def prune(self) -> None:
        try:
            self.deleted += len(prune(self.library, self.policy))
        except (OSError, sqlite3.Error) as exc:  # tried again at the next segment
            log.warning("retention in %s: %s", self.library.directory, exc)
