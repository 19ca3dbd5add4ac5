"""Microphone arrays through PyAV's ALSA input: ReSpeaker USB 4-mic (6-channel firmware),
ReSpeaker 6-mic circular array HAT, and a generic array whose geometry comes from the config.

Profiles (channel maps and geometry):

* **ReSpeaker USB 4-mic array** (respeaker/usb_4_mic_array), 16 kHz, 6-channel firmware:
  ch0 the firmware's processed (beamformed, noise-suppressed) audio, ch1-4 the raw microphones
  on a 32 mm-radius square (:data:`sensorlink.analysis.directional.RESPEAKER_4MIC`), ch5 the playback
  loopback.
* **ReSpeaker 6-mic circular array HAT** (two AC108 ADCs, seeed-voicecard): 8 channels, ch0-5
  the microphones on a circle of 46.3 mm radius, ch6-7 the playback echo reference. Microphone 1
  sits at 120° and they go round counter-clockwise in 60° steps (Seeed's ODAS configuration
  for this board: (−0.0232, 0.0401), (−0.0463, 0), ... m).

What is pure here: turning a decoded frame's array into int16 (samples, channels) whatever the
sample format, and re-cutting the device's periods into fixed blocks. The capture itself is
:class:`sensorlink_drivers.av_capture.AvCapture`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sensorlink.analysis.directional import RESPEAKER_4MIC, circle_geometry
from sensorlink.errors import DriverError, ProtocolError
from sensorlink.sources.microphone import ArrayGeometry, MicrophoneArrayDriver
from sensorlink_drivers.av_capture import AvCapture

RESPEAKER_6MIC = circle_geometry(6, 0.0463, start_deg=120.0)

#: Packets the capture thread may queue before the oldest is dropped. ALSA hands over one
#: period (typically 1024-4096 frames) per packet, so this is several seconds of audio.
CAPTURE_DEPTH = 256


def pcm_from_array(array: np.ndarray, sample_fmt: str, channels: int) -> np.ndarray:
    """A decoded audio frame's ``to_ndarray()`` → int16 PCM shaped (samples, channels).

    PyAV gives packed formats as one row of interleaved samples, (1, samples × channels), and
    planar ones (``s16p``, ``fltp`` ...) as one row per channel; wider or float samples are
    scaled to int16 full scale."""
    planar = sample_fmt.endswith("p")
    base = sample_fmt[:-1] if planar else sample_fmt
    a = np.asarray(array)
    if planar:
        if a.ndim != 2 or a.shape[0] != channels:
            raise ProtocolError(f"planar {sample_fmt} frame of shape {a.shape}, expected "
                                f"({channels}, samples)")
        a = a.T
    else:
        if a.size % channels:
            raise ProtocolError(f"{a.size} interleaved samples do not split into {channels} "
                                "channels")
        a = a.reshape(-1, channels)
    if base == "s16":
        return np.ascontiguousarray(a, dtype=np.int16)
    if base == "s32":
        return np.ascontiguousarray(a.astype(np.int32) >> 16, dtype=np.int16)
    if base == "u8":
        return np.ascontiguousarray((a.astype(np.int16) - 128) << 8, dtype=np.int16)
    if base in ("flt", "dbl"):
        return np.clip(np.rint(a.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    raise ProtocolError(f"sample format {sample_fmt!r} is not supported")


class BlockBuffer:
    """Re-cuts PCM of any length into blocks of exactly ``block`` samples, in order."""

    def __init__(self, block: int, channels: int) -> None:
        self.block = block
        self.channels = channels
        self._parts: list[np.ndarray] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        if pcm.ndim != 2 or pcm.shape[1] != self.channels:
            raise ProtocolError(f"PCM of shape {pcm.shape}, expected (samples, {self.channels})")
        if len(pcm):
            self._parts.append(pcm)
            self._count += len(pcm)
        out = []
        if self._count >= self.block:
            joined = np.concatenate(self._parts)
            full = len(joined) // self.block * self.block
            out = [joined[i:i + self.block] for i in range(0, full, self.block)]
            rest = joined[full:]
            self._parts = [rest] if len(rest) else []
            self._count = len(rest)
        return out


@dataclass(frozen=True)
class AlsaArrayOptions:
    #: ALSA PCM name (``arecord -L``); ``plughw:`` converts the format if the card needs it
    device: str = "default"
    #: FFmpeg input: ``alsa`` for the card; ``wav`` to play back a multichannel recording
    input_format: str = "alsa"
    #: samples per audio block handed downstream (512 at 16 kHz = 32 ms)
    block: int = 512

    def __post_init__(self) -> None:
        if not 64 <= self.block <= 16384:
            raise ValueError("block: must be 64-16384 samples")


class AlsaMicrophoneArray(MicrophoneArrayDriver):
    """Captures a whole multichannel ALSA device; subclasses say which channel is which."""

    requires = ("av",)
    Options = AlsaArrayOptions
    entry_point_name: ClassVar[str]
    silence_timeout_s = 5.0  # a USB array that stops delivering is re-opened
    #: hint shown when the device delivers another channel count than the profile expects
    channel_hint: ClassVar[str] = ""

    def __init__(self, name: str, options: Any = None) -> None:
        super().__init__(name, options)
        self._capture: AvCapture[np.ndarray] | None = None
        self._buffer: BlockBuffer | None = None

    def _convert(self, frame: Any) -> np.ndarray:
        # Runs in the capture thread.
        return pcm_from_array(frame.to_ndarray(), frame.format.name, self.geometry.channels)

    async def open(self) -> None:
        await super().open()
        g, o = self.geometry, self.options
        capture = AvCapture(sensor=self.name, url=o.device, input_format=o.input_format or None,
                            options={"sample_rate": str(g.rate), "channels": str(g.channels)},
                            kind="audio", convert=self._convert, depth=CAPTURE_DEPTH,
                            counters=self.counters, drop_counter="dropped_packets")
        fmt = await capture.open()
        self._capture = capture
        if (fmt.channels, fmt.rate) != (g.channels, g.rate):
            await self.close()
            raise DriverError(f"delivers {fmt.channels} channels at {fmt.rate} Hz, expected "
                              f"{g.channels} at {g.rate} Hz{self.channel_hint}",
                              sensor=self.name, port=o.device)
        self._buffer = BlockBuffer(o.block, g.channels)
        self._pending: list[np.ndarray] = []

    async def capture(self) -> np.ndarray:
        assert self._capture is not None and self._buffer is not None, "capture() before open()"
        while not self._pending:
            item = await self._capture.get()
            if isinstance(item, ProtocolError):
                self.counters["bad_packets"] += 1
                continue
            self._pending = self._buffer.push(item.value)
        return self._pending.pop(0)

    async def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            await capture.close()


@dataclass(frozen=True)
class ReSpeaker6MicOptions(AlsaArrayOptions):
    device: str = "plughw:CARD=seeed8micvoicec,DEV=0"
    #: the AC108s run at 8-48 kHz; 16 kHz keeps direction finding cheap
    rate: int = 16_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rate not in (8000, 16000, 32000, 44100, 48000):
            raise ValueError("rate: must be 8000, 16000, 32000, 44100 or 48000")


@dataclass(frozen=True)
class ReSpeaker4MicOptions(AlsaArrayOptions):
    device: str = "plughw:CARD=ArrayUAC10,DEV=0"


class ReSpeakerUsb4Mic(AlsaMicrophoneArray):
    description = "ReSpeaker USB 4-mic array, 6-channel firmware (16 kHz, ALSA)"
    entry_point_name = "respeaker-usb-4mic"
    Options = ReSpeaker4MicOptions
    channel_hint = ("; flash the 6-channel firmware (respeaker/usb_4_mic_array: "
                    "python dfu.py --download 6_channels_firmware.bin)")
    GEOMETRY = ArrayGeometry(rate=16_000, channels=6, mic_channels=(1, 2, 3, 4),
                             positions=RESPEAKER_4MIC, listen_channel=0)

    @property
    def geometry(self) -> ArrayGeometry:
        return self.GEOMETRY


class ReSpeaker6MicHat(AlsaMicrophoneArray):
    description = "ReSpeaker 6-mic circular array HAT for Raspberry Pi (8 channels, ALSA)"
    entry_point_name = "respeaker-6mic-hat"
    Options = ReSpeaker6MicOptions
    channel_hint = "; is the seeed-voicecard driver installed and the 8-channel card selected?"

    @property
    def geometry(self) -> ArrayGeometry:
        return ArrayGeometry(rate=self.options.rate, channels=8,
                             mic_channels=(0, 1, 2, 3, 4, 5), positions=RESPEAKER_6MIC)


@dataclass(frozen=True)
class GenericArrayOptions(AlsaArrayOptions):
    rate: int = 16_000
    #: channels the device captures in total
    channels: int = 2
    #: capture channel of each microphone, and its x, y position in metres, in the same order
    mic_channels: list[int] = field(default_factory=lambda: [0, 1])
    positions: list[list[float]] = field(default_factory=lambda: [[-0.05, 0.0], [0.05, 0.0]])
    #: channel to play when no beam is steered; none = the steered beam
    listen_channel: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1000 <= self.rate <= 192_000:
            raise ValueError("rate: must be 1000-192000 Hz")
        if not 1 <= self.channels <= 64:
            raise ValueError("channels: must be 1-64")
        if len(self.mic_channels) < 2:
            raise ValueError("mic_channels: direction finding needs at least two microphones")
        if any(not 0 <= c < self.channels for c in self.mic_channels):
            raise ValueError(f"mic_channels: each must be 0-{self.channels - 1}")
        if len(self.positions) != len(self.mic_channels) \
                or any(len(p) != 2 for p in self.positions):
            raise ValueError("positions: one [x, y] (metres) per entry of mic_channels")
        if self.listen_channel is not None and not 0 <= self.listen_channel < self.channels:
            raise ValueError(f"listen_channel: must be 0-{self.channels - 1}")


class GenericMicArray(AlsaMicrophoneArray):
    description = "any ALSA microphone array, geometry from the config"
    entry_point_name = "mic-array"
    Options = GenericArrayOptions

    @property
    def geometry(self) -> ArrayGeometry:
        o = self.options
        return ArrayGeometry(rate=o.rate, channels=o.channels, mic_channels=tuple(o.mic_channels),
                             positions=tuple((float(x), float(y)) for x, y in o.positions),
                             listen_channel=o.listen_channel)
