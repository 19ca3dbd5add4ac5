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

from bench.bench_recording import demo_size, replay_speed, write_throughput

FORMS = ("json", "protobuf")


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
