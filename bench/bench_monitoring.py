"""What watching costs: region readings, band levels + spectrogram, rule evaluation, and the
delay from a sample to its alarm at a webhook, each beside a baseline timed in the same run.

    .venv/bin/python -m bench.bench_monitoring     # prints the figures as ratios

- regions: 10 regions (spot, box, line, polygon) on a 256×192 camera at 25 Hz, CPU share of a
  core; baseline: the camera path alone (colour map + upscale + encode, bench.offline).
- bands: third-octave levels and a spectrogram row of a 4-mic array's steered beam every 0.1 s,
  CPU share per array; baseline: steering + Opus for that array (bench.offline.audio).
- rules: µs per reading per rule (10 rules on one stream); baseline: Hub.publish of the same
  reading to one subscriber.
- webhook: p50/p99 from publishing a reading to the HTTP server receiving the POST its alarm
  causes (hub → analysis stage → webhook sink → a standard-library server); baseline: the same
  POST sent directly with httpx.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import offline  # noqa: E402
from bench.measure import percentile  # noqa: E402
from sensorlink.analysis.alarms import AlarmEngine  # noqa: E402
from sensorlink.analysis.bands import BandAnalyzer  # noqa: E402
from sensorlink.analysis.directional import RESPEAKER_4MIC  # noqa: E402
from sensorlink.analysis.regions import RegionSet  # noqa: E402
from sensorlink.config_alarms import WebhookConfig, parse_rule  # noqa: E402
from sensorlink.config_monitoring import BandsConfig, MonitorConfig, RegionConfig  # noqa: E402
from sensorlink.hub import Hub  # noqa: E402
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame  # noqa: E402



def ten_regions() -> list[RegionConfig]:
    kinds = [("spot", ((10, 10),)), ("box", ((20, 20), (80, 60))), ("line", ((0, 0), (255, 191))),
             ("polygon", ((100, 20), (200, 40), (150, 150), (110, 120)))]
    return [RegionConfig(f"r{i}", *kinds[i % 4]) for i in range(10)]


def regions(seconds: float) -> dict[str, float]:
    scenes = offline._scene(256, 192)
    region_set = RegionSet("cam", ten_regions())
    frames = [ThermalFrame("cam", s, k, 0, 0) for k, s in enumerate(scenes)]
    per_frame = offline.cpu_time_per_call(lambda i: region_set.compute(frames[i % len(frames)]),
                                          min_calls=200, min_seconds=seconds)
    camera = offline.thermal_pipeline(256, 192, 25.0, seconds=seconds)
    return {"regions_cpu": per_frame * 25.0, "camera_cpu": camera["cpu_per_camera"],
            "regions_ms_per_frame": per_frame * 1e3}


def bands(seconds: float) -> dict[str, float]:
    rate, block = 16_000, 512
    positions = [list(p) for p in RESPEAKER_4MIC]
    info = SensorInfo("mic", "microphone", "bench", {"rate": rate, "channels": 4,
                                                      "positions": positions})
    analyzer = BandAnalyzer(info, BandsConfig())
    analyzer.doa = 120.0
    rng = np.random.default_rng(1)
    pcm = rng.normal(0, 3000, (rate, 4)).astype(np.int16)
    blocks = [AudioBlock("mic", pcm[i:i + block], rate, k, 0, 0)
              for k, i in enumerate(range(0, rate - block + 1, block))]

    def one_block(i: int) -> None:
        b = blocks[i % len(blocks)]
        if analyzer.feed(b):
            analyzer.analyse(b, spectrum=True)
    per_block = offline.cpu_time_per_call(one_block, min_calls=400, min_seconds=seconds)
    steer = offline.audio(seconds=seconds)
    return {"bands_cpu": per_block * rate / block, "steer_opus_cpu": steer["steer_opus_cpu"],
            "bands": len(analyzer.bands)}


def rules(seconds: float) -> dict[str, float]:
    engine = AlarmEngine([parse_rule({"name": f"r{i}", "stream": "p/t0", "condition": "above",
                                      "warning": 50.0 + i, "alarm": 60.0 + i, "deadband": 1.0},
                                     "bench") for i in range(10)], lambda e: None)
    readings = [Reading("p", "t0", "temperature", 20.0 + (k % 7), "°C", k, k, k)
                for k in range(1000)]
    per_reading = offline.cpu_time_per_call(lambda i: engine.reading(readings[i % 1000]),
                                            min_calls=20_000, min_seconds=seconds)
    hub = Hub()
    sub = hub.subscribe("bench", maxsize=10)

    def publish(i: int) -> None:
        hub.publish(readings[i % 1000])
        if i % 8 == 0:
            sub.get_nowait(100)
    per_publish = offline.cpu_time_per_call(publish, min_calls=20_000, min_seconds=seconds)
    return {"us_per_reading_rule": per_reading / 10 * 1e6, "us_per_publish": per_publish * 1e6}


class _Receiver:
    def __init__(self) -> None:
        self.times: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.times.append(time.monotonic_ns())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.0005)


async def webhook(events: int) -> dict[str, float]:
    import httpx

    from sensorlink.analysis.stage import AnalysisStage
    from sensorlink.bridges.webhook import WebhookSink

    receiver = _Receiver()
    hub = Hub()
    hub.describe(SensorInfo("p", "probe", "bench", {"streams": {"t0": {"quantity": "temperature",
                                                                       "unit": "°C"}}}))
    rule = parse_rule({"name": "hot", "stream": "p/t0", "condition": "above", "alarm": 50.0},
                      "bench")
    stage = AnalysisStage(hub, MonitorConfig(alarms=(rule,)))
    stage.prepare()
    stage.start()
    sink = WebhookSink(hub, WebhookConfig(url=receiver.url, transitions=["raised", "cleared"]))
    await sink.start()
    delays: list[float] = []
    for k in range(events):  # each reading raises or clears: one POST each
        sent = len(receiver.times)
        t0 = time.monotonic_ns()
        hub.publish(Reading("p", "t0", "temperature", 60.0 if k % 2 == 0 else 40.0, "°C", k,
                            t0, time.time_ns()))
        await _until(lambda: len(receiver.times) > sent)
        delays.append((receiver.times[-1] - t0) / 1e6)
    await sink.stop()
    await stage.stop()
    direct: list[float] = []
    async with httpx.AsyncClient() as client:
        for _ in range(events):
            sent = len(receiver.times)
            t0 = time.monotonic_ns()
            await client.post(receiver.url, content=b"{}")
            await _until(lambda: len(receiver.times) > sent)
            direct.append((receiver.times[-1] - t0) / 1e6)
    receiver.server.shutdown()
    return {"p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99),
            "direct_p50_ms": percentile(direct, 50), "direct_p99_ms": percentile(direct, 99)}


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 0.5 if quick else 2.0
    return {"regions": regions(seconds), "bands": bands(seconds), "rules": rules(seconds),
            "webhook": asyncio.run(webhook(50 if quick else 200))}


if __name__ == "__main__":
    r = run(quick="--quick" in sys.argv)
    g, b, u, w = r["regions"], r["bands"], r["rules"], r["webhook"]
    print(f"regions (10 on 256×192 @25 Hz): {g['regions_cpu']:.2%} of a core | camera path "
          f"{g['camera_cpu']:.2%} | ratio {g['regions_cpu'] / g['camera_cpu']:.2f}× (target < 2%)")
    print(f"bands ({b['bands']} + spectrogram, 4 mics): {b['bands_cpu']:.2%} | steering+Opus "
          f"{b['steer_opus_cpu']:.2%} | ratio {b['bands_cpu'] / b['steer_opus_cpu']:.2f}× "
          "(target < 3%)")
    print(f"rules: {u['us_per_reading_rule']:.3f} µs per reading per rule | Hub.publish "
          f"{u['us_per_publish']:.3f} µs | ratio "
          f"{u['us_per_reading_rule'] / u['us_per_publish']:.2f}× (target < 1 µs)")
    print(f"sample → webhook: p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms | direct POST "
          f"p50 {w['direct_p50_ms']:.2f} ms, p99 {w['direct_p99_ms']:.2f} ms | "
          f"ratio {w['p99_ms'] / w['direct_p99_ms']:.2f}× "
          "(target p99 ≤ 100 ms)")
