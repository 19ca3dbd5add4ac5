"""The recordings commands as a user runs them: ``sensorlink recordings list|show|prune|reindex``
and ``sensorlink export --dir`` over a time window that crosses segment boundaries, each a real
``sensorlink`` process over a directory recorded live (several segments, a camera, probes, a
microphone, an alarm). The exports are checked against the samples that were published."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pyarrow.parquet as pq
import pytest

from sensorlink.recording.library import Library
from sensorlink.samples import Reading, ThermalFrame

from library_support import record_live, segment_files
from support import wait_for


def sensorlink(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensorlink.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Six or more segments of a live run, an alarm raised in the second, and the truth."""
    folder = tmp_path_factory.mktemp("recordings")

    run = asyncio.run(record_live(folder, segments=6, roll_bytes=30_000,
                                  session={"test": "cli"}))
    return {"folder": folder, "truth": run.truth, "alarm": run.alarm}


def report_segments(folder: Path) -> list[dict[str, Any]]:
    """Every segment as ``recordings show --json`` gives it."""
    out = []
    for s in Library(folder).segments():
        shown = sensorlink("recordings", "show", str(folder), "--segment", s.name, "--json")
        assert shown.returncode == 0, shown.stderr
        out += json.loads(shown.stdout)["segments"]
    return out


