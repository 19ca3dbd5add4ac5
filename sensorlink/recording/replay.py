"""Replay of a recording as a source: reader → pacer → hub, like a live driver.

The pacer publishes each recorded Sample (and each recorded SensorInfo / SensorStatus) when its
log time comes round, measured against one monotonic anchor: ``anchor + (log_time - anchor_log)
/ speed``. Lateness never accumulates (a late event is published at once and the next is
still due at its own time), and pause, seek and speed changes simply take a new anchor. Samples
keep the seq and timestamps they were recorded with, so a replay is exactly what was seen live.

Pause and speed changes never skip or repeat an event: besides the clock position (what the
timeline shows) the source keeps a cursor, the log time of the last event it published and how
many events at that log time it has published (several share one, e.g. a probe's channels). A
resumed pacer starts from the cursor, so whatever was due but not yet sent goes out first.

Recorded alarm events go out through ``Hub.alarm`` when their time comes, so a replay shows the
alarms as they were raised live; a seek restores the list of alarms that were not over at that
moment (and resets the ones that were not yet raised). The status lists when each alarm was
raised or escalated, for the timeline's markers and its "next alarm".
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

from sensorlink.alarm_event import AlarmEvent
from sensorlink.errors import ControlError
from sensorlink.hub import Hub
from sensorlink.recording import messages as mm
from sensorlink.recording.recording_set import open_recordings
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

log = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.1, 20.0
ACTIONS = ("pause", "resume", "seek", "speed", "loop")
_REPLAYED = mm.SAMPLE_SCHEMAS | {mm.SENSOR_INFO, mm.SENSOR_STATUS, mm.ALARM}
_STATE = {mm.SENSOR_INFO, mm.SENSOR_STATUS, mm.ALARM}
MAX_MARKS = 200  # alarm markers in the status (raised / escalated), the first ones


def _check_speed(value: Any, field: str = "value") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ControlError(f"speed must be a number from {MIN_SPEED:g} to {MAX_SPEED:g}, "
                           f"got {value!r}", field=field)
    if not MIN_SPEED - 1e-9 <= value <= MAX_SPEED + 1e-9:
        raise ControlError(f"speed must be from {MIN_SPEED:g} to {MAX_SPEED:g}, got {value:g}",
                           field=field)
    return float(value)


class ReplaySource:
    """Feeds a recording into a hub at its recorded pace (× speed), with pause/seek/loop."""

    def __init__(self, hub: Hub, path: str | Path | list[Path], *, speed: float = 1.0,
                 loop: bool = False, paused: bool = False, start_s: float = 0.0) -> None:
        self.hub = hub
        # A list of segments replays as one timeline (sensorlink.recording.recording_set).
        self.path = Path(path[0] if isinstance(path, list) else path)
        self.speed = _check_speed(speed, field="speed")
        self.loop = bool(loop)
        self.paused = bool(paused)
        self.recording = open_recordings(path)
        self.start_ns = self.recording.start_ns
        self.end_ns = self.recording.end_ns
        if not (isinstance(start_s, (int, float)) and math.isfinite(start_s) and start_s >= 0):
            raise ControlError(f"start must be seconds from the start, got {start_s!r}",
                               field="start_s")
        self._pos_ns = self._clamp(self.start_ns + int(start_s * 1e9))
        #: (log time, events published at that log time): where the next pass picks up
        self._cursor = (self._pos_ns, 0)
        self.published = 0
        self.loops = 0
        self._anchor_mono = 0.0
        self._anchor_log = self._pos_ns
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        # Descriptions and state changes by time, so a seek can restore what was true then.
        self._meta_times: list[int] = []
        self._meta: list[SensorInfo | SensorStatus | AlarmEvent] = []
        self.alarm_marks: list[dict[str, Any]] = []

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        first: dict[str, SensorInfo] = {}
        for t, event in self.recording.events(schemas=_STATE):
            assert isinstance(event, (SensorInfo, SensorStatus, AlarmEvent))
            self._meta_times.append(t)
            self._meta.append(event)
            if isinstance(event, SensorInfo):
                first.setdefault(event.name, event)
            elif isinstance(event, AlarmEvent) and event.transition in ("raised", "escalated") \
                    and len(self.alarm_marks) < MAX_MARKS:
                self.alarm_marks.append({"t_s": round(max(t - self.start_ns, 0) / 1e9, 3),
                                         "rule": event.rule, "level": event.level})
        for info in first.values():
            self.hub.describe(info)
        self._restore_state(self._pos_ns)
        if not self.paused:
            self._play()

    async def stop(self) -> None:
        await self._halt()
        self.recording.close()

    # -- control ---------------------------------------------------------------------------
    async def control(self, action: str, value: float | bool | None = None) -> dict[str, Any]:
        if action == "pause":
            await self._halt()
            self.paused = True
        elif action == "resume":
            if self.paused or self._task is None:
                if self._ended:
                    self._jump(self.start_ns)  # play again from the top
                self.paused = False
                self._play()
        elif action == "seek":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ControlError(f"seek needs seconds from the start (>= 0), got {value!r}",
                                   field="value")
            await self._halt()
            self._jump(self._clamp(self.start_ns + int(value * 1e9)))
            if not self.paused:
                self._play()
        elif action == "speed":
            speed = _check_speed(value)
            playing = self._task is not None
            await self._halt()
            self.speed = speed
            if playing:
                self._play()
        elif action == "loop":
            if not isinstance(value, bool):
                raise ControlError(f"loop needs true or false, got {value!r}", field="value")
            self.loop = value
        else:
            raise ControlError(f"unknown replay action {action!r}; expected one of "
                               f"{', '.join(ACTIONS)}", field="action")
        return self.status()

    def status(self) -> dict[str, Any]:
        return {"file": self.recording.label, "position_s": round(self.position_s, 3),
                "duration_s": round(self.recording.duration_s, 3), "speed": self.speed,
                "paused": self.paused, "loop": self.loop, "alarms": self.alarm_marks}

    @property
    def position_s(self) -> float:
        return max(self._position_ns() - self.start_ns, 0) / 1e9

    @property
    def ended(self) -> bool:
        return self._ended

    # -- pacing ----------------------------------------------------------------------------
    def _clamp(self, t_ns: int) -> int:
        return min(max(t_ns, self.start_ns), self.end_ns)

    def _position_ns(self) -> int:
        if self._task is None:
            return self._pos_ns
        elapsed = asyncio.get_running_loop().time() - self._anchor_mono
        return self._clamp(self._anchor_log + int(elapsed * self.speed * 1e9))

    def _jump(self, t_ns: int) -> None:
        """Move to ``t_ns`` on purpose (seek, play again): the cursor follows."""
        self._pos_ns, self._cursor, self._ended = t_ns, (t_ns, 0), False
        self._restore_state(t_ns)

    def _play(self) -> None:
        self._ended = False
        self._anchor_mono = asyncio.get_running_loop().time()
        self._anchor_log = self._pos_ns
        self._task = asyncio.create_task(self._pace(), name=f"replay:{self.path.name}")

    async def _halt(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # The clock position is only what the timeline shows and where the next anchor is
        # taken; what is published next comes from the cursor, which the pacer moves only
        # after it has published (it is cancelled while waiting, never in between).
        elapsed = asyncio.get_running_loop().time() - self._anchor_mono
        self._pos_ns = self._clamp(self._anchor_log + int(elapsed * self.speed * 1e9))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    def _restore_state(self, t_ns: int) -> None:
        latest: dict[tuple[str, str], SensorInfo | SensorStatus | AlarmEvent] = {}
        for event in self._meta[:bisect.bisect_right(self._meta_times, t_ns)]:
            key = ("info", event.name) if isinstance(event, SensorInfo) else \
                ("alarm", event.rule) if isinstance(event, AlarmEvent) else ("status", event.sensor)
            latest[key] = event
        standing = {key[1] for key, e in latest.items()
                    if isinstance(e, AlarmEvent) and not e.over}
        for rule, shown in list(self.hub.alarms.items()):
            if rule not in standing:  # not raised yet at that moment (or already over)
                self.hub.alarm(dataclasses.replace(shown, transition="reset", active=False,
                                                   message="not standing at the replay's new position"))
        for key, event in latest.items():
            if key[0] != "alarm" or key[1] in standing:
                self._emit(event)

    def _emit(self, event: mm.RecordedEvent) -> None:
        if isinstance(event, (ThermalFrame, AudioBlock, Reading)):
            self.hub.publish(event)
            self.published += 1
        elif isinstance(event, SensorInfo):
            self.hub.describe(event)
        elif isinstance(event, SensorStatus):
            self.hub.set_status(event)
        elif isinstance(event, AlarmEvent):
            self.hub.alarm(event)

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # The next event is decoded (and its chunk decompressed) right after the previous
            # one is published, so that work happens in the gap before it is due. Events at one
            # log time always come in the same order, so skipping the ones already sent is exact.
            cursor_ns, sent = self._cursor
            for t_ns, event in self.recording.events(start_ns=cursor_ns, schemas=_REPLAYED):
                if t_ns == cursor_ns and sent:
                    sent -= 1
                    continue
                due = self._anchor_mono + (t_ns - self._anchor_log) / 1e9 / self.speed
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._emit(event)
                at, n = self._cursor
                self._cursor = (t_ns, n + 1 if at == t_ns else 1)
            if not self.loop or self.end_ns <= self.start_ns:
                self._pos_ns, self._ended, self._task = self.end_ns, True, None
                return
            self.loops += 1
            # The next pass starts when this one's end is due, so the loop keeps its rhythm
            # and always waits (a pass never spins without yielding).
            end_due = self._anchor_mono + (self.end_ns - self._anchor_log) / 1e9 / self.speed
            self._anchor_mono = max(end_due, loop.time())
            self._anchor_log = self._pos_ns = self.start_ns
            self._cursor = (self.start_ns, 0)
            await asyncio.sleep(0)
