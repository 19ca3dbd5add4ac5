"""Run the sensorlink benchmark suite and write bench/RESULTS.md and bench/results.json.

    .venv/bin/python -m bench.run              # full: ~15 min with the 10 min soak
    .venv/bin/python -m bench.run --quick      # ~2-3 min, short windows, 30 s soak
    .venv/bin/python -m bench.run --soak-minutes 60

Every figure stands beside a baseline measured in the same run, as a ratio: these machines are
shared and noisy, so absolute numbers move from run to run but ratios hold.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import live, offline  # noqa: E402
from bench.measure import machine, ratio  # noqa: E402
from bench.report import Row, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.quick = args.quick
        self.repeats = 1 if args.quick else 3
        self.warmup = 1.0 if args.quick else 2.0
        self.window = 2.0 if args.quick else 5.0
        self.soak_minutes = args.soak_minutes if args.soak_minutes is not None else (
            0.5 if args.quick else 10.0)
        self.rows: list[Row] = []
        self.raw: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def add(self, *args: Any, **kwargs: Any) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        print(row.line(), flush=True)

    def section(self, name: str, fn: Any) -> None:
        print(f"== {name}", flush=True)
        try:
            fn()
        except Exception as exc:  # one broken section must not lose the others' figures
            self.errors[name] = "".join(traceback.format_exception_only(exc)).strip()
            print(f"   {name} failed: {self.errors[name]}", flush=True)
            traceback.print_exc()

    # -- sections ------------------------------------------------------------------------------
    def readings(self) -> None:
        kw = {"warmup": self.warmup, "duration": self.window}
        runs: dict[str, list[dict[str, Any]]] = {"webrtc": [], "ws": [], "naive": []}
        for _ in range(self.repeats):  # interleaved, so a noisy neighbour hits all three alike
            runs["webrtc"].append(asyncio.run(live.readings_throughput("webrtc", batch=None, **kw)))
            runs["ws"].append(asyncio.run(live.readings_throughput("ws", batch=None, **kw)))
            runs["naive"].append(asyncio.run(live.readings_throughput("webrtc", batch=1, **kw)))
        self.raw["readings_throughput"] = runs
        best = {k: max(v, key=lambda r: r["rate"]) for k, v in runs.items()}
        ours = best["webrtc"]["rate"]
        self.add("readings", "readings/s, `readings` channel (best of %d)" % self.repeats, ours,
                 "/s", "websocket, same batches", best["ws"]["rate"], target="≥ 200,000/s; ≥ 0.5× ws",
                 met=ours >= 200_000)
        self.add("readings", "readings/s vs naive aiortc (1 reading/message)", ours, "/s",
                 "naive aiortc", best["naive"]["rate"], target="≥ 50×",
                 met=ratio(ours, best["naive"]["rate"]) >= 50)
        self.add("readings", "service CPU at that rate (core)", best["webrtc"]["server_cpu"], "core",
                 "websocket server", best["ws"]["server_cpu"])
        self.add("readings", "receiver CPU at that rate (core)", best["webrtc"]["receiver_cpu"],
                 "core", "websocket receiver", best["ws"]["receiver_cpu"])
        lat = {t: asyncio.run(live.readings_latency(t, warmup=self.warmup, duration=self.window * 2))
               for t in ("webrtc", "ws")}
        self.raw["readings_latency"] = lat
        for q in ("p50_ms", "p99_ms"):
            self.add("readings", f"{q[:3]} sensor→viewer latency at 1,000 readings/s", lat["webrtc"][q],
                     "ms", "websocket", lat["ws"][q],
                     target="p99 ≤ 5 ms" if q == "p99_ms" else "",
                     met=lat["webrtc"][q] <= 5.0 if q == "p99_ms" else None)

    def viewers(self) -> None:
        result = asyncio.run(live.viewers_cpu((0, 1, 10), warmup=self.warmup + 1, duration=self.window))
        self.raw["viewers_cpu"] = result
        self.add("viewers", "service CPU, 1 viewer, 2,000 readings/s", result[1]["server_cpu"], "core",
                 "no viewer", result[0]["server_cpu"])
        self.add("viewers", "service CPU, 10 viewers, 2,000 readings/s each", result[10]["server_cpu"],
                 "core", "1 viewer", result[1]["server_cpu"], target="< 2×",
                 met=ratio(result[10]["server_cpu"], result[1]["server_cpu"]) < 2)

    def thermal(self) -> None:
        seconds = 0.6 if self.quick else 2.0
        self.raw["thermal_pipeline"] = []
        for width, height, rate in offline.CAMERAS:
            r = offline.thermal_pipeline(width, height, rate, seconds=seconds)
            self.raw["thermal_pipeline"].append(r)
            name = f"{width}×{height}@{rate:g}Hz → {r['video']}@{r['output_fps']:g}fps"
            self.add("thermal", f"{name}: ms per frame (map+upscale+encode)", r["ms_per_frame"], "ms",
                     "RGB path (encoder converts)", r["rgb_ms_per_frame"])
            self.add("thermal", f"{name}: frames/s one core sustains", r["frames_per_s"], "fps",
                     "RGB path", 1e3 / r["rgb_ms_per_frame"])
            target = {(32, 24): 0.05, (256, 192): 0.25}.get((width, height))
            self.add("thermal", f"{name}: CPU per camera, 1 viewer (model)", r["cpu_per_camera"], "core",
                     "RGB path", r["rgb_cpu_per_camera"],
                     target=f"< {target:.0%}" if target else "",
                     met=r["cpu_per_camera"] < target if target else None)
        cameras = offline.CAMERAS[:1] if self.quick else offline.CAMERAS
        self.raw["thermal_live"] = []
        for width, height, rate in cameras:
            r = asyncio.run(live.thermal_live(width, height, rate, warmup=self.warmup,
                                              duration=self.window))
            r["size"] = f"{width}x{height}"
            self.raw["thermal_live"].append(r)
            name = f"{width}×{height}@{rate:g}Hz"
            self.add("thermal", f"{name}: service CPU with 1 viewer (measured)", r["viewed"]["server_cpu"],
                     "core", "same service, no viewer", r["idle"]["server_cpu"],
                     target={(32, 24): "< 5%", (256, 192): "< 25%"}.get((width, height), ""),
                     met={(32, 24): r["viewed"]["server_cpu"] < 0.05,
                          (256, 192): r["viewed"]["server_cpu"] < 0.25}.get((width, height)))
            self.add("thermal", f"{name}: video frames/s received", r["viewed"]["rate"], "fps",
                     "camera rate", rate)
            self.add("thermal", f"{name}: exact-frame latency p99 (frames channel)", r["viewed"]["p99_ms"],
                     "ms", "websocket", r["ws"]["p99_ms"], target="≤ 30 ms",
                     met=r["viewed"]["p99_ms"] <= 30)

    def monitoring(self) -> None:
        from bench import bench_monitoring
        r = bench_monitoring.run(quick=self.quick)
        self.raw["monitoring"] = r
        g, b, u, w = r["regions"], r["bands"], r["rules"], r["webhook"]
        self.add("monitoring", "10 regions on 256×192@25Hz, CPU", g["regions_cpu"], "core",
                 "camera path alone", g["camera_cpu"], target="< 2%", met=g["regions_cpu"] < 0.02)
        self.add("monitoring", "bands + spectrogram, CPU per 4-mic array", b["bands_cpu"], "core",
                 "steering + Opus", b["steer_opus_cpu"], target="< 3%", met=b["bands_cpu"] < 0.03)
        self.add("monitoring", "rule evaluation, µs per reading per rule", u["us_per_reading_rule"],
                 "µs", "Hub.publish, 1 subscriber", u["us_per_publish"], target="< 1 µs",
                 met=u["us_per_reading_rule"] < 1.0)
        self.add("monitoring", "sample → webhook POST, p99", w["p99_ms"], "ms", "direct httpx POST",
                 w["direct_p99_ms"], target="≤ 100 ms", met=w["p99_ms"] <= 100)

    def audio(self) -> None:
        r = offline.audio(seconds=1.0 if self.quick else 3.0)
        self.raw["audio"] = r
        self.add("audio", "steering + Opus, CPU per 4-mic array", r["steer_opus_cpu"], "core",
                 "plain channel + Opus", r["plain_opus_cpu"])
        self.add("audio", "DOA (SRP-PHAT, 6 pairs), CPU per second of audio", r["doa_cpu"], "core",
                 "one opposite pair GCC-PHAT", r["one_pair_cpu"])

    def _optional(self, section: str, name: str) -> Any:
        """A section's measuring module, or None (the reason noted) when it cannot load."""
        try:
            return importlib.import_module(f"bench.{name}")
        except ImportError as exc:
            self.errors[section] = f"bench/{name}.py not available: {exc}"
            return None

    def parsers(self) -> None:
        module = self._optional("parsers", "bench_parsers")
        if module is None:
            return
        results = module.parser_throughput(0.2 if self.quick else 0.5)
        self.raw["parsers"] = [dict(vars(r)) if hasattr(r, "__dict__") else
                               {f: getattr(r, f) for f in r.__dataclass_fields__} for r in results]
        for r in results:
            self.add("parsers", f"{r.parser}: bytes/s", r.bytes_per_s, "B/s",
                     f"line rate {r.line_baud} baud", r.line_bytes_per_s, target="≥ 100×",
                     met=r.headroom >= 100)

    def recording(self) -> None:
        module = self._optional("recording", "bench_recording")
        if module is None:
            return
        r = module.run(5.0 if self.quick else 20.0)
        self.raw["recording"] = r
        for key, value in r.items():
            if key == "replay_x_real_time":
                self.add("recording", "replay speed, unpaced", value, "× real time", "real time", 1.0,
                         target="≥ 20×", met=value >= 20)
            else:
                self.add("recording", key, value, "", "", None)

    def encodings(self) -> None:
        """Thermal and audio in protobuf (what recordings write) against JSON, same run."""
        module = self._optional("encodings", "bench_encodings")
        if module is None:
            return
        r = module.run(4.0 if self.quick else 10.0, rounds=1 if self.quick else 2)
        self.raw["encodings"] = r
        for key, unit in (("demo_mb_per_minute", "MB/min"), ("write_samples_per_s", "samples/s"),
                          ("write_mb_per_s", "MB/s"), ("replay_samples_per_s", "samples/s"),
                          ("frame_32x24_bytes", "B"), ("audio_512x4_bytes", "B")):
            self.add("encodings", f"protobuf: {key}", r[f"protobuf_{key}"], unit,
                     "JSON (base64) form", r[f"json_{key}"])

    def soak(self) -> None:
        r = asyncio.run(live.soak(self.soak_minutes, sample_s=5.0 if self.soak_minutes >= 2 else 2.0))
        self.raw["soak"] = r
        self.add("soak", f"demo RSS, last quarter of {self.soak_minutes:g} min", r["rss_late_mb"], "MB",
                 "first quarter", r["rss_early_mb"], target="< 5% growth",
                 met=ratio(r["rss_late_mb"], r["rss_early_mb"]) < 1.05)
        self.add("soak", "demo CPU, last quarter", r["cpu_late"], "core", "first quarter", r["cpu_early"])

    def run(self, only: list[str]) -> None:
        sections = {"readings": self.readings, "thermal": self.thermal, "audio": self.audio,
                    "monitoring": self.monitoring,
                    "parsers": self.parsers, "recording": self.recording,
                    "encodings": self.encodings,
                    "viewers": self.viewers, "soak": self.soak}
        for name, fn in sections.items():
            if not only or name in only:
                self.section(name, fn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, ~2-3 minutes")
    parser.add_argument("--soak-minutes", type=float, default=None,
                        help="length of the soak (default 10, or 0.5 with --quick)")
    parser.add_argument("--only", nargs="*", default=[],
                        help="sections: readings thermal audio monitoring parsers recording encodings viewers soak")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and results.json go")
    args = parser.parse_args(argv)
    suite = Suite(args)
    started = time.monotonic()
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full", "soak_minutes": suite.soak_minutes,
            "machine": machine()}
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            info["loadavg_before"] = f.read().split()[:3]
    except OSError:
        pass
    suite.run(args.only)
    info["duration_s"] = round(time.monotonic() - started, 1)
    write_results(args.out, info, suite.rows, suite.raw, suite.errors)
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'results.json'} "
          f"in {info['duration_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
