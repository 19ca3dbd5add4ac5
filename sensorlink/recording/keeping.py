"""How a service records by its ``[recording]`` settings: the recorder, with the recordings
library indexing each segment and retention applied as segments close, and the library
operations an operator may ask for (deleting a window of recordings).

Kept here, in the recording sink, so the composition root (sensorlink.service) only wires
what this returns.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sensorlink.config_recording import RecordingConfig
from sensorlink.errors import ControlError
from sensorlink.hub import Hub
from sensorlink.recording.library import Library
from sensorlink.recording.recorder import Recorder
from sensorlink.recording.recovery import is_locked
from sensorlink.recording.retention import Keeper, RetentionPolicy

MAX_REPLAY_SEGMENTS = 400  # about four days of 15-minute segments in one replay


def build_recorder(hub: Hub, library: Library, config: RecordingConfig,
                   session: dict[str, Any]) -> Recorder:
    return Recorder(hub, library.directory, session=session, recover_cut=True,
                    roll_seconds=config.roll_seconds, roll_bytes=config.roll_bytes,
                    queue_size=config.queue, min_free_bytes=config.min_free_bytes,
                    audio=config.audio, bucket_ns=int(config.trend_bucket_s * 1e9),
                    catalog=Keeper(library, RetentionPolicy.from_config(config)))


def replay_paths(library: Library, window: dict[str, Any]) -> tuple[list[Path], float]:
    """The segment files of a window the dashboard asked to replay (names from the index
    only), and where in them the window starts, in seconds."""
    # Times from a browser are doubles (exact to ~0.1 µs at today's epoch): ints here.
    from_ns, to_ns = int(window["from_ns"]), int(window["to_ns"])
    if to_ns <= from_ns:
        raise ControlError("to_ns must be after from_ns", field="replay.to_ns")
    segments = [s for s in library.segments(from_ns, to_ns) if s.replayable]
    if not segments:
        raise ControlError("no recorded segment in that window (or only the one being "
                           "recorded)", field="replay")
    if len(segments) > MAX_REPLAY_SEGMENTS:
        raise ControlError(f"{len(segments)} segments: replay at most {MAX_REPLAY_SEGMENTS} at "
                           "a time (a shorter window)", field="replay")
    start_s = max(from_ns - segments[0].start_ns, 0) / 1e9
    return [library.path_of(s) for s in segments], start_s


def delete_window(library: Library, message: dict[str, Any], *, by: str) -> dict[str, Any]:
    """An operator's ``{"type": "recordings", "action": "delete", from_ns, to_ns}``: every
    complete segment that lies wholly inside the window; never one being recorded."""
    from_ns, to_ns = int(message["from_ns"]), int(message["to_ns"])
    if to_ns <= from_ns:
        raise ControlError("to_ns must be after from_ns", field="to_ns")
    deleted, kept = [], []
    for s in library.segments(from_ns, to_ns):
        if s.start_ns < from_ns or s.end_ns > to_ns:
            continue  # only partly inside: not what was asked for
        if s.state == "open" or is_locked(library.path_of(s)):
            kept.append(s.name)
            continue
        library.delete(s, f"deleted by {by} at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        deleted.append(s.name)
    return {"deleted": deleted, "kept_open": kept}
