"""Directional audio against the simulated array, whose geometry and source direction are known."""

from __future__ import annotations

import numpy as np
import pytest

from sensorlink.analysis.directional import (
    RESPEAKER_4MIC, DirectionFinder, angle_difference, circle_geometry, dbfs, gcc_phat_delay, steer,
)
from sensorlink.samples import AudioBlock, Reading
from sensorlink_drivers.simulated.microphone import MicrophoneOptions, SimulatedMicrophoneArray

RATE = 16_000


def still_array(angle: float, seed: int = 3) -> SimulatedMicrophoneArray:
    return SimulatedMicrophoneArray("mic", MicrophoneOptions(direction_deg=angle,
                                                             rotation_deg_per_s=0.0, seed=seed))


@pytest.mark.parametrize("angle", range(0, 360, 20))
def test_doa_within_10_degrees_over_a_sweep(angle: int) -> None:
    pcm = still_array(angle).synthesize(4096, 2048)
    estimate = DirectionFinder(RESPEAKER_4MIC, RATE).estimate(pcm)
    assert angle_difference(estimate, angle) <= 10.0, (angle, estimate)


@pytest.mark.parametrize("angle", range(0, 360, 30))
def test_steered_beam_gains_6_db_over_the_opposite_direction(angle: int) -> None:
    pcm = still_array(angle).synthesize(0, 4096)
    toward = dbfs(steer(pcm, RATE, RESPEAKER_4MIC, angle))
    away = dbfs(steer(pcm, RATE, RESPEAKER_4MIC, angle + 180))
    assert toward - away >= 6.0, (angle, toward, away)


def test_gcc_phat_finds_an_integer_delay_sign_and_size() -> None:
    rng = np.random.default_rng(0)
    b = rng.normal(size=4096)
    a = np.concatenate((np.zeros(3), b[:-3]))  # a hears it 3 samples later
    assert gcc_phat_delay(a, b, RATE, max_tau=0.001) == pytest.approx(3 / RATE, abs=0.2 / RATE)


def test_six_mic_circle_also_finds_the_direction() -> None:
    positions = circle_geometry(6, 0.0463)
    rng = np.random.default_rng(5)
    source = rng.normal(size=8192)
    spectrum = np.fft.rfft(source)
    freqs = np.fft.rfftfreq(len(source), 1 / RATE)
    from sensorlink.analysis.directional import arrival_advance_s
    advance = arrival_advance_s(np.asarray(positions), 200.0)
    pcm = np.stack([np.fft.irfft(spectrum * np.exp(2j * np.pi * freqs * a), n=len(source))
                    for a in advance], axis=1)
    estimate = DirectionFinder(positions, RATE).estimate(pcm[2048:4096])
    assert angle_difference(estimate, 200.0) <= 5.0


async def test_the_driver_streams_audio_blocks_plus_direction_and_level_readings() -> None:
    mic = still_array(250.0)
    await mic.open()
    samples = []
    while not any(isinstance(s, Reading) for s in samples) or len(samples) < 12:
        samples.extend(await mic.read())
    blocks = [s for s in samples if isinstance(s, AudioBlock)]
    readings = {s.channel: s for s in samples if isinstance(s, Reading)}
    assert blocks[0].pcm.shape == (512, 4) and blocks[0].rate == RATE
    assert [b.seq for b in blocks] == list(range(len(blocks)))
    assert angle_difference(readings["doa"].value, 250.0) <= 10.0
    assert readings["doa"].unit == "deg" and readings["level"].unit == "dBFS"
    assert -25.0 < readings["level"].value < -15.0  # the source is set to -20 dBFS


@pytest.mark.parametrize("angle", [0.0, 45.0, 120.0, 200.0])
async def test_level_is_what_each_microphone_hears_for_an_off_centre_source(angle: float) -> None:
    """The level reading is the channels' RMS: for a source off the array's centre it matches
    every single microphone (the plain mean of the channels read ~5 dB below them)."""
    mic = still_array(angle)
    await mic.open()
    blocks: list[AudioBlock] = []
    level = None
    while level is None or len(blocks) * 512 < 2048:
        for sample in await mic.read():
            if isinstance(sample, AudioBlock):
                blocks.append(sample)
            elif sample.channel == "level" and len(blocks) * 512 >= 2048:
                level = sample.value
    window = np.concatenate([b.pcm for b in blocks])[-2048:]
    per_mic = [dbfs(window[:, m]) for m in range(4)]
    assert all(abs(level - each) < 1.0 for each in per_mic), (level, per_mic)
    assert dbfs(window.mean(axis=1)) < min(per_mic) - 1.0  # what the plain mean would say
