"""Every device parser in drivers/: arbitrary bytes must give parsed events or counted errors.

The first byte picks the parser, the second how to cut the rest into chunks (parsers see the
serial port's arbitrary chunking). Allowed: events of the parser's own types, ProtocolError
from the one-shot parsers (1-wire files, UVC frames). Anything else is a crash to report.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _harness import run

from sensorlink.errors import ProtocolError
from sensorlink.sources.serial_transport import Chunk
from sensorlink_drivers import ascii_bridge, gy_mcu90640, modbus_codec, onewire, uvc_thermal

CHUNK = Chunk(b"", 1, 2)
GY = gy_mcu90640.GyMcu90640("cam")
BRIDGE = ascii_bridge.AsciiBridge("bridge")
MODELS = [uvc_thermal.MODELS[name] for name in sorted(uvc_thermal.MODELS)]


def chunks(data: bytes, cut: int) -> list[bytes]:
    size = max(1, cut * 7)
    return [data[i:i + size] for i in range(0, len(data), size)]


def stream(parser: object, data: bytes, cut: int) -> list[object]:
    events: list[object] = []
    for part in chunks(data, cut):
        events += parser.feed(part)  # type: ignore[attr-defined]
    assert all(v >= 0 for v in parser.counters.values())  # type: ignore[attr-defined]
    return events


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    which, cut, body = data[0] % 7, data[1], data[2:]
    if which == 0:
        for event in stream(gy_mcu90640.Mlx90640FrameParser(), body, cut):
            frame, ambient = GY.to_samples(event, CHUNK)  # type: ignore[arg-type]
            assert frame.celsius.shape == (gy_mcu90640.HEIGHT, gy_mcu90640.WIDTH)
            assert np.isfinite(ambient.value)
    elif which == 1:
        parser = ascii_bridge.BridgeLineParser(require_checksum=bool(cut & 1))
        for event in stream(parser, body, cut):
            for sample in BRIDGE.to_samples(event, CHUNK):  # type: ignore[arg-type]
                assert np.isfinite(sample.value)
    elif which == 2:
        for event in stream(modbus_codec.ReplyParser(), body, cut):
            if isinstance(event, modbus_codec.ReadReply):
                modbus_codec.decode_registers(event.registers, scale=0.1, signed=bool(cut & 1))
    elif which == 3:
        stream(modbus_codec.RequestParser(), body, cut)
    elif which in (4, 5):
        text = body.decode("ascii", errors="replace")
        try:
            if which == 4:
                read = onewire.parse_w1_slave(text)
                onewire.quality_of(read.milli_c, read.scratchpad, None)
            else:
                onewire.parse_temperature_file(text)
        except ProtocolError:
            pass
    else:
        model = MODELS[cut % len(MODELS)]
        frame = (body * (model.frame_bytes // max(len(body), 1) + 1))[:model.frame_bytes] \
            if cut & 1 and body else body
        try:
            celsius = uvc_thermal.FrameDecoder(model, rotate=90 * (cut % 4)).decode(frame)
            assert np.isfinite(celsius).all()
        except ProtocolError:
            pass


if __name__ == "__main__":
    run(test_one_input)
