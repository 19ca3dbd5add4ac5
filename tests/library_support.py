"""Shared by the recordings-library tests: a source that publishes known samples into a hub at a
steady pace (the truth every recorded segment is checked against), a catalog that takes a
snapshot of the index and the directory each time the real one has closed a segment, and
readers of a whole recordings directory."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorlink.alarm_event import AlarmEvent
from sensorlink.hub import Hub
from sensorlink.recording.library import Library
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import Recorder
from sensorlink.recording.retention import Keeper, RetentionPolicy
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame

SAMPLE_TYPES = (ThermalFrame, AudioBlock, Reading)


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("sensorlink-*.mcap"))


def recorded_samples(directory: Path) -> list[Any]:
    """Every sample of every segment in ``directory``, segment after segment."""
    parts = []
    for path in segment_files(directory):
        with Recording(path) as rec:
            parts.append((rec.start_ns, [e for _, e in rec.events() if isinstance(e, SAMPLE_TYPES)]))
    return [e for _, events in sorted(parts, key=lambda p: p[0]) for e in events]


def key(sample: Any) -> tuple[Any, ...]:
    """What identifies one sample: its stream and seq."""
    channel = sample.channel if isinstance(sample, Reading) else type(sample).__name__
    return (sample.sensor, channel, sample.seq)


def alarm(rule: str, transition: str = "raised", *, active: bool = True, seq: int = 1) -> AlarmEvent:
    now = time.time_ns()
    return AlarmEvent(rule, "probes/t0", transition, "alarm", active, not active,  # type: ignore[arg-type]
                      f"{rule} {transition}", seq, time.monotonic_ns(), now, now, 61.0, 60.0)


@dataclass
class Source:
    """Publishes probes (4 channels), a 4×3 camera and a 2-channel microphone into ``hub``,
    ``rate_hz`` ticks a second, every sample kept in ``truth``."""

    hub: Hub
    rate_hz: float = 50.0
    audio: bool = True
    truth: list[Any] = field(default_factory=list)
    ticks: int = 0
    _task: asyncio.Task[None] | None = None
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(5))

    def describe(self) -> None:
        self.hub.describe(SensorInfo("probes", "probe", "test", {
            "streams": {f"t{i}": {"quantity": "temperature", "unit": "°C"} for i in range(4)}}))
        self.hub.describe(SensorInfo("cam", "thermal", "test", {"width": 4, "height": 3}))
        if self.audio:
            self.hub.describe(SensorInfo("mic", "microphone", "test", {"channels": 2}))

    def tick(self) -> None:
        n, t = self.ticks, time.time_ns()
        now: list[Any] = [Reading("probes", f"t{i}", "temperature", 20.0 + i + n / 100, "°C",
                                  n, time.monotonic_ns(), t) for i in range(4)]
        if n % 5 == 0:
            celsius = (30 + self._rng.normal(0, 1, (3, 4))).astype(np.float32)
            now.append(ThermalFrame("cam", celsius, n // 5, time.monotonic_ns(), t, 21.0))
        if self.audio and n % 2 == 0:
            pcm = self._rng.normal(0, 2000, (160, 2)).astype(np.int16)
            now.append(AudioBlock("mic", pcm, 16000, n // 2, time.monotonic_ns(), t))
        for sample in now:
            self.hub.publish(sample)
        self.truth += now
        self.ticks += 1

    async def _run(self) -> None:
        start = time.monotonic()
        while True:
            self.tick()
            await asyncio.sleep(max(start + self.ticks / self.rate_hz - time.monotonic(), 0))

    def start(self) -> None:
        self.describe()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class ObservingKeeper(Keeper):
    """The real catalog (index, then retention), plus what the index and the directory held
    right after each segment closed: the moment the test means by "after every step"."""

    def __init__(self, library: Library, policy: Any) -> None:
        super().__init__(library, policy)
        self.steps: list[dict[str, Any]] = []

    def segment_closed(self, path: Path) -> None:
        super().segment_closed(path)
        self.steps.append({
            "closed": path.name,
            "files": {p.name for p in segment_files(self.library.directory)},
            "index": {s.name: s for s in self.library.segments()},
            "deleted": [d["name"] for d in self.library.deletions(10_000)],
        })


@dataclass
class LiveRun:
    """What :func:`record_live` recorded: the samples published and the alarm raised."""

    truth: list[Any]
    alarm: AlarmEvent


async def record_live(folder: Path, *, segments: int, roll_bytes: int,
                      session: dict[str, Any]) -> LiveRun:
    """Record :class:`Source` live into ``folder`` (indexed as it goes) until ``segments``
    files exist, raising an alarm while the second is being recorded."""
    from support import wait_for

    hub = Hub()
    library = Library(folder)
    recorder = Recorder(hub, folder, session=session, roll_bytes=roll_bytes,
                        chunk_seconds=0.05, fsync=False,
                        catalog=Keeper(library, RetentionPolicy()))
    source = Source(hub, rate_hz=200)
    await recorder.start()
    source.start()
    await wait_for(lambda: len(recorder.files) >= 2, 60, "a roll")
    raised = alarm("probes.t0.high")
    hub.alarm(raised)
    await wait_for(lambda: len(recorder.files) >= segments, 60, f"{segments} segments")
    await source.stop()
    await recorder.stop()
    library.close()
    return LiveRun(source.truth, raised)
