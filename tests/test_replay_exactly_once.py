"""A replay delivers every recorded sample exactly once, whatever pause, resume and speed do.

The recordings here are synthetic (recorded through the real Recorder, without waiting for real
time) and made so that several samples share each log time, as a multi-channel probe's do: a
pacer that resumes "after the last time sent" skips siblings, one that resumes "from it" sends
some twice, and one that resumes from the clock (the bug this guards) skips what was due but
not yet sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorlink.config import ServiceConfig
from sensorlink.hub import Hub
from sensorlink.recording.replay import ReplaySource
from sensorlink.samples import Reading
from sensorlink.service import Service
from sensorlink.webrtc.viewer import connected_viewer

from record_helpers import synthetic_recording
from support import wait_for

TOKEN = "replay-once-token"


def key(sample: Any) -> tuple[str, str, int]:
    """(kind, stream, seq): one recorded sample."""
    if isinstance(sample, Reading):
        return "reading", f"{sample.sensor}/{sample.channel}", sample.seq
    return type(sample).__name__, sample.sensor, sample.seq


class CountingHub(Hub):
    """A replay hub that notes every sample published to it."""

    def __init__(self) -> None:
        super().__init__(replay=True)
        self.seen: Counter[tuple[str, str, int]] = Counter()

    def publish(self, sample: Any) -> None:
        self.seen[key(sample)] += 1
        super().publish(sample)


@dataclass(frozen=True)
class Ticks:
    path: Path
    truth: Counter[tuple[str, str, int]] = field(repr=False)  # every recorded sample, once


@pytest.fixture(scope="module")
def ticks(tmp_path_factory: pytest.TempPathFactory) -> Ticks:
    path = tmp_path_factory.mktemp("once") / "ticks.mcap"
    truth = asyncio.run(synthetic_recording(path, seconds=4.0, rate_hz=50, streams=4,
                                            frame_every=5))
    return Ticks(path, Counter(key(s) for s in truth))


async def _drive(path: Path, steps: list[tuple[str, float, float]]) -> tuple[CountingHub, int]:
    """Apply ``steps`` (action, speed, wait) to a replay at 20×, then let it finish; returns
    the hub and how many passes were started (a resume after the end plays from the top)."""
    hub = CountingHub()
    source = ReplaySource(hub, path, speed=20)
    passes = 1
    await source.start()
    try:
        for action, speed, wait_s in steps:
            if action == "resume" and source.ended:
                passes += 1
            await source.control(action, speed if action == "speed" else None)
            await asyncio.sleep(wait_s)
        if not source.ended:
            await source.control("speed", 20)
            await source.control("resume")
            await wait_for(lambda: source.ended, 60, "the end of the replay")
    finally:
        await source.stop()
    return hub, passes


STEPS = st.lists(st.tuples(st.sampled_from(["pause", "resume", "speed"]),
                           st.sampled_from([1.0, 4.0, 20.0]),
                           st.floats(min_value=0.0, max_value=0.015)),
                 min_size=1, max_size=20)


# No deadline: how long an example takes depends on its waits and on the machine, not on
# whether it holds.
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_every_sample_is_published_once_whatever_the_controls_do(
        ticks: Ticks, steps: list[tuple[str, float, float]]) -> None:
    hub, passes = asyncio.run(_drive(ticks.path, steps))
    expected = Counter({k: n * passes for k, n in ticks.truth.items()})
    lost = expected - hub.seen
    extra = hub.seen - expected
    assert not lost and not extra, (f"{sum(lost.values())} lost, {sum(extra.values())} "
                                    f"duplicated, e.g. {list(lost)[:3]} {list(extra)[:3]}")


async def test_quick_pause_resume_at_20x_over_webrtc_loses_no_reading(tmp_path: Path) -> None:
    path = tmp_path / "readings.mcap"
    # A minute of log time: about 3 s of play at 20x, so there is time for many cycles at the
    # rate the service accepts control messages (20/s, see sensorlink.webrtc.control).
    truth = await synthetic_recording(path, seconds=60.0, rate_hz=5, streams=2)
    expected = Counter((f"{s.sensor}/{s.channel}", s.seq) for s in truth)
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN), source="test",
                      replay_path=str(path), replay_options={"speed": 20, "paused": True})
    await service.start()
    got: Counter[tuple[str, int]] = Counter()

    def on_event(event: dict[str, Any]) -> None:
        for stream, seq, *_ in event.get("readings", []):
            got[(stream, seq)] += 1

    try:
        host, port = service.bound
        async with connected_viewer(f"http://{host}:{port}/#token={TOKEN}",
                                    on_event=on_event) as viewer:
            rng = random.Random(7)  # fixed: the same quick cycles every run
            cycles = 0
            while not service.replay.ended and cycles < 200:
                for action in ("resume", "pause"):
                    reply = await viewer.control({"type": "replay", "action": action})
                    assert reply["type"] == "reply", reply
                    await asyncio.sleep(rng.uniform(0.03, 0.08))
                cycles += 1
            if not service.replay.ended:  # (a resume after the end would play it again)
                await viewer.control({"type": "replay", "action": "resume"})
                await wait_for(lambda: service.replay.ended, 60, "the end of the replay")
            with contextlib.suppress(AssertionError):  # a lost one never comes: see below
                await wait_for(lambda: sum(got.values()) >= len(truth), 60, "every reading")
            dropped = viewer.last_status["viewer"]["readings_dropped"]
    finally:
        await service.stop()
    assert cycles >= 10 and dropped == 0
    lost, extra = expected - got, got - expected
    assert not lost and not extra, (f"{sum(lost.values())} lost, {sum(extra.values())} "
                                    f"duplicated of {len(truth)}")
