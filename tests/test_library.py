"""The recordings library: an index true to the files. Kept up to date as segments close,
rebuilt with the same content when deleted, brought up to date when stale, and a cut segment
is recovered and indexed; ``sensorlink recordings list|show|prune|reindex`` over it."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader

from sensorlink.cli import main as cli
from sensorlink.recording import messages as mm
from sensorlink.recording.library import INDEX_NAME, Library
from sensorlink.recording.reader import Recording
from sensorlink.recording.synthetic import write_library
from sensorlink.samples import Reading

from library_support import record_live, segment_files
from record_helpers import killed_recording


def trend_of(library: Library, segment: str, stream: str) -> tuple[int, float, float, float]:
    """(count, min, max, sum) of one stream's trend rows of one segment, straight from SQLite."""
    db = sqlite3.connect(library.path)
    try:
        return db.execute("SELECT SUM(n), MIN(lo), MAX(hi), SUM(total) FROM trend WHERE "
                          "segment = ? AND stream = ?", (segment, stream)).fetchone()
    finally:
        db.close()


def dump(library: Library) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the index holds about the segments, in a stable order."""
    db = sqlite3.connect(library.path)
    try:
        return {table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
                for table in ("segments", "alarms", "trend")}
    finally:
        db.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A live recording of several segments, one with an alarm, indexed as it went."""
    folder = tmp_path_factory.mktemp("library")

    asyncio.run(record_live(folder, segments=5, roll_bytes=25_000, session={"test": "library"}))
    return folder


def test_the_index_follows_the_segments_as_they_close(recorded: Path) -> None:
    library = Library(recorded)
    segments = library.segments()
    # Every file, oldest first ("-2" names sort before the plain one, so by time, not by name).
    files = sorted(segment_files(recorded), key=lambda p: Recording(p).start_ns)
    assert [s.name for s in segments] == [p.name for p in files]
    assert {s.state for s in segments} == {"complete"}
    assert [s.sensors for s in segments[:3]] == [["cam", "mic", "probes"]] * 3
    assert len({s.session for s in segments}) == 1 and segments[0].session == segments[0].name
    assert [s.previous for s in segments[1:]] == [s.name for s in segments[:-1]]
    assert [s.part for s in segments] == list(range(1, len(segments) + 1))
    for s, path in zip(segments, files, strict=True):
        with Recording(path) as rec:
            assert (s.start_ns, s.end_ns, s.size) == (rec.start_ns, rec.end_ns, path.stat().st_size)
            assert s.streams == {st.topic: rec.message_counts[st.channel_id]
                                 for st in rec.streams.values() if st.is_sample}
            readings = [e for _, e in rec.events(schemas={mm.READING})]
            sensors = {e.sensor for _, e in rec.events(schemas=mm.SAMPLE_SCHEMAS)}
        # The sensors whose samples it holds (the last, cut by the stop, may hold few or none).
        assert s.sensors == sorted(sensors)
        # The trend rows are the readings' own aggregates, bucket by bucket.
        for stream in ("probes/t0", "probes/t3") if readings else ():
            values = [r.value for r in readings if f"{r.sensor}/{r.channel}" == stream]
            n, lo, hi, total = trend_of(library, s.name, stream)
            assert (n, lo, hi) == (len(values), min(values), max(values))
            assert math.isclose(total, sum(values))
    alarmed = [s for s in segments if s.holds_alarm]
    assert alarmed and alarmed[0].alarms == 1
    assert library.alarms()[alarmed[0].name][0].rule == "probes.t0.high"


