"""Directional audio with numpy: delay-and-sum beam steering and GCC-PHAT direction of arrival.

Angles are azimuths in degrees in the array's plane: 0° along +x, counter-clockwise, [0, 360).
A plane wave from direction u (unit vector) reaches microphone m, at position p_m, earlier than
the array centre by (p_m · u) / c.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SPEED_OF_SOUND = 343.0  # m/s at 20 °C

#: ReSpeaker USB 4-mic array, raw microphones (ch1-4 of the 6-channel firmware), metres.
RESPEAKER_4MIC = ((-0.032, 0.0), (0.0, -0.032), (0.032, 0.0), (0.0, 0.032))


def circle_geometry(count: int, radius: float, start_deg: float = 0.0) -> tuple[tuple[float, float], ...]:
    """Microphones evenly on a circle (e.g. the ReSpeaker 6-mic HAT: 6 at 46.3 mm)."""
    return tuple((radius * math.cos(math.radians(start_deg + 360.0 * i / count)),
                  radius * math.sin(math.radians(start_deg + 360.0 * i / count)))
                 for i in range(count))


def unit(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.cos(a), math.sin(a)])


def arrival_advance_s(positions: np.ndarray, angle_deg: float) -> np.ndarray:
    """Seconds by which each microphone hears a far source at ``angle_deg`` before the centre."""
    return positions @ unit(angle_deg) / SPEED_OF_SOUND


def steer(pcm: np.ndarray, rate: int, positions: Sequence[Sequence[float]],
          angle_deg: float) -> np.ndarray:
    """Delay-and-sum toward ``angle_deg`` in the frequency domain.

    ``pcm`` is (samples, mics), int16 or float; returns a float64 mono beam in the same units.
    """
    x = np.asarray(pcm, dtype=np.float64)
    n = x.shape[0]
    advance = arrival_advance_s(np.asarray(positions, dtype=np.float64), angle_deg)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spectra = np.fft.rfft(x, axis=0)
    # Delay each channel by its advance so the wavefront lines up, then average.
    aligned = spectra * np.exp(-2j * np.pi * freqs[:, None] * advance[None, :])
    return np.fft.irfft(aligned.mean(axis=1), n=n)


def gcc_phat(a: np.ndarray, b: np.ndarray, rate: int, max_tau: float, interp: int = 16
             ) -> tuple[np.ndarray, float]:
    """Generalised cross-correlation with phase transform of ``a`` against ``b``.

    Returns (cc, step): cc[k] is the correlation at a delay of ``(k - len(cc)//2) * step``
    seconds, interpolated ``interp`` times and limited to ±max_tau; a peak at a positive delay
    means ``a`` hears the sound later than ``b``."""
    n = a.shape[0] + b.shape[0]
    spec = np.fft.rfft(a, n=n) * np.conj(np.fft.rfft(b, n=n))
    spec /= np.maximum(np.abs(spec), 1e-12)
    cc = np.fft.irfft(spec, n=interp * n)
    max_shift = min(int(interp * rate * max_tau) + 2, interp * n // 2)
    return np.concatenate((cc[-max_shift:], cc[:max_shift + 1])), 1.0 / (interp * rate)


def gcc_phat_delay(a: np.ndarray, b: np.ndarray, rate: int, max_tau: float,
                   interp: int = 16) -> float:
    """Delay of ``a`` relative to ``b`` in seconds at the GCC-PHAT peak."""
    cc, step = gcc_phat(a, b, rate, max_tau, interp)
    return (int(np.argmax(cc)) - len(cc) // 2) * step


class DirectionFinder:
    """Direction of arrival: GCC-PHAT over every microphone pair, combined by steering over a
    grid of azimuths (SRP-PHAT) so that one pair's wrong peak cannot flip the answer, then
    refined to a fraction of a degree by a parabola through the best grid point."""

    def __init__(self, positions: Sequence[Sequence[float]], rate: int,
                 resolution_deg: float = 1.0, interp: int = 16) -> None:
        self.positions = np.asarray(positions, dtype=np.float64)
        self.rate = rate
        self.interp = interp
        m = len(self.positions)
        self.pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        self.angles = np.arange(0.0, 360.0, resolution_deg)
        units = np.stack((np.cos(np.radians(self.angles)), np.sin(np.radians(self.angles))), 1)
        baselines = np.array([self.positions[i] - self.positions[j] for i, j in self.pairs])
        self.max_tau = float(np.max(np.linalg.norm(baselines, axis=1))) / SPEED_OF_SOUND
        # t_i - t_j = -(p_i - p_j)·u / c for every pair (rows) and candidate angle (columns)
        self._expected_tau = -(baselines @ units.T) / SPEED_OF_SOUND

    def power(self, pcm: np.ndarray) -> np.ndarray:
        """Steered response power per candidate angle (``self.angles``)."""
        x = np.asarray(pcm, dtype=np.float64)
        total = np.zeros(len(self.angles))
        for row, (i, j) in enumerate(self.pairs):
            cc, step = gcc_phat(x[:, i], x[:, j], self.rate, self.max_tau, self.interp)
            centre = len(cc) // 2
            pos = self._expected_tau[row] / step + centre
            k = np.clip(np.floor(pos).astype(int), 0, len(cc) - 2)
            frac = pos - k
            total += cc[k] * (1 - frac) + cc[k + 1] * frac
        return total

    def estimate(self, pcm: np.ndarray) -> float:
        """Azimuth in degrees [0, 360) of the dominant source in ``pcm`` (samples, mics)."""
        p = self.power(pcm)
        best = int(np.argmax(p))
        left, right = p[best - 1], p[(best + 1) % len(p)]
        denom = left - 2 * p[best] + right
        offset = 0.5 * (left - right) / denom if denom < 0 else 0.0
        step = self.angles[1] - self.angles[0]
        return float(self.angles[best] + offset * step) % 360.0


def dbfs(samples: np.ndarray) -> float:
    """RMS level relative to int16 full scale; -120 for silence."""
    x = np.asarray(samples, dtype=np.float64)
    rms = math.sqrt(float(np.mean(x * x))) if x.size else 0.0
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -120.0


def angle_difference(a: float, b: float) -> float:
    """Smallest absolute difference between two azimuths, in degrees."""
    return abs((a - b + 180.0) % 360.0 - 180.0)
