"""The sensorlink command as a user (or a service manager) runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from sensorlink.webrtc.viewer import connected_viewer

from support import wait_for


def sensorlink(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensorlink.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_drivers_lists_kinds_and_loadability() -> None:
    result = sensorlink("drivers", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["sim-microphone"]["kind"] == "microphone" and rows["sim-microphone"]["loadable"]


def test_bad_config_names_file_sensor_and_field(tmp_path: Path) -> None:
    config = tmp_path / "press.toml"
    config.write_text('[[sensors]]\nname = "probes"\ndriver = "sim-probes"\nchannels = "four"\n')
    result = sensorlink("run", str(config))
    assert result.returncode == 1
    assert f"{config}: sensor 'probes': field 'channels': expected an integer" in result.stderr


async def test_demo_prints_its_url_to_a_file_at_once_and_stops_cleanly_on_sigterm(service_process) -> None:
    proc = service_process("demo", "--listen", "127.0.0.1:0", "--token", "demo-token-1")
    url = await proc.url()
    assert url.endswith("#token=demo-token-1")
    async with connected_viewer(url) as viewer:
        await wait_for(lambda: viewer.readings > 20 and viewer.video_frames and viewer.audio_frames
                       and viewer.frames > 2, 30, "readings, video, audio and frames from the demo")
        assert {s["name"] for s in viewer.hello["sensors"]} == {"machine-cam", "bearing-probes",
                                                                 "spindle-mic"}
    assert proc.stop(signal.SIGTERM) == 0
    assert "Traceback" not in proc.errors()


async def test_demo_stops_cleanly_on_ctrl_c(service_process) -> None:
    proc = service_process("demo", "--listen", "127.0.0.1:0")
    await proc.url()
    assert proc.stop(signal.SIGINT) == 0
    assert "Traceback" not in proc.errors()


async def test_view_prints_json_lines_and_a_summary(service_process) -> None:
    proc = service_process("demo", "--listen", "127.0.0.1:0")
    url = await proc.url()
    result = await _run_view(url, "--duration", "4", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"hello", "connected", "readings", "frame", "status", "summary"} <= kinds
    summary = events[-1]
    assert summary["event"] == "summary" and summary["seq_gaps"] == 0
    assert summary["video_frames"]["machine-cam"] > 0 and summary["audio_frames"]["spindle-mic"] > 0


async def test_view_with_a_wrong_token_exits_non_zero_and_says_why(service_process) -> None:
    proc = service_process("demo", "--listen", "127.0.0.1:0")
    url = (await proc.url()).split("#")[0]
    result = await _run_view(url, "--token", "not-the-token", "--duration", "5")
    assert result.returncode == 3 and "wrong token" in result.stderr


async def _run_view(*args: str) -> subprocess.CompletedProcess[str]:
    import asyncio

    return await asyncio.to_thread(sensorlink, "view", *args)


async def test_view_records_what_it_receives_and_the_file_replays(service_process, tmp_path) -> None:
    proc = service_process("demo", "--listen", "127.0.0.1:0")
    url = await proc.url()
    target = tmp_path / "received.mcap"
    result = await _run_view(url, "--duration", "4", "--json", "--quiet-readings", "--record", str(target))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    summary = next(e for e in events if e["event"] == "summary")
    info = sensorlink("info", str(target), "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    text = json.dumps(report)
    assert "bearing-probes" in text and "machine-cam" in text and "spindle-mic" in text
    assert summary["readings"] > 0
    from sensorlink.recording.reader import open_recording
    from sensorlink.samples import Reading, ThermalFrame

    with open_recording(target) as recording:
        events = [event for _, event in recording.events()]
        sensors = recording.sensors()
    readings = [e for e in events if isinstance(e, Reading)]
    frames = [e for e in events if isinstance(e, ThermalFrame)]
    assert len(readings) == summary["readings"] and len(frames) == summary["frames"]
    assert sensors.keys() >= {"machine-cam", "bearing-probes", "spindle-mic"}
