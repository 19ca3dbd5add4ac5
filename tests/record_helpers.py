"""Shared by the recording tests: a simulated session recorded through the real pipeline
(simulated drivers → DriverRunner → Hub → Recorder), and, run as a script, a recorder process
for the SIGKILL test that reports each chunk it has handed to the OS."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorlink.hub import Hub
from sensorlink.recording.recorder import Recorder
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.sources.runner import DriverRunner
from sensorlink_drivers.simulated.microphone import SimulatedMicrophoneArray
from sensorlink_drivers.simulated.probes import SimulatedProbes
from sensorlink_drivers.simulated.thermal import SimulatedThermalCamera

SAMPLE_TYPES = (ThermalFrame, AudioBlock, Reading)


def sim_drivers() -> list[Any]:
    return [SimulatedThermalCamera("cam"), SimulatedProbes("probes"),
            SimulatedMicrophoneArray("mic")]


def stream_key(sample: Any) -> str:
    if isinstance(sample, Reading):
        return f"{sample.sensor}/{sample.channel}"
    return f"{sample.sensor}/{'thermal' if isinstance(sample, ThermalFrame) else 'audio'}"


def same_sample(a: Any, b: Any) -> bool:
    if type(a) is not type(b) or (a.sensor, a.seq, a.t_mono_ns, a.t_wall_ns) != \
            (b.sensor, b.seq, b.t_mono_ns, b.t_wall_ns):
        return False
    if isinstance(a, ThermalFrame):
        return (a.celsius.dtype == b.celsius.dtype and np.array_equal(a.celsius, b.celsius)
                and a.ambient_c == b.ambient_c)
    if isinstance(a, AudioBlock):
        return (a.rate == b.rate and np.array_equal(a.pcm, b.pcm)
                and a.steering_deg == b.steering_deg)
    return a == b


def fingerprint(event: Any) -> tuple[Any, ...]:
    """Everything an event holds, comparable with == even when it holds NaN (repr of floats)."""
    if isinstance(event, Reading):
        return ("reading", event.sensor, event.channel, event.quantity, repr(event.value),
                event.unit, event.seq, event.t_mono_ns, event.t_wall_ns, event.quality)
    if isinstance(event, ThermalFrame):
        return ("frame", event.sensor, event.seq, event.t_mono_ns, event.t_wall_ns,
                str(event.celsius.dtype), event.celsius.shape, event.celsius.tobytes(),
                repr(event.ambient_c))
    if isinstance(event, AudioBlock):
        return ("audio", event.sensor, event.seq, event.t_mono_ns, event.t_wall_ns, event.rate,
                str(event.pcm.dtype), event.pcm.shape, event.pcm.tobytes(),
                repr(event.steering_deg))
    return (type(event).__name__, repr(event))


def by_stream(samples: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in samples:
        out.setdefault(stream_key(s), []).append(s)
    return out


@dataclass
class Session:
    """What a recorded simulated session produced."""

    files: list[Path]
    truth: list[Any] = field(default_factory=list)  # every sample the hub carried
    status: dict[str, Any] = field(default_factory=dict)


async def record_session(directory: Path, seconds: float, *, controls: int = 0,
                         **recorder_kw: Any) -> Session:
    """Record the three simulated sensors for ``seconds`` (of their own sample count)."""
    hub = Hub()
    truth_sub = hub.subscribe("truth", maxsize=1_000_000)
    recorder = Recorder(hub, directory, session={"test": True, "seconds": seconds}, **recorder_kw)
    await recorder.start()
    runners = [DriverRunner(d, hub) for d in sim_drivers()]
    for r in runners:
        r.start()
    # Run for a number of thermal frames rather than a wall-clock time.
    frames, seen, truth = int(seconds * 8), 0, []
    while seen < frames:
        event = await asyncio.wait_for(truth_sub.get(), 10)
        if not isinstance(event, SAMPLE_TYPES):
            continue
        truth.append(event)
        if isinstance(event, ThermalFrame):
            seen += 1
            if seen <= controls:
                recorder.log_control({"type": "colormap", "sensor": "cam", "name": "turbo"},
                                     viewer=f"viewer-{seen}")
    for r in runners:
        await r.stop()
    await recorder.stop()
    truth += [e for e in truth_sub.get_nowait(1_000_000) if isinstance(e, SAMPLE_TYPES)]
    truth_sub.close()
    return Session(files=list(recorder.files), truth=truth, status=recorder.status())


def killed_recording(directory: Path, chunks: int = 4) -> tuple[Path, int]:
    """Run a recorder process (this file as a script), SIGKILL it once ``chunks`` chunks are on
    disk, and return its cut file and how many samples it said were safely flushed."""
    here = Path(__file__).parent
    proc = subprocess.Popen([sys.executable, str(here / "record_helpers.py"), str(directory)],
                            stdout=subprocess.PIPE, text=True, cwd=here)
    try:
        path, flushed = None, 0
        assert proc.stdout is not None
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "path":
                path = Path(rest[0])
            elif word == "chunks" and int(rest[0]) >= chunks:
                flushed = int(rest[2])
                break
        os.kill(proc.pid, signal.SIGKILL)  # mid-session, between or during chunk writes
    finally:
        proc.kill()
        proc.wait(10)
    assert path is not None and flushed > 0
    return path, flushed


async def synthetic_recording(path: Path, *, seconds: float, rate_hz: float, streams: int = 4,
                              frame_every: int = 0) -> list[Any]:
    """Record ``streams`` probe channels ticking at ``rate_hz`` for ``seconds`` of log time,
    without waiting for real time. Every tick's readings share one log time (siblings, as a
    multi-channel probe sends them), and with ``frame_every`` a 4×3 thermal frame joins every
    n-th tick at that same time. Returns the samples, in the order published."""
    hub = Hub()
    hub.describe(SensorInfo("probes", "probe", "synthetic",
                            {"streams": [f"t{i}" for i in range(streams)]}))
    if frame_every:
        hub.describe(SensorInfo("cam", "thermal", "synthetic", {"width": 4, "height": 3}))
    recorder = Recorder(hub, path.parent, session={"test": "synthetic"}, file=path, fsync=False)
    await recorder.start()
    t0, step = time.time_ns(), int(1e9 / rate_hz)  # after the descriptions the file opens with
    truth: list[Any] = []
    for tick in range(int(seconds * rate_hz)):
        t = t0 + tick * step
        now: list[Any] = [Reading("probes", f"t{i}", "temperature", 20.0 + i + tick / 100, "°C",
                                  tick, tick, t) for i in range(streams)]
        if frame_every and tick % frame_every == 0:
            celsius = np.full((3, 4), 30.0 + tick / 10, dtype=np.float32)
            now.append(ThermalFrame("cam", celsius, tick // frame_every, tick, t, 21.0))
        for sample in now:
            hub.publish(sample)
        truth += now
        if tick % 500 == 0:
            await asyncio.sleep(0)  # let the recorder drain now and then
    await recorder.stop()
    assert recorder.status()["samples"] == len(truth), recorder.status()
    return truth


async def _kill_target(directory: str) -> None:
    """Record until killed, printing each chunk as it reaches the OS."""
    hub = Hub()
    recorder = Recorder(hub, directory, session={"test": "sigkill"}, chunk_seconds=0.2)
    await recorder.start()
    runners = [DriverRunner(d, hub) for d in sim_drivers()]
    for r in runners:
        r.start()
    print(f"path {recorder.path}", flush=True)
    reported = -1
    while True:
        if recorder.chunks_written != reported:
            reported = recorder.chunks_written
            print(f"chunks {reported} samples {recorder.samples_flushed}", flush=True)
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(_kill_target(sys.argv[1]))
