"""sensorlink info and sensorlink export, run through the CLI on real recordings."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys

import av
import numpy as np
import pytest

from sensorlink import colormap
from sensorlink.cli import main as cli
from sensorlink.hub import Hub
from sensorlink.recording.recorder import Recorder
from sensorlink.samples import Reading, ThermalFrame

from record_helpers import by_stream, record_session, synthetic_recording


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return asyncio.run(record_session(tmp_path_factory.mktemp("tools"), 2.0,
                                      chunk_seconds=0.4))


def _info_json(capsys, path) -> dict:
    assert cli(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_reports_streams_counts_and_completeness(session, capsys):
    report = _info_json(capsys, session.files[0])
    assert report["cut_short"] is False and report["finished"] is True and report["problem"] == ""
    streams = {s["topic"]: s for s in report["streams"]}
    truth = by_stream(session.truth)
    for key, samples in truth.items():
        topic = f"/{key}"
        assert streams[topic]["count"] == len(samples), topic
        assert streams[topic]["missing"] == 0 and streams[topic]["gaps"] == 0
        span = (samples[-1].t_wall_ns - samples[0].t_wall_ns) / 1e9
        assert streams[topic]["duration_s"] == pytest.approx(span, abs=1e-6)
    assert streams["/cam/thermal"]["schema"] == "foxglove.RawImage"
    assert report["duration_s"] > 1.5 and report["host"] and report["chunks"] >= 4

    assert cli(["info", str(session.files[0])]) == 0
    text = capsys.readouterr().out
    assert "complete" in text and "/mic/audio" in text and "foxglove.RawAudio" in text


def test_info_says_a_truncated_recording_was_cut_short(session, tmp_path, capsys):
    data = session.files[0].read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[:len(data) * 2 // 3])
    report = _info_json(capsys, tmp_path / "cut.mcap")
    assert report["cut_short"] is True and report["finished"] is False
    assert "cut short" in report["problem"] or "no summary" in report["problem"]
    total = {s["topic"]: s["count"] for s in report["streams"]}
    assert 0 < total["/cam/thermal"] < len(by_stream(session.truth)["cam/thermal"])
    assert cli(["info", str(tmp_path / "cut.mcap")]) == 0
    assert "CUT SHORT" in capsys.readouterr().out


async def test_info_counts_gaps_in_seq(tmp_path, capsys):
    hub = Hub()
    recorder = Recorder(hub, tmp_path, session={})
    await recorder.start()
    for seq in (0, 1, 2, 5, 6, 9, 0, 1):  # 2 lost, 2 lost, then the source restarts
        hub.publish(Reading("probe", "t0", "temperature", 20.0 + seq, "°C", seq,
                            1_000_000 + seq, 1_700_000_000_000_000_000 + seq * 10_000_000))
    await recorder.stop()
    report = _info_json(capsys, recorder.path)
    (stream,) = [s for s in report["streams"] if s["topic"] == "/probe/t0"]
    assert (stream["count"], stream["missing"], stream["gaps"], stream["resets"]) == (8, 4, 2, 1)
    assert cli(["info", str(recorder.path)]) == 0
    assert "4 missing in 2 gap(s), 1 restart(s)" in capsys.readouterr().out


def test_export_csv_has_one_row_per_reading(session, tmp_path, capsys):
    out = tmp_path / "readings.csv"
    assert cli(["export", str(session.files[0]), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    readings = [s for s in session.truth if isinstance(s, Reading)]
    assert len(rows) == len(readings)
    truth = {(r.sensor, r.channel, r.seq): r for r in readings}
    for row in rows:
        r = truth[(row["sensor"], row["channel"], int(row["seq"]))]
        assert float(row["value"]) == r.value and row["unit"] == r.unit
        assert int(row["t_wall_ns"]) == r.t_wall_ns and row["quality"] == r.quality
    times = [int(row["t_wall_ns"]) for row in rows]
    assert times == sorted(times)
    assert "csv:" in capsys.readouterr().err  # progress and summary on stderr


def test_export_csv_window(session, tmp_path):
    out = tmp_path / "window.csv"
    assert cli(["export", str(session.files[0]), "--csv", str(out),
                "--start", "0.5", "--end", "1.0"]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    # The window counts from the recording's first message (any channel, status included),
    # not from the first sample.
    from sensorlink.recording.reader import open_recording

    with open_recording(session.files[0]) as recording:
        t0 = recording.start_ns
    expected = [s for s in session.truth if isinstance(s, Reading)
                and t0 + 500_000_000 <= s.t_wall_ns < t0 + 1_000_000_000]
    assert rows and len(rows) == len(expected)


def test_export_frames_png_with_the_colour_map(session, tmp_path):
    out = tmp_path / "frames"
    assert cli(["export", str(session.files[0]), "--frames", str(out),
                "--colormap", "ironbow"]) == 0
    frames = [s for s in session.truth if isinstance(s, ThermalFrame)]
    pngs = sorted((out / "cam").glob("*.png"))
    assert [p.name for p in pngs] == [f"{f.seq:06d}.png" for f in frames]
    lo = min(float(f.celsius.min()) for f in frames)
    hi = max(float(f.celsius.max()) for f in frames)
    frame = frames[len(frames) // 2]
    scale = colormap.upscale_factor(frame.width, frame.height)  # 13 for 32x24: 416x312
    expected = colormap.render(frame.celsius, "ironbow", (lo, hi), scale)
    with av.open(str(out / "cam" / f"{frame.seq:06d}.png")) as container:  # an independent decoder
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert decoded.shape == (frame.height * scale, frame.width * scale, 3)
    assert np.array_equal(decoded, expected)


def test_export_mp4(session, tmp_path):
    out = tmp_path / "clip.mp4"
    assert cli(["export", str(session.files[0]), "--mp4", str(out), "--range", "20:60"]) == 0
    frames = [s for s in session.truth if isinstance(s, ThermalFrame)]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = list(container.decode(video=0))
    assert len(decoded) == len(frames)
    scale = colormap.upscale_factor(frames[0].width, frames[0].height)
    assert (decoded[0].width, decoded[0].height) == (frames[0].width * scale, frames[0].height * scale)
    # frame times come from the recorded times (8 Hz), not from a nominal rate
    span = float(decoded[-1].pts * decoded[-1].time_base - decoded[0].pts * decoded[0].time_base)
    assert span == pytest.approx((frames[-1].t_wall_ns - frames[0].t_wall_ns) / 1e9, abs=0.002)


@pytest.mark.parametrize("argv,message", [
    ([], "nothing to do"),
    (["--frames", "x", "--range", "hot"], "LO:HI"),
    (["--csv", "x", "--start", "2", "--end", "1"], "--start"),
])
def test_export_refuses_bad_requests(session, tmp_path, capsys, argv, message):
    argv = [a if a != "x" else str(tmp_path / "x") for a in argv]
    assert cli(["export", str(session.files[0]), *argv]) == 1
    assert message in capsys.readouterr().err


def test_info_on_something_that_is_not_a_recording(tmp_path, capsys):
    (tmp_path / "notes.mcap").write_text("hello")
    assert cli(["info", str(tmp_path / "notes.mcap")]) == 1
    assert "not an MCAP file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def many_streams(tmp_path_factory):
    """A recording whose `info` output is far bigger than a pipe's buffer (64 KiB here)."""
    path = tmp_path_factory.mktemp("many") / "many.mcap"
    asyncio.run(synthetic_recording(path, seconds=0.02, rate_hz=100, streams=3000))
    return path


@pytest.mark.parametrize("info_args,head_args", [
    (["--json"], ["-c", "100"]),  # `sensorlink info --json FILE | head -c 100`
    ([], ["-n", "3"]),            # `sensorlink info FILE | head -n 3`
])
def test_info_into_a_pipe_closed_early_stops_quietly(many_streams, info_args, head_args):
    command = [sys.executable, "-m", "sensorlink.cli", "info", str(many_streams), *info_args]
    whole = subprocess.run(command, capture_output=True, timeout=120, check=True)
    assert len(whole.stdout) > 3 * 65536  # so the pipe must break before it is all written
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", *head_args], stdin=writer.stdout, stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stderr is not None
    writer.stdout.close()  # only head holds the read end now, as in a shell pipeline
    shown, _ = head.communicate(timeout=120)
    errors = writer.stderr.read()
    status = writer.wait(120)
    assert shown == (whole.stdout[:100] if info_args else b"".join(
        whole.stdout.splitlines(keepends=True)[:3]))
    assert errors == b""  # no BrokenPipeError traceback
    assert status == 141  # what a Unix tool killed by SIGPIPE reports (128 + 13)
