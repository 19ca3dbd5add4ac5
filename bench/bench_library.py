"""Recordings-library benchmarks (issue 13): a week's trend, and what FLAC audio saves and costs.

    .venv/bin/python -m bench.bench_library [--demo-seconds 20] [--no-browser]

Plain script, no asserts (like bench_recording.py); every figure is printed beside a baseline
measured in the same run, as a ratio, and all of them go to bench/library_results.json.

- **trend**: 7 days of 4 probes as 672 generated 15-minute segments
  (sensorlink.recording.synthetic, 0.2 Hz a probe: 483,840 readings). Indexed once; then the
  week's trend (600 points a stream) from the index, against the baseline of decoding the
  same week's raw readings from the files (what a trend would cost without the per-segment
  aggregates). In headless Chromium, the dashboard's trend view drawing that week (GET
  /api/trend + uPlot, the page's own drawn_ms), against the same view drawing the last hour.
- **live**: readings p50/p99 sensor→viewer latency (1,000 readings/s of ``sim-probes`` over
  the ``readings`` data channel to sensorlink's own Viewer, as bench/live.py measures it) from
  ``sensorlink run`` recording into a library of 672 segments, rolling every 1.2 s so that each
  roll indexes a segment and retention deletes the oldest; against the baseline of the same
  service recording nothing, in the same run.
- **audio**: the demo's sensors (thermal camera, probes, 4-mic array) recorded for N seconds
  with ``audio = "pcm"`` and with ``audio = "flac"``: MB per minute of each file and of its
  audio alone; and the CPU of encoding (and decoding, as a replay or export does) every
  recorded audio block as FLAC, against the CPU of encoding it as PCM (the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_recording import record_demo
from sensorlink.recording import messages as mm
from sensorlink.recording.library import Library
from sensorlink.recording.reader import Recording
from sensorlink.recording.synthetic import write_library
from sensorlink.recording.trends import trend
from sensorlink.samples import AudioBlock, Reading

WEEK_NS = 7 * 86_400 * 1_000_000_000
STREAMS = [f"probes/t{i}" for i in range(4)]
OUT = Path(__file__).with_name("library_results.json")


def say(section: str, what: str, value: float, unit: str, baseline: str = "",
        base_value: float | None = None) -> dict[str, Any]:
    ratio = value / base_value if base_value else None
    line = f"[{section}] {what}: {value:.3f} {unit}"
    if baseline:
        line += f"   (baseline {baseline}: {base_value:.3f} {unit}; ratio {ratio:.3f})"
    print(line, flush=True)
    return {"section": section, "what": what, "value": value, "unit": unit,
            "baseline": baseline, "baseline_value": base_value, "ratio": ratio}


def _median_s(fn: Any, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# -- trend -----------------------------------------------------------------------------------

def trend_figures(folder: Path, browser: bool) -> list[dict[str, Any]]:
    rows = []
    t = time.perf_counter()
    paths = write_library(folder, days=7, probes=4)
    rows.append(say("trend", f"generate {len(paths)} segments", time.perf_counter() - t, "s"))
    library = Library(folder)
    t = time.perf_counter()
    library.sync()
    rows.append(say("trend", "index 672 segments from the files (once)",
                    time.perf_counter() - t, "s"))
    end = max(s.end_ns for s in library.segments())
    week = (end - WEEK_NS, end)
    query = _median_s(lambda: trend(library, STREAMS, *week, points=600))

    def decode_week() -> int:
        n = 0
        for path in paths:
            with Recording(path) as rec:
                n += sum(1 for _, e in rec.events(schemas={mm.READING}) if isinstance(e, Reading))
        return n

    raw = _median_s(decode_week, runs=1)
    rows.append(say("trend", "week of 4 probes from the index (600 points each)", query, "s",
                    "decoding the week's 483,840 raw readings", raw))
    library.close()
    if browser:
        rows += browser_figures(folder)
    return rows


def browser_figures(folder: Path) -> list[dict[str, Any]]:
    """The dashboard's trend view in headless Chromium: the page's own drawn_ms (fetch +
    draw) for a week, against the same for the last hour."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
    from dashboard_support import CHROMIUM, CHROMIUM_ARGS, TOKEN, start_command, wait_page
    from playwright.sync_api import sync_playwright

    config = folder.parent / "bench.toml"
    config.write_text(f'[service]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'
                      f'record_dir = "{folder}"\n\n[recording]\nalways = false\n\n'
                      '[[sensors]]\nname = "probes"\ndriver = "sim-probes"\nchannels = 4\n')
    service = start_command(["run", str(config)], folder.parent, timeout=120)
    try:
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = chromium.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(service.url)
            wait_page(page, "s.state === 'live'", timeout=60_000)
            page.click("[data-testid='recordings-open']")
            wait_page(page, "s.library.streams.length >= 4", timeout=60_000)

            def drawn(button: str) -> float:
                before = page.evaluate("window.sensorlink.library.trend.draws")
                page.click(f"[data-testid='{button}']")
                wait_page(page, "s.library.trend.draws > arg", before, timeout=60_000)
                return float(page.evaluate("window.sensorlink.library.trend.last.drawn_ms"))

            weeks = [drawn("trend-range-1week") for _ in range(5)]
            hours = [drawn("trend-range-1h") for _ in range(5)]
            chromium.close()
    finally:
        service.stop()
    return [say("trend", "browser: trend view draws a week of 4 probes (median of 5)",
                statistics.median(weeks) / 1e3, "s", "the same view drawing the last hour",
                statistics.median(hours) / 1e3)]


