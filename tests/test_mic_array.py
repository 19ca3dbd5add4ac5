"""Microphone arrays: the decoded-frame → (samples, channels) conversion and block re-cutting, and
the PyAV capture path (the code that reads ALSA) fed from multichannel WAV files."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorlink.analysis.directional import RESPEAKER_4MIC, angle_difference, arrival_advance_s
from sensorlink.backoff import Backoff
from sensorlink.errors import ConfigError, DriverError, ProtocolError
from sensorlink.hub import Hub, kinds
from sensorlink.options import build_options
from sensorlink.samples import AudioBlock, Reading
from sensorlink.sources.runner import DriverRunner
from sensorlink_drivers.mic_array import (
    RESPEAKER_6MIC, BlockBuffer, GenericArrayOptions, GenericMicArray, ReSpeaker4MicOptions,
    ReSpeaker6MicHat, ReSpeaker6MicOptions, ReSpeakerUsb4Mic, pcm_from_array,
)

DATA = Path(__file__).parent / "data" / "media"


def write_wav(path: Path, pcm: np.ndarray, rate: int = 16_000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())


def tone_at(positions, direction_deg: float, samples: int, rate: int = 16_000) -> np.ndarray:
    """int16 (samples, mics): a broadband machine noise (many tones, 300 Hz-3 kHz) arriving from
    ``direction_deg``, each microphone's copy shifted exactly by its arrival advance."""
    rng = np.random.default_rng(5)
    freqs = rng.uniform(300.0, 3000.0, 60)
    phases = rng.uniform(0, 2 * np.pi, 60)
    advance = arrival_advance_s(np.asarray(positions, dtype=np.float64), direction_deg)
    t = np.arange(samples)[:, None] / rate
    out = np.stack([np.sin(2 * np.pi * freqs * (t + a) + phases).sum(axis=1) for a in advance], 1)
    return np.rint(out * (3000.0 / np.abs(out).max())).astype(np.int16)


# -- pure conversion --------------------------------------------------------------------------

def test_packed_s16_rows_become_samples_by_channels():
    interleaved = np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9]], np.int16)  # 3 samples x 3 channels
    assert pcm_from_array(interleaved, "s16", 3).tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_planar_and_wider_formats_are_scaled_to_int16():
    planar = np.array([[1, 2], [3, 4]], np.int16)  # channel rows
    assert pcm_from_array(planar, "s16p", 2).tolist() == [[1, 3], [2, 4]]
    s32 = np.array([[0x12340000, -0x10000, 0x7FFFFFFF, -0x80000000]], np.int32)
    assert pcm_from_array(s32, "s32", 2).tolist() == [[0x1234, -1], [32767, -32768]]
    flt = np.array([[0.5, -1.0], [1.0, 0.25]], np.float32)
    assert pcm_from_array(flt, "fltp", 2).tolist() == [[16384, 32767], [-32768, 8192]]
    assert pcm_from_array(np.array([[128, 255, 0]], np.uint8), "u8", 1).ravel().tolist() \
        == [0, 127 << 8, -32768]


def test_frames_that_do_not_fit_the_channel_count_are_protocol_errors():
    with pytest.raises(ProtocolError, match="do not split into 6"):
        pcm_from_array(np.zeros((1, 10), np.int16), "s16", 6)
    with pytest.raises(ProtocolError, match="expected \\(8, samples\\)"):
        pcm_from_array(np.zeros((6, 10), np.int16), "s16p", 8)
    with pytest.raises(ProtocolError, match="not supported"):
        pcm_from_array(np.zeros((1, 2), np.int64), "s64", 2)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.lists(st.integers(0, 700), min_size=1, max_size=8),
       st.integers(1, 300), st.randoms(use_true_random=False))
def test_block_buffer_recuts_without_losing_or_reordering(channels, sizes, block, rnd):
    total = sum(sizes)
    pcm = np.arange(total * channels, dtype=np.int64).reshape(total, channels).astype(np.int16)
    buf = BlockBuffer(block, channels)
    out, start = [], 0
    for size in sizes:
        out += buf.push(pcm[start:start + size])
        start += size
    assert all(b.shape == (block, channels) for b in out)
    got = np.concatenate(out) if out else np.zeros((0, channels), np.int16)
    assert len(got) == total // block * block and len(buf) == total % block
    assert np.array_equal(got, pcm[:len(got)])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(0, 50), st.data())
