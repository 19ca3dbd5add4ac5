"""PyAV capture in a thread, shared by the UVC camera and microphone-array drivers.

FFmpeg's device inputs (``v4l2``, ``alsa``) block in ``av_read_frame``, so one daemon thread per
device demuxes and decodes, runs a converter on each decoded frame (still in the thread, where
numpy work does not stall the event loop) and hands the result to the loop with
``call_soon_threadsafe``. The same code reads a file (``rawvideo``, ``nut``, ``wav``): the tests
and anyone replaying a raw dump of a device go through exactly the path a live device takes.

PyAV is imported here only, and only when a capture opens, so listing drivers never loads it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sensorlink.errors import DeviceDisconnected, DriverError, DriverUnavailable, ProtocolError
from sensorlink.samples import now_ns

T = TypeVar("T")

#: Where distributions keep ALSA's configuration; PyAV's wheels bundle an alsa-lib that looks
#: for it under the wheel's build prefix instead, and then knows no PCM names at all.
ALSA_CONFIG = "/usr/share/alsa/alsa.conf"

#: Consecutive undecodable packets after which the device counts as gone (a few are normal when
#: a UVC camera starts streaming; an endless run means the stream is not what we asked for).
MAX_BAD_PACKETS_IN_ROW = 50


def ensure_alsa_config() -> None:
    """Point PyAV's bundled alsa-lib at the system configuration unless the user chose one."""
    if "ALSA_CONFIG_PATH" not in os.environ and os.path.exists(ALSA_CONFIG):
        os.environ["ALSA_CONFIG_PATH"] = ALSA_CONFIG


def import_av(sensor: str) -> Any:
    try:
        import av
    except ImportError as exc:
        raise DriverUnavailable("PyAV is not installed (pip install av)", sensor=sensor) from exc
    return av


@dataclass(frozen=True)
class StreamFormat:
    """What the opened input actually delivers (it may differ from what was asked)."""

    kind: Literal["video", "audio"]
    codec: str
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    rate: int = 0
    channels: int = 0
    sample_fmt: str = ""


@dataclass(frozen=True)
class Captured(Generic[T]):
    """One converted frame and the clocks read when its packet came out of the demuxer."""

    value: T
    t_mono_ns: int
    t_wall_ns: int


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class AvCapture(Generic[T]):
    """Demux + decode one stream of an FFmpeg input in a thread; ``get()`` on the loop.

    ``convert`` runs in the thread on each decoded frame; a ``ProtocolError`` from it is handed
    over in place of a value (the driver counts it and goes on). The hand-over queue holds
    ``depth`` items: when the loop falls behind, the oldest is dropped and counted in
    ``counters[drop_counter]`` (a live view wants the newest frame, not a growing lag).
    """

    def __init__(self, *, sensor: str, url: str, input_format: str | None,
                 options: dict[str, str], kind: Literal["video", "audio"],
                 convert: Callable[[Any], T], depth: int,
                 counters: collections.Counter[str] | None = None,
                 drop_counter: str = "dropped") -> None:
        self.sensor = sensor
        self.url = url
        self.input_format = input_format
        self.options = options
        self.kind = kind
        self.convert = convert
        self.depth = depth
        self.dropped = 0
        self.counters = counters if counters is not None else collections.Counter()
        self.drop_counter = drop_counter
        self.format: StreamFormat | None = None
        self._items: collections.deque[Captured[T] | ProtocolError | _End] = collections.deque()
        self._ready = asyncio.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container: Any = None
        self._ended = False

    async def open(self) -> StreamFormat:
        if self.input_format == "alsa":
            ensure_alsa_config()
        av = import_av(self.sensor)
        try:
            # Opening a V4L2 or ALSA device negotiates with the hardware: keep it off the loop.
            # The options are the demuxer's only: as stream options they would also override a
            # file's own frame size and hide a camera streaming in the wrong mode.
            self._container = await asyncio.to_thread(
                av.open, self.url, format=self.input_format,
                container_options=dict(self.options))
        except av.error.FFmpegError as exc:
            raise DriverError(f"cannot open {self.input_format or 'input'} {self.url!r}: {exc}",
                              sensor=self.sensor, port=self.url) from exc
        streams = getattr(self._container.streams, self.kind)
        if not streams:
            self._container.close()
            raise DriverError(f"{self.url!r} has no {self.kind} stream", sensor=self.sensor,
                              port=self.url)
        self.format = _describe(streams[0], self.kind)
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, args=(loop, streams[0], av),
                                        name=f"capture:{self.sensor}", daemon=True)
        self._thread.start()
        return self.format

    async def get(self) -> Captured[T] | ProtocolError:
        """The next converted frame (or the ProtocolError that replaced it).

        Raises DeviceDisconnected when the input ends or fails."""
        while not self._items:
            if self._ended:
                raise DeviceDisconnected("capture stopped", sensor=self.sensor, port=self.url)
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, _End):
            self._ended = True
            reason = f"{item.error}" if item.error else "end of stream"
            raise DeviceDisconnected(reason, sensor=self.sensor, port=self.url) from item.error
        return item

    async def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            # A device read returns within one frame or ALSA period; a wedged device is left
            # to its daemon thread rather than hanging shutdown.
            await asyncio.to_thread(thread.join, 3.0)
        elif self._container is not None:
            self._container.close()
        self._container = None

    # -- thread side --------------------------------------------------------------------------
    def _run(self, loop: asyncio.AbstractEventLoop, stream: Any, av: Any) -> None:
        container = self._container
        error: BaseException | None = None
        bad_in_row = 0
        try:
            demuxer = container.demux(stream)
            while not self._stop.is_set():
                try:
                    packet = next(demuxer)
                    t_mono, t_wall = now_ns()
                    frames = packet.decode()
                except StopIteration:
                    break
                except av.error.InvalidDataError as exc:
                    # A short or garbled buffer (a camera starting up): count it and go on.
                    bad_in_row += 1
                    if bad_in_row > MAX_BAD_PACKETS_IN_ROW:
                        raise
                    demuxer = container.demux(stream)
                    self._hand_over(loop, ProtocolError(f"undecodable packet: {exc}"))
                    continue
                bad_in_row = 0
                for frame in frames:
                    try:
                        item: Captured[T] | ProtocolError = Captured(self.convert(frame),
                                                                      t_mono, t_wall)
                    except ProtocolError as exc:
                        item = exc
                    self._hand_over(loop, item)
        except BaseException as exc:  # the loop side turns it into DeviceDisconnected
            error = exc
        finally:
            try:
                container.close()
            except Exception:
                pass
            self._hand_over(loop, _End(error))

    def _hand_over(self, loop: asyncio.AbstractEventLoop, item: Any) -> None:
        try:
            loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _deliver(self, item: Any) -> None:
        if not isinstance(item, _End) and len(self._items) >= self.depth:
            self._items.popleft()
            self.dropped += 1
            self.counters[self.drop_counter] += 1
        self._items.append(item)
        self._ready.set()


def _describe(stream: Any, kind: str) -> StreamFormat:
    cc = stream.codec_context
    if kind == "video":
        return StreamFormat("video", cc.name, width=int(cc.width), height=int(cc.height),
                            pix_fmt=str(cc.pix_fmt or ""))
    return StreamFormat("audio", cc.name, rate=int(cc.sample_rate or stream.rate or 0),
                        channels=int(cc.channels), sample_fmt=cc.format.name if cc.format else "")