# -- live: retention and indexing never delay the live stream -----------------------------

PROBES = ('[[sensors]]\nname = "probes"\ndriver = "sim-probes"\nchannels = 1\n'
          'rate_hz = 1000.0\nper_tick = 1\nnoise_c = 0.0\nspike_probability = 0.0\n')


async def _latency(config: Path, warmup: float, duration: float) -> dict[str, Any]:
    from bench.live import ServerProc, latency_summary, webrtc_receiver, window

    async with ServerProc(["-m", "sensorlink.cli", "run", str(config)]) as server:
        async with webrtc_receiver(server, latency=True) as tally:
            result = await window(server, lambda: tally.readings, warmup=warmup,
                                  duration=duration, tallies=[tally])
            result.update(latency_summary(tally.reading_ms))
            result["seq_gaps"] = tally.seq_gaps
            return result


def live_figures(folder: Path, week: Path, warmup: float, duration: float,
                 rounds: int = 3) -> list[dict[str, Any]]:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    rec = folder / "rec"
    shutil.copytree(week, rec)
    total = sum(p.stat().st_size for p in rec.glob("sensorlink-*.mcap"))
    base, recording = folder / "baseline.toml", folder / "recording.toml"
    base.write_text('[service]\nlisten = "127.0.0.1:0"\n\n' + PROBES)
    # Just under what the week takes: every roll deletes the oldest segment or two.
    recording.write_text(f'[service]\nlisten = "127.0.0.1:0"\nrecord_dir = "{rec}"\n\n'
                         f'[recording]\nalways = true\nsegment_minutes = 0.02\n'
                         f'max_total_gb = {0.99 * total / 1e9:.6f}\nmin_free_gb = 0\n\n'
                         + PROBES)
    steady = folder / "steady.toml"  # recording, but no roll (so no indexing, no retention)
    steady.write_text(f'[service]\nlisten = "127.0.0.1:0"\nrecord_dir = "{folder / "steady"}"\n'
                      f'\n[recording]\nalways = true\nmin_free_gb = 0\n\n' + PROBES)
    # Rounds in turn, the median of each kind's p99: the machine is shared, and one window of
    # one kind can land on someone else's busy moment.
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "busy": [], "only": []}
    for _ in range(rounds):
        for kind, config in (("plain", base), ("busy", recording), ("only", steady)):
            runs[kind].append(asyncio.run(_latency(config, warmup, duration)))
    plain, busy, only = ({k: statistics.median(r[k] for r in runs[kind])
                          for k in ("p50_ms", "p99_ms")} for kind in ("plain", "busy", "only"))
    print(f"[live] p99 of each round: " + ", ".join(
        f"{kind} {[round(r['p99_ms'], 2) for r in rs]}" for kind, rs in runs.items()), flush=True)
    library = Library(rec, recover_cut=False)
    deleted = len(library.deletions(100_000))
    rolled = sum(1 for s in library.segments() if "synthetic" not in s.session)
    library.close()
    return [say("live", "readings p99 (median of rounds), recording + indexing + retention",
                busy["p99_ms"], "ms", "the same service recording nothing", plain["p99_ms"]),
            say("live", "readings p99, recording + indexing + retention", busy["p99_ms"], "ms",
                "recording one segment (no roll, index or retention)", only["p99_ms"]),
            say("live", "readings p99, recording one segment", only["p99_ms"], "ms",
                "recording nothing", plain["p99_ms"]),
            say("live", "readings p50, recording + indexing + retention", busy["p50_ms"], "ms",
                "recording nothing", plain["p50_ms"]),
            say("live", f"segments rolled and indexed in {rounds} rounds ({deleted} deleted)",
                rolled, "segments")]


