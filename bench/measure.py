"""Small measuring helpers: CPU and RSS of a process from /proc, percentiles, machine facts.

CPU comes from /proc/<pid>/stat (utime + stime of every thread, so aiortc's encoder threads count)
rather than psutil, which is not a dependency.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read().decode()
    # The command name may hold spaces or parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


@dataclass
class CpuWindow:
    """CPU used by a process over a wall-clock window, as a fraction of one core."""

    pid: int | str = "self"
    _cpu0: float = 0.0
    _t0: float = 0.0

    def start(self) -> CpuWindow:
        self._cpu0, self._t0 = cpu_seconds(self.pid), time.monotonic()
        return self

    def core_fraction(self) -> float:
        return (cpu_seconds(self.pid) - self._cpu0) / max(time.monotonic() - self._t0, 1e-9)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "aiortc": _version("aiortc"), "av": _version("av"), "msgpack": _version("msgpack"),
            "websockets": _version("websockets"), "platform": platform.platform()}


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")
