"""Wire messages between the service and its viewers, checked against ``schemas/``.

The schemas are the contract: the browser validates what it receives with the same files (served
at ``/schemas/``), and the service validates everything a viewer sends before acting on it
(:mod:`sensorlink.validation`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgpack
import numpy as np

from sensorlink.errors import MessageError
from sensorlink.samples import Reading, ThermalFrame, centi_celsius
from sensorlink.validation import validate

#: Negotiated data channels: fixed ids on both ends (no in-band DCEP), one SCTP association.
CHANNELS: dict[str, int] = {"readings": 0, "frames": 1, "control": 2, "status": 3}
MAX_CONTROL_BYTES = 4096
MAX_SIGNALING_BYTES = 65536
#: Keep each frames message below one SCTP-friendly size; big frames go as row bands.
FRAME_BAND_BYTES = 16_000

# -- control channel ---------------------------------------------------------------------

def decode_control(data: bytes | str) -> dict[str, Any]:
    """Bytes from the control channel → a validated control message (or MessageError)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_CONTROL_BYTES:
        raise MessageError(f"message of {len(data)} bytes refused: the limit is "
                           f"{MAX_CONTROL_BYTES}")
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise MessageError(f"not valid msgpack ({type(exc).__name__})") from exc
    validate("control", message)
    return message


def encode_reply(msg_id: int, result: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"type": "reply", "id": msg_id, "ok": True}
    if result is not None:
        message["result"] = result
    return msgpack.packb(message)


def error_message(error: str, *, msg_id: int | None = None, field: str | None = None) -> dict[str, Any]:
    return {"type": "error", "id": msg_id, "error": error[:1000], "field": field}


def encode_error(error: str, *, msg_id: int | None = None, field: str | None = None) -> bytes:
    return msgpack.packb(error_message(error, msg_id=msg_id, field=field))


# -- readings ----------------------------------------------------------------------------

def encode_readings(readings: Iterable[Reading], *, replay: bool = False) -> bytes:
    # Rows built inline ([stream, seq, t_wall_ns, value, unit, quality]): this runs for every
    # reading sent, and a helper call plus the ``stream`` property cost ~35% of the encode.
    message: dict[str, Any] = {"type": "readings", "readings": [
        [f"{r.sensor}/{r.channel}", r.seq, r.t_wall_ns, float(r.value), r.unit, r.quality]
        for r in readings]}
    if replay:
        message["replay"] = True
    return msgpack.packb(message)


# -- thermal frames ----------------------------------------------------------------------

def encode_frame(frame: ThermalFrame, colour_range: tuple[float, float], *,
                 replay: bool = False, band_bytes: int = FRAME_BAND_BYTES) -> list[bytes]:
    """One frame → one or more messages (row bands of at most ``band_bytes`` of pixels)."""
    raw, scale = centi_celsius(frame.celsius)
    row_bytes = frame.width * 2
    rows_per_band = max(1, band_bytes // row_bytes)
    out = []
    for y0 in range(0, frame.height, rows_per_band):
        rows = min(rows_per_band, frame.height - y0)
        message: dict[str, Any] = {
            "type": "frame", "sensor": frame.sensor, "seq": frame.seq,
            "t_wall_ns": frame.t_wall_ns, "width": frame.width, "height": frame.height,
            "y0": y0, "rows": rows, "scale": scale,
            "data": raw[y0 * row_bytes:(y0 + rows) * row_bytes],
            "ambient_c": frame.ambient_c,
            "range": [float(colour_range[0]), float(colour_range[1])],
        }
        if replay:
            message["replay"] = True
        out.append(msgpack.packb(message))
    return out


# -- monitoring ----------------------------------------------------------------------------

def encode_alarms(active: Iterable[Any], event: Any = None,
                  rules: list[dict[str, Any]] | None = None) -> bytes:
    """The alarm list (status channel): every alarm not over, the event that changed it (None
    for a snapshot), and on connect the rules they come from (schemas/alarms.schema.json)."""
    message: dict[str, Any] = {"type": "alarms", "active": [a.to_dict() for a in active]}
    if event is not None:
        message["event"] = event.to_dict()
    if rules is not None:
        message["rules"] = rules
    return msgpack.packb(message)


def encode_spectrum(row: Any, *, replay: bool = False) -> bytes:
    """One spectrogram row of a microphone's beam (frames channel, schemas/spectrum.schema.json)."""
    message: dict[str, Any] = {
        "type": "spectrum", "sensor": row.sensor, "seq": row.seq, "t_wall_ns": row.t_wall_ns,
        "f_max_hz": float(row.f_max_hz), "floor_db": row.floor_db, "ceil_db": row.ceil_db,
        "levels": row.levels, "angle_deg": row.angle_deg}
    if replay:
        message["replay"] = True
    return msgpack.packb(message)


class FrameAssembler:
    """Viewer side: joins row bands back into a °C array; a frame with a lost band is dropped."""

    def __init__(self) -> None:
        self._partial: dict[str, tuple[int, np.ndarray, set[int]]] = {}
        self.incomplete = 0

    def add(self, message: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray] | None:
        sensor, seq = message["sensor"], message["seq"]
        h, w, y0, rows = message["height"], message["width"], message["y0"], message["rows"]
        band = np.frombuffer(message["data"], dtype="<i2").reshape(rows, w) / message["scale"]
        if rows == h:
            return message, band.astype(np.float32)
        current = self._partial.get(sensor)
        if current is None or current[0] != seq:
            if current is not None:
                self.incomplete += 1
            current = (seq, np.full((h, w), np.nan, np.float32), set())
            self._partial[sensor] = current
        current[1][y0:y0 + rows] = band
        current[2].update(range(y0, y0 + rows))
        if len(current[2]) == h:
            del self._partial[sensor]
            return message, current[1]
        return None


def decode_message(data: bytes | str) -> dict[str, Any]:
    """Viewer side: any service → viewer data-channel message, validated by its type."""
    message = msgpack.unpackb(data if isinstance(data, bytes) else data.encode(), raw=False)
    kind = message.get("type") if isinstance(message, dict) else None
    schema = {"readings": "readings", "frame": "frame", "status": "status", "view": "view",
              "reply": "reply", "error": "error", "alarms": "alarms",
              "spectrum": "spectrum"}.get(kind)
    if schema is None:
        raise MessageError(f"unknown message type {kind!r}", field="type")
    validate(schema, message)
    return message