def _window(folder: Path) -> tuple[int, int, list[Any]]:
    """From the middle of the first segment to the middle of the fourth: three boundaries."""
    segments = Library(folder).segments()
    assert len(segments) >= 6
    mid = [(s.start_ns + s.end_ns) // 2 for s in segments]
    return mid[0], mid[3], segments


def test_export_of_a_window_across_segments_holds_exactly_its_samples(
        recorded: dict[str, Any], tmp_path: Path) -> None:
    folder = recorded["folder"]
    from_ns, to_ns, _ = _window(folder)
    assert from_ns <= recorded["alarm"].t_wall_ns < to_ns
    out = {k: tmp_path / name for k, name in (("csv", "r.csv"), ("parquet", "r.parquet"),
                                              ("alarms", "a.csv"), ("mp4", "cam.mp4"))}
    # --from/--to as seconds since 1970 (float: a few hundred ns lost at the edges)
    result = sensorlink("export", "--dir", str(folder), "--from", f"{from_ns / 1e9:.9f}",
                        "--to", f"{to_ns / 1e9:.9f}", "--csv", str(out["csv"]),
                        "--parquet", str(out["parquet"]), "--alarms-csv", str(out["alarms"]),
                        "--mp4", str(out["mp4"]), "--progress")
    assert result.returncode == 0, result.stderr

    truth = [r for r in recorded["truth"] if isinstance(r, Reading)
             and from_ns <= r.t_wall_ns < to_ns]
    # float seconds lose a few hundred ns: compare away from the two edges
    edge = 1_000
    inner = {(r.sensor, r.channel, r.seq, repr(float(r.value))) for r in truth
             if from_ns + edge <= r.t_wall_ns < to_ns - edge}
    with open(out["csv"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    got = {(r["sensor"], r["channel"], int(r["seq"]), r["value"]) for r in rows}
    assert inner <= got and len(rows) == len(got)  # every sample once, none twice
    assert abs(len(rows) - len(truth)) <= 8  # at most the readings of the edge instants
    assert [int(r["t_wall_ns"]) for r in rows] == sorted(int(r["t_wall_ns"]) for r in rows)

    table = pq.read_table(out["parquet"])
    assert str(table.schema.field("time_utc").type) == "timestamp[ns, tz=UTC]"
    assert table.column("time_utc").cast("int64").to_pylist() == \
        [int(r["t_wall_ns"]) for r in rows]
    columns = [table.column(c).to_pylist() for c in ("sensor", "channel", "seq", "value")]
    assert [(a, b, c, repr(d)) for a, b, c, d in zip(*columns, strict=True)] == \
        [(r["sensor"], r["channel"], int(r["seq"]), r["value"]) for r in rows]

    with open(out["alarms"], newline="", encoding="utf-8") as f:
        alarms = list(csv.DictReader(f))
    assert [(a["rule"], a["transition"], int(a["t_wall_ns"])) for a in alarms] == \
        [("probes.t0.high", "raised", recorded["alarm"].t_wall_ns)]

    frames = [f for f in recorded["truth"] if isinstance(f, ThermalFrame)
              and from_ns + edge <= f.t_wall_ns < to_ns - edge]
    with av.open(str(out["mp4"])) as clip:
        decoded = sum(1 for _ in clip.decode(video=0))
    assert len(frames) <= decoded <= len(frames) + 2

    # The progress bar and a summary of each export, on stderr.
    assert "csv " in result.stderr and "%" in result.stderr and "[" in result.stderr
    assert f"csv: {len(rows)} readings" in result.stderr
    assert "alarms: 1 alarm events" in result.stderr


def test_export_window_errors_name_the_field(recorded: dict[str, Any], tmp_path: Path) -> None:
    folder = recorded["folder"]
    bad = sensorlink("export", "--dir", str(folder), "--from", "yesterday-ish",
                     "--csv", str(tmp_path / "x.csv"))
    assert bad.returncode == 1 and "'from'" in bad.stderr and "2026-12-01T08:00" in bad.stderr
    backwards = sensorlink("export", "--dir", str(folder), "--from", "2000", "--to", "1000",
                           "--csv", str(tmp_path / "x.csv"))
    assert backwards.returncode == 1 and "'to'" in backwards.stderr
    empty = sensorlink("export", "--dir", str(folder), "--from", "1000", "--to", "2000",
                       "--csv", str(tmp_path / "x.csv"))
    assert empty.returncode == 1 and "no recorded segment" in empty.stderr
    assert not (tmp_path / "x.csv").exists()  # nothing half-written


def test_list_show_reindex_and_prune_as_a_user_runs_them(recorded: dict[str, Any],
                                                          tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(recorded["folder"], folder, copy_function=shutil.copy2)
    listed = sensorlink("recordings", "list", str(folder), "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    runs = [run for day in report["days"] for run in day["runs"]]
    files = [folder / s.name for s in Library(folder).segments()]  # oldest first
    assert sorted(files) == segment_files(folder)
    # One run (listed under two days if it crossed midnight)
    assert len({r["session"] for r in runs}) == 1
    assert sum(r["segments"] for r in runs) == len(files)
    assert [a[1:] for r in runs for a in r["alarms"]] == [["probes.t0.high", "alarm", "raised"]]
    assert sorted(report["streams"]) == [f"probes/t{i}" for i in range(4)]

    shown = sensorlink("recordings", "show", str(folder), "--segment", files[1].name, "--json")
    assert shown.returncode == 0, shown.stderr
    (one,) = json.loads(shown.stdout)["segments"]
    assert one["name"] == files[1].name and one["state"] == "complete"
    assert one["streams"] and one["samples"] == sum(one["streams"].values())

    holding = [s["name"] for s in report_segments(folder) if s["holds_alarm"]]
    assert holding and holding[0] == files[1].name  # raised while the second was recorded

    # The index deleted: reindex builds it again from the files, and lists the same.
    (folder / Library(folder).path.name).unlink()
    rebuilt = sensorlink("recordings", "reindex", str(folder))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"{len(files)} segments indexed" in rebuilt.stdout
    assert json.loads(sensorlink("recordings", "list", str(folder), "--json").stdout)["days"] \
        == report["days"]

    # prune by size: the oldest go first, the one with the alarm stays; each deletion is
    # logged (stderr) and recorded in the index (the listing's deletion log).
    total = sum(p.stat().st_size for p in files)
    pruned = sensorlink("recordings", "prune", str(folder), "--max-total-gb",
                        f"{total / 3 / 1e9:.9f}", "--json")
    assert pruned.returncode == 0, pruned.stderr
    gone = [d["name"] for d in json.loads(pruned.stdout)]
    order = [p.name for p in files if p.name not in holding] + holding  # then oldest first
    assert gone and gone == order[:len(gone)] and files[-1].name not in gone
    assert not any((folder / name).exists() for name in gone)
    assert all(f"deleted recording {name}" in pruned.stderr for name in gone)
    after = json.loads(sensorlink("recordings", "list", str(folder), "--json").stdout)
    assert sorted(d["name"] for d in after["deleted"]) == sorted(gone)
    assert all("max_total_gb" in d["reason"] for d in after["deleted"])
    assert sum(run["segments"] for day in after["days"] for run in day["runs"]) == \
        len(files) - len(gone)


def test_recording_mistakes_name_the_field(tmp_path: Path) -> None:
    config = tmp_path / "pi.toml"
    sensors = '[[sensors]]\nname = "probes"\ndriver = "sim-probes"\n\n'
    config.write_text(sensors + '[service]\nrecord_dir = "rec"\n\n[recording]\nkeep_days = 7\n'
                      'keep_alarm_days = 2\n')
    result = sensorlink("recordings", "list", "--config", str(config))
    assert result.returncode == 1, result.stderr
    assert "field 'recording.keep_alarm_days'" in result.stderr, result.stderr
    config.write_text(sensors + '[recording]\nsegment_minuts = 5\n')
    result = sensorlink("run", str(config))
    assert result.returncode == 1 and "field 'recording.segment_minuts'" in result.stderr
    flag = sensorlink("demo", "--listen", "127.0.0.1:0", "--min-free-gb", "-3")
    assert flag.returncode == 1 and "field '--min-free-gb'" in flag.stderr


async def test_a_service_records_by_its_table_and_flags_and_logs_every_deletion(
        tmp_path: Path, service_process: Any) -> None:
    """``sensorlink run`` with a ``[recording]`` table whose segment length a flag overrides:
    segments roll every 1.2 s, retention deletes the oldest past a tiny size limit as they
    close, and each deletion is in the service's log and in the index's deletion log."""
    config = tmp_path / "pi.toml"
    config.write_text('[[sensors]]\nname = "probes"\ndriver = "sim-probes"\n\n'
                      '[[sensors]]\nname = "oven"\ndriver = "sim-probes"\n\n'
                      '[service]\nrecord_dir = "rec"\n\n'
                      '[recording]\nalways = true\nsegment_minutes = 15\nkeep_days = 7\n'
                      'min_free_gb = 0\n')
    proc = service_process("run", str(config), "--listen", "127.0.0.1:0", "--token", "t0k3n-xyz",
                           "--segment-minutes", "0.02", "--max-total-gb", "0.00003")
    await proc.url(60)
    folder = tmp_path / "rec"

    def deleted() -> list[dict[str, Any]]:
        if not (folder / Library(folder).path.name).exists():
            return []
        library = Library(folder, recover_cut=False)
        try:
            return library.deletions()
        finally:
            library.close()

    await wait_for(lambda: len(deleted()) >= 3, 120, "retention to delete three segments")
    assert proc.stop() == 0
    gone = deleted()
    log = proc.errors()
    for d in gone:
        assert f"deleted recording {d['name']}" in log
        assert "max_total_gb = 3e-05" in d["reason"] and not (folder / d["name"]).exists()
    listed = sensorlink("recordings", "list", str(folder), "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    kept = [run for day in report["days"] for run in day["runs"]]
    assert kept and {d["name"] for d in report["deleted"]} >= {d["name"] for d in gone[:20]}
    # Segments rolled by the flag's 1.2 s, not the table's 15 min: spans of about a second.
    spans = [(s.end_ns - s.start_ns) / 1e9 for s in Library(folder).segments()[:-1]]
    assert spans and all(s < 10 for s in spans)


def test_the_raspberry_pi_example_in_the_docs_is_a_valid_config(tmp_path: Path) -> None:
    """docs/recording.md's [recording] example for a 32 GB Pi parses, as the docs say."""
    from sensorlink.config import load_config

    text = (Path(__file__).parents[1] / "docs" / "recording.md").read_text(encoding="utf-8")
    block = text.split("### A 32 GB Raspberry Pi", 1)[1].split("```toml\n", 1)[1].split("```")[0]
    config = tmp_path / "pi.toml"
    config.write_text(block + '\n[[sensors]]\nname = "probes"\ndriver = "sim-probes"\n')
    recording = load_config(str(config)).recording
    assert (recording.always, recording.segment_minutes, recording.max_total_gb,
            recording.keep_days, recording.keep_alarm_days, recording.min_free_gb,
            recording.audio) == (True, 15, 18, 30, 180, 2, "flac")
    listed = sensorlink("recordings", "list", "--config", str(config), "--json")
    # the example's record_dir does not exist here: the error names it
    assert listed.returncode == 1 and "/var/lib/sensorlink/recordings" in listed.stderr


def test_always_on_the_command_line(tmp_path: Path) -> None:
    """``--always``/``--no-always`` win over the table; ``--record DIR`` alone records from
    start-up, as it always has, unless ``--no-always`` says otherwise."""
    from sensorlink.cli import build_parser
    from sensorlink.commands._serving import apply_recording_arguments
    from sensorlink.config_recording import RecordingConfig

    def always(*argv: str, table: bool | None = None) -> bool | None:
        args = build_parser().parse_args(["demo", *argv])
        return apply_recording_arguments(RecordingConfig(always=table), args).always

    assert always() is None and always(table=True) is True
    assert always("--record", str(tmp_path)) is True
    assert always("--record", str(tmp_path), "--no-always") is False
    assert always("--no-always", table=True) is False and always("--always", table=False) is True