def test_interleaved_int16_round_trips(channels, samples, data):
    values = data.draw(st.lists(st.integers(-32768, 32767), min_size=samples * channels,
                                max_size=samples * channels))
    pcm = np.array(values, np.int16).reshape(samples, channels)
    assert np.array_equal(pcm_from_array(pcm.reshape(1, -1), "s16", channels), pcm)
    assert np.array_equal(pcm_from_array(np.ascontiguousarray(pcm.T), "s16p", channels), pcm)


def test_profiles_geometry():
    g4 = ReSpeakerUsb4Mic("m").geometry
    assert (g4.rate, g4.channels, g4.mic_channels, g4.listen_channel) == (16000, 6, (1, 2, 3, 4), 0)
    assert g4.positions == RESPEAKER_4MIC
    g6 = ReSpeaker6MicHat("m").geometry
    assert (g6.channels, g6.mic_channels) == (8, (0, 1, 2, 3, 4, 5))
    # Seeed's ODAS configuration for the HAT: mic 1 at (-0.0232, 0.0401), mic 2 at (-0.0463, 0)
    assert np.allclose(RESPEAKER_6MIC[0], (-0.02315, 0.040097), atol=1e-4)
    assert np.allclose(RESPEAKER_6MIC[1], (-0.0463, 0.0), atol=1e-6)
    assert np.allclose(np.hypot(*np.array(RESPEAKER_6MIC).T), 0.0463)


def test_generic_array_options_are_checked_naming_the_field():
    good = build_options(GenericArrayOptions, {"channels": 4, "mic_channels": [0, 1, 2],
                                               "positions": [[0, 0.02], [0.02, 0], [0, -0.02]]})
    assert GenericMicArray("m", good).geometry.positions == ((0.0, 0.02), (0.02, 0.0), (0.0, -0.02))
    with pytest.raises(ConfigError, match="field 'positions'"):
        build_options(GenericArrayOptions, {"mic_channels": [0, 1], "positions": [[0, 0]]})
    with pytest.raises(ConfigError, match="field 'mic_channels'"):
        build_options(GenericArrayOptions, {"channels": 2, "mic_channels": [0, 2],
                                            "positions": [[0, 0], [1, 0]]})


# -- the PyAV path ----------------------------------------------------------------------------

async def collect(driver, blocks: int) -> tuple[list[AudioBlock], list[Reading]]:
    hub = Hub()
    sub = hub.subscribe("test", maxsize=10_000, accepts=kinds(AudioBlock, Reading))
    runner = DriverRunner(driver, hub, backoff=Backoff(initial=30.0))
    runner.start()
    audio: list[AudioBlock] = []
    readings: list[Reading] = []
    try:
        while len(audio) < blocks:
            event = await asyncio.wait_for(sub.get(), 20)
            (audio if isinstance(event, AudioBlock) else readings).append(event)
    finally:
        await runner.stop()
    readings += [e for e in sub.get_nowait(10_000) if isinstance(e, Reading)]
    return audio, readings


async def test_golden_respeaker_wav_decodes_channel_for_channel():
    driver = ReSpeakerUsb4Mic("mic", ReSpeaker4MicOptions(device=str(DATA / "respeaker4_6ch.wav"),
                                                          input_format="wav", block=256))
    audio, _ = await collect(driver, 4)
    pcm = np.concatenate([b.pcm for b in audio])
    assert pcm.shape == (1024, 6) and pcm.dtype == np.int16
    n = np.arange(1024)
    for c in range(5):
        assert np.array_equal(pcm[:, c], (c + 1) * 1000 + n), f"channel {c}"
    assert np.array_equal(pcm[:, 5], -(6000 + n))


