"""Sensor state as the dashboard shows it: connected, reconnecting (and why), failed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

DriverState = Literal["starting", "connected", "reconnecting", "failed", "stopped"]
DRIVER_STATES: tuple[str, ...] = ("starting", "connected", "reconnecting", "failed", "stopped")


@dataclass(frozen=True, slots=True)
class SensorStatus:
    """A snapshot of one sensor's state and counters.

    ``detail`` is the human text shown next to the state (the last error, the port it waits
    for); ``counters`` are monotonically growing totals (samples, checksum errors, resync
    bytes, reconnects, ...); ``rate_hz`` is samples per second over the last few seconds.
    """

    sensor: str
    state: DriverState
    detail: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    rate_hz: float = 0.0
    t_wall_ns: int = field(default_factory=time.time_ns)

    def to_dict(self) -> dict[str, Any]:
        return {"sensor": self.sensor, "state": self.state, "detail": self.detail,
                "counters": dict(self.counters), "rate_hz": round(float(self.rate_hz), 3),
                "t_wall_ns": self.t_wall_ns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SensorStatus:
        return cls(sensor=d["sensor"], state=d["state"], detail=d.get("detail", ""),
                   counters=dict(d.get("counters") or {}), rate_hz=float(d.get("rate_hz", 0.0)),
                   t_wall_ns=int(d.get("t_wall_ns", 0)))
