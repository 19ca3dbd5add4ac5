"""Media for viewers: thermal cameras as colour-mapped video, microphones as a steered beam.

Work that is the same for every viewer happens once per sensor: a :class:`CameraView` renders
each new thermal frame once, a :class:`Beamformer` steers each audio block once. Each viewer gets
its own small track (aiortc encodes per sender) that paces output and picks up the latest result.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import functools
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sensorlink import colormap
from sensorlink.analysis.directional import steer
from sensorlink.errors import ControlError
from sensorlink.hub import Hub, Subscription
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.webrtc.encoding import SharedAudioEncoder, SharedVideoEncoder

VIDEO_CLOCK = 90_000
AUDIO_PTIME_S = 0.020

# BT.601 limited range, what libswscale uses for rgb24 → yuv420p and what decoders assume for VP8.
_RGB_TO_YUV = np.array([[65.481, 128.553, 24.966],
                        [-37.797, -74.203, 112.0],
                        [112.0, -93.786, -18.214]]) / 255.0
_YUV_OFFSET = np.array([16.0, 128.0, 128.0])


@functools.cache
def _yuv_lut(name: str) -> np.ndarray:
    """The colour map as 3×256 (Y, U, V) uint8, so a frame is mapped straight to the planes the
    encoder wants instead of to RGB that every viewer's encoder would convert again."""
    yuv = colormap.lut(name).astype(np.float64) @ _RGB_TO_YUV.T + _YUV_OFFSET
    table = np.clip(np.rint(yuv), 0, 255).astype(np.uint8).T.copy()
    table.setflags(write=False)
    return table


