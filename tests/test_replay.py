"""Replay: a recorded simulated session comes back identical, on time, and obeys its controls."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import jsonschema
import pytest

from sensorlink.errors import ControlError
from sensorlink.hub import Hub
from sensorlink.recording.recorder import Recorder
from sensorlink.recording.replay import ReplaySource
from sensorlink.samples import SensorInfo
from sensorlink.schemas import __file__ as _schemas_init

from record_helpers import SAMPLE_TYPES, by_stream, record_session, same_sample

SCHEMAS_DIR = Path(_schemas_init).parent


class TimedHub(Hub):
    """A hub that notes when each sample was published (monotonic ns)."""

    def __init__(self) -> None:
        super().__init__(replay=True)
        self.log: list[tuple[int, object]] = []

    def publish(self, sample) -> None:
        self.log.append((time.monotonic_ns(), sample))
        super().publish(sample)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return asyncio.run(record_session(tmp_path_factory.mktemp("replay"), 2.5,
                                      chunk_seconds=0.5))


async def _until(predicate, what: str, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Metronome:
    """Wakes every 2 ms on an absolute schedule in the same event loop as the pacer and notes
    how late each wake-up was: how long the machine (other processes on a shared 2-core box),
    not the pacer, kept this loop from running at that moment."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, int]] = []

    async def run(self) -> None:
        period = 2_000_000
        due = time.monotonic_ns() + period
        while True:
            await asyncio.sleep(max(due - time.monotonic_ns(), 0) / 1e9)
            now = time.monotonic_ns()
            self.marks.append((now, now - due))
            while due <= now:
                due += period

    def stall_ms(self, t_ns: int, window_ns: int = 10_000_000) -> float:
        return max((late for t, late in self.marks if abs(t - t_ns) <= window_ns), default=0) / 1e6


def _timing_errors_ms(log: list[tuple[int, object]], speed: float) -> list[tuple[int, float]]:
    """(publish time, how far it strays from its recorded log time) for each sample: offsets
    relative to the first sample, log offsets divided by the speed, and the constant offset
    (the median) removed: relative timing is what must hold."""
    pub0, log0 = log[0][0], log[0][1].t_wall_ns
    raw = [((pub - pub0) - (s.t_wall_ns - log0) / speed) / 1e6 for pub, s in log]
    offset = statistics.median(raw)
    return [(pub, e - offset) for (pub, _), e in zip(log, raw, strict=True)]


async def _replay_timed(path: Path, *controls: tuple[str, object]
                        ) -> tuple[TimedHub, ReplaySource, Metronome]:
    """Replay ``path`` to the end after applying ``controls`` (while paused), timing it."""
    hub, metronome = TimedHub(), Metronome()
    source = ReplaySource(hub, path, paused=True)
    ticking = asyncio.create_task(metronome.run())
    try:
        await source.start()
        for action, value in controls:
            await source.control(action, value)
        assert not hub.log
        await source.control("resume", None)
        await _until(lambda: source.ended, "the end of the replay")
    finally:
        ticking.cancel()
        await source.stop()
    return hub, source, metronome


def _assert_on_time(hub: TimedHub, metronome: Metronome, speed: float) -> None:
    errors = _timing_errors_ms(hub.log, speed)
    for pub, err in errors:
        # Never early; late by at most 5 ms beyond any stall the machine imposed on the loop
        # right then (measured by the metronome, which a pacer bug would not delay).
        assert -5.0 <= err <= 5.0 + metronome.stall_ms(pub), (err, metronome.stall_ms(pub))
    assert statistics.median(abs(e) for _, e in errors) <= 2.0


async def test_round_trip_replays_identical_samples_on_time(session):
    hub, source, metronome = await _replay_timed(session.files[0])
    assert set(hub.sensors) == {"cam", "probes", "mic"}
    replayed = [s for _, s in hub.log]
    truth, got = by_stream(session.truth), by_stream(replayed)
    assert set(got) == set(truth)
    for key, samples in truth.items():
        assert len(got[key]) == len(samples), key
        assert all(same_sample(a, b) for a, b in zip(samples, got[key])), key
    _assert_on_time(hub, metronome, 1.0)
    assert source.status()["position_s"] == pytest.approx(source.status()["duration_s"])


async def test_sensors_are_described_before_the_first_sample(session):
    hub = TimedHub()
    source = ReplaySource(hub, session.files[0], paused=True)
    await source.start()
    try:
        assert set(hub.sensors) == {"cam", "probes", "mic"} and not hub.log
        assert hub.sensors["cam"].meta["width"] == 32
    finally:
        await source.stop()


async def test_speed_changes_the_pace_and_keeps_relative_timing(session):
    hub, source, metronome = await _replay_timed(session.files[0], ("speed", 4))
    assert source.status()["speed"] == 4.0
    assert len(hub.log) == len(session.truth)
    _assert_on_time(hub, metronome, 4.0)


