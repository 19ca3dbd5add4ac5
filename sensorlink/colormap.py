"""Colour maps for thermal video: °C array → RGB picture, with an auto or fixed range.

The maps come from the maintained ``cmap`` package; ironbow, the palette thermographers expect,
is not in its catalogue, so it is defined here from its colour stops and built by ``cmap``.
"""

from __future__ import annotations

import functools

import numpy as np

#: name shown to the user → cmap catalogue name (or None for the ones defined here)
COLORMAPS: dict[str, str | None] = {
    "inferno": "inferno",
    "turbo": "turbo",
    "ironbow": None,
    "magma": "magma",
    "viridis": "viridis",
    "gray": "gray",
    "cmocean-thermal": "cmocean:thermal",
}
DEFAULT_COLORMAP = "inferno"

_IRONBOW_STOPS = [
    (0.00, "#00000a"), (0.12, "#1c0a5c"), (0.28, "#6a0a9a"), (0.42, "#b01c84"),
    (0.56, "#e0404a"), (0.70, "#f4781a"), (0.84, "#fcb818"), (0.94, "#fee87c"), (1.00, "#ffffff"),
]


@functools.cache
def lut(name: str) -> np.ndarray:
    """256×3 uint8 table from cold to hot. Raises KeyError for an unknown map."""
    from cmap import Colormap

    if name not in COLORMAPS:
        raise KeyError(name)
    source = COLORMAPS[name]
    cm = Colormap(_IRONBOW_STOPS, name="ironbow") if source is None else Colormap(source)
    rgba = np.asarray(cm.lut(256), dtype=np.float64)
    table = np.clip(np.rint(rgba[:, :3] * 255.0), 0, 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def auto_range(celsius: np.ndarray, min_span: float = 2.0) -> tuple[float, float]:
    """Low/high for auto mode: the frame's extremes, widened to ``min_span`` so sensor noise on a
    uniform scene does not fill the whole palette."""
    lo, hi = float(np.nanmin(celsius)), float(np.nanmax(celsius))
    if hi - lo < min_span:
        mid = (hi + lo) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    return lo, hi


def upscale_factor(width: int, height: int, target: int = 400) -> int:
    """Whole-number factor that brings the larger side to at least ``target`` pixels (pixels stay
    square and sharp, so each sensor pixel is visibly one block)."""
    return max(1, -(-target // max(width, height)))


def render(celsius: np.ndarray, name: str, colour_range: tuple[float, float],
           scale: int = 1) -> np.ndarray:
    """°C (H×W) → RGB uint8 (H*scale × W*scale × 3); even dimensions for the video encoder."""
    lo, hi = colour_range
    span = max(hi - lo, 1e-6)
    index = np.clip((celsius - lo) * (255.0 / span), 0, 255)
    index = np.nan_to_num(index, nan=0.0).astype(np.uint8)
    rgb = lut(name)[index]
    if scale > 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return rgb
