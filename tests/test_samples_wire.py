"""Samples round-trip through msgpack; every wire message validates against schemas/."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from sensorlink.errors import MessageError
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame, sample_from_msgpack
from sensorlink.status import SensorStatus
from sensorlink.validation import validate
from sensorlink.webrtc.wire import (
    FrameAssembler, decode_control, decode_message, encode_error, encode_frame, encode_readings,
    encode_reply,
)


def test_reading_round_trip() -> None:
    r = Reading("probes", "t0", "temperature", 31.25, "°C", 7, 123, 456, "suspect")
    assert Reading.from_msgpack(r.to_msgpack()) == r
    assert sample_from_msgpack(r.to_msgpack()) == r


def test_thermal_frame_round_trip_is_exact() -> None:
    celsius = np.random.default_rng(0).normal(30, 5, (24, 32)).astype(np.float32)
    f = ThermalFrame("cam", celsius, 3, 10, 20, ambient_c=24.5)
    back = ThermalFrame.from_msgpack(f.to_msgpack())
    assert np.array_equal(back.celsius, celsius)
    assert (back.sensor, back.seq, back.t_mono_ns, back.t_wall_ns, back.ambient_c) == ("cam", 3, 10, 20, 24.5)


def test_audio_block_round_trip() -> None:
    pcm = np.arange(-400, 400, dtype=np.int16).reshape(-1, 4)
    b = AudioBlock("mic", pcm, 16000, 9, 1, 2, steering_deg=45.0)
    back = sample_from_msgpack(b.to_msgpack())
    assert isinstance(back, AudioBlock)
    assert np.array_equal(back.pcm, pcm) and back.rate == 16000 and back.steering_deg == 45.0


def test_readings_batch_validates_and_keeps_values() -> None:
    rows = [Reading("probes", f"t{i}", "temperature", 20.0 + i / 3, "°C", i, 5, 6) for i in range(50)]
    message = decode_message(encode_readings(rows))
    assert [row[3] for row in message["readings"]] == [r.value for r in rows]
    assert message["readings"][3][:3] == ["probes/t3", 3, 6]


@pytest.mark.parametrize("shape", [(24, 32), (192, 256), (120, 160)])
def test_frames_split_into_bands_and_reassemble_to_the_centi_degree(shape: tuple[int, int]) -> None:
    celsius = np.random.default_rng(1).uniform(-20, 150, shape).astype(np.float32)
    frame = ThermalFrame("cam", celsius, 11, 0, 99)
    messages = encode_frame(frame, (0.0, 100.0))
    assert all(len(m) < 17_000 for m in messages)
    assembler, result = FrameAssembler(), None
    for m in messages:
        result = assembler.add(decode_message(m)) or result
    assert result is not None
    meta, back = result
    assert meta["seq"] == 11 and back.shape == shape
    assert np.max(np.abs(back - celsius)) <= 0.0051  # half a centi-degree, plus float32 rounding


def test_hot_frames_beyond_327_c_fall_back_to_deci_degrees() -> None:
    celsius = np.full((4, 4), 550.0, np.float32)
    message = decode_message(encode_frame(ThermalFrame("cam", celsius, 0, 0, 0), (0, 600))[0])
    assert message["scale"] == 10
    assert FrameAssembler().add(message)[1][0, 0] == pytest.approx(550.0)


def test_status_view_reply_and_error_messages_validate() -> None:
    status = SensorStatus("cam", "reconnecting", "port gone", {"samples": 3}, 1.5)
    validate("status", {"type": "status", "t_wall_ns": 1, "sensors": [
        {**status.to_dict(), "kind": "thermal", "driver": "sim-thermal"}], "beams": {"mic": None},
        "recording": None, "replay": None})
    assert decode_message(encode_reply(4, {"x": 1}))["id"] == 4
    assert decode_message(encode_error("bad", msg_id=2, field="angle_deg"))["field"] == "angle_deg"
    info = SensorInfo("cam", "thermal", "sim-thermal", {"width": 32})
    assert SensorInfo.from_dict(info.to_dict()) == info


@pytest.mark.parametrize("message", [
    {"type": "ping", "id": 1, "t_client_ms": 5.5},
    {"type": "steer", "id": 2, "sensor": "mic", "angle_deg": 90},
    {"type": "steer", "id": 3, "sensor": "mic", "angle_deg": None},
    {"type": "colormap", "id": 4, "sensor": "cam", "map": "turbo", "range": [20, 40]},
    {"type": "colormap", "id": 5, "sensor": "cam", "range": "auto"},
    {"type": "replay", "id": 6, "action": "seek", "value": 12.5},
    {"type": "record", "id": 7, "action": "start"},
])
def test_valid_control_messages_pass(message: dict) -> None:
    assert decode_control(msgpack.packb(message)) == message


@pytest.mark.parametrize(("message", "field"), [
    ({"type": "steer", "id": 1, "sensor": "mic", "angle_deg": "north"}, "angle_deg"),
    ({"type": "steer", "id": 1, "sensor": "mic"}, "angle_deg"),
    ({"type": "steer", "id": 1, "sensor": "mic", "angle_deg": 10, "gain": 3}, "gain"),
    ({"type": "launch", "id": 1}, "type"),
    ({"id": 1}, "type"),
    ({"type": "ping"}, "id"),
    ({"type": "ping", "id": -1}, "id"),
    ({"type": "colormap", "id": 1, "sensor": "cam", "range": [1, 2, 3]}, "range"),
    ({"type": "replay", "id": 1, "action": "rewind"}, "action"),
])
def test_bad_control_messages_name_the_field(message: dict, field: str) -> None:
    with pytest.raises(MessageError) as info:
        decode_control(msgpack.packb(message))
    assert info.value.field == field, str(info.value)


def test_garbage_and_oversized_control_are_refused() -> None:
    with pytest.raises(MessageError, match="msgpack"):
        decode_control(b"\xc1\xff\x00")
    with pytest.raises(MessageError, match="map"):
        decode_control(msgpack.packb([1, 2, 3]))
    with pytest.raises(MessageError, match="limit"):
        decode_control(msgpack.packb({"type": "ping", "id": 1, "pad": "x" * 5000}))
