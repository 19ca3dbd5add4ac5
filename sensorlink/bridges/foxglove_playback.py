"""Playback control in the Foxglove WebSocket protocol: the app's timeline driving a replay.

A server that announces ``playbackControl`` (with ``dataStartTime``/``dataEndTime`` in its
Server Info) receives Playback Control Requests (client binary opcode 3: command play/pause,
speed, an optional seek time, a request id) and answers each with a Playback State (server
binary opcode 5: status, current time, speed, the request id). Layouts follow the Foxglove
SDK's ``ws_protocol`` (little-endian throughout). The ``time`` capability's Time messages
(opcode 2) tell the app where the replay is between requests.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

TIME, PLAYBACK_STATE = 2, 5  # server binary opcodes
PLAYBACK_CONTROL_REQUEST = 3  # client binary opcode
PLAY, PAUSE = 0, 1  # request commands
PLAYING, PAUSED, ENDED = 0, 1, 3  # playback status
SPEED_RANGE = (0.1, 20.0)  # what the replay supports; the app's other speeds are clamped


class Playback(Protocol):
    """What the bridge drives in a replay (a :class:`~sensorlink.recording.replay.ReplaySource`
    by shape): the recording's log-time range, where it is, and its controls."""

    start_ns: int
    end_ns: int
    speed: float
    paused: bool

    @property
    def position_s(self) -> float: ...

    @property
    def ended(self) -> bool: ...

    async def control(self, action: str, value: float | bool | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class PlaybackRequest:
    command: int
    speed: float
    seek_ns: int | None
    request_id: str

    @classmethod
    def parse(cls, data: bytes) -> PlaybackRequest:
        """From the bytes after the opcode; ValueError names what is wrong. The request id
        is absent in the protocol's first form (14 bytes)."""
        if len(data) < 14:
            raise ValueError(f"playback control request of {len(data)} bytes, expected >= 14")
        command, speed, had_seek, seek = struct.unpack_from("<BfBQ", data)
        if command not in (PLAY, PAUSE):
            raise ValueError(f"playback command {command}, expected 0 (play) or 1 (pause)")
        request_id = ""
        if len(data) >= 18:
            (n,) = struct.unpack_from("<I", data, 14)
            request_id = data[18:18 + n].decode("utf-8", "replace")
        return cls(command, speed, seek if had_seek else None, request_id)


async def apply(playback: Playback, request: PlaybackRequest,
                after_seek: Callable[[], None]) -> None:
    """Speed, then seek (``after_seek`` runs once the replay has moved), then play or pause."""
    if math.isfinite(request.speed) and request.speed > 0:
        wanted = min(max(request.speed, SPEED_RANGE[0]), SPEED_RANGE[1])
        if wanted != playback.speed:
            await playback.control("speed", wanted)
    if request.seek_ns is not None:
        await playback.control("seek", max(request.seek_ns - playback.start_ns, 0) / 1e9)
        after_seek()
    await playback.control("pause" if request.command == PAUSE else "resume")


def state_of(playback: Playback) -> tuple[int, int, float]:
    """(status, current log time in ns, speed)."""
    status = ENDED if playback.ended else (PAUSED if playback.paused else PLAYING)
    return status, playback.start_ns + int(playback.position_s * 1e9), float(playback.speed)


def state_frame(playback: Playback, request_id: str = "") -> bytes:
    status, now_ns, speed = state_of(playback)
    rid = request_id.encode()
    return struct.pack("<BBQfI", PLAYBACK_STATE, status, now_ns, speed, len(rid)) + rid


def time_frame(playback: Playback) -> bytes:
    return struct.pack("<BQ", TIME, state_of(playback)[1])
