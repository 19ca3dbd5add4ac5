"""Thermal regions of interest: which pixels a spot, box, line or polygon covers, and their
max, min, mean and hottest pixel, with an optional emissivity correction.

Coordinates are pixels of the picture the hub carries, which every driver has already oriented
(row 0 at the top, column 0 at the left: the GY-MCU90640 driver mirrors its rows before the frame
exists). Pixel (x, y) is column x, row y. A region covers:

- spot: its one pixel;
- box: every pixel from one corner to the other, both included;
- line: one pixel per step along the longer axis, the one nearest the straight line between the
  two ends (``round`` half to even, as Python and numpy round);
- polygon: every pixel whose centre lies inside the polygon or on its edge, the vertices being
  pixel centres (even-odd rule, so a self-crossing polygon has holes where it overlaps).

Emissivity, broadband approximation, in kelvin (see docs/monitoring.md for its limits):
T_obj⁴ = (T_app⁴ − (1 − ε)·T_refl⁴) / ε. A pixel whose apparent temperature is below what the
reflection alone would give has no real solution: it becomes NaN, and the readings of that frame
are flagged "bad".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from sensorlink.config_monitoring import RegionConfig
from sensorlink.samples import Reading, SeqCounter, ThermalFrame

KELVIN = 273.15
#: the readings of each region: channel suffix → (quantity, unit)
STATS: dict[str, tuple[str, str]] = {
    "max": ("temperature", "°C"), "min": ("temperature", "°C"), "mean": ("temperature", "°C"),
    "max_x": ("position", "px"), "max_y": ("position", "px")}


def corrected_celsius(apparent_c: np.ndarray | float, emissivity: float,
                      reflected_c: float) -> np.ndarray:
    """Object temperature (°C) from the camera's apparent temperature with the broadband
    emissivity correction; NaN where there is no real solution."""
    t_app = np.asarray(apparent_c, dtype=np.float64) + KELVIN
    if emissivity >= 1.0:
        return t_app - KELVIN
    t_refl4 = (reflected_c + KELVIN) ** 4
    radiance = t_app ** 4 - (1.0 - emissivity) * t_refl4
    with np.errstate(invalid="ignore"):
        out = np.where(radiance > 0, np.sqrt(np.sqrt(np.maximum(radiance, 0.0) / emissivity)),
                       np.nan)
    return out - KELVIN


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    steps = max(abs(x1 - x0), abs(y1 - y0))
    if steps == 0:
        return [(x0, y0)]
    return [(round(x0 + (x1 - x0) * k / steps), round(y0 + (y1 - y0) * k / steps))
            for k in range(steps + 1)]


def _polygon(points: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of the integer points inside or on the polygon's edge."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    gy, gx = np.mgrid[min(ys):max(ys) + 1, min(xs):max(xs) + 1]
    px, py = gx.ravel().astype(np.int64), gy.ravel().astype(np.int64)
    inside = np.zeros(px.shape, dtype=bool)
    on_edge = np.zeros(px.shape, dtype=bool)
    n = len(points)
    for i in range(n):
        (ax, ay), (bx, by) = points[i], points[(i + 1) % n]
        # On the edge: collinear (exact in integers) and within the segment's box.
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        on_edge |= (cross == 0) & (px >= min(ax, bx)) & (px <= max(ax, bx)) \
            & (py >= min(ay, by)) & (py <= max(ay, by))
        # Even-odd: a ray to the right crosses this edge (half-open in y, so a vertex counts once).
        if ay != by:
            spans = (ay > py) != (by > py)
            # x of the crossing > px  ⇔  (bx-ax)(py-ay) / (by-ay) + ax > px, kept in integers
            lhs = (bx - ax) * (py - ay) - (px - ax) * (by - ay)
            right = np.where(by > ay, lhs > 0, lhs < 0)
            inside ^= spans & right
    keep = inside | on_edge
    return px[keep], py[keep]


def region_pixels(region: RegionConfig) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of every pixel the region covers, on an unbounded picture."""
    pts = region.points
    if region.kind == "spot":
        return np.array([pts[0][0]]), np.array([pts[0][1]])
    if region.kind == "box":
        (x0, y0), (x1, y1) = pts
        gy, gx = np.mgrid[min(y0, y1):max(y0, y1) + 1, min(x0, x1):max(x0, x1) + 1]
        return gx.ravel(), gy.ravel()
    if region.kind == "line":
        line = _line(*pts[0], *pts[1])
        return np.array([p[0] for p in line]), np.array([p[1] for p in line])
    return _polygon(pts)


