"""A recording cut by a crash becomes a complete, indexed file that default readers open:
``sensorlink recover``, and the recorder doing it by itself for its own cut files on start-up.

"Opens" is checked with readers sensorlink did not write: the ``mcap`` package's make_reader,
@mcap/core's McapIndexedReader under node, and Foxglove's JSON-Schema decoder rules."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pytest
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.writer import Writer

from sensorlink.cli import main as cli
from sensorlink.hub import Hub
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import Recorder
from sensorlink.recording.recovery import RECOVERY_METADATA
from sensorlink.samples import Reading, SensorInfo

from mcap_readers import default_reader, foxglove_decodes, node_indexed_reader
from record_helpers import killed_recording, synthetic_recording
from support import wait_for


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _info(capsys: pytest.CaptureFixture[str], path: Path) -> dict:
    assert cli(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _counts(report: dict) -> dict[str, int]:
    return {s["topic"]: s["count"] for s in report["streams"]}


def test_a_sigkilled_recording_once_recovered_opens_in_the_default_readers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut, flushed = killed_recording(tmp_path)
    before = _info(capsys, cut)
    assert before["cut_short"] and sum(_counts(before).values()) >= flushed
    counted = _counts(before)
    # What the issue saw: neither default reader opens a cut file.
    with open(cut, "rb") as f, pytest.raises(McapError):
        make_reader(f).get_summary()
    assert "magic" in node_indexed_reader(cut)["error"].lower()

    out = tmp_path / "recovered.mcap"
    original = _digest(cut)
    assert cli(["recover", str(cut), "-o", str(out)]) == 0
    assert "complete and indexed" in capsys.readouterr().out
    assert _digest(cut) == original  # -o leaves the cut file as it was

    python = default_reader(out)
    assert python["indexed"] and python["statistics"] == python["read"] == counted
    node = node_indexed_reader(out)
    assert node["hasStatistics"] and node["chunks"] >= 1 and node["unparsed"] == 0
    assert node["statistics"] == node["read"] == counted
    assert {(c["messageEncoding"], c["schemaEncoding"]) for c in node["channels"]} == \
        {("json", "jsonschema"), ("protobuf", "protobuf")}  # thermal and audio are protobuf
    assert foxglove_decodes(out) == counted  # every channel converts, every message decodes
    assert node["metadata"][-1] == RECOVERY_METADATA and "sensorlink.session" in node["metadata"]

    after = _info(capsys, out)
    assert not after["cut_short"] and _counts(after) == counted
    assert after["host"] == before["host"] and not after["finished"]  # never stopped cleanly

    # In place: the same file, now complete; nothing left beside it.
    assert cli(["recover", str(cut)]) == 0
    capsys.readouterr()
    assert default_reader(cut)["statistics"] == counted
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([cut.name, out.name])


def test_recover_says_when_there_is_nothing_to_do_and_never_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut, _ = killed_recording(tmp_path, chunks=2)
    out = tmp_path / "taken.mcap"
    out.write_bytes(b"someone's file")
    assert cli(["recover", str(cut), "-o", str(out)]) == 1
    assert "taken.mcap" in capsys.readouterr().err and out.read_bytes() == b"someone's file"
    assert cli(["recover", str(cut)]) == 0
    capsys.readouterr()
    complete = _digest(cut)
    assert cli(["recover", str(cut)]) == 0
    assert "nothing to recover" in capsys.readouterr().out and _digest(cut) == complete
    assert cli(["recover", str(tmp_path / "nope.mcap")]) == 1
    assert "nope.mcap" in capsys.readouterr().err


def test_a_recovery_that_fails_keeps_the_original(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cut, _ = killed_recording(tmp_path, chunks=2)
    original = _digest(cut)
    # Where the new file would go, something that cannot be removed or written over.
    blocker = tmp_path / f".{cut.name}.recovering"
    blocker.mkdir()
    (blocker / "keep").write_text("x")
    assert cli(["recover", str(cut)]) == 1
    assert "left as it was" in capsys.readouterr().err
    assert _digest(cut) == original and (blocker / "keep").exists()


def _cut_before_footer(path: Path) -> bytes:
    """A complete file's bytes up to the end of its last chunk's message indexes: what a
    crash leaves after the last chunk was flushed."""
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    last = max(summary.chunk_indexes, key=lambda c: c.chunk_start_offset)
    return path.read_bytes()[:last.chunk_start_offset + last.chunk_length
                              + last.message_index_length]


async def test_a_recorder_start_recovers_its_own_cut_files_and_nothing_else(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    made = tmp_path / "made.mcap"
    await synthetic_recording(made, seconds=2.0, rate_hz=50, streams=3, frame_every=4)
    own = folder / "sensorlink-20250101T000000Z.mcap"
    own.write_bytes(_cut_before_footer(made))
    with Recording(own) as rec:
        own_counts = dict(rec.message_counts)
    renamed = folder / "my-copy.mcap"  # cut, but not named as the recorder names its files
    renamed.write_bytes(own.read_bytes())
    complete = folder / "sensorlink-20250101T000002Z.mcap"
    complete.write_bytes(made.read_bytes())
    foreign = folder / "sensorlink-20250101T000001Z.mcap"  # cut, named like ours, not ours
    with open(tmp_path / "foreign.mcap", "wb") as f:
        writer = Writer(f)
        writer.start(profile="", library="another-tool 1.0")
        sid = writer.register_schema("x", "jsonschema", b"{}")
        cid = writer.register_channel("/x", "json", sid)
        for i in range(50):
            writer.add_message(cid, i, b"{}", i)
        writer.finish()
    foreign.write_bytes(_cut_before_footer(tmp_path / "foreign.mcap"))

    # Another recorder is writing into the same folder right now: its file has no footer yet.
    live_hub = Hub()
    live_hub.describe(SensorInfo("probe", "probe", "test", {}))
    live = Recorder(live_hub, folder, session={"test": "live"}, chunk_seconds=0.05)
    await live.start()
    live_hub.publish(Reading("probe", "t0", "temperature", 20.0, "°C", 0, 0, time.time_ns()))
    await wait_for(lambda: live.samples_flushed == 1, 20, "the live recorder's first chunk")
    untouched = {p: (_digest(p), p.stat().st_ino) for p in (renamed, complete, foreign)}
    live_inode = live.path.stat().st_ino

    starting = Recorder(Hub(), folder, session={"test": "start-up"}, recover_cut=True)
    with caplog.at_level(logging.INFO, logger="sensorlink.recording.recovery"):
        await starting.start()
    try:
        assert [r.path for r in starting.recovered] == [own]
        assert f"recovered the cut recording {own}" in caplog.text
        with Recording(own) as rec:
            assert rec.indexed and dict(rec.message_counts) == own_counts
        assert default_reader(own)["read"] == default_reader(own)["statistics"]
        assert {p: (_digest(p), p.stat().st_ino) for p in untouched} == untouched
        assert live.path.stat().st_ino == live_inode and live.active
        assert not [p for p in folder.iterdir() if p.name.endswith(".recovering")]
    finally:
        await starting.stop()
        await live.stop()
    with Recording(live.path) as rec:  # the live recording was not disturbed: it finished
        assert rec.indexed and rec.metadata_named("sensorlink.summary") is not None
        assert rec.message_count == 2  # the description and the reading
    # An empty recording is complete too: a later start leaves it (and every other) alone.
    again = Recorder(Hub(), folder, session={}, recover_cut=True)
    await again.start()
    await again.stop()
    assert again.recovered == [] and os.path.exists(starting.path)
