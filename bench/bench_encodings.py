"""Thermal and audio in protobuf against the JSON form recordings had before, in one run.

    .venv/bin/python -m bench.bench_encodings [--seconds 10]

Each figure of bench_recording (write MB/s and samples/s, MB per minute of the demo, replay
speed) is measured for both forms, interleaved, and reported with the protobuf/JSON ratio: the
machine is shared, so the ratio is the figure to compare between runs. Plain script, no asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.bench_recording import demo_size, replay_speed, write_throughput
from sensorlink.recording import messages as mm
from sensorlink.samples import AudioBlock, ThermalFrame

FORMS = ("json", "protobuf")


def message_bytes() -> dict[str, float]:
    """Bytes of one message as it goes on the live feed and into a chunk before compression:
    a 32×24 and a 256×192 frame, a 512-sample 4-channel audio block."""
    rng = np.random.default_rng(0)
    samples = {
        "frame_32x24": ThermalFrame("cam", (30 + rng.normal(0, 1, (24, 32))).astype(np.float32),
                                    1, 1, 1, 24.0),
        "frame_256x192": ThermalFrame("cam", (30 + rng.normal(0, 1, (192, 256))).astype(
            np.float32), 1, 1, 1, 24.0),
        "audio_512x4": AudioBlock("mic", rng.normal(0, 3000, (512, 4)).astype(np.int16), 16000,
                                  1, 1, 1),
    }
    return {f"{form}_{name}_bytes": float(len(mm.encode(event, media=form).data))
            for name, event in samples.items() for form in FORMS}


def run(seconds: float = 10.0, rounds: int = 2) -> dict[str, float]:
    """Best of ``rounds`` per form (the least disturbed window), and protobuf/json ratios."""
    best: dict[str, dict[str, float]] = {form: {} for form in FORMS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for form in FORMS:
                out = Path(tmp) / f"{form}-{r}"
                figures = asyncio.run(write_throughput(out / "write", media=form))
                demo, path = asyncio.run(demo_size(out / "demo", seconds, media=form))
                figures.update(demo)
                figures.update(replay_speed(path))
                for key, value in figures.items():
                    keep = min if key.endswith(("_mb", "_mb_per_minute", "_dropped")) else max
                    best[form][key] = keep(best[form].get(key, value), value)
    results: dict[str, float] = {}
    sizes = message_bytes()
    best["json"].update({k[5:]: v for k, v in sizes.items() if k.startswith("json_")})
    best["protobuf"].update({k[9:]: v for k, v in sizes.items() if k.startswith("protobuf_")})
    for form in FORMS:
        results.update({f"{form}_{k}": round(v, 3) for k, v in best[form].items()})
    for key, value in best["json"].items():
        if value:
            results[f"ratio_{key}"] = round(best["protobuf"][key] / value, 3)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each demo recording")
    parser.add_argument("--rounds", type=int, default=2, help="windows per form (best is kept)")
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.rounds), indent=2))
