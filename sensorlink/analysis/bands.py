"""Sound band levels and the spectrogram of a microphone array's beam.

Every ``interval_s`` the last ``window_s`` of audio is Hann-windowed and transformed; the beam
is steered in the frequency domain (delay-and-sum, as :func:`sensorlink.analysis.directional.steer`
does it) toward the direction of arrival, or the angle an operator fixed. A band's level is
the power of the bins whose centre frequency lies in [low, high), scaled so that the sum over
all bins is the mean square of the signal (Parseval, with the window's energy taken out), in
**dBFS: 10·log10(mean square / 32768²)**, i.e. the RMS relative to int16 full scale, as the
level reading of the microphone drivers. A full-scale sine is therefore −3.0 dBFS (an RMS of
1/√2 of full scale), a full-scale square 0 dBFS.

Bands: IEC 61260 base-10 third octaves (centre 1000·10^(k/10) Hz, edges ×10^(±1/20)) or octaves
(×10^(±3/20)), named by their nominal centre ("100", "1.25k", "2k"), from ``min_hz`` up to the
last band that ends below half the sample rate; bands narrower than two FFT bins are left out
(the window cannot resolve them). Custom bands are added by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorlink.analysis.directional import arrival_advance_s
from sensorlink.config_monitoring import BandsConfig, BandSpec, FieldError
from sensorlink.samples import AudioBlock, Reading, SensorInfo, SeqCounter

FULL_SCALE = 32768.0
SPECTRUM_BINS = 256
SPECTRUM_FLOOR_DB = -120.0
SPECTRUM_CEIL_DB = 0.0
_THIRD_NOMINAL = (25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
                  1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500,
                  16000, 20000)


def nominal_name(hz: float) -> str:
    """125 → "125", 1250 → "1.25k", 2000 → "2k", 31.5 → "31.5"."""
    if hz >= 1000:
        return f"{hz / 1000:g}k"
    return f"{hz:g}"


def standard_bands(kind: str, min_hz: float, max_hz: float) -> list[BandSpec]:
    """The named bands of an IEC 61260 set whose centre is ≥ min_hz and upper edge ≤ max_hz."""
    if kind == "none":
        return []
    step, half = (1, 0.05) if kind == "third-octave" else (3, 0.15)
    out = []
    for k, nominal in enumerate(_THIRD_NOMINAL):
        index = k - _THIRD_NOMINAL.index(1000)
        if index % step:
            continue
        centre = 1000.0 * 10 ** (index / 10)
        low, high = centre * 10 ** -half, centre * 10 ** half
        if centre >= min_hz and high <= max_hz:
            out.append(BandSpec(nominal_name(nominal), low, high))
    return out


def band_set(config: BandsConfig, rate: int, window: int) -> list[BandSpec]:
    """The bands one microphone measures; FieldError names a custom band the rate cannot hold."""
    nyquist = rate / 2
    resolution = rate / window
    top = min(config.max_hz or nyquist, nyquist)
    bands = [b for b in standard_bands(config.set, config.min_hz, top)
             if b.high_hz - b.low_hz >= 2 * resolution]
    for i, band in enumerate(config.custom):
        if band.high_hz > nyquist:
            raise FieldError(f"custom[{i}].high_hz", f"above half the sample rate "
                                                     f"({nyquist:g} Hz at {rate} Hz)")
        if band.high_hz - band.low_hz < resolution:
            raise FieldError(f"custom[{i}].low_hz", f"narrower than one FFT bin ({resolution:.3g} "
                                                    "Hz): widen the band or raise window_s")
    # A custom band named like a standard one replaces it.
    custom = {b.name for b in config.custom}
    return [b for b in bands if b.name not in custom] + list(config.custom)


def level_dbfs(mean_square: float) -> float:
    return 10.0 * math.log10(mean_square / FULL_SCALE ** 2) if mean_square > 0 else -200.0


@dataclass
class Spectrum:
    """One row of the beam's spectrogram: SPECTRUM_BINS levels from 0 Hz to half the rate,
    quantised to 0-255 over [floor_db, ceil_db] dBFS per column."""

    sensor: str
    seq: int
    t_wall_ns: int
    f_max_hz: float
    levels: bytes
    angle_deg: float | None
    floor_db: float = SPECTRUM_FLOOR_DB
    ceil_db: float = SPECTRUM_CEIL_DB


class BandAnalyzer:
    """One microphone array: audio blocks in, band-level readings (and spectrum rows) out."""

    def __init__(self, info: SensorInfo, config: BandsConfig | None) -> None:
        meta = info.meta
        self.sensor = info.name
        self.config = config or BandsConfig(set="none")
        self.rate = int(meta.get("rate", 16000))
        mics = list(meta.get("mic_channels") or range(int(meta.get("channels", 1))))
        self.mic_channels = mics
        positions = meta.get("positions") or []
        self.positions = np.asarray(positions, dtype=np.float64) if len(positions) == len(mics) \
            else None
        self.window = max(64, int(round(self.config.window_s * self.rate)))
        self.hop = max(1, int(round(self.config.interval_s * self.rate)))
        self.bands = band_set(self.config, self.rate, self.window) if config is not None else []
        self.measure = config is not None
        self.fixed_angle: float | None = None
        self.doa: float | None = None
        self._buffer = np.zeros((self.window, len(mics)), dtype=np.float64)
        self._filled = 0
        self._since = 0
        self._hann = np.hanning(self.window)
        freqs = np.fft.rfftfreq(self.window, 1.0 / self.rate)
        self._freqs = freqs
        # Parseval with the window's energy taken out; rfft bins stand for two (but DC, Nyquist).
        weight = np.full(len(freqs), 2.0)
        weight[0] = 1.0
        if self.window % 2 == 0:
            weight[-1] = 1.0
        self._weight = weight / (self.window * float(np.sum(self._hann ** 2)))
        self._band_bins = [(int(np.searchsorted(freqs, b.low_hz, "left")),
                            int(np.searchsorted(freqs, b.high_hz, "left"))) for b in self.bands]
        edges = np.linspace(0, len(freqs), SPECTRUM_BINS + 1).astype(int)
        self._columns = edges[:-1]
        self._angle_key: float | None = None
        self._steering: np.ndarray | None = None
        self._seq = SeqCounter()
        self._spectrum_seq = 0

    # -- what it produces -------------------------------------------------------------------
    def stream_names(self) -> list[str]:
        names = [f"band/{b.name}" for b in self.bands]
        if self.config.channels:
            names += [f"ch{m}/band/{b.name}" for m in range(len(self.mic_channels))
                      for b in self.bands]
        return names

    def streams(self) -> dict[str, dict[str, str]]:
        return {name: {"quantity": "sound_level", "unit": "dBFS"} for name in self.stream_names()}

    @property
    def angle(self) -> float | None:
        return self.fixed_angle if self.fixed_angle is not None else self.doa

    def steer_to(self, angle_deg: float | None) -> None:
        self.fixed_angle = None if angle_deg is None else float(angle_deg) % 360.0

    # -- work -------------------------------------------------------------------------------
    def feed(self, block: AudioBlock) -> bool:
        """Take a block; True when a window is due (then call :meth:`analyse`)."""
        mics = block.pcm[:, self.mic_channels] if block.pcm.shape[1] > max(self.mic_channels) \
            else block.pcm
        n = min(len(mics), self.window)
        self._buffer = np.roll(self._buffer, -n, axis=0)
        self._buffer[-n:] = mics[-n:]
        self._filled = min(self.window, self._filled + len(mics))
        self._since += len(mics)
        if self._since >= self.hop and self._filled >= self.window:
            self._since = 0
            return True
        return False

    def _steering_vector(self) -> np.ndarray | None:
        angle = self.angle
        if angle is None or self.positions is None:
            return None
        if angle != self._angle_key:
            advance = arrival_advance_s(self.positions, angle)
            self._steering = np.exp(-2j * np.pi * self._freqs[:, None] * advance[None, :])
            self._angle_key = angle
        return self._steering

    def analyse(self, block: AudioBlock, spectrum: bool = True
                ) -> tuple[list[Reading], Spectrum | None]:
        """Band levels of the window that ends with ``block`` (stamped with its times), and
        the beam's spectrum row when asked for. Pure numpy: safe to run in a worker thread."""
        spectra = np.fft.rfft(self._buffer * self._hann[:, None], axis=0)
        steering = self._steering_vector()
        beam = (spectra * steering).mean(axis=1) if steering is not None else spectra.mean(axis=1)
        power = (beam.real ** 2 + beam.imag ** 2) * self._weight
        out: list[Reading] = []
        if self.measure:
            rows = [("band", power)]
            if self.config.channels:
                each = (spectra.real ** 2 + spectra.imag ** 2) * self._weight[:, None]
                rows += [(f"ch{m}/band", each[:, m]) for m in range(each.shape[1])]
            cumulative = [np.concatenate(([0.0], np.cumsum(p))) for _, p in rows]
            for (prefix, _), cum in zip(rows, cumulative):
                for band, (lo, hi) in zip(self.bands, self._band_bins):
                    channel = f"{prefix}/{band.name}"
                    out.append(Reading(self.sensor, channel, "sound_level",
                                       round(level_dbfs(float(cum[hi] - cum[lo])), 2), "dBFS",
                                       self._seq(channel), block.t_mono_ns, block.t_wall_ns))
        row = None
        if spectrum:
            pooled = np.add.reduceat(power, self._columns)
            with np.errstate(divide="ignore"):
                db = 10.0 * np.log10(np.maximum(pooled, 1e-30) / FULL_SCALE ** 2)
            scaled = (db - SPECTRUM_FLOOR_DB) * (255.0 / (SPECTRUM_CEIL_DB - SPECTRUM_FLOOR_DB))
            row = Spectrum(self.sensor, self._spectrum_seq, block.t_wall_ns, self.rate / 2,
                           np.clip(np.rint(scaled), 0, 255).astype(np.uint8).tobytes(),
                           self.angle)
            self._spectrum_seq += 1
        return out, row
