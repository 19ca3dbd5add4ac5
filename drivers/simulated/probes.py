"""Simulated temperature probes: a slow heat-up, drift, noise and the occasional spike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sensorlink.driver import Driver
from sensorlink.samples import Reading, Sample, SensorInfo
from sensorlink_drivers.simulated.pacing import Ticker


@dataclass(frozen=True)
class ProbeOptions:
    channels: int = 4
    rate_hz: float = 10.0
    #: readings per channel produced in one tick (raise it with rate_hz for load tests)
    per_tick: int = 1
    start_c: float = 30.0
    heat_up_c: float = 25.0
    heat_up_tau_s: float = 120.0
    drift_c_per_s: float = 0.01
    noise_c: float = 0.05
    #: probability per reading of an electrical spike (+8 °C, flagged "suspect")
    spike_probability: float = 0.002
    seed: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.channels <= 256:
            raise ValueError("channels: must be 1-256")
        if not 0.01 <= self.rate_hz <= 100_000:
            raise ValueError("rate_hz: must be between 0.01 and 100000")
        if not 1 <= self.per_tick <= 10_000:
            raise ValueError("per_tick: must be 1-10000")


class SimulatedProbes(Driver):
    kind = "probe"
    description = "simulated temperature probes (heat-up, drift, spikes); no hardware needed"
    Options = ProbeOptions

    def info(self) -> SensorInfo:
        streams = {f"t{i}": {"quantity": "temperature", "unit": "°C"}
                   for i in range(self.options.channels)}
        return SensorInfo(self.name, "probe", "sim-probes",
                          {"streams": streams, "rate_hz": self.options.rate_hz})

    async def open(self) -> None:
        self._ticker = Ticker(self.options.rate_hz)
        self._rng = np.random.default_rng(self.options.seed)
        self._tick = getattr(self, "_tick", 0)

    def expected(self, channel: int, t_s: float) -> float:
        """Noiseless temperature of ``channel`` at ``t_s`` seconds: each probe sits at a different
        spot on the machine, so each heats to a different level."""
        o = self.options
        level = o.start_c + o.heat_up_c * (1 - 0.15 * channel) * (1 - math.exp(-t_s / o.heat_up_tau_s))
        return level + o.drift_c_per_s * t_s * math.sin(0.7 * channel + 0.3)

    async def read(self) -> Sequence[Sample]:
        await self._ticker.wait()
        o = self.options
        t_mono, t_wall = self.stamp()
        out = []
        for k in range(o.per_tick):
            t_s = (self._tick * o.per_tick + k) / (o.rate_hz * o.per_tick)
            noise = self._rng.normal(0.0, o.noise_c, o.channels)
            spikes = self._rng.random(o.channels) < o.spike_probability
            for ch in range(o.channels):
                value = self.expected(ch, t_s) + noise[ch] + (8.0 if spikes[ch] else 0.0)
                stream = f"t{ch}"
                out.append(Reading(self.name, stream, "temperature", round(value, 3), "°C",
                                   self.next_seq(stream), t_mono, t_wall,
                                   "suspect" if spikes[ch] else "ok"))
        self._tick += 1
        return out
