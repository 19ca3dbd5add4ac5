"""A full disk, on a real (small) file system: recording pauses with a status and an alarm, the
live stream never stops, and recording resumes once there is room, with no sample lost.

Each test mounts a tmpfs of a few MB (tests/disk_support.py) and fills it with a file of its
own, as another program on the machine would."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sensorlink.alarm_event import AlarmEvent
from sensorlink.hub import Hub, kinds
from sensorlink.recording.library import Library
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import FREE_SPACE_RULE, Recorder
from sensorlink.recording.retention import Keeper, RetentionPolicy
from sensorlink.schemas import __file__ as _schemas_init

from disk_support import small_disk
from library_support import SAMPLE_TYPES, Source, key, recorded_samples, segment_files
from support import wait_for

MB = 1_000_000
RECORDING_SCHEMA = json.loads((Path(_schemas_init).parent / "status.schema.json").read_text())[
    "properties"]["recording"]


@pytest.fixture
def disk(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    with small_disk(tmp_path / "disk", "24m", request.node.nodeid) as where:
        yield where


def fill(disk: Path, leave: int) -> Path:
    """A file that leaves ``leave`` bytes free on ``disk``."""
    filler = disk / "filler.bin"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as f:
        f.truncate(0)
        chunk = b"\xa5" * (1 << 20)
        todo = max(free - leave, 0)
        while todo > 0:
            todo -= f.write(chunk[:min(todo, len(chunk))])
        f.flush()
        os.fsync(f.fileno())
    return filler


def check_nothing_lost(disk: Path, truth: list[Any]) -> list[Any]:
    recorded = recorded_samples(disk)
    counts = collections.Counter(key(s) for s in recorded)
    assert max(counts.values()) == 1, "a sample was recorded twice"
    assert set(counts) == {key(s) for s in truth}, (
        f"{len({key(s) for s in truth} - set(counts))} samples lost")
    by_stream: dict[tuple[str, str], list[int]] = {}
    for s in recorded:
        by_stream.setdefault(key(s)[:2], []).append(s.seq)
    for stream, seqs in by_stream.items():  # across every segment, no hole and no reorder
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), stream
    return recorded


async def _record(disk: Path | None, **recorder_kw: Any) -> tuple[Hub, Recorder, Source, Library]:
    assert disk is not None
    hub = Hub()
    library = Library(disk)
    recorder_kw.setdefault("roll_seconds", 1.5)
    recorder = Recorder(hub, disk, session={"test": "disk"}, chunk_seconds=0.1,
                        catalog=Keeper(library, RetentionPolicy()), **recorder_kw)
    source = Source(hub, rate_hz=50)
    source.describe()
    await recorder.start()
    source.start()
    return hub, recorder, source, library


async def test_low_free_space_pauses_says_so_and_resumes_with_nothing_lost(disk: Path | None) -> None:
    if disk is None:
        return  # ran inside a mount namespace of its own, and passed there
    hub, recorder, source, library = await _record(disk, min_free_bytes=8 * MB)
    viewer = hub.subscribe("viewer", maxsize=1_000_000, accepts=kinds(*SAMPLE_TYPES))
    alarms = hub.subscribe("alarms", maxsize=100, accepts=kinds(AlarmEvent))
    try:
        await wait_for(lambda: recorder.status()["segments"] >= 2, 30, "a segment rolled")
        filler = fill(disk, 6 * MB)
        await wait_for(lambda: recorder.status()["paused"], 20, "recording to pause")
        status = recorder.status()
        jsonschema.validate(status, RECORDING_SCHEMA)
        assert status["active"] and status["error"] is None
        assert "below min_free_gb" in status["pause_reason"] and status["free_bytes"] < 8 * MB
        assert hub.alarms[FREE_SPACE_RULE].active
        raised = await asyncio.wait_for(alarms.get(), 10)
        assert (raised.rule, raised.transition, raised.level) == (FREE_SPACE_RULE, "raised", "alarm")
        assert "recording paused" in raised.message and raised.limit == pytest.approx(0.008)
        # The live stream goes on while the recording waits, and the hub keeps queueing for it.
        seen = len(viewer)
        await wait_for(lambda: len(viewer) > seen + 200, 20, "the live stream going on")
        await wait_for(lambda: recorder.status()["queued"] > 200, 20, "events queued")
        paused_segments = segment_files(disk)
        filler.unlink()
        await wait_for(lambda: not recorder.status()["paused"], 20, "recording to resume")
        cleared = await asyncio.wait_for(alarms.get(), 10)
        assert (cleared.transition, cleared.active, cleared.over) == ("cleared", False, True)
        assert FREE_SPACE_RULE not in hub.alarms
        await wait_for(lambda: len(segment_files(disk)) > len(paused_segments), 20,
                       "a new segment after the pause")
        await asyncio.sleep(0.5)
    finally:
        await source.stop()
        await recorder.stop()
    assert recorder.status()["dropped"] == 0 and recorder.pauses == 1
    check_nothing_lost(disk, source.truth)
    # Every segment complete and in the index, the one closed at the pause included.
    assert {s.name for s in library.segments()} == {p.name for p in segment_files(disk)}
    assert {s.state for s in library.segments()} == {"complete"}
    closed_at_pause = [p for p in paused_segments if Recording(p).metadata_named(
        "sensorlink.summary")["reason"] == "paused: low disk space"]
    assert len(closed_at_pause) == 1


async def test_a_disk_full_mid_chunk_is_cut_back_and_nothing_is_lost(disk: Path | None) -> None:
    if disk is None:
        return  # ran inside a mount namespace of its own, and passed there
    # A guard that never sees it coming (0 bytes: free space is never below it; 1 byte was
    # seen as "0 GB free" when the filler left nothing and the check ran between two writes):
    # the write itself finds the disk full, in the middle of a segment (no roll meanwhile).
    hub, recorder, source, library = await _record(disk, min_free_bytes=0, roll_seconds=600)
    try:
        await wait_for(lambda: recorder.status()["segments"] >= 1 and recorder.chunks_written
                       >= 3, 30, "a few chunks")
        filler = fill(disk, 48_000)
        await wait_for(lambda: recorder.status()["paused"], 30, "the disk to fill up")
        status = recorder.status()
        assert "the disk is full" in status["pause_reason"] and status["error"] is None
        assert hub.alarms[FREE_SPACE_RULE].active
        cut = recorder._cut
        assert cut is not None and cut.exists()
        with Recording(cut) as rec:  # cut back to its last complete chunk: readable as it is
            assert rec.cut_short and "no summary" in rec.problem
        await asyncio.sleep(0.5)
        filler.unlink()
        await wait_for(lambda: not recorder.status()["paused"], 20, "recording to resume")
        await asyncio.sleep(0.5)
    finally:
        await source.stop()
        await recorder.stop()
    check_nothing_lost(disk, source.truth)
    states = {s.name: s.state for s in library.segments()}
    assert states == {p.name: states[p.name] for p in segment_files(disk)}
    assert states[cut.name] == "recovered"  # rewritten complete on resume, and indexed so


async def test_a_pause_longer_than_the_queue_drops_the_oldest_and_counts_them(
        disk: Path | None) -> None:
    if disk is None:
        return  # ran inside a mount namespace of its own, and passed there
    hub, recorder, source, _ = await _record(disk, min_free_bytes=8 * MB, queue_size=400)
    try:
        await wait_for(lambda: recorder.status()["segments"] >= 1, 30, "recording")
        filler = fill(disk, 6 * MB)
        await wait_for(lambda: recorder.status()["paused"], 20, "recording to pause")
        await source.stop()  # from here on, samples go in by hand: exactly these
        during = len(source.truth)
        for _ in range(300):
            source.tick()
        await wait_for(lambda: recorder.status()["dropped"] > 0, 10, "drops")
        assert recorder.status()["queued"] == 400
        jsonschema.validate(recorder.status(), RECORDING_SCHEMA)
        filler.unlink()
        await wait_for(lambda: not recorder.status()["paused"], 20, "recording to resume")
    finally:
        await source.stop()
        await recorder.stop()
    dropped = recorder.status()["dropped"]
    recorded = {key(s) for s in recorded_samples(disk)}
    missing = [i for i, s in enumerate(source.truth) if key(s) not in recorded]
    # Every drop is counted: the missing samples, and the alarm raised at the pause (queued
    # first, so the oldest; the one that cleared it pushed out one more sample at the resume).
    assert dropped == len(missing) + 1
    # The oldest in the queue went: one run of samples in the order they were published, up to
    # the newest queue-full, which are all kept.
    assert missing == list(range(missing[0], missing[0] + len(missing)))
    assert missing[-1] < len(source.truth) - 399 and missing[-1] >= during
