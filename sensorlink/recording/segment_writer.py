"""The recorder's worker-thread side: one segment (MCAP file) at a time, written, rolled, closed.

Everything here runs in the recorder's single worker thread (:mod:`sensorlink.recording.recorder`
owns the event-loop side). A segment opens with the session header and the latest description
and state of every sensor, so it stands alone; it closes with its trend aggregates and alarms
(:mod:`sensorlink.recording.segment_stats`), a summary and the MCAP index, and is then handed to
the catalog (the recordings library) to be indexed.

The events written since the last complete chunk are kept until that chunk is on disk. When the
disk fills up mid-chunk, :meth:`SegmentWriter.abandon` cuts the file back to its last complete
chunk (truncating needs no space) and returns those events, so the recorder can write them into
the next segment once there is room again: nothing that reached the recorder is lost.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import platform
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

import mcap

import sensorlink
from sensorlink.alarm_event import AlarmEvent
from sensorlink.hub import Event
from sensorlink.recording import messages as mm
from sensorlink.recording.mcap_file import McapFile
from sensorlink.recording.segment_stats import SEGMENT_METADATA, SegmentStats
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

log = logging.getLogger(__name__)

SESSION_METADATA = "sensorlink.session"
SUMMARY_METADATA = "sensorlink.summary"
SAMPLE_TYPES = (ThermalFrame, AudioBlock, Reading)
Written = Event | mm.ControlRecord


class Catalog(Protocol):
    """Who is told about segments (the recordings library); called in the worker thread."""

    def segment_opened(self, path: Path, start_ns: int, session: str, previous: str) -> None: ...

    def segment_closed(self, path: Path) -> None: ...

    def sync(self) -> None:
        """Bring the index up to date with the directory (after recovery, at start)."""


def session_header(session: dict[str, Any], now: datetime.datetime, start_ns: int, part: int,
                   previous: str, session_id: str, alarms_active: list[str]) -> dict[str, str]:
    """The metadata record a segment opens with (``sensorlink.session``)."""
    return {
        "session": json.dumps(session, default=str, ensure_ascii=False),
        "host": socket.gethostname(), "version": sensorlink.__version__,
        "python": platform.python_version(),
        "start_time": now.isoformat(), "start_time_ns": str(start_ns),
        "part": str(part), "previous": previous,
        # one id for every segment of one recorder run: the library groups them by it
        "session_id": session_id, "alarms_active": json.dumps(alarms_active),
    }


def library_name() -> str:
    return f"sensorlink {sensorlink.__version__}, mcap {mcap.__version__}"


class SegmentWriter:
    def __init__(self, directory: Path, *, session: dict[str, Any], prefix: str,
                 file: Path | None, opener: Callable[[Path], IO[bytes]], chunk_bytes: int,
                 chunk_seconds: float, fsync: bool, roll_bytes: int | None,
                 roll_seconds: float | None, audio: str, bucket_ns: int,
                 catalog: Catalog | None, media: str = mm.MEDIA_FORMS[0]) -> None:
        self.directory = directory
        self.session = session
        self.prefix = prefix
        self.file = file
        self._opener = opener
        self.chunk_bytes = chunk_bytes
        self.chunk_seconds = chunk_seconds
        self._fsync = fsync
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self.audio = audio
        self.media = media  # thermal and audio: "protobuf", or "json" (the form of before)
        self.bucket_ns = bucket_ns
        self.catalog = catalog
        self.files: list[Path] = []
        self.current: McapFile | None = None
        self.stats = SegmentStats(bucket_ns)
        self.samples = 0
        self.samples_flushed = 0
        self.chunks_written = 0
        self.bytes_closed = 0
        self.discarded = 0
        #: what the recorder reports as dropped, written into each summary
        self.dropped: Callable[[], int] = lambda: self.discarded
        self._unflushed: list[Written] = []
        self.failed_at = 0  # how far into its batch write_batch got before an OSError
        self._session_id = ""
        self._cannot_encode: set[str] = set()
        # Latest description/state per sensor, written again at the top of each segment.
        self.infos: dict[str, SensorInfo] = {}
        self.statuses: dict[str, SensorStatus] = {}
        self.alarms_active: dict[str, AlarmEvent] = {}

    @property
    def current_bytes(self) -> int:
        return self.current.stream.count if self.current is not None else 0

    # -- opening and closing ---------------------------------------------------------------
    def _next_path(self, now: datetime.datetime) -> Path:
        if self.file is not None and not self.files:
            return self.file  # named by the user: written as asked
        if self.file is not None:
            folder, stem, suffix = self.file.parent, self.file.stem, self.file.suffix
        else:
            folder, stem, suffix = self.directory, f"{self.prefix}-{now:%Y%m%dT%H%M%SZ}", ".mcap"
        n = len(self.files) + 1 if self.file is not None else 1
        path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        # Never a name this run has used: retention may have deleted that file already, and a
        # name is a segment's identity in the library (and in the next one's "previous").
        while path.exists() or path in self.files:
            n += 1
            path = folder / f"{stem}-{n}{suffix}"
        return path

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        path = self._next_path(now)
        previous = self.files[-1] if self.files else None
        raw = self._opener(path)
        f = McapFile(path, raw, self.chunk_bytes)
        self.current = f
        self.files.append(path)
        self._session_id = self._session_id or path.name
        start_ns = time.time_ns()
        active = sorted(self.alarms_active)
        self.stats = SegmentStats(self.bucket_ns, active_at_open=active)
        f.writer.start(profile="", library=library_name())
        f.writer.add_metadata(SESSION_METADATA, session_header(
            self.session, now, start_ns, len(self.files), previous.name if previous else "",
            self._session_id, active))
        for info in self.infos.values():
            self._write(mm.encode(info, start_ns))
        for status in self.statuses.values():
            self._write(mm.encode(status, start_ns))
        for alarm in self.alarms_active.values():  # not over: each segment stands alone
            self._write(mm.encode(alarm, start_ns))
        self.flush_chunk()
        if self.catalog is not None and self.file is None:
            self.catalog.segment_opened(path, start_ns, self._session_id,
                                        previous.name if previous else "")

    def close(self, reason: str) -> None:
        """Finish the current segment: summary, index, and into the catalog. OSError leaves
        the file as it is (readable up to its last chunk) for the caller to deal with."""
        f = self.current
        if f is None:
            return
        self.flush_chunk()
        f.writer.add_metadata(SEGMENT_METADATA, self.stats.metadata())
        f.writer.add_metadata(SUMMARY_METADATA, {
            "reason": reason, "stop_time_ns": str(time.time_ns()),
            "samples": str(self.samples), "dropped": str(self.dropped())})
        f.writer.finish()
        f.stream.flush()
        self._sync(f)
        f.stream.close()
        self.bytes_closed += f.stream.count
        self.current = None
        if self.catalog is not None and self.file is None:
            self.catalog.segment_closed(f.path)

    def drop_current(self) -> None:
        """Let go of the current file after a write error: readable up to its last chunk."""
        f, self.current = self.current, None
        if f is None:
            return
        self.bytes_closed += f.stream.count
        try:
            f.stream.close()
        except OSError:
            pass  # the same error again; the file stays readable up to its last chunk

    def abandon(self) -> list[Written]:
        """After the disk filled up: cut the current file back to its last complete chunk and
        close it; return the events that did not reach the disk, in order, to write again."""
        f, self.current = self.current, None
        again, self._unflushed = self._unflushed, []
        self.samples -= sum(isinstance(e, SAMPLE_TYPES) for e in again)
        if f is None:
            return again
        if f.flushed_offset == 0:  # not even its header reached the disk: nothing to keep
            try:
                f.stream.close()
            except OSError:
                pass
            f.path.unlink(missing_ok=True)
            self.files.remove(f.path)
            return again
        try:
            f.stream.truncate(f.flushed_offset)
        except (OSError, io.UnsupportedOperation, AttributeError) as exc:
            log.warning("could not cut %s back to its last chunk: %s", f.path, exc)
        self.bytes_closed += f.flushed_offset
        try:
            f.stream.close()
        except OSError:
            pass
        log.warning("%s: disk full; the file ends at its last complete chunk (%d bytes) and "
                    "will be recovered; %d events wait for the next segment", f.path,
                    f.flushed_offset, len(again))
        return again

    # -- writing ---------------------------------------------------------------------------
    def write_batch(self, batch: list[Written], seen_ns: int) -> None:
        """Write ``batch``; roll when due. On OSError, ``batch[failed_at:]`` were not taken."""
        self.failed_at = 0
        for i, event in enumerate(batch):
            self.failed_at = i + 1  # an event that raised is in _unflushed already
            if self.current is None:
                self.discarded += isinstance(event, SAMPLE_TYPES)
                continue
            self._write_event(event, seen_ns)
        f = self.current
        if f is not None and time.monotonic() - f.last_flush_mono >= self.chunk_seconds:
            self.flush_chunk()
        self._maybe_roll()

    def _write_event(self, event: Written, seen_ns: int) -> None:
        f = self.current
        assert f is not None
        if isinstance(event, SensorInfo):
            self.infos[event.name] = event
            msg = mm.encode(event, seen_ns)
        elif isinstance(event, SensorStatus):
            self.statuses[event.sensor] = event
            msg = mm.encode(event)
        elif isinstance(event, AlarmEvent):
            self._note_alarm(event)
            *first, msg = mm.encode_alarm(event)  # its own channel, then a foxglove.Log line
            for record in first:
                self._write(record)
        else:
            try:
                msg = mm.encode(event, audio=self.audio, media=self.media)
            except (TypeError, ValueError) as exc:
                self.discarded += isinstance(event, SAMPLE_TYPES)
                kind = type(event).__name__
                if kind not in self._cannot_encode:  # once per kind, not once per event
                    self._cannot_encode.add(kind)
                    log.warning("recorder skipped an event it cannot encode: %r", exc)
                return
        self._unflushed.append(event)
        self._write(msg)
        if isinstance(event, SAMPLE_TYPES):
            self.samples += 1
            f.unflushed_samples += 1
            if isinstance(event, Reading):
                self.stats.add_reading(event)
        if f.unflushed_bytes >= self.chunk_bytes:
            self.flush_chunk()

    def _note_alarm(self, event: AlarmEvent) -> None:
        self.stats.add_alarm(event)
        if event.over:
            self.alarms_active.pop(event.rule, None)
        else:  # active, or latched until acknowledged: as Hub.alarms keeps them
            self.alarms_active[event.rule] = event

    def _write(self, msg: mm.EncodedMessage) -> None:
        f = self.current
        assert f is not None
        f.writer.add_message(f.channel(msg), msg.log_time, msg.data, msg.log_time, msg.sequence)
        f.unflushed_bytes += len(msg.data) + 31  # + the message record's own header

    def flush_chunk(self) -> None:
        f = self.current
        assert f is not None
        f.writer.flush()  # finishes the chunk and its message indexes, writes them out
        self._sync(f)
        f.last_flush_mono = time.monotonic()
        f.flushed_offset = f.stream.count
        if f.unflushed_bytes:
            self.chunks_written += 1
        self.samples_flushed += f.unflushed_samples
        f.unflushed_bytes = f.unflushed_samples = 0
        self._unflushed.clear()

    def _sync(self, f: McapFile) -> None:
        # fsync protects against power loss (not only a killed process); it runs in the
        # worker thread, so a slow card delays the file, never the live stream.
        if not self._fsync:
            return
        try:
            fd = f.stream.raw.fileno()
        except (AttributeError, io.UnsupportedOperation):
            return  # not a real file (an injected stream)
        os.fsync(fd)

    def _maybe_roll(self) -> None:
        f = self.current
        if f is None:
            return
        too_big = self.roll_bytes is not None and f.stream.count >= self.roll_bytes
        too_old = (self.roll_seconds is not None
                   and time.monotonic() - f.opened_mono >= self.roll_seconds)
        if not (too_big or too_old):
            return
        self.close("rolled over")  # the next file names this one as "previous"
        self.open()
        log.info("recording rolled over to %s", self.files[-1])
