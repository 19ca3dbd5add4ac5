"""Smaller audio without losing a sample: microphone channels recorded as FLAC decode bit-exact
in replay and export, Xiph's own decoder reads them the same, the files are smaller, and every
channel still passes Foxglove's JSON-Schema rules (the FLAC channel under a schema of our own:
Foxglove's Audio panel plays pcm-s16 RawAudio only)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensorlink.cli import main as cli
from sensorlink.hub import Hub, kinds
from sensorlink.recording import flac
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import Recorder
from sensorlink.recording.replay import ReplaySource
from sensorlink.samples import AudioBlock, SensorInfo
from sensorlink.sources.runner import DriverRunner
from sensorlink_drivers.simulated.microphone import MicrophoneOptions, SimulatedMicrophoneArray

from mcap_readers import foxglove_decodes, node_indexed_reader
from record_helpers import same_sample
from support import wait_for

RNG = np.random.default_rng(11)
FLAC_TOOL = shutil.which("flac")


def _xiph_decode(data: bytes, tmp_path: Path) -> bytes:
    """Raw little-endian interleaved PCM as Xiph's reference decoder (libFLAC) gives it."""
    assert FLAC_TOOL, "the flac command is missing: scripts/setup.sh --browser installs it"
    src, out = tmp_path / "block.flac", tmp_path / "block.raw"
    src.write_bytes(data)
    subprocess.run([FLAC_TOOL, "--silent", "--decode", "--force-raw-format", "--endian=little",
                    "--sign=signed", "-f", "-o", str(out), str(src)], check=True, timeout=60)
    return out.read_bytes()


@pytest.mark.parametrize(("frames", "channels", "kind"), [
    (1, 1, "noise"), (512, 4, "noise"), (4097, 8, "noise"), (1600, 6, "extremes"),
    (2048, 2, "silence"), (777, 3, "tone"),
])
def test_a_block_round_trips_bit_exact_and_xiph_decodes_it_the_same(
        tmp_path: Path, frames: int, channels: int, kind: str) -> None:
    if kind == "noise":
        pcm = RNG.normal(0, 3000, (frames, channels))
    elif kind == "extremes":  # the full int16 range, every other sample at a rail
        pcm = RNG.choice([-32768, 32767, 0, -1], size=(frames, channels))
    elif kind == "silence":
        pcm = np.zeros((frames, channels))
    else:
        pcm = 20000 * np.sin(np.arange(frames)[:, None] * (0.01 + 0.003 * np.arange(channels)))
    pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    data = flac.encode(pcm, 16000)
    assert data[:4] == b"fLaC"
    assert np.array_equal(flac.decode(data, channels), pcm)
    assert _xiph_decode(data, tmp_path) == pcm.astype("<i2").tobytes()


def test_more_channels_than_flac_carries_stay_pcm() -> None:
    block = AudioBlock("array", RNG.integers(-3000, 3000, (256, 10), dtype=np.int16), 16000, 1, 1, 1)
    for media in mm.MEDIA_FORMS:
        msg = mm.encode(block, audio="flac", media=media)
        assert msg.schema == mm.RAW_AUDIO and b"pcm-s16" in msg.data
        assert same_sample(mm.decode(msg.schema, msg.data, encoding=msg.message_encoding), block)


async def _record(folder: Path, audio: str, seconds_of_blocks: int) -> tuple[Path, list[Any]]:
    """The simulated 4-mic array (its own signal, not noise) recorded for a fixed number of
    blocks, plus a 6-channel array, both kept as the truth."""
    hub = Hub()
    truth_sub = hub.subscribe("truth", maxsize=1_000_000, accepts=kinds(AudioBlock))
    recorder = Recorder(hub, folder, session={"audio": audio}, audio=audio, fsync=False,
                        chunk_seconds=0.1)
    await recorder.start()
    runner = DriverRunner(SimulatedMicrophoneArray("mic", MicrophoneOptions(block=512)), hub)
    runner.start()
    hub.describe(SensorInfo("hat", "microphone", "test", {"channels": 6}))
    blocks = seconds_of_blocks * 16000 // 512
    await wait_for(lambda: len(truth_sub) >= blocks, 60, "the microphone's blocks")
    await runner.stop()
    # Stamped now, 333 samples at 48 kHz apart, so a replay of the file spans seconds, not years.
    now = time.time_ns()
    for n in range(20):
        hub.publish(AudioBlock("hat", RNG.integers(-9000, 9000, (333, 6), dtype=np.int16), 48000,
                               n, n, now + n * 6_937_500))
    await recorder.stop()
    truth = truth_sub.get_nowait(1_000_000)
    assert recorder.status()["samples"] >= len(truth) > 0
    return recorder.path, truth


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = {}
    for audio in ("pcm", "flac"):
        out[audio] = asyncio.run(_record(tmp_path_factory.mktemp(audio), audio, 4))
    return out