def test_a_deleted_index_is_rebuilt_with_the_same_content(recorded: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(recorded, folder, copy_function=shutil.copy2)  # same sizes and mtimes
    before = dump(Library(folder))
    assert before["segments"] and before["trend"] and before["alarms"]
    for suffix in ("", "-wal", "-shm"):
        (folder / f"{INDEX_NAME}{suffix}").unlink(missing_ok=True)
    library = Library(folder)
    assert len(library.segments()) == len(before["segments"])  # built again on first use
    assert dump(library) == before
    # The same through the command line, forgetting everything first.
    assert cli(["recordings", "reindex", str(folder), "--rebuild", "--json"]) == 0
    assert dump(Library(folder)) == before


def test_a_stale_index_catches_up_with_the_directory(recorded: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(recorded, folder, copy_function=shutil.copy2)
    library = Library(folder)
    names = [s.name for s in library.segments()]
    (folder / names[1]).unlink()                              # removed by hand
    shutil.copy2(folder / names[0], folder / "sensorlink-20990101T000000Z.mcap")  # added by hand
    changes = library.sync()
    assert changes == {"added": ["sensorlink-20990101T000000Z.mcap"], "changed": [],
                       "vanished": [names[1]]}
    assert {s.name for s in library.segments()} == {p.name for p in segment_files(folder)}
    assert library.deletions()[0]["name"] == names[1]
    assert "vanished" in library.deletions()[0]["reason"]
    assert library.sync() == {"added": [], "changed": [], "vanished": []}


def test_an_unreadable_index_is_set_aside_and_rebuilt(recorded: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(recorded, folder, copy_function=shutil.copy2)
    before = dump(Library(folder))
    for suffix in ("-wal", "-shm"):
        (folder / f"{INDEX_NAME}{suffix}").unlink(missing_ok=True)
    (folder / INDEX_NAME).write_bytes(b"this is not a database" * 100)
    library = Library(folder)
    assert len(library.segments()) == len(before["segments"])
    assert dump(library) == before
    assert (folder / f"{INDEX_NAME}.unreadable").exists()


def test_a_cut_segment_is_recovered_and_indexed(tmp_path: Path) -> None:
    cut, flushed = killed_recording(tmp_path)  # SIGKILLed mid-session: no summary, no index
    library = Library(tmp_path)
    (segment,) = library.segments()
    assert segment.name == cut.name and segment.state == "recovered"
    assert "no summary" in segment.problem or "cut short" in segment.problem
    with open(cut, "rb") as f:  # complete again: the default reader opens it
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics.message_count == segment.messages
    with Recording(cut) as rec:
        readings = [e for _, e in rec.events(schemas={mm.READING})]
        samples = sum(n for st in rec.streams.values() if st.is_sample
                      for n in [rec.message_counts[st.channel_id]])
    assert segment.samples == samples >= flushed
    # Its trend was computed from its readings (a cut file has no trend record of its own).
    values = [r.value for r in readings if isinstance(r, Reading) and r.channel == "t0"]
    n, lo, hi, _ = trend_of(library, segment.name, "probes/t0")
    assert (n, lo, hi) == (len(values), min(values), max(values)) and n > 0


def test_the_recordings_command(recorded: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(recorded, folder, copy_function=shutil.copy2)
    write_library(folder, days=0.5, probes=2, rate_hz=0.02, alarm_every=0,
                  end_ns=Library(folder).segments()[0].start_ns - 3_600_000_000_000)
    assert cli(["recordings", "list", str(folder), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    runs = [run for day in listing["days"] for run in day["runs"]]
    # The synthetic half day, then the live run an hour later (a run that crosses midnight is
    # listed under both days: count sessions, not rows).
    assert len({r["session"] for r in runs}) == 2
    assert sum(r["segments"] for r in runs) == len(segment_files(folder))
    live = [r for r in runs if "cam" in r["sensors"]]
    assert len({r["session"] for r in live}) == 1 and sum(len(r["alarms"]) for r in live) == 1
    assert cli(["recordings", "list", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "segments (" in text and "1 alarm events" in text
    last = segment_files(folder)[-1].name
    assert cli(["recordings", "show", str(folder), "--segment", last]) == 0
    assert last in capsys.readouterr().out
    # prune: a dry run says, deletes nothing; then the same for real, every deletion logged.
    total = sum(p.stat().st_size for p in segment_files(folder))
    assert cli(["recordings", "prune", str(folder), "--max-total-gb", str(total / 2e9),
                "--dry-run", "--json"]) == 0
    would = json.loads(capsys.readouterr().out)
    assert would and all(Path(folder / d["name"]).exists() for d in would)
    assert cli(["recordings", "prune", str(folder), "--max-total-gb", str(total / 2e9)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert len(said) == len(would) and all(line.startswith("deleted ") for line in said)
    assert not any((folder / d["name"]).exists() for d in would)
    assert cli(["recordings", "prune", str(folder), "--keep-days", "-1"]) == 1
    assert "'--keep-days'" in capsys.readouterr().err
