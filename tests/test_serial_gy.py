"""GY-MCU90640: golden bytes, commands, resync and property tests of the pure frame parser."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorlink_drivers import gy_mcu90640 as gy

from serial_support import DATA

WORKED = (DATA / "gy_mcu90640_worked_example.bin").read_bytes()


def test_worked_example_from_the_design_notes() -> None:
    assert len(WORKED) == gy.FRAME_SIZE == 1544
    assert WORKED[:4] == bytes.fromhex("5A5A0206")
    assert WORKED[-2:] == bytes.fromhex("84B6")  # 0xB684, little-endian
    assert gy.checksum(WORKED) == 0xB684
    parser = gy.Mlx90640FrameParser()
    (frame,) = parser.feed(WORKED)
    assert frame.celsius.shape == (24, 32) and frame.celsius.dtype == np.float32
    assert np.all(frame.celsius == np.float32(25.0))
    assert frame.ambient_c == 26.0
    assert parser.counters["frames"] == 1 and parser.counters["checksum_errors"] == 0
    assert gy.encode_frame(np.full((24, 32), 2500), 0x0A28) == WORKED


def test_pixel_zero_is_the_upper_right_corner() -> None:
    raw = np.full(768, 2000, dtype="<i2")
    raw[0] = 9000     # first pixel on the wire
    raw[31] = 8000    # last pixel of the first row on the wire
    raw[32] = 7000    # first pixel of the second row
    body = gy.HEADER + struct.pack("<H", 0x0602) + raw.tobytes() + struct.pack("<h", 2400)
    frame_bytes = body + struct.pack("<H", sum(struct.unpack("<771H", body)) & 0xFFFF)
    (frame,) = gy.Mlx90640FrameParser().feed(frame_bytes)
    assert frame.celsius[0, 31] == 90.0   # wire pixel 0 shows at the top right
    assert frame.celsius[0, 0] == 80.0
    assert frame.celsius[1, 31] == 70.0
    assert frame.ambient_c == 24.0


def test_negative_temperatures_are_signed() -> None:
    picture = np.full((24, 32), -1234, dtype=np.int16)
    (frame,) = gy.Mlx90640FrameParser().feed(gy.encode_frame(picture, -500))
    assert np.all(frame.celsius == np.float32(-12.34)) and frame.ambient_c == -5.0


@pytest.mark.parametrize(("built", "expected"), [
    (gy.rate_command(0.5), "A5 25 00 CA"),
    (gy.rate_command(1), "A5 25 01 CB"),      # what much code online calls "4 Hz"
    (gy.rate_command(2), "A5 25 02 CC"),
    (gy.rate_command(4), "A5 25 03 CD"),
    (gy.rate_command(8), "A5 25 04 CE"),
    (gy.baud_command(9600), "A5 15 01 BB"),
    (gy.baud_command(115200), "A5 15 02 BC"),
    (gy.baud_command(460800), "A5 15 03 BD"),
    (gy.mode_command("query"), "A5 35 01 DB"),
    (gy.mode_command("continuous"), "A5 35 02 DC"),
    (gy.emissivity_command(0.95), "A5 45 5F 49"),
    (gy.save_command(), "A5 65 01 0B"),
])
def test_command_bytes(built: bytes, expected: str) -> None:
    assert built == bytes.fromhex(expected)
    assert gy.parse_command(built) == (built[1], built[2])


def test_bad_commands_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        gy.rate_command(3)
    with pytest.raises(ValueError, match="baudrate"):
        gy.baud_command(57600)
    with pytest.raises(ValueError, match="emissivity"):
        gy.emissivity_command(1.5)
    assert gy.parse_command(bytes.fromhex("A5 25 01 CC")) is None


def test_resync_after_garbage_bad_checksum_and_truncation() -> None:
    frames = [gy.encode_frame(np.full((24, 32), 2000 + i), 2400 + i) for i in range(4)]
    bad = gy.encode_frame(np.full((24, 32), 3000), 2400, bad_checksum=True)
    stream = (b"\x00\x5a\x5a\xff" + frames[0] + bad + frames[1] + frames[2][:700]
              + frames[3] + b"\x5a")
    parser = gy.Mlx90640FrameParser()
    got = parser.feed(stream)
    assert [f.ambient_c for f in got] == [24.0, 24.01, 24.03]
    assert parser.counters["checksum_errors"] == 1
    assert parser.counters["truncated_frames"] == 1
    assert parser.counters["resync_bytes"] >= 4


def test_frames_split_into_single_bytes() -> None:
    parser = gy.Mlx90640FrameParser()
    got = [f for b in WORKED * 2 for f in parser.feed(bytes([b]))]
    assert len(got) == 2 and parser.counters["resync_bytes"] == 0


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=4000), st.integers(1, 2000))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    parser = gy.Mlx90640FrameParser()
    for i in range(0, len(data), chunk):
        for frame in parser.feed(data[i:i + chunk]):
            assert frame.celsius.shape == (24, 32)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=60), st.integers(-4000, 30000),
                          st.integers(-4000, 8000)), min_size=1, max_size=5),
       st.integers(1, 3000))
def test_valid_frames_interleaved_with_noise_are_all_recovered(
        items: list[tuple[bytes, int, int]], chunk: int) -> None:
    stream = b""
    expected = []
    for noise, pixel, ambient in items:
        picture = np.full((24, 32), pixel, dtype=np.int16)
        picture[5, 7] = ambient  # make the frames differ in more than one place
        stream += noise + gy.encode_frame(picture, ambient)
        expected.append((picture / 100).astype(np.float32))
    parser = gy.Mlx90640FrameParser()
    got = [f for i in range(0, len(stream), chunk) for f in parser.feed(stream[i:i + chunk])]
    assert len(got) == len(expected)
    for frame, want in zip(got, expected):
        assert np.array_equal(frame.celsius, want)


async def test_driver_reads_through_a_pyserial_url() -> None:
    """The transport takes any pyserial URL: on loop:// what is written comes back, so the
    start-up commands echo (and are skipped as noise) and a frame written in is read out."""
    from sensorlink.options import build_options
    from sensorlink.samples import Reading, ThermalFrame

    driver = gy.GyMcu90640("cam", build_options(gy.GyMcu90640Options,
                                                {"port": "loop://", "rate_hz": 2}))
    await driver.open()
    try:
        await driver.write(b"\x00garbage" + WORKED)
        frame, ambient = await driver.read()
        assert isinstance(frame, ThermalFrame) and np.all(frame.celsius == np.float32(25.0))
        assert isinstance(ambient, Reading) and (ambient.channel, ambient.value) == ("ambient", 26.0)
        assert driver.counters["resync_bytes"] == len(b"\x00garbage") + 8  # + 2 echoed commands
        assert driver.counters["bytes_written"] == 8 + len(b"\x00garbage") + len(WORKED)
    finally:
        await driver.close()