def _audio_of(path: Path) -> list[AudioBlock]:
    with Recording(path) as rec:
        return [e for _, e in rec.events(schemas={mm.RAW_AUDIO, mm.COMPRESSED_AUDIO})]


def test_a_flac_recording_reads_back_every_sample_bit_exact(recordings: dict[str, Any]) -> None:
    path, truth = recordings["flac"]
    with Recording(path) as rec:
        schemas = {s.topic: s.schema for s in rec.streams.values()}
    assert schemas["/mic/audio"] == schemas["/hat/audio"] == mm.COMPRESSED_AUDIO
    got = _audio_of(path)
    assert len(got) == len(truth)
    by = lambda blocks: {(b.sensor, b.seq): b for b in blocks}
    assert by(got).keys() == by(truth).keys()
    assert all(same_sample(by(got)[k], b) for k, b in by(truth).items())


def test_flac_is_smaller_and_every_channel_passes_foxglove_and_mcap_core(
        recordings: dict[str, Any]) -> None:
    pcm_path, flac_path = recordings["pcm"][0], recordings["flac"][0]
    pcm_audio = sum(len(b.pcm.tobytes()) for b in recordings["pcm"][1])
    flac_audio = sum(len(b.pcm.tobytes()) for b in recordings["flac"][1])
    # Per byte of audio recorded: the FLAC file is well under the PCM one, although MCAP's
    # zstd chunks already squeeze raw PCM (protobuf bytes; 0.83 measured) and 20 of the blocks
    # are white noise, which nothing compresses.
    assert flac_path.stat().st_size / flac_audio < 0.9 * pcm_path.stat().st_size / pcm_audio
    converted = foxglove_decodes(flac_path)  # Foxglove's decoder takes every channel
    assert converted["/mic/audio"] == sum(b.sensor == "mic" for b in recordings["flac"][1])
    report = node_indexed_reader(flac_path)
    assert "error" not in report


async def test_a_replay_of_a_flac_recording_publishes_the_same_blocks(
        recordings: dict[str, Any]) -> None:
    path, truth = recordings["flac"]
    hub = Hub(replay=True)
    sub = hub.subscribe("viewer", maxsize=1_000_000, accepts=kinds(AudioBlock))
    replay = ReplaySource(hub, path, speed=20.0)
    await replay.start()
    try:
        await wait_for(lambda: replay.ended, 60, "the replay to end")
    finally:
        await replay.stop()
    got = sub.get_nowait(1_000_000)
    assert sorted((b.sensor, b.seq) for b in got) == sorted((b.sensor, b.seq) for b in truth)
    truth_by = {(b.sensor, b.seq): b for b in truth}
    assert all(same_sample(b, truth_by[(b.sensor, b.seq)]) for b in got)


def test_a_wav_export_of_a_flac_recording_holds_the_very_samples(
        recordings: dict[str, Any], tmp_path: Path) -> None:
    path, truth = recordings["flac"]
    out = tmp_path / "mic.wav"
    assert cli(["export", str(path), "--wav", str(out), "--sensor", "mic"]) == 0
    mic = sorted((b for b in truth if b.sensor == "mic"), key=lambda b: b.seq)
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (4, 2, 16000)
        data = w.readframes(w.getnframes())
    assert data == b"".join(b.pcm.astype("<i2").tobytes() for b in mic)
