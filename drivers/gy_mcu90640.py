"""GY-MCU90640 thermal module (MLX90640 32×24 behind an STM32, UART 8N1).

Wire format (vendor manual in vvkuryshev/GY-MCU90640-RPI-Python, checked against its main.py):
a frame is 1544 bytes, little-endian::

    5A 5A | 02 06 (length 0x0602 = 1538) | 768 × int16 pixel °C×100 | int16 ambient °C×100 | sum16

``sum16`` is the low 16 bits of the sum of the first 771 LE words (header, length, pixels,
ambient). Pixel 0 is the upper-RIGHT corner seen from the module, so each row is mirrored to
give a picture with column 0 on the left. Commands are ``A5 cmd val sum8`` with
``sum8 = (0xA5 + cmd + val) & 0xFF``. Much code online sends ``A5 25 01`` "for 4 Hz": it is 1 Hz.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sensorlink.samples import Reading, Sample, SensorInfo, ThermalFrame
from sensorlink.sources.serial_transport import Chunk, SerialDriver

WIDTH, HEIGHT = 32, 24
PIXELS = WIDTH * HEIGHT
HEADER = b"\x5a\x5a"
LENGTH = 0x0602
FRAME_SIZE = 1544
_START = HEADER + struct.pack("<H", LENGTH)

BAUD_CODES = {9600: 0x01, 115200: 0x02, 460800: 0x03}
RATE_CODES = {0.5: 0x00, 1.0: 0x01, 2.0: 0x02, 4.0: 0x03, 8.0: 0x04}
CMD_BAUD, CMD_RATE, CMD_MODE, CMD_EMISSIVITY, CMD_SAVE = 0x15, 0x25, 0x35, 0x45, 0x65
MODE_QUERY, MODE_CONTINUOUS = 0x01, 0x02


# -- frames --------------------------------------------------------------------------------

def checksum(frame_head: bytes) -> int:
    """sum16 over the first 771 little-endian words of a frame (1542 bytes)."""
    words = np.frombuffer(frame_head[:FRAME_SIZE - 2], dtype="<u2")
    return int(words.sum(dtype=np.uint64)) & 0xFFFF


def encode_frame(centi_c: np.ndarray, ambient_centi_c: int, *, bad_checksum: bool = False) -> bytes:
    """A wire frame from a picture in display orientation (row 0 top, column 0 left), °C×100.

    Used by the emulator and the tests; the inverse of :class:`Mlx90640FrameParser`.
    """
    picture = np.asarray(centi_c)
    if picture.shape != (HEIGHT, WIDTH):
        raise ValueError(f"expected a {HEIGHT}×{WIDTH} picture, got {picture.shape}")
    sensor_order = np.ascontiguousarray(picture[:, ::-1]).astype("<i2")
    head = _START + sensor_order.tobytes() + struct.pack("<h", ambient_centi_c)
    total = checksum(head + b"\0\0")
    if bad_checksum:
        total ^= 0x0101
    return head + struct.pack("<H", total)


@dataclass(frozen=True, slots=True, eq=False)
class Mlx90640Frame:
    """One decoded frame: °C in display orientation, and the module's ambient °C."""

    celsius: np.ndarray
    ambient_c: float
    raw: bytes


class Mlx90640FrameParser:
    """Sans-io frame parser: ``feed(bytes) -> [Mlx90640Frame]``, resyncing on ``5A 5A 02 06``.

    Counters: ``frames``, ``resync_bytes`` (bytes skipped looking for a header),
    ``checksum_errors``, ``truncated_frames`` (a new header began inside a frame whose
    checksum failed, i.e. the frame was cut short).
    """

    def __init__(self) -> None:
        self.counters: collections.Counter[str] = collections.Counter()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Mlx90640Frame]:
        buf = self._buf
        buf += data
        out: list[Mlx90640Frame] = []
        while True:
            start = buf.find(_START)
            if start < 0:
                # Keep a possible header prefix split across chunks.
                keep = next((k for k in (3, 2, 1) if buf.endswith(_START[:k])), 0)
                self.counters["resync_bytes"] += len(buf) - keep
                del buf[:len(buf) - keep]
                return out
            if start:
                self.counters["resync_bytes"] += start
                del buf[:start]
            if len(buf) < FRAME_SIZE:
                return out
            frame = bytes(buf[:FRAME_SIZE])
            (stored,) = struct.unpack_from("<H", frame, FRAME_SIZE - 2)
            if stored != checksum(frame):
                # Skip only the header: a real frame may start inside the bad one.
                kind = "truncated_frames" if frame.find(_START, 2) > 0 else "checksum_errors"
                self.counters[kind] += 1
                self.counters["resync_bytes"] += 2
                del buf[:2]
                continue
            del buf[:FRAME_SIZE]
            pixels = np.frombuffer(frame, dtype="<i2", count=PIXELS, offset=4)
            celsius = (pixels.reshape(HEIGHT, WIDTH)[:, ::-1] / 100.0).astype(np.float32)
            (ambient,) = struct.unpack_from("<h", frame, 4 + 2 * PIXELS)
            self.counters["frames"] += 1
            out.append(Mlx90640Frame(celsius, ambient / 100.0, frame))


# -- commands ------------------------------------------------------------------------------