async def test_seek_while_paused_starts_there(session):
    hub = TimedHub()
    source = ReplaySource(hub, session.files[0], paused=True, speed=10)
    await source.start()
    try:
        assert not hub.log
        status = await source.control("seek", 1.5)
        assert status["position_s"] == 1.5 and status["paused"] and not hub.log
        await source.control("resume", None)
        await _until(lambda: source.ended, "the end of the replay")
    finally:
        await source.stop()
    start_ns = source.recording.start_ns
    replayed = [s for _, s in hub.log]
    assert replayed and min(s.t_wall_ns for s in replayed) >= start_ns + 1_500_000_000
    expected = [s for s in session.truth if s.t_wall_ns >= start_ns + 1_500_000_000]
    assert len(replayed) == len(expected)
    assert {(type(s).__name__, s.sensor, s.seq) for s in replayed} == \
        {(type(s).__name__, s.sensor, s.seq) for s in expected}


async def test_seek_back_while_playing_and_pause_stop_publishing(session):
    hub = TimedHub()
    source = ReplaySource(hub, session.files[0], speed=5)
    await source.start()
    try:
        await _until(lambda: source.position_s >= 1.0, "a second of replay")
        await source.control("seek", 0.0)
        await _until(lambda: source.position_s >= 0.3, "replay after the seek")
        status = await source.control("pause", None)
        assert status["paused"]
        count, position = len(hub.log), source.position_s
        await asyncio.sleep(0.1)
        assert len(hub.log) == count and source.position_s == position
    finally:
        await source.stop()
    frame_seqs = [s.seq for _, s in hub.log if type(s).__name__ == "ThermalFrame"]
    restart = frame_seqs.index(0, 1)  # the seek went back: frame 0 came round again
    assert frame_seqs[:restart] == list(range(restart))
    assert frame_seqs[restart:] == list(range(len(frame_seqs) - restart))


async def test_loop_replays_from_the_top(session):
    hub = TimedHub()
    source = ReplaySource(hub, session.files[0], speed=20)
    await source.start()
    try:
        status = await source.control("loop", True)
        assert status["loop"] is True
        await _until(lambda: source.loops >= 2, "two loops")
        await source.control("loop", False)
        await _until(lambda: source.ended, "the end after looping")
    finally:
        await source.stop()
    frames = [s.seq for _, s in hub.log if type(s).__name__ == "ThermalFrame"]
    n = sum(isinstance(s, SAMPLE_TYPES) and type(s).__name__ == "ThermalFrame"
            for s in session.truth)
    assert len(frames) >= 3 * n and len(frames) % n == 0
    assert frames == list(range(n)) * (len(frames) // n)


@pytest.mark.parametrize("action,value,field", [
    ("speed", 0.05, "value"), ("speed", 25, "value"), ("speed", True, "value"),
    ("speed", None, "value"), ("seek", -1, "value"), ("seek", "1", "value"),
    ("seek", float("nan"), "value"), ("loop", 1, "value"), ("rewind", None, "action"),
])
async def test_bad_control_values_are_refused(session, action, value, field):
    source = ReplaySource(Hub(replay=True), session.files[0], paused=True)
    await source.start()
    try:
        before = source.status()
        with pytest.raises(ControlError) as info:
            await source.control(action, value)
        assert info.value.field == field
        assert source.status() == before
    finally:
        await source.stop()


async def test_status_matches_the_dashboard_schema(session):
    schema = json.loads((SCHEMAS_DIR / "status.schema.json").read_text())["properties"]["replay"]
    source = ReplaySource(Hub(replay=True), session.files[0], paused=True, start_s=1.0,
                          loop=True, speed=0.5)
    await source.start()
    try:
        status = source.status()
        jsonschema.validate(status, schema)
        assert set(status) == set(schema["properties"])
        assert status == {"file": session.files[0].name, "position_s": 1.0,
                          "duration_s": pytest.approx(source.recording.duration_s, abs=1e-3),
                          "speed": 0.5, "paused": True, "loop": True,
                          "alarms": []}  # this recording raised no alarm: no timeline marker
    finally:
        await source.stop()


async def test_a_recording_without_samples_ends_even_when_looping(tmp_path):
    hub = Hub()
    recorder = Recorder(hub, tmp_path, session={})
    await recorder.start()
    hub.describe(SensorInfo("cam", "thermal", "sim-thermal", {"width": 32, "height": 24}))
    await recorder.stop()
    replay_hub = TimedHub()
    source = ReplaySource(replay_hub, recorder.path, loop=True)
    await source.start()
    try:
        await _until(lambda: source.ended, "the end of an empty replay")
        assert set(replay_hub.sensors) == {"cam"} and not replay_hub.log
        assert source.status()["duration_s"] == 0.0
    finally:
        await source.stop()
