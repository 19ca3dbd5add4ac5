"""The JSON bodies of a recording: every value exact in the Foxglove-decodable form, and the
first form (files users already have: tests/data/recordings) still read exactly by replay,
info and export."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from sensorlink.cli import main as cli
from sensorlink.errors import RecordingError
from sensorlink.hub import Hub
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.recording.recovery import recover
from sensorlink.recording.replay import ReplaySource
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

from foxglove_jsonschema import SchemaRejected, decode_message, parse_json_schema
from mcap_readers import FOXGLOVE_PROTOBUF, protobuf_schema_matches_foxglove
from record_helpers import fingerprint

V1 = Path(__file__).parent / "data" / "recordings" / "v1-complete.mcap"
V2 = V1.with_name("v2-complete.mcap")
V1_VALUES = [20.5, math.nan, math.inf, -math.inf, -3.25, 1e-300]  # make_v1.py
T = 1_790_000_000_123_456_789

AWKWARD = [
    Reading("p", "t0", "temperature", math.nan, "°C", 0, 1, T, "bad"),
    Reading("p", "t0", "temperature", math.inf, "°C", 1, 2, T, "suspect"),
    Reading("p", "t0", "temperature", -math.inf, "°C", 2, 3, T),
    Reading("p", "t0", "temperature", 5e-324, "°C", 3, 4, T),
    Reading("p", "t0", "temperature", -0.0, "°C", 4, 5, T),
    ThermalFrame("c", np.array([[1.5, -273.15, 1e30]], dtype=np.float32), 0, 1, T, None),
    ThermalFrame("c", np.zeros((1, 2), dtype=np.float32), 1, 2, T, math.nan),
    ThermalFrame("c", np.zeros((1, 2), dtype=np.float32), 2, 3, T, -math.inf),
    ThermalFrame("c", np.zeros((1, 2), dtype=np.float32), 3, 4, T, 21.25),
    AudioBlock("m", np.array([[-32768, 32767]], dtype=np.int16), 16000, 0, 1, T, None),
    AudioBlock("m", np.array([[1, 2]], dtype=np.int16), 16000, 1, 2, T, math.inf),
    AudioBlock("m", np.array([[1, 2]], dtype=np.int16), 16000, 2, 3, T, 359.5),
    SensorInfo("m", "microphone", "sim", {"positions": [[0.032, -0.0]], "nested": {"a": [1, None]},
                                          "weird": "\u00b0\u2103\n\"", "big": 2**70}),
    SensorInfo("c", "thermal", "sim", {}),
    SensorStatus("p", "failed", "port /dev/ttyUSB0 gone", {"crc_errors": 3, "timeouts": 0},
                 0.5, T),
    SensorStatus("p", "connected", "", {}, 0.0, T),
    mm.ControlRecord("viewer-1", {"type": "replay", "action": "speed", "value": 2.5, "id": 7}, T),
    mm.ControlRecord("viewer-2", {"type": "steer", "sensor": "m", "angle_deg": None}, T),
]


@pytest.mark.parametrize("media", mm.MEDIA_FORMS)
@pytest.mark.parametrize("event", AWKWARD, ids=lambda e: type(e).__name__)
def test_every_value_survives_the_foxglove_decodable_form(event, media) -> None:
    msg = mm.encode(event, T, media=media)
    back = mm.decode(msg.schema, msg.data, topic=msg.topic, encoding=msg.message_encoding)
    assert fingerprint(back) == fingerprint(event)
    # ... and the same bytes are what Foxglove's decoder takes, under the schema written.
    if msg.message_encoding == "protobuf":
        assert media == "protobuf" and isinstance(event, (ThermalFrame, AudioBlock))
        protobuf_schema_matches_foxglove(msg.schema, msg.schema_data)
        body = FOXGLOVE_PROTOBUF[msg.schema].FromString(msg.data)
        assert body.data == (event.celsius.astype("<f4") if isinstance(event, ThermalFrame)
                             else event.pcm.astype("<i2")).tobytes()
        return
    _, postprocess = parse_json_schema(json.loads(msg.schema_data), msg.schema)
    body = decode_message(postprocess, msg.data)
    assert all(v is not None for v in body.values())  # no nulls: Foxglove has no type for one


def test_the_first_form_schemas_are_what_foxglove_rejects() -> None:
    """The checker catches what the issue measured: every channel of a first-form file fails."""
    with open(V1, "rb") as f:
        summary = make_reader(f).get_summary()
    rejected = {}
    for schema in summary.schemas.values():
        with pytest.raises(SchemaRejected) as info:
            parse_json_schema(json.loads(schema.data), schema.name)
        rejected[schema.name] = str(info.value)
    assert rejected[mm.READING] == 'Unsupported type ["number", "null"] for value'
    assert rejected[mm.SENSOR_INFO] == "Unsupported type undefined for kind"
    assert "Cannot convert undefined or null to object" in rejected[mm.CONTROL]
    assert len(rejected) == 6


def _v1_truth_check(events: list[tuple[int, object]]) -> None:
    readings = [e for _, e in events if isinstance(e, Reading)]
    frames = [e for _, e in events if isinstance(e, ThermalFrame)]
    blocks = [e for _, e in events if isinstance(e, AudioBlock)]
    assert [r.seq for r in readings] == list(range(30))
    for r in readings:
        assert repr(r.value) == repr(V1_VALUES[r.seq % 6]), r
        assert r.quality == ("suspect" if r.seq % 7 == 3 else "ok")
    assert len(frames) == len(blocks) == 10
    for f in frames:
        i = f.seq * 3
        assert f.ambient_c == (None if i % 2 else 25.5)
        expected = (np.arange(12, dtype=np.float32).reshape(3, 4) / 7 + i).astype(np.float32)
        assert f.celsius.tobytes() == expected.tobytes()
    for b in blocks:
        i = b.seq * 3
        assert b.steering_deg == (None if i % 2 else 12.5)
        assert b.pcm.tobytes() == (np.arange(64, dtype=np.int16).reshape(32, 2) * (i + 1)).tobytes()
    infos = {e.name: e for _, e in events if isinstance(e, SensorInfo)}
    assert infos["mic"].meta == {"rate": 16000, "channels": 2,
                                 "positions": [[-0.032, 0.0], [0.032, 0.0]]}
    statuses = [e for _, e in events if isinstance(e, SensorStatus)]
    assert [(s.state, s.counters) for s in statuses] == [
        ("connected", {"samples": 3, "crc_errors": 1}),
        ("reconnecting", {"samples": 9, "crc_errors": 2})]
    (control,) = [e for _, e in events if isinstance(e, mm.ControlRecord)]
    assert control.message == {"type": "colormap", "sensor": "cam", "name": "turbo"}


def test_a_first_form_recording_decodes_to_its_exact_values() -> None:
    with Recording(V1) as rec:
        assert rec.indexed and not rec.cut_short
        _v1_truth_check(list(rec.events()))


async def test_a_first_form_recording_replays_and_shows_in_info(capsys) -> None:
    hub = Hub(replay=True)
    seen = hub.subscribe("truth", maxsize=1000)
    source = ReplaySource(hub, V1, speed=20)
    await source.start()
    try:
        for _ in range(1500):
            if source.ended:
                break
            await asyncio.sleep(0.01)
        assert source.ended
    finally:
        await source.stop()
    samples = [e for e in seen.get_nowait(1000) if isinstance(e, (Reading, ThermalFrame,
                                                                   AudioBlock))]
    with Recording(V1) as rec:  # status changes and controls are recorded, not replayed
        others = list(rec.events(schemas={mm.SENSOR_STATUS, mm.CONTROL}))
    _v1_truth_check([(0, e) for e in [*samples, *hub.sensors.values()]] + others)
    assert cli(["info", str(V1), "--json"]) == 0
    counts = {s["topic"]: s["count"] for s in json.loads(capsys.readouterr().out)["streams"]}
    assert counts == {"/probes/t0": 30, "/cam/thermal": 10, "/mic/audio": 10,
                      "/_sensorlink/sensors": 3, "/_sensorlink/status": 2,
                      "/_sensorlink/control": 1}


def test_a_cut_first_form_recording_recovers_every_value_of_its_complete_chunks(
        tmp_path: Path) -> None:
    with open(V1, "rb") as f:
        summary = make_reader(f).get_summary()
        old_schemas = {s.name: s.data for s in summary.schemas.values()}
    fifth = sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset)[5]
    cut = tmp_path / "sensorlink-v1-cut.mcap"
    cut.write_bytes(V1.read_bytes()[:fifth.chunk_start_offset + fifth.chunk_length // 2])
    with Recording(cut) as rec:
        assert rec.cut_short and not rec.indexed
        before = [fingerprint(e) for _, e in rec.events()]
    shutil.copy(cut, tmp_path / "copy.mcap")
    result = recover(cut)
    assert result is not None and result.path == cut and result.messages == len(before)
    with Recording(cut) as rec:
        assert rec.indexed and not rec.cut_short
        assert [fingerprint(e) for _, e in rec.events()] == before
    with open(cut, "rb") as f:  # the body form is the file's own: its schemas are kept as written
        assert {s.name: s.data for s in make_reader(f).get_summary().schemas.values()} == \
            old_schemas
    assert recover(cut) is None  # complete now: nothing to do


def test_a_body_that_is_neither_form_names_its_topic() -> None:
    bad = json.dumps({"name": "c", "kind": "thermal", "driver": "x", "meta_json": "{not json"})
    with pytest.raises(RecordingError, match="/_sensorlink/sensors"):
        mm.decode(mm.SENSOR_INFO, bad.encode(), topic="/_sensorlink/sensors")
    bad = json.dumps({"sensor": "p", "channel": "t0", "quantity": "t", "unit": "C",
                      "quality": "ok", "seq": 0, "t_mono_ns": 0, "t_wall_ns": 0,
                      "nonfinite": "minus infinity"})
    with pytest.raises(RecordingError, match="nonfinite"):
        mm.decode(mm.READING, bad.encode(), topic="/p/t0")


def test_the_json_media_form_of_before_protobuf_still_reads_exactly() -> None:
    """v2-complete.mcap has thermal and audio as JSON with base64 bytes (make_v2.py)."""
    with open(V2, "rb") as f:
        summary = make_reader(f).get_summary()
    assert {c.message_encoding for c in summary.channels.values()} == {"json"}
    with Recording(V2) as rec:
        events = list(rec.events())
    _v1_truth_check(events)
