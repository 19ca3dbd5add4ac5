"""The recorder sink: hub events → MCAP files (zstd chunks, indexed), next to the sensors.

It subscribes to the hub with a deep queue and writes from one worker thread, so neither a slow
disk (an SD card stalls for hundreds of milliseconds) nor compression ever blocks the event loop
the drivers and viewers run on. Crash safety comes from cutting a chunk at least every
``chunk_seconds`` (and every ``chunk_bytes``) and flushing it to the OS: a process killed at any
moment leaves a file readable up to its last complete chunk. Write errors (disk full) end the
recording, are reported in :meth:`Recorder.status` and never reach the hub.

The file being written is held under an exclusive ``flock``; with ``recover_cut``, a start first
recovers the cut files an earlier run left in the directory (:mod:`sensorlink.recording.recovery`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import io
import json
import logging
import os
import platform
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import mcap

import sensorlink
from sensorlink.errors import RecordingError
from sensorlink.hub import Event, Hub, Subscription
from sensorlink.recording import messages as mm
from sensorlink.recording.mcap_file import McapFile, open_exclusive
from sensorlink.recording.recovery import Recovered, recover_directory
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

log = logging.getLogger(__name__)

SESSION_METADATA = "sensorlink.session"
SUMMARY_METADATA = "sensorlink.summary"
_SAMPLE_TYPES = (ThermalFrame, AudioBlock, Reading)


class Recorder:
    """Records everything the hub carries, plus control actions, into ``directory``."""

    def __init__(self, hub: Hub, directory: str | Path, *, session: dict[str, Any],
                 roll_bytes: int | None = None, roll_seconds: float | None = None,
                 queue_size: int = 200_000, prefix: str = "sensorlink",
                 chunk_bytes: int = 1 << 20, chunk_seconds: float = 1.0,
                 opener: Callable[[Path], IO[bytes]] | None = None,
                 fsync: bool = True, file: str | Path | None = None, recover_cut: bool = False,
                 media: str = mm.MEDIA_FORMS[0]) -> None:
        if roll_bytes is not None and roll_bytes <= 0:
            raise RecordingError("roll_bytes must be positive")
        if roll_seconds is not None and roll_seconds <= 0:
            raise RecordingError("roll_seconds must be positive")
        self.hub = hub
        self.directory = Path(directory)
        self.session = dict(session)
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self.queue_size = queue_size
        self.prefix = prefix
        self.chunk_bytes = chunk_bytes
        self.chunk_seconds = chunk_seconds
        self._opener = opener or open_exclusive
        self._fsync = fsync
        self.recover_cut = recover_cut
        #: the form of thermal frames and audio blocks: "protobuf" or "json" (the baseline)
        self.media = media
        self.recovered: list[Recovered] = []  # cut files of an earlier run that start() recovered
        self.files: list[Path] = []
        #: an exact name for the first file (``sensorlink view --record FILE``); rolled parts
        #: get -2, -3 ... after its stem
        self.file = Path(file) if file is not None else None
        #: samples and chunks known to be on disk (handed to the OS) in complete chunks
        self.samples_flushed = 0
        self.chunks_written = 0
        self._samples = 0
        self._bytes_closed = 0
        self._discarded = 0
        self._error: str | None = None
        self._file: McapFile | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._controls: deque[mm.ControlRecord] = deque()
        # Latest description/state per sensor, written again at the top of each rolled file.
        self._infos: dict[str, SensorInfo] = {}
        self._statuses: dict[str, SensorStatus] = {}
        self._active = False
        self._starting: asyncio.Future[None] | None = None

    # -- public API ------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    @property
    def path(self) -> Path | None:
        return self.files[-1] if self.files else None

    def status(self) -> dict[str, Any]:
        current = self._file.stream.count if self._file is not None else 0
        return {"active": self._active, "path": str(self.path) if self.path else None,
                "bytes": self._bytes_closed + current, "samples": self._samples,
                "dropped": (self._sub.dropped if self._sub else 0) + self._discarded,
                "error": self._error}

    def log_control(self, message: dict[str, Any], *, viewer: str) -> None:
        if self._active:
            self._controls.append(mm.ControlRecord(viewer, dict(message), time.time_ns()))

    async def start(self) -> None:
        if self._active:
            raise RecordingError(f"already recording to {self.path}")
        # Shielded: a caller cancelled mid-start (a viewer that asked for a recording, then
        # left) would leave the file opening in the worker thread with nobody to close it, and
        # a hub subscription nobody drains. The start completes; stop() ends it.
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        await self._finish()  # tidy up after a recording that ended on an error
        self._error = None
        self._sub = self.hub.subscribe("recorder", maxsize=self.queue_size)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="recorder")
        self._infos = dict(self.hub.sensors)
        self._statuses = dict(self.hub.statuses)
        if self.recover_cut:
            # Before the new file exists; events meanwhile wait in the (deep) queue.
            self.recovered += await self._run(recover_directory, self.directory, self.prefix)
        try:
            await self._run(self._open_file, None)
        except OSError as exc:
            self._sub.close()
            self._executor.shutdown(wait=False)
            self._error = f"cannot create a recording in {self.directory}: {exc}"
            raise RecordingError(self._error) from exc
        self._active = True
        self._task = asyncio.create_task(self._drain(), name="recorder")
        log.info("recording to %s", self.path)

    async def stop(self) -> None:
        """Write what is queued, then the summary and index; safe to call twice."""
        if self._starting is not None:  # a start whose caller was cancelled ends first
            await asyncio.gather(self._starting, return_exceptions=True)
        await self._finish()

    async def _finish(self) -> None:
        if self._task is None:
            return
        if self._sub is not None:
            self._sub.close()  # the drain loop empties the queue, then sees EOF
        try:
            await self._task
        finally:
            self._task = None
            self._active = False
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        log.info("recording stopped: %s", self.status())

    # -- event-loop side -------------------------------------------------------------------
    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _drain(self) -> None:
        sub = self._sub
        assert sub is not None
        tick = max(min(self.chunk_seconds, 0.25), 0.01)
        done = False
        while not done and self._file is not None:
            batch: list[Event | mm.ControlRecord] = []
            try:
                # Wakes at least every tick so idle chunks, controls and rollover still happen.
                batch.append(await asyncio.wait_for(sub.get(), tick))
            except TimeoutError:
                pass
            except EOFError:
                done = True
            batch.extend(sub.get_nowait(10_000))
            while self._controls:
                batch.append(self._controls.popleft())
            seen_ns = time.time_ns()
            try:
                await self._run(self._write_batch, batch, seen_ns)
            except Exception as exc:  # a bug must not kill the live stream either
                log.exception("recorder failed")
                self._fail(f"recorder failed: {exc!r}")
        if self._file is not None:
            await self._run(self._close_file, "stopped")
        else:
            sub.close()  # failed: stop queueing for a recorder that no longer writes
            self._active = False
            if self._executor is not None:
                self._executor.shutdown(wait=False)  # idle now; stop() may never be called

    # -- worker-thread side ----------------------------------------------------------------
    def _fail(self, error: str) -> None:
        self._error = error
        self._active = False
        log.error("recording stopped: %s", error)
        f, self._file = self._file, None
        if f is not None:
            self._bytes_closed += f.stream.count
            try:
                f.stream.close()
            except OSError:
                pass  # the same error again; the file stays readable up to its last chunk

    def _next_path(self, now: datetime.datetime) -> Path:
        if self.file is not None and not self.files:
            return self.file  # named by the user: written as asked
        if self.file is not None:
            folder, stem, suffix = self.file.parent, self.file.stem, self.file.suffix
        else:
            folder, stem, suffix = self.directory, f"{self.prefix}-{now:%Y%m%dT%H%M%SZ}", ".mcap"
        n = len(self.files) + 1 if self.file is not None else 1
        path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        while path.exists():
            n += 1
            path = folder / f"{stem}-{n}{suffix}"
        return path

    def _open_file(self, previous: Path | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        path = self._next_path(now)
        raw = self._opener(path)
        f = McapFile(path, raw, self.chunk_bytes)
        self._file = f
        self.files.append(path)
        start_ns = time.time_ns()
        f.writer.start(profile="", library=f"sensorlink {sensorlink.__version__}, "
                                           f"mcap {mcap.__version__}")
        f.writer.add_metadata(SESSION_METADATA, {
            "session": json.dumps(self.session, default=str, ensure_ascii=False),
            "host": socket.gethostname(), "version": sensorlink.__version__,
            "python": platform.python_version(),
            "start_time": now.isoformat(), "start_time_ns": str(start_ns),
            "part": str(len(self.files)), "previous": previous.name if previous else "",
        })
        for info in self._infos.values():
            self._write(mm.encode(info, start_ns))
        for status in self._statuses.values():
            self._write(mm.encode(status, start_ns))
        self._flush_chunk()

    def _close_file(self, reason: str) -> None:
        f = self._file
        if f is None:
            return
        try:
            self._flush_chunk()
            f.writer.add_metadata(SUMMARY_METADATA, {
                "reason": reason, "stop_time_ns": str(time.time_ns()),
                "samples": str(self._samples), "dropped": str(self.status()["dropped"])})
            f.writer.finish()
            f.stream.flush()
            self._sync(f)
            f.stream.close()
        except OSError as exc:
            self._fail(f"{f.path}: {exc.strerror or exc}")
            return
        self._bytes_closed += f.stream.count
        self._file = None

    def _write_batch(self, batch: list[Event | mm.ControlRecord], seen_ns: int) -> None:
        if self._file is None:
            self._discarded += sum(isinstance(e, _SAMPLE_TYPES) for e in batch)
            return
        try:
            for event in batch:
                if self._file is None:
                    self._discarded += isinstance(event, _SAMPLE_TYPES)
                    continue
                self._write_event(event, seen_ns)
            f = self._file
            if f is not None and time.monotonic() - f.last_flush_mono >= self.chunk_seconds:
                self._flush_chunk()
            self._maybe_roll()
        except OSError as exc:
            path = self._file.path if self._file else self.directory
            self._fail(f"{path}: {exc.strerror or exc}")

    def _write_event(self, event: Event | mm.ControlRecord, seen_ns: int) -> None:
        f = self._file
        assert f is not None
        if isinstance(event, SensorInfo):
            self._infos[event.name] = event
            msg = mm.encode(event, seen_ns)
        elif isinstance(event, SensorStatus):
            self._statuses[event.sensor] = event
            msg = mm.encode(event, media=self.media)
        else:
            try:
                msg = mm.encode(event, media=self.media)
            except (TypeError, ValueError) as exc:
                self._discarded += 1
                log.warning("recorder skipped an event it cannot encode: %r", exc)
                return
        self._write(msg)
        if isinstance(event, _SAMPLE_TYPES):
            self._samples += 1
            f.unflushed_samples += 1
        if f.unflushed_bytes >= self.chunk_bytes:
            self._flush_chunk()

    def _write(self, msg: mm.EncodedMessage) -> None:
        f = self._file
        assert f is not None
        f.writer.add_message(f.channel(msg), msg.log_time, msg.data, msg.log_time, msg.sequence)
        f.unflushed_bytes += len(msg.data) + 31  # + the message record's own header

    def _flush_chunk(self) -> None:
        f = self._file
        assert f is not None
        f.writer.flush()  # finishes the chunk and its message indexes, flushes the stream
        self._sync(f)
        f.last_flush_mono = time.monotonic()
        if f.unflushed_bytes:
            self.chunks_written += 1
        self.samples_flushed += f.unflushed_samples
        f.unflushed_bytes = f.unflushed_samples = 0

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
        f = self._file
        if f is None:
            return
        too_big = self.roll_bytes is not None and f.stream.count >= self.roll_bytes
        too_old = (self.roll_seconds is not None
                   and time.monotonic() - f.opened_mono >= self.roll_seconds)
        if not (too_big or too_old):
            return
        old = f.path
        self._close_file("rolled over")  # the next file names this one as "previous"
        if self._file is None and self._error is None:
            self._open_file(old)
            log.info("recording rolled over to %s", self.path)