# -- audio -----------------------------------------------------------------------------------

def _audio_bytes(path: Path) -> tuple[int, float]:
    """Bytes of audio message data in the file, and its duration in s."""
    with Recording(path) as rec:
        size = sum(len(m.data) for stream, m in rec.messages(log_time_order=False)
                   if stream.schema in (mm.RAW_AUDIO, mm.COMPRESSED_AUDIO))
        return size, rec.duration_s


def audio_figures(folder: Path, seconds: float) -> list[dict[str, Any]]:
    rows = []
    paths = {a: asyncio.run(record_demo(folder / a, seconds, audio=a, roll_seconds=3600))
             for a in ("pcm", "flac")}
    per_min: dict[str, float] = {}
    audio_per_min: dict[str, float] = {}
    for a, path in paths.items():
        size, duration = _audio_bytes(path)
        per_min[a] = path.stat().st_size / 1e6 * 60 / duration
        audio_per_min[a] = size / 1e6 * 60 / duration
    rows.append(say("audio", "demo recording with FLAC audio", per_min["flac"], "MB/min",
                    "the same with PCM audio", per_min["pcm"]))
    # Message bytes before the MCAP chunk compression (protobuf: the audio's own bytes)
    rows.append(say("audio", "its audio messages alone, FLAC (before chunk compression)",
                    audio_per_min["flac"], "MB/min", "the same, PCM", audio_per_min["pcm"]))
    with Recording(paths["pcm"]) as rec:
        blocks = [e for _, e in rec.events(schemas={mm.RAW_AUDIO}) if isinstance(e, AudioBlock)]
    audio_s = sum(len(b.pcm) / b.rate for b in blocks)

    def cpu(fn: Any) -> float:
        t = time.process_time()
        fn()
        return (time.process_time() - t) * 60 / audio_s  # CPU s per minute of audio

    encoded = [mm.encode(b, audio="flac") for b in blocks]
    pcm_cpu = cpu(lambda: [mm.encode(b, audio="pcm") for b in blocks])
    flac_cpu = cpu(lambda: [mm.encode(b, audio="flac") for b in blocks])
    decode_cpu = cpu(lambda: [mm.decode(m.schema, m.data, encoding=m.message_encoding)
                              for m in encoded])
    pcm_decode = cpu(lambda: [mm.decode(m.schema, m.data, encoding=m.message_encoding)
                              for m in (mm.encode(b, audio="pcm") for b in blocks)])
    rows.append(say("audio", f"CPU to encode a minute of {blocks[0].channels}-channel audio as "
                    "FLAC", flac_cpu, "CPU s/min", "as PCM", pcm_cpu))
    rows.append(say("audio", "CPU to decode it (replay, export)", decode_cpu, "CPU s/min",
                    "PCM (encode + decode)", pcm_decode))
    rows.append(say("audio", "FLAC encode as a share of one core", 100 * flac_cpu / 60, "%"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-seconds", type=float, default=20.0)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--live-seconds", type=float, default=15.0)
    parser.add_argument("--only", nargs="*", default=["trend", "live", "audio"],
                        help="sections: trend live audio (live needs trend's week)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        week = Path(tmp) / "week" / "rec"
        rows = trend_figures(week, not args.no_browser and "trend" in args.only)
        if "live" in args.only:
            rows += live_figures(Path(tmp) / "live", week, 3.0, args.live_seconds)
        if "audio" in args.only:
            rows += audio_figures(Path(tmp) / "audio", args.demo_seconds)
    OUT.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
