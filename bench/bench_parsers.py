"""How fast the pure serial parsers run, against the line rate of the device they parse.

    python -m bench.bench_parsers

A UART at B baud (8N1) carries at most B / 10 bytes per second; a parser needs to be many times
faster than that to leave the CPU for the rest of the service. No assertions here: numbers only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sensorlink_drivers import ascii_bridge as ab
from sensorlink_drivers import gy_mcu90640 as gy
from sensorlink_drivers import modbus_codec as mb


@dataclass(frozen=True)
class Throughput:
    parser: str
    bytes_per_s: float
    line_baud: int
    line_bytes_per_s: float

    @property
    def headroom(self) -> float:
        """How many times faster than the wire the parser runs."""
        return self.bytes_per_s / self.line_bytes_per_s


def _measure(make: Callable[[], object], stream: bytes, chunk: int, min_seconds: float) -> float:
    total, start = 0, time.perf_counter()
    while True:
        parser = make()
        feed = parser.feed  # type: ignore[attr-defined]
        for i in range(0, len(stream), chunk):
            feed(stream[i:i + chunk])
        total += len(stream)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return total / elapsed


def _streams() -> dict[str, tuple[Callable[[], object], bytes, int, int]]:
    rng = np.random.default_rng(0)
    frames = b"".join(gy.encode_frame(rng.integers(2000, 6000, (24, 32)), 2400) for _ in range(20))
    replies = b"".join(mb.ReadReply(1, 4, (305, 546)).encode() for _ in range(2000))
    lines = b"".join(ab.encode_reading(f"t{i % 8}", 20 + i / 100, "C") for i in range(2000))
    tcs = b"".join(ab.encode_line(f"tc{i % 4},MAX31855,{ab.max31855_word(400.25, 24.5):08X}")
                   for i in range(2000))
    # (parser factory, bytes, chunk size as read off the port, baud of the device's line)
    return {
        "gy-mcu90640 @115200": (gy.Mlx90640FrameParser, frames, 512, 115200),
        "gy-mcu90640 @460800": (gy.Mlx90640FrameParser, frames, 2048, 460800),
        "modbus replies @9600": (mb.ReplyParser, replies, 9, 9600),
        "ascii readings @115200": (ab.BridgeLineParser, lines, 64, 115200),
        "ascii MAX31855 @115200": (ab.BridgeLineParser, tcs, 64, 115200),
    }


def parser_throughput(min_seconds: float = 0.3) -> list[Throughput]:
    """Bytes per second each parser sustains, next to its device's line rate."""
    out = []
    for name, (make, stream, chunk, baud) in _streams().items():
        rate = _measure(make, stream, chunk, min_seconds)
        out.append(Throughput(name, rate, baud, baud / 10))
    return out


def main() -> None:
    print(f"{'parser':<24} {'parser B/s':>12} {'line B/s':>10} {'headroom':>9}")
    for t in parser_throughput():
        print(f"{t.parser:<24} {t.bytes_per_s:>12,.0f} {t.line_bytes_per_s:>10,.0f} "
              f"{t.headroom:>8.0f}×")


if __name__ == "__main__":
    main()