def command(cmd: int, value: int) -> bytes:
    """``A5 cmd val sum8``."""
    if not (0 <= cmd <= 0xFF and 0 <= value <= 0xFF):
        raise ValueError(f"command byte out of range: cmd={cmd:#x} value={value:#x}")
    return bytes((0xA5, cmd, value, (0xA5 + cmd + value) & 0xFF))


def rate_command(rate_hz: float) -> bytes:
    if float(rate_hz) not in RATE_CODES:
        raise ValueError(f"rate_hz: the module supports {sorted(RATE_CODES)} Hz, got {rate_hz}")
    return command(CMD_RATE, RATE_CODES[float(rate_hz)])


def baud_command(baudrate: int) -> bytes:
    if baudrate not in BAUD_CODES:
        raise ValueError(f"baudrate: the module supports {sorted(BAUD_CODES)}, got {baudrate}")
    return command(CMD_BAUD, BAUD_CODES[baudrate])


def emissivity_command(emissivity: float) -> bytes:
    value = round(emissivity * 100)
    if not 1 <= value <= 100:
        raise ValueError(f"emissivity: must be 0.01-1.00, got {emissivity}")
    return command(CMD_EMISSIVITY, value)


def mode_command(mode: Literal["query", "continuous"]) -> bytes:
    return command(CMD_MODE, MODE_QUERY if mode == "query" else MODE_CONTINUOUS)


def save_command() -> bytes:
    return command(CMD_SAVE, 0x01)


def parse_command(data: bytes) -> tuple[int, int] | None:
    """(cmd, value) of a 4-byte command, or None if it is not one (bad lead byte or sum8)."""
    if len(data) != 4 or data[0] != 0xA5 or (0xA5 + data[1] + data[2]) & 0xFF != data[3]:
        return None
    return data[1], data[2]


# -- driver --------------------------------------------------------------------------------

@dataclass(frozen=True)
class GyMcu90640Options:
    port: str = "/dev/ttyUSB0"
    #: the rate the port is opened at: the module's current setting (115200 from the factory)
    baudrate: int = 115200
    #: frames per second to set at start-up (0.5, 1, 2, 4, 8); unset keeps the module's own
    rate_hz: float | None = None
    #: emissivity to set at start-up (0.01-1.00); unset keeps the module's own
    emissivity: float | None = None
    #: "continuous" streams; "query" asks for each frame (A5 35 01) once the last one is in
    mode: Literal["continuous", "query"] = "continuous"
    #: switch the module to this baud rate after start-up (460800 is needed for 8 Hz)
    switch_baudrate: int | None = None
    #: store rate/emissivity/baud in the module's flash (A5 65 01)
    save: bool = False
    #: no frame for this long means the module is gone: reopen the port
    silence_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.rate_hz is not None:
            rate_command(self.rate_hz)
        if self.emissivity is not None:
            emissivity_command(self.emissivity)
        if self.switch_baudrate is not None and self.switch_baudrate not in BAUD_CODES:
            raise ValueError(f"switch_baudrate: the module supports {sorted(BAUD_CODES)}")
        if self.silence_timeout_s <= 0:
            raise ValueError("silence_timeout_s: must be positive")


class GyMcu90640(SerialDriver):
    kind = "thermal"
    description = "GY-MCU90640 thermal module (MLX90640 32×24) on a serial port"
    Options = GyMcu90640Options

    def __init__(self, name: str, options: GyMcu90640Options | None = None) -> None:
        super().__init__(name, options)
        self.silence_timeout_s = self.options.silence_timeout_s

    def info(self) -> SensorInfo:
        o = self.options
        meta = {"width": WIDTH, "height": HEIGHT, "port": o.port,
                "streams": {"ambient": {"quantity": "temperature", "unit": "°C"}}}
        if o.rate_hz is not None:  # unknown otherwise: the module keeps its own setting
            meta["rate_hz"] = o.rate_hz
        return SensorInfo(self.name, "thermal", "gy-mcu90640", meta)

    def make_parser(self) -> Mlx90640FrameParser:
        return Mlx90640FrameParser()

    def startup_commands(self) -> Sequence[bytes]:
        o = self.options
        out = []
        if o.rate_hz is not None:
            out.append(rate_command(o.rate_hz))
        if o.emissivity is not None:
            out.append(emissivity_command(o.emissivity))
        if o.switch_baudrate is not None and o.switch_baudrate != o.baudrate:
            out.append(baud_command(o.switch_baudrate))
        if o.save:
            out.append(save_command())
        out.append(mode_command(o.mode))
        return out

    async def after_open(self) -> None:
        o = self.options
        if o.switch_baudrate is not None and o.switch_baudrate != o.baudrate and self.port:
            self.port.flush()
            self.port.baudrate = o.switch_baudrate

    async def read(self) -> Sequence[Sample]:
        if self.options.mode == "query" and self.port is not None:
            await self.write(mode_command("query"))
        return await super().read()

    def to_samples(self, event: Mlx90640Frame, chunk: Chunk) -> list[Sample]:
        return [
            ThermalFrame(self.name, event.celsius, self.next_seq("frame"), chunk.t_mono_ns,
                         chunk.t_wall_ns, ambient_c=event.ambient_c),
            Reading(self.name, "ambient", "temperature", event.ambient_c, "°C",
                    self.next_seq("ambient"), chunk.t_mono_ns, chunk.t_wall_ns),
        ]
