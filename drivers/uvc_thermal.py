"""Radiometric UVC thermal cameras through PyAV's v4l2 input: InfiRay P2 Pro, Topdon TC001 and
FLIR Lepton 3.x on a PureThermal board.

The frame → °C part is pure (packed frame bytes in, float32 °C out) and knows each model's layout:

* **P2 Pro / TC001** stream 256×384 YUYV: the upper 256×192 half is the camera's own false-colour
  picture, the lower half the raw sensor values, one little-endian uint16 per pixel sitting in
  the two bytes YUYV gives that pixel, °C = raw / 64 − 273.15 (LeoDJ's finding, used by
  tlamy/P2Pro-Viewer and leswright1977/PyThermalCamera). FFmpeg calls the format ``yuyv422``;
  decoded, each row is still the device's bytes, so the pairs are taken straight from the plane
  (``to_ndarray(format=...)`` would colour-convert and destroy the values).
* **Lepton 3.x (PureThermal, radiometric TLinear)**: 160×120 ``Y16`` (FFmpeg ``gray16le``),
  centikelvin, °C = raw / 100 − 273.15 (groupgets/purethermal1-uvc-capture).

One driver per model (``p2pro``, ``tc001``, ``lepton``) rather than one with a ``model`` option:
the user knows the device, ``sensorlink drivers`` lists each with its own line, and every
other option's default (size, pixel format, frame rate) follows from the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from sensorlink.driver import Driver
from sensorlink.errors import DriverError, ProtocolError
from sensorlink.samples import Sample, SensorInfo, ThermalFrame
from sensorlink_drivers.av_capture import AvCapture


@dataclass(frozen=True)
class ThermalModel:
    """How one camera model lays its radiometric values out in a captured frame."""

    name: str
    #: size of the frame the device streams, and FFmpeg's name for its pixel format
    frame_width: int
    frame_height: int
    pix_fmt: Literal["yuyv422", "gray16le"]
    #: first row of raw values within the frame, and the size of the radiometric image
    raw_row: int
    width: int
    height: int
    #: °C = raw / counts_per_kelvin − 273.15
    counts_per_kelvin: float
    fps: float

    @property
    def frame_bytes(self) -> int:
        # Both YUYV and Y16 carry two bytes per pixel.
        return self.frame_width * self.frame_height * 2


P2PRO = ThermalModel("p2pro", 256, 384, "yuyv422", 192, 256, 192, 64.0, 25.0)
TC001 = ThermalModel("tc001", 256, 384, "yuyv422", 192, 256, 192, 64.0, 25.0)
LEPTON = ThermalModel("lepton", 160, 120, "gray16le", 0, 160, 120, 100.0, 9.0)
MODELS = {m.name: m for m in (P2PRO, TC001, LEPTON)}


def raw_values(frame: bytes | memoryview, model: ThermalModel) -> np.ndarray:
    """Packed frame bytes (rows without padding) → the uint16 raw image, (height, width)."""
    if len(frame) != model.frame_bytes:
        raise ProtocolError(f"{model.name}: frame of {len(frame)} bytes, expected "
                            f"{model.frame_bytes} ({model.frame_width}x{model.frame_height} "
                            f"{model.pix_fmt})")
    words = np.frombuffer(frame, dtype="<u2").reshape(model.frame_height, model.frame_width)
    return words[model.raw_row:model.raw_row + model.height, :model.width]


def raw_to_celsius(raw: np.ndarray, model: ThermalModel) -> np.ndarray:
    return (raw.astype(np.float64) / model.counts_per_kelvin - 273.15).astype(np.float32)


def celsius_to_raw(celsius: np.ndarray, model: ThermalModel) -> np.ndarray:
    """The inverse, for emulating a camera: the nearest raw count, clipped to uint16."""
    counts = np.rint((np.asarray(celsius, dtype=np.float64) + 273.15) * model.counts_per_kelvin)
    return np.clip(counts, 0, 65535).astype("<u2")


def orient(image: np.ndarray, rotate: int, mirror: bool) -> np.ndarray:
    """Turn the image to match how the camera is mounted (rotation is counter-clockwise)."""
    if mirror:
        image = image[:, ::-1]
    if rotate:
        image = np.rot90(image, rotate // 90)
    return np.ascontiguousarray(image)


class FrameDecoder:
    """Pure: packed frame bytes → °C image, counting frames it must refuse."""

    def __init__(self, model: ThermalModel, *, rotate: int = 0, mirror: bool = False) -> None:
        self.model = model
        self.rotate = rotate
        self.mirror = mirror

    def decode(self, frame: bytes | memoryview) -> np.ndarray:
        """°C, float32, (height, width) after orientation. ProtocolError for a frame that cannot
        be this model's: wrong size, or all zeros (a camera still starting, or in the wrong mode
        after a firmware command), which would read as −273 °C."""
        raw = raw_values(frame, self.model)
        if not raw.any():
            raise ProtocolError(f"{self.model.name}: frame of zero raw values")
        return orient(raw_to_celsius(raw, self.model), self.rotate, self.mirror)


def packed_plane(frame: Any) -> bytes:
    """A decoded PyAV video frame's first plane without FFmpeg's row padding: exactly the bytes
    the device sent, whatever ``to_ndarray`` would make of the pixel format."""
    plane = frame.planes[0]
    row = frame.width * 2
    data = np.frombuffer(memoryview(plane), dtype=np.uint8)
    if plane.line_size == row:
        return data[:row * frame.height].tobytes()
    rows = data[:plane.line_size * frame.height].reshape(frame.height, plane.line_size)
    return rows[:, :row].tobytes()


@dataclass(frozen=True)
class UvcOptions:
    #: V4L2 device (prefer a stable /dev/v4l/by-id/... path), or a file for ``input_format``
    device: str = "/dev/video0"
    #: FFmpeg input: ``v4l2`` for the camera; ``rawvideo``/``nut`` to play back a raw dump
    input_format: str = "v4l2"
    #: frames per second to ask for; 0 leaves the device's default
    fps: float = 0.0
    #: counter-clockwise rotation in degrees, and a left-right mirror, for how it is mounted
    rotate: int = 0
    mirror: bool = False

    def __post_init__(self) -> None:
        if self.rotate not in (0, 90, 180, 270):
            raise ValueError("rotate: must be 0, 90, 180 or 270")
        if not 0 <= self.fps <= 120:
            raise ValueError("fps: must be 0-120 (0 = device default)")


class UvcThermalCamera(Driver):
    """Base of the UVC radiometric cameras; a subclass names its ``model``."""

    kind = "thermal"
    requires = ("av",)
    Options = UvcOptions
    model: ClassVar[ThermalModel]
    entry_point_name: ClassVar[str]
    silence_timeout_s = 5.0  # a UVC camera that stalls is re-opened (USB resets do this)

    def __init__(self, name: str, options: UvcOptions | None = None) -> None:
        super().__init__(name, options)
        o = self.options
        self.decoder = FrameDecoder(self.model, rotate=o.rotate, mirror=o.mirror)
        self._capture: AvCapture[np.ndarray] | None = None

    def shape(self) -> tuple[int, int]:
        """(height, width) of the °C image after rotation."""
        m = self.model
        return (m.width, m.height) if self.options.rotate in (90, 270) else (m.height, m.width)

    def info(self) -> SensorInfo:
        height, width = self.shape()
        return SensorInfo(self.name, "thermal", self.entry_point_name,
                          {"width": width, "height": height,
                           "rate_hz": self.options.fps or self.model.fps,
                           "model": self.model.name, "device": self.options.device})

    def input_options(self) -> dict[str, str]:
        """FFmpeg options; v4l2 and rawvideo share the names, so a raw dump replays as is."""
        m, o = self.model, self.options
        opts = {"video_size": f"{m.frame_width}x{m.frame_height}", "pixel_format": m.pix_fmt}
        if o.fps:
            opts["framerate"] = f"{o.fps:g}"
        return opts

    def _convert(self, frame: Any) -> np.ndarray:
        # Runs in the capture thread: the numpy work stays off the event loop.
        if frame.format.name != self.model.pix_fmt:
            raise ProtocolError(f"{self.model.name}: got {frame.format.name} frames, "
                                f"expected {self.model.pix_fmt}")
        return self.decoder.decode(packed_plane(frame))

    async def open(self) -> None:
        o = self.options
        capture = AvCapture(sensor=self.name, url=o.device, input_format=o.input_format or None,
                            options=self.input_options(), kind="video", convert=self._convert,
                            depth=4, counters=self.counters, drop_counter="dropped_frames")
        fmt = await capture.open()
        self._capture = capture
        m = self.model
        if (fmt.width, fmt.height) != (m.frame_width, m.frame_height):
            await self.close()
            raise DriverError(f"streams {fmt.width}x{fmt.height} {fmt.pix_fmt}; a {m.name} in "
                              f"radiometric mode streams {m.frame_width}x{m.frame_height} "
                              f"{m.pix_fmt}", sensor=self.name, port=o.device)

    async def read(self) -> Sequence[Sample]:
        assert self._capture is not None, "read() before open()"
        while True:
            item = await self._capture.get()
            if isinstance(item, ProtocolError):
                self.counters["bad_frames"] += 1
                continue
            return [ThermalFrame(self.name, item.value, self.next_seq("frame"), item.t_mono_ns,
                                 item.t_wall_ns)]

    async def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            await capture.close()


class P2ProCamera(UvcThermalCamera):
    description = "InfiRay P2 Pro thermal camera (UVC, 256x192 radiometric, 25 fps)"
    model = P2PRO
    entry_point_name = "p2pro"


class TC001Camera(UvcThermalCamera):
    description = "Topdon TC001 thermal camera (UVC, 256x192 radiometric, 25 fps)"
    model = TC001
    entry_point_name = "tc001"


class LeptonCamera(UvcThermalCamera):
    description = "FLIR Lepton 3.x on PureThermal (UVC Y16, 160x120 radiometric, ~9 fps)"
    model = LEPTON
    entry_point_name = "lepton"
