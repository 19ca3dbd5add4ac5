"""The results table: one row per figure, its same-run baseline, the ratio and the target."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    section: str
    metric: str
    value: float
    unit: str
    baseline_name: str
    baseline: float | None
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or not math.isfinite(self.baseline):
            return None
        return self.value / self.baseline

    def line(self) -> str:
        r = f"{self.ratio:.2f}×" if self.ratio is not None else "-"
        return (f"   {self.metric}: {fmt(self.value, self.unit)} | {self.baseline_name} "
                f"{fmt(self.baseline, self.unit)} | {r} {self.target} {verdict(self.met)}")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if unit == "core":
        return f"{value:.1%}"
    if abs(value) >= 10_000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: ""}[met]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_results(directory: Path, info: dict[str, Any], rows: list[Row], raw: dict[str, Any],
                  errors: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = {"info": info, "rows": [{**asdict(r), "ratio": r.ratio} for r in rows], "raw": raw,
            "errors": errors}
    (directory / "results.json").write_text(json.dumps(_json_safe(data), indent=1) + "\n",
                                            encoding="utf-8")
    m = info["machine"]
    lines = [
        "# sensorlink benchmark results", "",
        f"- date: {info['date']} ({info['mode']} run, {info['duration_s']} s; "
        f"load average before: {' '.join(info.get('loadavg_before', []))})",
        f"- machine: {m['cores']} cores, {m['cpu']}; Python {m['python']}, aiortc {m['aiortc']}, "
        f"av {m['av']}, websockets {m['websockets']}, msgpack {m['msgpack']}; {m['platform']}",
        "- every baseline was measured in the same run; ratio = figure / baseline. The machine is "
        "shared: compare ratios, not absolute numbers, between runs.", "",
        "| section | figure | value | baseline (same run) | baseline value | ratio | target | |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "-"
        lines.append(f"| {r.section} | {r.metric} | {fmt(r.value, r.unit)} | {r.baseline_name} | "
                     f"{fmt(r.baseline, r.unit)} | {ratio} | {r.target} | {verdict(r.met)} |")
    if errors:
        lines += ["", "## Sections that did not run", ""]
        lines += [f"- {name}: {text}" for name, text in errors.items()]
    lines += ["", "Raw figures (every repeat, every window) are in `results.json`.", ""]
    (directory / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")
