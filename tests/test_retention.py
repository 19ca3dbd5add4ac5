"""Retention with tiny limits: segments roll, the oldest go first, the open one and the ones that
hold an alarm stay, and the recordings library matches the files after every step."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sensorlink.config import parse_config
from sensorlink.config_recording import DAY_NS
from sensorlink.errors import ConfigError
from sensorlink.hub import Hub
from sensorlink.recording.library import Library
from sensorlink.recording.recorder import Recorder
from sensorlink.recording.retention import RetentionPolicy, plan, prune
from sensorlink.recording.segment_files import Segment
from sensorlink.recording.synthetic import write_library

from library_support import ObservingKeeper, Source, alarm, key, recorded_samples, segment_files
from support import wait_for


def _check_step(step: dict, policy: RetentionPolicy, open_name: str | None) -> None:
    # The index and the directory hold the same segments, every one of them indexed complete.
    assert set(step["index"]) == step["files"], step
    assert all(s.state == "complete" for n, s in step["index"].items() if n != open_name)
    # Nothing deleted is still there, and what is there is within the limit (the open one
    # counts: it is never deleted, so alone it may exceed a tiny limit).
    assert not set(step["deleted"]) & step["files"]
    closed = [s for n, s in step["index"].items() if n != open_name]
    non_alarm = [s for s in closed if not s.holds_alarm]
    if len(non_alarm) > 1:
        assert sum(s.size for s in closed) <= policy.max_total_bytes + max(s.size for s in closed)


async def test_size_limit_deletes_the_oldest_first_keeps_alarms_and_the_open_one(tmp_path: Path) -> None:
    hub = Hub()
    library = Library(tmp_path)
    policy = RetentionPolicy(max_total_bytes=60_000)
    keeper = ObservingKeeper(library, policy)
    recorder = Recorder(hub, tmp_path, session={"test": "retention"}, roll_bytes=15_000,
                        chunk_seconds=0.05, fsync=False, catalog=keeper)
    source = Source(hub, rate_hz=200, audio=False)
    await recorder.start()
    source.start()
    try:
        await wait_for(lambda: len(recorder.files) >= 3, 30, "three segments")
        hub.alarm(alarm("probes.t0.high"))  # lands in the segment being written now
        await wait_for(lambda: len(recorder.files) >= 4, 30, "the segment with the alarm closed")
        hub.alarm(alarm("probes.t0.high", "cleared", active=False, seq=2))
        await wait_for(lambda: len(keeper.steps) >= 12, 60, "a dozen segments closed")
    finally:
        await source.stop()
        await recorder.stop()
    names = [p.name for p in recorder.files]
    alarmed = {n for step in keeper.steps for n, s in step["index"].items() if s.holds_alarm}
    assert alarmed, "the segment written while the alarm was raised holds it"
    for i, step in enumerate(keeper.steps):
        # After closing segment i, segment i+1 is the open one (the last close is the stop).
        is_last = i == len(keeper.steps) - 1
        _check_step(step, policy, None if is_last else names[names.index(step["closed"]) + 1])
    deleted = keeper.steps[-1]["deleted"][::-1]  # the log is newest first
    assert deleted, "the limit was passed many times over"
    # Oldest first: every deletion is older than every segment without an alarm still there.
    assert deleted == [n for n in names if n in deleted]
    kept = keeper.steps[-1]["files"]
    assert alarmed <= kept  # alarm segments outlive younger segments without an alarm
    first_alarm = min(alarmed, key=names.index)
    assert any(names.index(d) > names.index(first_alarm) for d in deleted)
    assert library.deletions()[0]["reason"].startswith("the recordings took")
    # What is left on disk holds exactly what the hub carried in those segments, no more.
    truth = {key(s) for s in source.truth}
    assert {key(s) for s in recorded_samples(tmp_path)} <= truth


def _seg(name: str, day: float, *, alarm: bool = False, size: int = 100,
         state: str = "complete") -> Segment:
    start = int(day * DAY_NS)
    return Segment(name, size, 0, start, start + DAY_NS // 96, state, holds_alarm=alarm)


def test_keep_days_and_keep_alarm_days_by_age() -> None:
    now = int(10 * DAY_NS)
    segments = [_seg("a", 1), _seg("b", 2, alarm=True), _seg("c", 7), _seg("d", 8.5, alarm=True),
                _seg("e", 9.5), _seg("open", 1.5, state="open")]
    doomed = plan(segments, RetentionPolicy(keep_days=2, keep_alarm_days=5), now)
    assert [(s.name, r) for s, r in doomed] == [("a", "older than keep_days = 2"),
                                                ("b", "older than keep_alarm_days = 5"),
                                                ("c", "older than keep_days = 2")]
    # No keep_alarm_days: a segment with an alarm is not deleted for its age at all.
    assert [s.name for s, _ in plan(segments, RetentionPolicy(keep_days=2), now)] == ["a", "c"]


def test_size_pressure_takes_every_segment_without_an_alarm_before_one_with() -> None:
    segments = [_seg("a", 1, alarm=True), _seg("b", 2), _seg("c", 3, alarm=True), _seg("d", 4),
                _seg("open", 5, state="open", size=250)]
    names = lambda policy: [s.name for s, _ in plan(segments, policy, int(6 * DAY_NS))]
    # 650 bytes in all: the open one counts, and is never a candidate.
    assert names(RetentionPolicy(max_total_bytes=650)) == []
    assert names(RetentionPolicy(max_total_bytes=550)) == ["b"]
    assert names(RetentionPolicy(max_total_bytes=450)) == ["b", "d"]
    assert names(RetentionPolicy(max_total_bytes=350)) == ["a", "b", "d"]
    # The open segment alone is over the limit: everything closed goes, it stays.
    assert names(RetentionPolicy(max_total_bytes=100)) == ["a", "b", "c", "d"]


def test_prune_by_hand_logs_every_deletion_and_leaves_a_locked_file(tmp_path: Path) -> None:
    end = time.time_ns()
    paths = write_library(tmp_path, days=0.25, probes=2, rate_hz=0.05, end_ns=end,
                          alarm_every=6)
    library = Library(tmp_path)
    assert len(library.segments()) == len(paths) == 24
    alarmed = {s.name for s in library.segments() if s.holds_alarm}
    assert len(alarmed) == 4
    # A file a recorder holds open (locked) is never deleted, however old.
    with open(paths[0], "rb") as held:
        import fcntl

        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        policy = RetentionPolicy(keep_days=2 / 24, keep_alarm_days=5 / 24)
        doomed = prune(library, policy, now_ns=end)
    gone = {s.name for s, _ in doomed}
    assert paths[0].name not in gone and paths[0].exists()
    # 6 h of segments, keep 2 h: the first 4 h go, but for the locked one and the alarms
    # younger than 5 h.
    expected = {p.name for p in paths[1:16]} - (alarmed - {paths[3].name})
    assert gone == expected, (sorted(gone), sorted(expected))
    assert {p.name for p in segment_files(tmp_path)} == {s.name for s in library.segments()}
    logged = {d["name"]: d["reason"] for d in library.deletions()}
    assert set(logged) == gone and all("older than keep" in r for r in logged.values())


@pytest.mark.parametrize(("table", "field", "words"), [
    ({"keep_days": -1}, "recording.keep_days", "positive"),
    ({"keep_days": 7, "keep_alarm_days": 2}, "recording.keep_alarm_days", "longer"),
    ({"max_total_gb": "lots"}, "recording.max_total_gb", "number"),
    ({"min_free_gb": -0.5}, "recording.min_free_gb", "0 turns it off"),
    ({"segment_minutes": 0}, "recording.segment_minutes", "positive"),
    ({"audio": "mp3"}, "recording.audio", "flac"),
    ({"keep_dayz": 3}, "recording.keep_dayz", "unknown key"),
])
def test_recording_table_errors_name_the_field(table: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"sensors": [{"name": "p", "driver": "sim-probes"}], "recording": table},
                     "plant.toml")
    assert f"field {field!r}" in str(info.value) and words in str(info.value)
    assert "plant.toml" in str(info.value)


def test_the_cli_flags_override_the_table_and_name_themselves(tmp_path: Path) -> None:
    from sensorlink.cli import build_parser
    from sensorlink.commands._serving import apply_recording_arguments
    from sensorlink.config_recording import RecordingConfig

    args = build_parser().parse_args(["demo", "--record", str(tmp_path), "--keep-days", "3",
                                      "--max-total-gb", "20", "--segment-minutes", "5",
                                      "--audio", "flac"])
    config = apply_recording_arguments(RecordingConfig(keep_days=9, min_free_gb=1), args)
    assert (config.keep_days, config.max_total_gb, config.segment_minutes, config.audio,
            config.min_free_gb, config.always) == (3, 20, 5, "flac", 1, True)
    bad = build_parser().parse_args(["demo", "--keep-days", "-2"])
    with pytest.raises(ConfigError, match="'--keep-days'"):
        apply_recording_arguments(RecordingConfig(), bad)
