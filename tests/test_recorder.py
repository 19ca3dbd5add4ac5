"""The recorder: exact contents, Foxglove-decodable channels, crash safety, rollover, disk full."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
from pathlib import Path

import jsonschema
import pytest
from mcap.data_stream import ReadDataStream
from mcap.reader import make_reader
from mcap.records import Chunk
from mcap.stream_reader import breakup_chunk

from sensorlink.errors import RecordingError
from sensorlink.hub import Hub
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import Recorder
from sensorlink.schemas import __file__ as _schemas_init
from sensorlink.sources.runner import DriverRunner

from mcap_readers import (
    FOXGLOVE_PROTOBUF, foxglove_decodes, protobuf_schema_matches_foxglove,
)
from record_helpers import (
    SAMPLE_TYPES, by_stream, killed_recording, record_session, same_sample, sim_drivers,
)

SCHEMAS_DIR = Path(_schemas_init).parent

# The well-known schemas recorded as protobuf; from Foxglove's schema reference
# (docs.foxglove.dev, RawImage), the image encodings it supports.
FOXGLOVE_FIELDS = ("foxglove.RawImage", "foxglove.RawAudio")
FOXGLOVE_IMAGE_ENCODINGS = {"8UC1", "8UC3", "16UC1", "32FC1", "bgr8", "bgra8", "mono8", "mono16",
                            "rgb8", "rgba8", "uyvy", "yuv422", "yuyv", "yuv422_yuy2"}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return asyncio.run(record_session(tmp_path_factory.mktemp("rec"), 2.0, controls=3,
                                      chunk_seconds=0.3))


def test_recording_holds_every_sample_exactly(session):
    assert len(session.files) == 1 and session.status["error"] is None
    assert session.status["samples"] == len(session.truth) and session.status["dropped"] == 0
    with Recording(session.files[0]) as rec:
        assert not rec.cut_short
        recorded = [e for _, e in rec.events() if isinstance(e, SAMPLE_TYPES)]
        header = rec.session
        assert header["session"] == {"test": True, "seconds": 2.0}
        assert header["host"] and header["version"] and header["start_time_ns"].isdigit()
        assert rec.metadata_named("sensorlink.summary")["reason"] == "stopped"
        infos = rec.sensors()
        controls = [e for _, e in rec.events(schemas={mm.CONTROL})]
    truth, got = by_stream(session.truth), by_stream(recorded)
    assert set(got) == set(truth) >= {"cam/thermal", "mic/audio", "probes/t0", "mic/doa"}
    for key, samples in truth.items():
        assert len(got[key]) == len(samples), key
        # log-time order may interleave streams differently, but never reorders one stream
        assert all(same_sample(a, b) for a, b in zip(samples, got[key])), key
    assert {name: i.kind for name, i in infos.items()} == \
        {"cam": "thermal", "probes": "probe", "mic": "microphone"}
    assert infos["mic"].meta["channels"] == 4
    assert [c.viewer for c in controls] == ["viewer-1", "viewer-2", "viewer-3"]
    assert controls[0].message == {"type": "colormap", "sensor": "cam", "name": "turbo"}


def test_status_matches_the_dashboard_schema(session):
    schema = json.loads((SCHEMAS_DIR / "status.schema.json").read_text())
    jsonschema.validate(session.status, schema["properties"]["recording"])
    assert session.status["active"] is False and session.status["bytes"] == \
        session.files[0].stat().st_size


def test_every_channel_is_one_foxglove_decodes(session):
    with open(session.files[0], "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        schemas_seen = set()
        for schema, channel, message in reader.iter_messages():
            assert schema is not None
            schemas_seen.add(schema.name)
            if schema.name in FOXGLOVE_FIELDS:
                # Thermal and audio are protobuf, schema a FileDescriptorSet whose message
                # carries Foxglove's fields as its compiled schema has them; Foxglove's own
                # class decodes the bytes (our appended fields are unknown fields to it).
                assert (channel.message_encoding, schema.encoding) == ("protobuf", "protobuf")
                protobuf_schema_matches_foxglove(schema.name, schema.data)
                body = FOXGLOVE_PROTOBUF[schema.name].FromString(message.data)
                raw = body.data
                assert body.timestamp.seconds > 0
                if schema.name == "foxglove.RawImage":
                    assert body.frame_id and body.encoding in FOXGLOVE_IMAGE_ENCODINGS
                    assert body.step == body.width * 4 and len(raw) == body.step * body.height
                else:
                    assert body.format == "pcm-s16" and body.number_of_channels == 4
                    assert body.sample_rate > 0 and len(raw) % (2 * body.number_of_channels) == 0
                continue
            # Foxglove: message encoding "json" goes with schema encoding "jsonschema"
            assert (channel.message_encoding, schema.encoding) == ("json", "jsonschema")
            schema_doc = json.loads(schema.data)
            jsonschema.Draft202012Validator.check_schema(schema_doc)
            assert schema_doc["type"] == "object"
            jsonschema.validate(json.loads(message.data), schema_doc)
    assert schemas_seen == {"foxglove.RawImage", "foxglove.RawAudio", "sensorlink.Reading",
                            "sensorlink.SensorInfo", "sensorlink.SensorStatus",
                            "sensorlink.ControlAction"}
    assert summary.chunk_indexes and all(c.compression == "zstd" for c in summary.chunk_indexes)
    assert all(c.message_index_offsets for c in summary.chunk_indexes)  # indexed for seeking
    # Foxglove's own decoder rules: every channel converts, every message decodes.
    converted = foxglove_decodes(session.files[0])
    assert converted == {channel.topic: count for channel_id, count in
                         summary.statistics.channel_message_counts.items()
                         for channel in [summary.channels[channel_id]]}
    assert len(converted) >= 11  # every sensor stream and the three /_sensorlink topics


def _chunk_message_counts(path: Path) -> list[tuple[int, int, int]]:
    """(start offset, record length, messages) of each chunk, read with the mcap library."""
    out = []
    with open(path, "rb") as f:
        for ci in make_reader(f).get_summary().chunk_indexes:
            f.seek(ci.chunk_start_offset + 9)
            chunk = Chunk.read(ReadDataStream(io.BytesIO(f.read(ci.chunk_length - 9))))
            n = sum(type(r).__name__ == "Message" for r in breakup_chunk(chunk))
            out.append((ci.chunk_start_offset, ci.chunk_length, n))
    return out


@pytest.mark.parametrize("where", ["inside_chunk", "after_chunk"])
def test_truncated_file_yields_every_message_of_its_complete_chunks(session, tmp_path, where):
    chunks = _chunk_message_counts(session.files[0])
    assert len(chunks) >= 3
    offset, length, _ = chunks[2]
    cut = offset + length // 2 if where == "inside_chunk" else offset + length
    data = session.files[0].read_bytes()[:cut]
    (tmp_path / "cut.mcap").write_bytes(data)
    with Recording(tmp_path / "cut.mcap") as rec:
        assert rec.cut_short and rec.problem
        expected = sum(n for _, _, n in chunks[:2 if where == "inside_chunk" else 3])
        assert rec.message_count == expected
        assert sum(1 for _ in rec.events()) == expected


def test_sigkilled_recorder_is_readable_up_to_its_last_complete_chunk(tmp_path):
    path, flushed = killed_recording(tmp_path)
    with Recording(path) as rec:
        assert rec.cut_short
        samples = [e for _, e in rec.events() if isinstance(e, SAMPLE_TYPES)]
        assert set(rec.sensors()) == {"cam", "probes", "mic"}
    assert len(samples) >= flushed
    for key, stream in by_stream(samples).items():
        # every sample of every complete chunk: no hole in any stream
        assert sorted(s.seq for s in stream) == list(range(len(stream))), key
    frames = by_stream(samples)["cam/thermal"]
    assert frames and all(f.celsius.shape == (24, 32) for f in frames)


def test_rollover_by_size_and_by_time(tmp_path):
    by_size = asyncio.run(record_session(tmp_path / "size", 2.0, roll_bytes=60_000,
                                           chunk_seconds=0.2))
    by_time = asyncio.run(record_session(tmp_path / "time", 1.6, roll_seconds=0.5))
    for sess in (by_size, by_time):
        assert len(sess.files) >= 3
        got = []
        for part, path in enumerate(sess.files, 1):
            with Recording(path) as rec:
                assert not rec.cut_short
                assert rec.session["part"] == str(part)
                assert rec.session["previous"] == (sess.files[part - 2].name if part > 1 else "")
                assert set(rec.sensors()) == {"cam", "probes", "mic"}  # each part stands alone
                got += [e for _, e in rec.events() if isinstance(e, SAMPLE_TYPES)]
        truth = by_stream(sess.truth)
        assert {k: len(v) for k, v in by_stream(got).items()} == {k: len(v) for k, v in truth.items()}
    for path in by_size.files[:-1]:
        assert path.stat().st_size >= 60_000


class FullDisk(io.RawIOBase):
    """A file on a disk that fills up after ``room`` bytes."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.kept = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(self.kept) + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.kept += data
        return len(data)