async def test_respeaker_4mic_through_runner_and_hub_finds_the_direction(tmp_path):
    samples = 16_000  # one second
    raw_mics = tone_at(RESPEAKER_4MIC, 135.0, samples)
    pcm = np.zeros((samples, 6), np.int16)
    pcm[:, 0] = raw_mics.mean(axis=1).astype(np.int16)  # "processed" channel
    pcm[:, 1:5] = raw_mics
    pcm[:, 5] = 7  # playback loopback
    path = tmp_path / "array.wav"
    write_wav(path, pcm)
    driver = ReSpeakerUsb4Mic("mic", ReSpeaker4MicOptions(device=str(path), input_format="wav"))
    audio, readings = await collect(driver, samples // 512)
    assert [b.seq for b in audio] == list(range(samples // 512))
    assert all(b.rate == 16000 and b.pcm.shape == (512, 6) for b in audio)
    # values in = values out, to the sample
    assert np.array_equal(np.concatenate([b.pcm for b in audio]), pcm[:len(audio) * 512])
    doa = [r for r in readings if r.channel == "doa"]
    assert len(doa) >= 5
    # ch1-4 are the microphones at RESPEAKER_4MIC: a wrong map would point elsewhere
    assert angle_difference(doa[-1].value, 135.0) < 10.0
    assert doa[-1].quality == "ok"


async def test_six_mic_hat_maps_channels_0_to_5(tmp_path):
    rate, samples = 16_000, 8192
    pcm = np.zeros((samples, 8), np.int16)
    pcm[:, :6] = tone_at(RESPEAKER_6MIC, 250.0, samples, rate)
    pcm[:, 6:] = 1234  # echo reference channels must not be taken for microphones
    path = tmp_path / "hat.wav"
    write_wav(path, pcm, rate)
    driver = ReSpeaker6MicHat("hat", ReSpeaker6MicOptions(device=str(path), input_format="wav"))
    audio, readings = await collect(driver, samples // 512)
    assert np.array_equal(np.concatenate([b.pcm for b in audio]), pcm)
    doa = [r for r in readings if r.channel == "doa"]
    assert angle_difference(doa[-1].value, 250.0) < 10.0


async def test_one_channel_firmware_is_named_on_open(tmp_path):
    path = tmp_path / "mono.wav"
    write_wav(path, np.zeros((1600, 1), np.int16))
    driver = ReSpeakerUsb4Mic("mic", ReSpeaker4MicOptions(device=str(path), input_format="wav"))
    with pytest.raises(DriverError, match="delivers 1 channels at 16000 Hz, expected 6 .*"
                                          "6_channels_firmware"):
        await driver.open()
    await driver.close()


async def test_a_missing_alsa_device_is_a_driver_error_naming_it():
    driver = GenericMicArray("mic", GenericArrayOptions(device="hw:CARD=NoSuchCard,DEV=0"))
    with pytest.raises(DriverError, match="NoSuchCard"):
        await driver.open()
    await driver.close()


def test_alsa_input_works_without_alsa_config_path_set():
    # scripts/setup.sh installs alsa.conf (Debian's libasound2-data) for this test.
    assert os.path.exists("/usr/share/alsa/alsa.conf")
    # ALSA's "null" PCM exists in every alsa.conf: it proves PyAV's bundled alsa-lib found the
    # system configuration because the driver pointed it there.
    code = """
import asyncio, os
from sensorlink_drivers.mic_array import GenericMicArray, GenericArrayOptions
async def main():
    d = GenericMicArray("mic", GenericArrayOptions(device="null", channels=2, block=64))
    await d.open()
    try:
        pcm = await d.capture()
    finally:
        await d.close()
    print(pcm.shape, os.environ["ALSA_CONFIG_PATH"])
asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if k != "ALSA_CONFIG_PATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(64, 2) /usr/share/alsa/alsa.conf"



async def test_generic_array_takes_its_map_and_geometry_from_the_config(tmp_path):
    positions = [[0.04, 0.0], [-0.02, 0.0346], [-0.02, -0.0346]]  # a 40 mm triangle
    samples = 8192
    pcm = np.zeros((samples, 4), np.int16)
    pcm[:, 0] = 99  # not a microphone
    pcm[:, 1:] = tone_at(positions, 300.0, samples)
    path = tmp_path / "tri.wav"
    write_wav(path, pcm)
    options = build_options(GenericArrayOptions, {
        "device": str(path), "input_format": "wav", "channels": 4, "mic_channels": [1, 2, 3],
        "positions": positions, "block": 1024})
    audio, readings = await collect(GenericMicArray("tri", options), samples // 1024)
    assert np.array_equal(np.concatenate([b.pcm for b in audio]), pcm)
    doa = [r for r in readings if r.channel == "doa"]
    assert angle_difference(doa[-1].value, 300.0) < 10.0
