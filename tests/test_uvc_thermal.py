"""UVC radiometric cameras: pure frame → °C decoding on golden bytes, and the PyAV capture path
(the same code that reads /dev/videoN) fed from raw video files written here."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorlink.backoff import Backoff
from sensorlink.errors import DriverError, ProtocolError
from sensorlink.hub import Hub, kinds
from sensorlink.samples import ThermalFrame
from sensorlink.sources.runner import DriverRunner
from sensorlink.status import SensorStatus
from sensorlink_drivers.uvc_thermal import (
    LEPTON, P2PRO, FrameDecoder, LeptonCamera, P2ProCamera, TC001Camera, ThermalModel, UvcOptions,
    celsius_to_raw, orient, packed_plane, raw_to_celsius, raw_values,
)

DATA = Path(__file__).parent / "data" / "media"


def p2pro_frame(raw: np.ndarray, picture_byte: int = 0x80) -> bytes:
    """A 256x384 YUYV frame: a flat picture on top, ``raw`` (192x256 uint16) below."""
    top = np.full((192, 256 * 2), picture_byte, np.uint8)
    return top.tobytes() + np.asarray(raw, dtype="<u2").tobytes()


# -- golden bytes ------------------------------------------------------------------------------

def test_p2pro_golden_frame_decodes_to_the_written_temperatures():
    frame = gzip.decompress((DATA / "p2pro_frame.yuyv.gz").read_bytes())
    assert len(frame) == 256 * 384 * 2
    assert frame[98304:98306] == b"\x4a\x49"  # the fixture is what its README says
    celsius = FrameDecoder(P2PRO).decode(frame)
    assert celsius.shape == (192, 256) and celsius.dtype == np.float32
    assert celsius[0, 0] == pytest.approx(20.00625, abs=1e-4)
    assert celsius[96, 128] == pytest.approx(250.0, abs=1 / 64)
    assert celsius[191, 255] == pytest.approx(-20.0, abs=1 / 64)
    yy, xx = np.mgrid[0:192, 0:256]
    expected = 20.0 + 0.1 * xx + 0.2 * yy
    expected[96, 128], expected[191, 255] = 250.0, -20.0
    # One raw count is 1/64 K: that is the camera's whole resolution.
    assert np.max(np.abs(celsius - expected)) <= 0.5 / 64 + 1e-4


def test_p2pro_pixel_is_its_two_yuyv_bytes_little_endian():
    raw = np.zeros((192, 256), "<u2")
    frame = bytearray(p2pro_frame(raw + 18000))
    offset = 192 * 512 + 5 * 512 + 7 * 2  # thermal row 5, column 7: the pixel's Y then U/V byte
    frame[offset:offset + 2] = b"\x8a\x4a"  # 0x4A8A = 19082 → 25.00625 °C
    celsius = FrameDecoder(P2PRO).decode(bytes(frame))
    assert celsius[5, 7] == pytest.approx(19082 / 64 - 273.15, abs=1e-4)
    assert celsius[5, 6] == pytest.approx(18000 / 64 - 273.15, abs=1e-4)


def test_the_false_colour_half_does_not_leak_into_temperatures():
    raw = np.full((192, 256), 19000, "<u2")
    a = FrameDecoder(P2PRO).decode(p2pro_frame(raw, picture_byte=0x00))
    b = FrameDecoder(P2PRO).decode(p2pro_frame(raw, picture_byte=0xFF))
    assert np.array_equal(a, b)


def test_lepton_golden_frame_is_centikelvin():
    frame = gzip.decompress((DATA / "lepton_frame.y16.gz").read_bytes())
    assert frame[:2] == b"\x4b\x73"
    celsius = FrameDecoder(LEPTON).decode(frame)
    assert celsius.shape == (120, 160)
    assert celsius[0, 0] == pytest.approx(22.0, abs=1e-3)
    assert celsius[60, 80] == pytest.approx(85.5, abs=1e-3)
    assert celsius[119, 159] == pytest.approx(22.0 + 0.05 * 159 + 0.1 * 119, abs=0.006)


def test_wrong_size_and_all_zero_frames_are_refused():
    with pytest.raises(ProtocolError, match="p2pro: frame of 100 bytes"):
        FrameDecoder(P2PRO).decode(b"\x00" * 100)
    with pytest.raises(ProtocolError, match="zero raw values"):
        FrameDecoder(LEPTON).decode(bytes(LEPTON.frame_bytes))


def test_orientation_rotates_counter_clockwise_and_mirrors():
    image = np.arange(6, dtype=np.float32).reshape(2, 3)  # [[0 1 2] [3 4 5]]
    assert orient(image, 90, False).tolist() == [[2, 5], [1, 4], [0, 3]]
    assert orient(image, 0, True).tolist() == [[2, 1, 0], [5, 4, 3]]
    assert orient(image, 180, False).tolist() == [[5, 4, 3], [2, 1, 0]]


# -- properties -------------------------------------------------------------------------------

SMALL = ThermalModel("small", 4, 6, "yuyv422", 3, 4, 3, 64.0, 25.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 65535), min_size=12, max_size=12),
       st.sampled_from([64.0, 100.0]))
def test_raw_to_celsius_and_back_is_exact(values, counts):
    model = ThermalModel("m", 4, 6, "yuyv422", 3, 4, 3, counts, 25.0)
    raw = np.array(values, "<u2").reshape(3, 4)
    assert np.array_equal(celsius_to_raw(raw_to_celsius(raw, model), model), raw)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_decode_or_raise_protocol_error(data):
    try:
        celsius = FrameDecoder(SMALL).decode(data)
    except ProtocolError:
        assert len(data) != SMALL.frame_bytes or not any(data[24:])
    else:
        assert celsius.shape == (3, 4)
        assert np.array_equal(celsius_to_raw(celsius, SMALL), raw_values(data, SMALL))


# -- the PyAV path ----------------------------------------------------------------------------

def test_packed_plane_strips_ffmpeg_row_padding():
    frame = av.VideoFrame(6, 2, "yuyv422")  # 12 bytes a row, FFmpeg pads the line to 16+
    plane = frame.planes[0]
    assert plane.line_size > 12
    rows = np.arange(plane.line_size * 2, dtype=np.uint8) % 251
    plane.update(rows.tobytes())
    expected = rows.reshape(2, plane.line_size)[:, :12].tobytes()
    assert packed_plane(frame) == expected


async def run_camera(driver, count: int) -> tuple[list[ThermalFrame], DriverRunner]:
    hub = Hub()
    frames = hub.subscribe("test", maxsize=1000, accepts=kinds(ThermalFrame))
    runner = DriverRunner(driver, hub, backoff=Backoff(initial=30.0))
    runner.start()
    try:
        got = [await asyncio.wait_for(frames.get(), 20) for _ in range(count)]
    finally:
        await runner.stop()
    return got, runner


async def test_p2pro_through_runner_and_hub_from_a_raw_yuyv_file(tmp_path):
    rng = np.random.default_rng(7)
    raws = [rng.integers(17000, 26000, (192, 256), dtype=np.uint16) for _ in range(4)]
    path = tmp_path / "p2pro.yuv"
    path.write_bytes(b"".join(p2pro_frame(r, picture_byte=i * 40) for i, r in enumerate(raws)))
    camera = P2ProCamera("cam", UvcOptions(device=str(path), input_format="rawvideo", fps=25))
    got, runner = await run_camera(camera, 4)
    assert [f.seq for f in got] == [0, 1, 2, 3]
    for frame, raw in zip(got, raws, strict=True):
        assert frame.sensor == "cam" and frame.celsius.shape == (192, 256)
        # values in = values out: every raw count comes back exactly
        assert np.array_equal(celsius_to_raw(frame.celsius, P2PRO), raw)
        assert np.array_equal(frame.celsius, raw_to_celsius(raw, P2PRO))
    assert camera.counters["bad_frames"] == 0


async def test_end_of_stream_moves_the_camera_to_reconnecting(tmp_path):
    path = tmp_path / "one.yuv"
    path.write_bytes(p2pro_frame(np.full((192, 256), 19000, "<u2")))
    hub = Hub()
    runner = DriverRunner(TC001Camera("cam", UvcOptions(device=str(path), input_format="rawvideo")),
                          hub, backoff=Backoff(initial=30.0))
    states = hub.subscribe("states", accepts=kinds(SensorStatus))
    runner.start()
    try:
        seen = []
        while "reconnecting" not in seen:
            seen.append((await asyncio.wait_for(states.get(), 20)).state)
        assert seen[:2] == ["starting", "connected"]
        assert "end of stream" in hub.statuses["cam"].detail
    finally:
        await runner.stop()


def write_nut(path: Path, width: int, height: int, pix_fmt: str, planes: list[bytes]) -> None:
    with av.open(str(path), "w", format="nut") as out:
        stream = out.add_stream("rawvideo", rate=9)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for data in planes:
            frame = av.VideoFrame(width, height, pix_fmt)
            frame.planes[0].update(data)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


async def test_lepton_from_a_nut_file_written_by_pyav(tmp_path):
    golden = gzip.decompress((DATA / "lepton_frame.y16.gz").read_bytes())
    second = (np.frombuffer(golden, "<u2") + 150).astype("<u2").tobytes()  # +1.5 K everywhere
    path = tmp_path / "lepton.nut"
    write_nut(path, 160, 120, "gray16le", [golden, second])
    got, _ = await run_camera(LeptonCamera("lep", UvcOptions(device=str(path),
                                                               input_format="nut")), 2)
    assert got[0].celsius[60, 80] == pytest.approx(85.5, abs=1e-3)
    assert np.allclose(got[1].celsius - got[0].celsius, 1.5, atol=1e-3)


async def test_a_camera_in_the_wrong_mode_is_named_on_open(tmp_path):
    path = tmp_path / "picture_only.nut"
    write_nut(path, 256, 192, "yuyv422", [bytes(256 * 192 * 2)])
    camera = P2ProCamera("cam", UvcOptions(device=str(path), input_format="nut"))
    with pytest.raises(DriverError, match="streams 256x192 yuyv422; a p2pro in radiometric mode "
                                          "streams 256x384"):
        await camera.open()
    await camera.close()


async def test_a_missing_device_is_a_driver_error_naming_it():
    camera = P2ProCamera("cam", UvcOptions(device="/nonexistent/video9"))
    with pytest.raises(DriverError, match="/nonexistent/video9"):
        await camera.open()
    await camera.close()


def test_listing_drivers_does_not_import_pyav():
    code = ("import sys\nfrom sensorlink.sources.registry import list_drivers\n"
            "names = {d.name: d for d in list_drivers()}\n"
            "assert 'av' not in sys.modules, 'av imported'\n"
            "print(sorted(n for n in names if n in ('p2pro', 'tc001', 'lepton', 'ds18b20', "
            "'respeaker-usb-4mic', 'respeaker-6mic-hat', 'mic-array')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted(["p2pro", "tc001", "lepton", "ds18b20",
                                             "respeaker-usb-4mic", "respeaker-6mic-hat",
                                             "mic-array"]))


# -- from a TOML config, as `sensorlink run` does ---------------------------------------------

def test_every_toml_example_in_the_hardware_doc_builds_its_driver():
    import re
    import tomllib

    from sensorlink.config import parse_config
    from sensorlink.options import build_options
    from sensorlink.sources.registry import load_driver

    doc = (Path(__file__).parent.parent / "docs" / "hardware-media.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    built = set()
    for block in blocks:
        for sensor in parse_config(tomllib.loads(block), source="docs").sensors:
            cls = load_driver(sensor.driver)
            cls(sensor.name, build_options(cls.Options, sensor.options, sensor=sensor.name))
            built.add(sensor.driver)
    assert built == {"p2pro", "ds18b20", "respeaker-usb-4mic", "respeaker-6mic-hat", "mic-array"}


async def test_camera_probes_and_array_run_in_the_service_from_toml(tmp_path):
    import shutil
    import tomllib

    from sensorlink.config import parse_config
    from sensorlink.samples import AudioBlock, Reading
    from sensorlink.service import Service

    (tmp_path / "w1" / "28-0316a2794bff").mkdir(parents=True)
    shutil.copy(DATA / "w1_slave_23125.txt", tmp_path / "w1" / "28-0316a2794bff" / "w1_slave")
    (tmp_path / "cam.yuv").write_bytes(p2pro_frame(np.full((192, 256), 19200, "<u2")))
    config = parse_config(tomllib.loads(f"""
        [service]
        listen = "127.0.0.1:0"
        token = "test-token-123"

        [[sensors]]
        name = "probes"
        driver = "ds18b20"
        root = "{tmp_path / 'w1'}"
        interval_s = 0.1

        [[sensors]]
        name = "cam"
        driver = "p2pro"
        device = "{tmp_path / 'cam.yuv'}"
        input_format = "rawvideo"

        [[sensors]]
        name = "mic"
        driver = "respeaker-usb-4mic"
        device = "{DATA / 'respeaker4_6ch.wav'}"
        input_format = "wav"
        """), source="plant.toml")
    service = Service.from_config(config)
    sub = service.hub.subscribe("test", maxsize=10_000,
                                accepts=kinds(ThermalFrame, AudioBlock, Reading))
    await service.start()
    try:
        seen: dict[str, object] = {}
        while len(seen) < 3:
            event = await asyncio.wait_for(sub.get(), 20)
            seen.setdefault(event.sensor, event)
    finally:
        await service.stop()
    assert seen["cam"].celsius[0, 0] == pytest.approx(19200 / 64 - 273.15)
    assert (seen["probes"].channel, seen["probes"].value) == ("28-0316a2794bff", 23.125)
    assert seen["mic"].pcm[0].tolist() == [1000, 2000, 3000, 4000, 5000, -6000]
    assert service.hub.sensors["cam"].meta["width"] == 256