async def test_disk_full_is_reported_and_the_live_stream_goes_on(tmp_path):
    disk = FullDisk(room=150_000)
    hub = Hub()
    live = hub.subscribe("viewer", maxsize=100_000)
    recorder = Recorder(hub, tmp_path, session={}, opener=lambda path: disk, chunk_seconds=0.2)
    await recorder.start()
    runners = [DriverRunner(d, hub) for d in sim_drivers()]
    for r in runners:
        r.start()
    try:
        for _ in range(600):  # bounded: the disk fills after about a second of data
            if recorder.status()["error"]:
                break
            await asyncio.sleep(0.02)
        status = recorder.status()
        assert "No space left on device" in status["error"] and not status["active"]
        assert str(recorder.path) in status["error"]
        live.get_nowait(100_000)
        published = hub.published
        frames_after = []
        while len(frames_after) < 6:  # the hub still publishes to everyone else
            event = await asyncio.wait_for(live.get(), 10)
            if type(event).__name__ == "ThermalFrame":
                frames_after.append(event.seq)
        assert hub.published > published
        assert frames_after == list(range(frames_after[0], frames_after[0] + 6))
        assert all(s.state == "connected" for s in hub.statuses.values())
        assert "recorder" not in [s.name for s in hub.subscriptions]  # it stopped queueing
    finally:
        for r in runners:
            await r.stop()
        await recorder.stop()  # must not raise after the failure
    assert recorder.status()["error"] == status["error"]
    (tmp_path / "kept.mcap").write_bytes(bytes(disk.kept))
    with Recording(tmp_path / "kept.mcap") as rec:  # what reached the disk is readable
        assert rec.cut_short
        samples = [e for _, e in rec.events() if isinstance(e, SAMPLE_TYPES)]
    assert samples
    for stream in by_stream(samples).values():
        assert [s.seq for s in stream] == list(range(stream[0].seq, stream[0].seq + len(stream)))


async def test_start_where_nothing_can_be_written_raises_recording_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    hub = Hub()
    recorder = Recorder(hub, blocker / "recordings", session={})
    with pytest.raises(RecordingError, match="a-file"):
        await recorder.start()
    assert not recorder.active and recorder.status()["error"]
    assert not list(hub.subscriptions)
