"""Simulated thermal camera: a warm machine housing with a hot spot that moves and heats up."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sensorlink.driver import Driver
from sensorlink.samples import Reading, Sample, SensorInfo, ThermalFrame
from sensorlink_drivers.simulated.pacing import Ticker


@dataclass(frozen=True)
class ThermalOptions:
    width: int = 32
    height: int = 24
    rate_hz: float = 8.0
    ambient_c: float = 24.0
    #: hot spot peak rises from start_c toward start_c + heat_up_c with a time constant
    hot_spot_start_c: float = 45.0
    heat_up_c: float = 20.0
    heat_up_tau_s: float = 60.0
    #: seconds per loop of the hot spot's path; 0 keeps it still at ``hot_spot_xy``
    path_period_s: float = 20.0
    #: position (fractions of width/height) when still, and centre of the path when moving
    hot_spot_xy: tuple[float, float] = (0.5, 0.5)
    #: hot spot radius (Gaussian sigma) in fractions of the width
    hot_spot_sigma: float = 0.07
    noise_c: float = 0.05
    seed: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.width <= 1024 and 1 <= self.height <= 1024):
            raise ValueError("width: width and height must be 1-1024 pixels")
        if not 0.05 <= self.rate_hz <= 60:
            raise ValueError("rate_hz: must be between 0.05 and 60")
        if len(self.hot_spot_xy) != 2:
            raise ValueError("hot_spot_xy: expected [x, y]")


class SimulatedThermalCamera(Driver):
    kind = "thermal"
    description = "simulated thermal camera (moving, heating hot spot); no hardware needed"
    Options = ThermalOptions

    def info(self) -> SensorInfo:
        o = self.options
        return SensorInfo(self.name, "thermal", "sim-thermal",
                          {"width": o.width, "height": o.height, "rate_hz": o.rate_hz,
                           "streams": {"ambient": {"quantity": "temperature", "unit": "°C"}}})

    async def open(self) -> None:
        o = self.options
        self._ticker = Ticker(o.rate_hz)
        self._rng = np.random.default_rng(o.seed)
        yy, xx = np.mgrid[0:o.height, 0:o.width].astype(np.float32)
        self._xx, self._yy = xx, yy
        # The housing is a little warmer at the bottom, where the motor sits.
        self._background = (o.ambient_c + 3.0 * yy / max(o.height - 1, 1)).astype(np.float32)
        self._frame_no = getattr(self, "_frame_no", 0)

    def hot_spot(self, seq: int) -> tuple[float, float, float]:
        """(x, y, peak °C) of the hot spot in frame ``seq``, in pixel coordinates."""
        o = self.options
        t = seq / o.rate_hz
        cx, cy = o.hot_spot_xy[0] * (o.width - 1), o.hot_spot_xy[1] * (o.height - 1)
        if o.path_period_s > 0:
            phase = 2 * math.pi * t / o.path_period_s
            cx += 0.3 * (o.width - 1) * math.sin(phase)
            cy += 0.25 * (o.height - 1) * math.sin(2 * phase)
        peak = o.hot_spot_start_c + o.heat_up_c * (1 - math.exp(-t / o.heat_up_tau_s))
        return cx, cy, peak

    def expected(self, seq: int) -> np.ndarray:
        """The noiseless °C picture of frame ``seq``."""
        o = self.options
        cx, cy, peak = self.hot_spot(seq)
        sigma = max(o.hot_spot_sigma * o.width, 0.6)
        r2 = (self._xx - cx) ** 2 + (self._yy - cy) ** 2
        rise = (peak - self._background) * np.exp(-r2 / (2 * sigma * sigma))
        return self._background + np.maximum(rise, 0.0)

    async def read(self) -> Sequence[Sample]:
        await self._ticker.wait()
        t_mono, t_wall = self.stamp()
        seq = self.next_seq("frame")
        noise = self._rng.normal(0.0, self.options.noise_c, self._xx.shape)
        celsius = (self.expected(seq) + noise).astype(np.float32)
        ambient = self.options.ambient_c
        return [ThermalFrame(self.name, celsius, seq, t_mono, t_wall, ambient_c=ambient),
                Reading(self.name, "ambient", "temperature", ambient, "°C",
                        self.next_seq("ambient"), t_mono, t_wall)]