class CompiledRegion:
    """A region's pixels on one picture size, as sorted flat (row-major) indices."""

    __slots__ = ("region", "flat", "width", "correct")

    def __init__(self, region: RegionConfig, width: int, height: int) -> None:
        xs, ys = region_pixels(region)
        keep = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
        # Row-major order, as numpy's boolean indexing gives: the first hottest pixel wins ties
        # the same way np.argmax over frame[mask] does.
        self.flat = np.unique(ys[keep].astype(np.intp) * width + xs[keep].astype(np.intp))
        self.region = region
        self.width = width
        self.correct = region.emissivity < 1.0

    def stats(self, celsius: np.ndarray) -> tuple[float, float, float, int, int]:
        """(max, min, mean, max_x, max_y) of the region on ``celsius`` (H×W, °C)."""
        values = celsius.ravel().take(self.flat)
        if self.correct:
            r = self.region
            values = corrected_celsius(values, r.emissivity, r.reflected_c)
            if np.isnan(values).any():
                return math.nan, math.nan, math.nan, -1, -1
        k = int(values.argmax())
        index = int(self.flat[k])
        return (float(values[k]), float(values.min()), float(values.mean(dtype=np.float64)),
                index % self.width, index // self.width)


class RegionSet:
    """One camera's regions: each frame in, five readings per region out (contiguous seq)."""

    def __init__(self, sensor: str, regions: Iterable[RegionConfig] = ()) -> None:
        self.sensor = sensor
        self.regions: dict[str, RegionConfig] = {r.name: r for r in regions}
        self._compiled: dict[str, CompiledRegion] = {}
        self._shape: tuple[int, int] | None = None
        self._seq = SeqCounter()

    def set(self, region: RegionConfig) -> None:
        """Add a region or replace the one of that name (moved or edited)."""
        self.regions[region.name] = region
        self._compiled.pop(region.name, None)

    def delete(self, name: str) -> None:
        self.regions.pop(name, None)
        self._compiled.pop(name, None)

    def streams(self) -> dict[str, dict[str, str]]:
        """What each region's readings are, for the camera's SensorInfo ``streams``."""
        return {f"{name}/{stat}": {"quantity": q, "unit": u}
                for name in self.regions for stat, (q, u) in STATS.items()}

    def compute(self, frame: ThermalFrame) -> list[Reading]:
        celsius = frame.celsius
        shape = (frame.height, frame.width)
        if shape != self._shape:
            self._compiled.clear()  # the camera changed its size: pixels are worked out again
            self._shape = shape
        out: list[Reading] = []
        for name, region in self.regions.items():
            compiled = self._compiled.get(name)
            if compiled is None:
                compiled = self._compiled[name] = CompiledRegion(region, frame.width,
                                                                 frame.height)
            if not compiled.flat.size:
                continue  # entirely outside this picture: nothing to report
            values = compiled.stats(celsius)
            quality = "ok" if math.isfinite(values[0]) else "bad"
            for (stat, (quantity, unit)), value in zip(STATS.items(), values):
                channel = f"{name}/{stat}"
                out.append(Reading(self.sensor, channel, quantity, value, unit,
                                   self._seq(channel), frame.t_mono_ns, frame.t_wall_ns, quality))
        return out