def render_yuv420(celsius: np.ndarray, name: str, colour_range: tuple[float, float],
                  scale: int = 1) -> np.ndarray:
    """°C (H×W) → yuv420p planes as one (3/2·H', W') uint8 array, H'×W' = the upscaled, even size
    of :func:`sensorlink.colormap.render`; the same colours, without an RGB picture in between."""
    lo, hi = colour_range
    index = np.clip((celsius - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255)
    index = np.nan_to_num(index, nan=0.0).astype(np.uint8)
    if scale > 1:
        # Upscale the 1-byte index, not 3-byte colours.
        index = np.repeat(np.repeat(index, scale, axis=0), scale, axis=1)
    h, w = index.shape
    if h % 2 or w % 2:
        index = np.pad(index, ((0, h % 2), (0, w % 2)), mode="edge")
        h, w = index.shape
    lut_y, lut_u, lut_v = _yuv_lut(name)
    out = np.empty((h * 3 // 2, w), np.uint8)
    lut_y.take(index, out=out[:h])  # take on uint8 tables: ~3x faster than fancy indexing
    u, v = out[h:h + h // 4].reshape(h // 2, w // 2), out[h + h // 4:].reshape(h // 2, w // 2)
    if scale % 2 == 0:
        # Every 2×2 block lies inside one sensor pixel: its chroma is that pixel's.
        lut_u.take(index[0::2, 0::2], out=u)
        lut_v.take(index[0::2, 0::2], out=v)
    else:
        # Blocks straddle sensor pixels: the mean of the four, as a box-filtered downscale.
        quads = (index[0::2, 0::2], index[0::2, 1::2], index[1::2, 0::2], index[1::2, 1::2])
        for table, plane in ((lut_u, u), (lut_v, v)):
            total = sum(table.take(q).astype(np.uint16) for q in quads)
            np.right_shift(total + 2, 2, out=total)
            plane[...] = total
    return out


class SensorWorker:
    """A per-sensor task fed by its own hub subscription, with a shared encoder for viewers."""

    sensor: str
    encoder: SharedVideoEncoder | SharedAudioEncoder
    _sub: Subscription

    def start(self) -> None:
        self._task: asyncio.Task[None] | None = asyncio.create_task(
            self._run(), name=f"{type(self).__name__}:{self.sensor}")

    async def stop(self) -> None:
        self._sub.close()
        await self.encoder.stop()
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        raise NotImplementedError


class CameraView(SensorWorker):
    """One thermal camera as the viewers see it: the latest frame, its colour map and range."""

    def __init__(self, hub: Hub, info: SensorInfo, *, colormap_name: str = colormap.DEFAULT_COLORMAP,
                 min_output_fps: float = 10.0) -> None:
        self.hub = hub
        self.sensor = info.name
        width, height = int(info.meta.get("width", 32)), int(info.meta.get("height", 24))
        self.scale = colormap.upscale_factor(width, height)
        self.video_size = (width * self.scale + (width * self.scale) % 2,
                           height * self.scale + (height * self.scale) % 2)
        rate = float(info.meta.get("rate_hz", 8.0))
        # Send video at a steady rate of at least min_output_fps: the receiver's jitter buffer
        # holds a frame until the next one starts, so a slow camera would otherwise lag a whole
        # period (125 ms at 8 Hz). 10 fps keeps that under 100 ms; 15 cost a 32x24 camera 6% of a
        # core instead of 4% (bench/, thermal section).
        self.output_fps = min(30.0, max(rate, min_output_fps))
        self.map = colormap_name
        self.fixed_range: tuple[float, float] | None = None
        self.frame: ThermalFrame | None = None
        self.colour_range: tuple[float, float] = (20.0, 40.0)
        self._yuv: np.ndarray | None = None
        self._listeners: list[Callable[[ThermalFrame], None]] = []
        self._view_listeners: list[Callable[[], None]] = []
        self._sub = hub.subscribe(f"camera:{self.sensor}", maxsize=4,
                                  accepts=lambda e: isinstance(e, ThermalFrame) and e.sensor == self.sensor)
        self.encoder = SharedVideoEncoder(self)

    async def _run(self) -> None:
        async for frame in self._sub:
            assert isinstance(frame, ThermalFrame)
            self.frame = frame
            self.colour_range = self.fixed_range or colormap.auto_range(frame.celsius)
            self._yuv = None  # rendered on demand, once, by the first track that asks
            for listener in tuple(self._listeners):
                listener(frame)

    def on_frame(self, listener: Callable[[ThermalFrame], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def on_view_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._view_listeners.append(listener)
        return lambda: self._view_listeners.remove(listener)

    def picture_yuv420(self) -> np.ndarray:
        """The latest frame as yuv420p planes for the video tracks, rendered once for all viewers
        (profiled: rendering RGB and letting each viewer's encoder convert it cost ~3/4 of the
        video path, the encode itself ~1/4)."""
        if self._yuv is None:
            w, h = self.video_size
            if self.frame is None:
                self._yuv = np.zeros((h * 3 // 2, w), np.uint8)
                self._yuv[:h] = 16  # black
                self._yuv[h:] = 128
            else:
                self._yuv = render_yuv420(self.frame.celsius, self.map, self.colour_range,
                                          self.scale)
        return self._yuv

    def set_view(self, *, map_name: str | None = None, colour_range: Any = None) -> None:
        if map_name is not None:
            if map_name not in colormap.COLORMAPS:
                raise ControlError(f"unknown colour map {map_name!r}; available: "
                                   f"{sorted(colormap.COLORMAPS)}", field="map")
            self.map = map_name
        if colour_range == "auto":
            self.fixed_range = None
        elif colour_range is not None:
            lo, hi = float(colour_range[0]), float(colour_range[1])
            if not hi > lo:
                raise ControlError("range: high must be above low", field="range")
            self.fixed_range = (lo, hi)
        if self.frame is not None:
            self.colour_range = self.fixed_range or colormap.auto_range(self.frame.celsius)
        self._yuv = None
        for listener in tuple(self._view_listeners):
            listener()

    def view_message(self) -> dict[str, Any]:
        return {"type": "view", "sensor": self.sensor, "map": self.map,
                "auto": self.fixed_range is None,
                "range": list(self.fixed_range) if self.fixed_range else None,
                "lut": colormap.lut(self.map).tobytes(),
                "video_width": self.video_size[0], "video_height": self.video_size[1]}


class ThermalVideoTrack(MediaStreamTrack):
    """A viewer's video track of one camera, paced at the view's steady output rate."""

    kind = "video"

    def __init__(self, view: CameraView) -> None:
        super().__init__()
        self.view = view
        self._start: float | None = None
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        fps = self.view.output_fps
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._index += 1
            delay = self._start + self._index / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:  # the loop stalled: restart the clock rather than burst
                self._start, self._index = time.monotonic(), 0
        # Each track needs its own frame object: the encoders read pts and time_base from it in
        # executor threads, at the same time.
        frame = av.VideoFrame.from_ndarray(self.view.picture_yuv420(), format="yuv420p")
        frame.pts = int(self._index * VIDEO_CLOCK / fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class Beamformer(SensorWorker):
    """One microphone array steered once for every viewer; follows the DOA unless told an angle."""

    def __init__(self, hub: Hub, info: SensorInfo) -> None:
        self.sensor = info.name
        self.rate = int(info.meta.get("rate", 16000))
        self.mic_channels = list(info.meta.get("mic_channels") or [])
        self.positions = [tuple(p) for p in info.meta.get("positions") or []]
        self.fixed_angle: float | None = None
        self.doa: float | None = None
        self.blocks = 0
        self._outputs: list[collections.deque[np.ndarray]] = []
        self.encoder = SharedAudioEncoder(self.sensor)
        self._sub = hub.subscribe(
            f"beam:{self.sensor}", maxsize=64,
            accepts=lambda e: e.__class__ in (AudioBlock, Reading) and e.sensor == self.sensor
            and (isinstance(e, AudioBlock) or e.channel == "doa"))

    @property
    def angle(self) -> float | None:
        """The direction the beam points at now (None until a direction is known)."""
        return self.fixed_angle if self.fixed_angle is not None else self.doa

    def steer_to(self, angle_deg: float | None) -> None:
        self.fixed_angle = None if angle_deg is None else float(angle_deg) % 360.0

    def beam(self, block: AudioBlock) -> np.ndarray:
        """Mono int16 of one block, steered at :attr:`angle` (plain average until known)."""
        if not self.mic_channels or not self.positions:
            mono = block.pcm.mean(axis=1)
        else:
            mics = block.pcm[:, self.mic_channels]
            angle = self.angle
            mono = mics.mean(axis=1) if angle is None else steer(mics, block.rate, self.positions, angle)
        return np.clip(np.rint(mono), -32768, 32767).astype(np.int16)

    def open_output(self, max_seconds: float = 0.3) -> collections.deque[np.ndarray]:
        out: collections.deque[np.ndarray] = collections.deque(
            maxlen=max(2, int(max_seconds * self.rate / 320)))
        self._outputs.append(out)
        return out

    def close_output(self, out: collections.deque[np.ndarray]) -> None:
        if out in self._outputs:
            self._outputs.remove(out)

    async def _run(self) -> None:
        async for event in self._sub:
            if isinstance(event, Reading):
                if event.quality == "ok":
                    self.doa = float(event.value)
                continue
            assert isinstance(event, AudioBlock)
            self.rate = event.rate
            self.blocks += 1
            if self._outputs or self.encoder.active:
                mono = self.beam(event)
                for out in self._outputs:
                    out.append(mono)
                self.encoder.feed(mono, event.rate)


class BeamAudioTrack(MediaStreamTrack):
    """A viewer's audio track: the steered beam in 20 ms frames, silence when the source lags."""

    kind = "audio"

    def __init__(self, beam: Beamformer) -> None:
        super().__init__()
        self.beam = beam
        self._queue = beam.open_output()
        self._pending = np.zeros(0, np.int16)
        self._start: float | None = None
        self._samples = 0
        self.underruns = 0

    def stop(self) -> None:
        self.beam.close_output(self._queue)
        super().stop()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        rate = self.beam.rate
        n = int(rate * AUDIO_PTIME_S)
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._samples / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                self._start, self._samples = time.monotonic(), 0
        while len(self._pending) < n and self._queue:
            self._pending = np.concatenate((self._pending, self._queue.popleft()))
        if len(self._pending) >= n:
            chunk, self._pending = self._pending[:n], self._pending[n:]
        else:
            self.underruns += 1
            chunk = np.concatenate((self._pending, np.zeros(n - len(self._pending), np.int16)))
            self._pending = np.zeros(0, np.int16)
        # Keep latency bounded: drop what piled up beyond ~200 ms.
        if len(self._pending) > rate // 5:
            self._pending = self._pending[-n:]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, rate)
        self._samples += n
        return frame
