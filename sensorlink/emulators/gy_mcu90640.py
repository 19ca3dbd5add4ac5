"""A GY-MCU90640 on a pty: streams frames, obeys the ``A5 cmd val sum8`` commands."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from sensorlink.emulators import Emulator, Faults
from sensorlink_drivers import gy_mcu90640 as gy

_RATES = {code: rate for rate, code in gy.RATE_CODES.items()}
_BAUDS = {code: baud for baud, code in gy.BAUD_CODES.items()}


def default_picture(index: int, *, ambient_c: float = 24.0, hot_c: float = 60.0) -> np.ndarray:
    """Centi-°C picture number ``index`` (display orientation): a housing warmer at the bottom,
    a hot spot walking left to right, and the frame number in pixel (0, 0) so a test can tell
    which frame it received."""
    yy, xx = np.mgrid[0:gy.HEIGHT, 0:gy.WIDTH]
    base = ambient_c * 100 + 300 * yy // (gy.HEIGHT - 1)
    cx, cy = index % gy.WIDTH, gy.HEIGHT // 2
    spot = (hot_c * 100 - base) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8.0)
    picture = np.rint(base + np.maximum(spot, 0)).astype(np.int16)
    picture[0, 0] = 1000 + index % 30000
    return picture


class GyMcu90640Emulator(Emulator):
    device = "gy-mcu90640"

    def __init__(self, link: str | os.PathLike[str], *, faults: Faults | None = None,
                 rate_hz: float = 4.0, ambient_c: float = 24.0, hot_c: float = 60.0,
                 mode: str = "continuous",
                 picture: Callable[[int], np.ndarray] | None = None) -> None:
        super().__init__(link, faults=faults)
        # Any rate is accepted here so tests run fast; the A5 25 command sets the module's own.
        self.rate_hz = rate_hz
        self.ambient_c = ambient_c
        self.hot_c = hot_c
        self.mode = mode
        self.emissivity = 0.95
        self.baudrate = 115200
        self.saved: dict[str, object] | None = None
        self.commands: list[tuple[int, int]] = []
        self.frame_index = 0
        self._picture = picture
        self._buf = bytearray()

    def picture(self, index: int) -> np.ndarray:
        if self._picture is not None:
            return self._picture(index)
        return default_picture(index, ambient_c=self.ambient_c, hot_c=self.hot_c)

    def ambient_centi(self) -> int:
        return round(self.ambient_c * 100)

    def tick(self) -> None:
        if self.mode == "continuous":
            self.send_frame()

    def send_frame(self) -> None:
        picture, ambient = self.picture(self.frame_index), self.ambient_centi()
        self.frame_index += 1
        self.emit(gy.encode_frame(picture, ambient),
                  corrupt=lambda: gy.encode_frame(picture, ambient, bad_checksum=True))

    def on_bytes(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= 4:
            parsed = gy.parse_command(bytes(buf[:4]))
            if parsed is None:
                del buf[:1]
                self.counters["bad_command_bytes"] += 1
                continue
            del buf[:4]
            self.commands.append(parsed)
            self.apply(*parsed)

    def apply(self, cmd: int, value: int) -> None:
        if cmd == gy.CMD_RATE and value in _RATES:
            self.rate_hz = _RATES[value]
        elif cmd == gy.CMD_BAUD and value in _BAUDS:
            self.baudrate = _BAUDS[value]
        elif cmd == gy.CMD_EMISSIVITY and 1 <= value <= 100:
            self.emissivity = value / 100
        elif cmd == gy.CMD_MODE and value == gy.MODE_QUERY:
            # The manual's query mode: each A5 35 01 asks for one frame.
            self.mode = "query"
            self.send_frame()
        elif cmd == gy.CMD_MODE and value == gy.MODE_CONTINUOUS:
            self.mode = "continuous"
        elif cmd == gy.CMD_SAVE:
            self.saved = {"rate_hz": self.rate_hz, "baudrate": self.baudrate,
                          "emissivity": self.emissivity}
        else:
            self.counters["unknown_commands"] += 1
