"""Recording benchmarks: how fast the recorder writes, how big the demo's recordings are, and
how fast a recording can be read back (replay with no pacing) compared with real time.

    .venv/bin/python bench/bench_recording.py [--seconds 10]

Plain script, no asserts: the numbers go into the issue's closing note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sensorlink.hub import Hub
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import Recorder
from sensorlink.samples import AudioBlock, Reading, ThermalFrame
from sensorlink.sources.runner import DriverRunner
from sensorlink_drivers.simulated.microphone import SimulatedMicrophoneArray
from sensorlink_drivers.simulated.probes import SimulatedProbes
from sensorlink_drivers.simulated.thermal import SimulatedThermalCamera


async def write_throughput(directory: Path, samples: int = 3000, media: str = "protobuf"
                           ) -> dict[str, float]:
    """MB/s the recorder sustains when the hub hands it samples as fast as they can be made
    (a mix like the demo's: one frame and four audio blocks per eight readings)."""
    hub = Hub()
    recorder = Recorder(hub, directory, session={"bench": "write"}, media=media)
    await recorder.start()
    # Fresh noise in every frame and block, as real sensors give: repeated data would
    # compress to nothing and flatter the number.
    rng = np.random.default_rng(0)
    frames = (30 + rng.normal(0, 1, (samples, 24, 32))).astype(np.float32)
    pcm = rng.normal(0, 3000, (samples * 4, 512, 4)).astype(np.int16)
    t0 = time.perf_counter()
    t_wall = time.time_ns()
    for i in range(samples):
        t = t_wall + i * 1_000_000
        hub.publish(ThermalFrame("cam", frames[i], i, i, t, 24.0))
        for k in range(4):
            hub.publish(AudioBlock("mic", pcm[4 * i + k], 16000, 4 * i + k, i, t))
        for k in range(8):
            hub.publish(Reading("probes", f"t{k}", "temperature", 30.0 + k, "°C", i, i, t))
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the recorder's drain task run
    await recorder.stop()
    elapsed = time.perf_counter() - t0
    status = recorder.status()
    payload = samples * (frames[0].nbytes + 4 * pcm[0].nbytes)
    return {"write_mb_per_s": status["bytes"] / 1e6 / elapsed,
            "write_payload_mb_per_s": payload / 1e6 / elapsed,
            "write_samples_per_s": status["samples"] / elapsed,
            "write_dropped": status["dropped"]}


async def record_demo(directory: Path, seconds: float, **recorder_kw: Any) -> Path:
    """The demo's simulated sensors (default options) recorded for ``seconds``."""
    hub = Hub()
    recorder = Recorder(hub, directory, session={"bench": "demo"}, **recorder_kw)
    await recorder.start()
    runners = [DriverRunner(d, hub) for d in (SimulatedThermalCamera("cam"),
                                              SimulatedProbes("probes"),
                                              SimulatedMicrophoneArray("mic"))]
    for r in runners:
        r.start()
    await asyncio.sleep(seconds)
    for r in runners:
        await r.stop()
    await recorder.stop()
    assert recorder.path is not None
    return recorder.path


async def demo_size(directory: Path, seconds: float, media: str = "protobuf"
                    ) -> tuple[dict[str, float], Path]:
    """MB per minute of a recording of the demo's simulated sensors (default options)."""
    path = await record_demo(directory, seconds, media=media)
    with Recording(path) as rec:
        duration = rec.duration_s
    size = path.stat().st_size
    return {"demo_seconds": duration, "demo_mb": size / 1e6,
            "demo_mb_per_minute": size / 1e6 * 60 / duration}, path


def replay_speed(path: Path) -> dict[str, float]:
    """Read, decode and publish every event with no pacing: × real time."""
    hub = Hub(replay=True)
    sub = hub.subscribe("sink", maxsize=1 << 20)
    t0 = time.perf_counter()
    with Recording(path) as rec:
        n = 0
        for _, event in rec.events():
            if isinstance(event, (ThermalFrame, AudioBlock, Reading)):
                hub.publish(event)
                n += 1
        duration = rec.duration_s
    elapsed = time.perf_counter() - t0
    sub.close()
    return {"replay_x_real_time": duration / elapsed, "replay_samples_per_s": n / elapsed}


def run(seconds: float = 10.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(write_throughput(Path(tmp) / "write"))
        demo, path = asyncio.run(demo_size(Path(tmp) / "demo", seconds))
        results.update(demo)
        results.update(replay_speed(path))
    return {k: round(v, 3) for k, v in results.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the demo recording")
    print(json.dumps(run(parser.parse_args().seconds), indent=2))
