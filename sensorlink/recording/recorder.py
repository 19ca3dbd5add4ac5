"""The recorder sink: hub events → MCAP segments (zstd chunks, indexed), next to the sensors.

It subscribes to the hub with a deep queue and writes from one worker thread
(:mod:`sensorlink.recording.segment_writer`), so neither a slow disk (an SD card stalls for
hundreds of milliseconds), compression, indexing nor retention ever blocks the event loop the
drivers and viewers run on. Crash safety comes from cutting a chunk at least every
``chunk_seconds`` (and every ``chunk_bytes``) and flushing it to the OS: a process killed at
any moment leaves a file readable up to its last complete chunk.

Disk space. With a free-space guard (``min_free_bytes``) the recorder pauses when the disk has
less than that free, and also when a write finds it full: the segment is closed (or cut back
to its last complete chunk), :meth:`Recorder.status` says ``paused`` and why, and an alarm
(rule ``recording.free_space``) is published on the hub. While paused nothing is taken from the
hub subscription, which keeps queueing (bounded by ``queue_size``: beyond it the oldest are
dropped and counted); once the space is back a new segment opens with everything that waited,
so no sample is lost. Without a guard a write error ends the recording, is reported in the
status and never reaches the hub.

The file being written is held under an exclusive ``flock``; with ``recover_cut``, a start first
recovers the cut files an earlier run left in the directory (:mod:`sensorlink.recording.recovery`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sensorlink.alarm_event import AlarmEvent
from sensorlink.errors import RecordingError
from sensorlink.hub import Hub, Subscription
from sensorlink.recording import messages as mm
from sensorlink.recording.mcap_file import open_exclusive
from sensorlink.recording.recovery import Recovered, recover, recover_directory
from sensorlink.recording.segment_stats import DEFAULT_BUCKET_NS
from sensorlink.recording.segment_writer import (
    SAMPLE_TYPES, SESSION_METADATA, SUMMARY_METADATA, Catalog, SegmentWriter, Written,
)

log = logging.getLogger(__name__)

__all__ = ["FREE_SPACE_RULE", "SESSION_METADATA", "SUMMARY_METADATA", "Recorder"]
FREE_SPACE_RULE = "recording.free_space"
SPACE_CHECK_S = 1.0


class Recorder:
    """Records everything the hub carries, plus control actions, into ``directory``."""

    def __init__(self, hub: Hub, directory: str | Path, *, session: dict[str, Any],
                 roll_bytes: int | None = None, roll_seconds: float | None = None,
                 queue_size: int = 200_000, prefix: str = "sensorlink",
                 chunk_bytes: int = 1 << 20, chunk_seconds: float = 1.0,
                 opener: Callable[[Path], IO[bytes]] | None = None,
                 fsync: bool = True, file: str | Path | None = None, recover_cut: bool = False,
                 min_free_bytes: int | None = None, audio: str = "pcm",
                 bucket_ns: int = DEFAULT_BUCKET_NS, catalog: Catalog | None = None,
                 media: str = mm.MEDIA_FORMS[0]) -> None:
        if roll_bytes is not None and roll_bytes <= 0:
            raise RecordingError("roll_bytes must be positive")
        if roll_seconds is not None and roll_seconds <= 0:
            raise RecordingError("roll_seconds must be positive")
        if audio not in ("pcm", "flac"):
            raise RecordingError(f"audio must be 'pcm' or 'flac', got {audio!r}")
        self.hub = hub
        self.directory = Path(directory)
        self.queue_size = queue_size
        self.prefix = prefix
        self.recover_cut = recover_cut
        self.min_free_bytes = min_free_bytes
        self.catalog = catalog
        self.recovered: list[Recovered] = []  # cut files of an earlier run that start() recovered
        self.writer = SegmentWriter(
            self.directory, session=dict(session), prefix=prefix,
            file=Path(file) if file is not None else None, opener=opener or open_exclusive,
            chunk_bytes=chunk_bytes, chunk_seconds=chunk_seconds, fsync=fsync,
            roll_bytes=roll_bytes, roll_seconds=roll_seconds, audio=audio, media=media,
            bucket_ns=bucket_ns, catalog=catalog)
        self.writer.dropped = lambda: self.status()["dropped"]
        self._error: str | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._controls: deque[mm.ControlRecord] = deque()
        self._active = False
        self._starting: asyncio.Future[None] | None = None
        self._stopping = asyncio.Event()
        #: why recording is paused (low disk space), None while it writes
        self._paused: str | None = None
        self._again: list[Written] = []  # events the full disk did not take, written first
        self._cut: Path | None = None    # the file the full disk cut, recovered on resume
        self._free: int | None = None
        self._checked_mono = 0.0
        self._alarm_seq = 0
        self.pauses = 0

    # -- public API ------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    @property
    def files(self) -> list[Path]:
        return self.writer.files

    @property
    def file(self) -> Path | None:
        return self.writer.file

    @property
    def path(self) -> Path | None:
        return self.files[-1] if self.files else None

    @property
    def samples_flushed(self) -> int:
        return self.writer.samples_flushed

    @property
    def chunks_written(self) -> int:
        return self.writer.chunks_written

    @property
    def paused(self) -> str | None:
        return self._paused

    def status(self) -> dict[str, Any]:
        w = self.writer
        return {"active": self._active, "path": str(self.path) if self.path else None,
                "bytes": w.bytes_closed + w.current_bytes, "samples": w.samples,
                # "is not None": a Subscription is falsy when its queue is empty
                "dropped": (self._sub.dropped if self._sub is not None else 0) + w.discarded,
                "error": self._error,
                "paused": self._paused is not None, "pause_reason": self._paused,
                "queued": len(self._sub) + len(self._again) if self._sub is not None else 0,
                "segments": len(w.files), "free_bytes": self._free}

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
        self._stopping = asyncio.Event()
        self._sub = self.hub.subscribe("recorder", maxsize=self.queue_size)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="recorder")
        self.writer.infos = dict(self.hub.sensors)
        self.writer.statuses = dict(self.hub.statuses)
        self.writer.alarms_active = dict(self.hub.alarms)
        if self.recover_cut:
            # Before the new file exists; events meanwhile wait in the (deep) queue.
            self.recovered += await self._run(recover_directory, self.directory, self.prefix)
        if self.catalog is not None:  # index what recovery rewrote, and what changed meanwhile
            await self._run(self.catalog.sync)
        try:
            await self._run(self.writer.open)
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
        self._stopping.set()
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
        tick = max(min(self.writer.chunk_seconds, 0.25), 0.01)
        done = False
        while not done and (self.writer.current is not None or self._paused):
            if self._paused:
                if not await self._wait_for_space():
                    break  # stopped while paused: what waits cannot be written
                continue
            batch: list[Written] = []
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
            try:
                paused = await self._run(self._write_batch, batch, time.time_ns())
            except Exception as exc:  # a bug must not kill the live stream either
                log.exception("recorder failed")
                self._fail(f"recorder failed: {exc!r}")
                paused = None
            if paused:
                self._pause(paused)
        if self.writer.current is not None:
            try:
                await self._run(self.writer.close, "stopped")
            except OSError as exc:
                self._fail(f"{self.path}: {exc.strerror or exc}")
        if self._paused:
            self._lost_while_paused(sub)
        if self.writer.current is None and self._error is not None:
            sub.close()  # failed: stop queueing for a recorder that no longer writes
            self._active = False
            if self._executor is not None:
                self._executor.shutdown(wait=False)  # idle now; stop() may never be called

    def _pause(self, reason: str) -> None:
        self._paused = reason
        self.pauses += 1
        log.warning("recording paused: %s", reason)
        self._alarm("raised", True, f"recording paused: {reason}")

    async def _wait_for_space(self) -> bool:
        """While paused: poll the free space; resume when it is back. False when stopped
        (after one last look, so that what waits is written if it can be)."""
        while True:
            free = await self._run(self._free_space)
            margin = self.min_free_bytes or 0
            # Resume a little above the limit, so one segment's header does not pause it again.
            if free is not None and free >= margin + max(margin // 10, 1 << 20):
                try:
                    await self._run(self._resume)
                except OSError as exc:
                    log.warning("recording still paused: %s", exc.strerror or exc)
                else:
                    reason, self._paused = self._paused, None
                    log.info("recording resumed in %s (%s)", self.path, reason)
                    self._alarm("cleared", False, f"recording resumed after: {reason}")
                    return True
            if self._stopping.is_set():
                return False
            try:
                await asyncio.wait_for(self._stopping.wait(), SPACE_CHECK_S)
            except TimeoutError:
                pass

    def _lost_while_paused(self, sub: Subscription) -> None:
        waiting = self._again + sub.get_nowait(len(sub))
        lost = sum(isinstance(e, SAMPLE_TYPES) for e in waiting)
        self.writer.discarded += lost
        self._again = []
        log.warning("recording stopped while paused (%s): %d samples that waited for disk "
                    "space are lost", self._paused, lost)

    def _alarm(self, transition: str, active: bool, message: str) -> None:
        self._alarm_seq += 1
        now = time.time_ns()
        since = self.hub.alarms[FREE_SPACE_RULE].since_wall_ns \
            if FREE_SPACE_RULE in self.hub.alarms else now
        # Not latching: nobody has to acknowledge a disk that has room again, so the clearing
        # event says acknowledged and the alarm leaves the list.
        self.hub.alarm(AlarmEvent(
            FREE_SPACE_RULE, str(self.directory), transition, "alarm", active,  # type: ignore[arg-type]
            not active, message, self._alarm_seq, time.monotonic_ns(), now, since,
            value=None if self._free is None else self._free / 1e9,
            limit=None if self.min_free_bytes is None else self.min_free_bytes / 1e9))

    # -- worker-thread side ----------------------------------------------------------------
    def _fail(self, error: str) -> None:
        self._error = error
        self._active = False
        log.error("recording stopped: %s", error)
        self.writer.drop_current()

    def _free_space(self) -> int | None:
        try:
            self._free = shutil.disk_usage(self.directory).free
        except OSError:
            self._free = None
        self._checked_mono = time.monotonic()
        return self._free

    def _write_batch(self, batch: list[Written], seen_ns: int) -> str | None:
        """Write ``batch``; the reason to pause, or None."""
        w = self.writer
        if w.current is None:
            w.discarded += sum(isinstance(e, SAMPLE_TYPES) for e in batch)
            return None
        try:
            w.write_batch(batch, seen_ns)
        except OSError as exc:
            if exc.errno == errno.ENOSPC and self.min_free_bytes is not None:
                cut = w.current.path if w.current else None
                self._again = w.abandon() + batch[w.failed_at:]
                self._cut = cut if cut is not None and cut.exists() else None
                return f"the disk is full ({self.directory})"
            path = w.current.path if w.current else self.directory
            self._fail(f"{path}: {exc.strerror or exc}")
            return None
        if self.min_free_bytes is None or time.monotonic() - self._checked_mono < SPACE_CHECK_S:
            return None
        free = self._free_space()
        if free is None or free >= self.min_free_bytes:
            return None
        reason = (f"{free / 1e9:.3f} GB free in {self.directory}, below min_free_gb "
                  f"{self.min_free_bytes / 1e9:g}")
        try:
            w.close("paused: low disk space")
        except OSError:
            cut = w.current.path if w.current else None
            self._again = w.abandon()
            self._cut = cut if cut is not None and cut.exists() else None
        return reason

    def _resume(self) -> None:
        if self._cut is not None:
            try:
                recover(self._cut)
            except RecordingError as exc:  # left cut: the next start-up tries again
                log.warning("%s", exc)
            if self.catalog is not None:
                self.catalog.sync()
            self._cut = None
        again, self._again = self._again, []
        self.writer.failed_at = 0
        try:
            self.writer.open()
            self.writer.write_batch(again, time.time_ns())
        except OSError:
            self._again = self.writer.abandon() + again[self.writer.failed_at:]
            raise
