"""Wire messages between the service and its viewers, checked against ``schemas/``.

The schemas are the contract: the browser validates what it receives with the same files (served
at ``/schemas/``), and the service validates everything a viewer sends before acting on it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

import jsonschema
import msgpack
import numpy as np

from sensorlink.errors import MessageError
from sensorlink.samples import Reading, ThermalFrame, centi_celsius

#: Negotiated data channels: fixed ids on both ends (no in-band DCEP), one SCTP association.
CHANNELS: dict[str, int] = {"readings": 0, "frames": 1, "control": 2, "status": 3}
MAX_CONTROL_BYTES = 4096
MAX_SIGNALING_BYTES = 65536
#: Keep each frames message below one SCTP-friendly size; big frames go as row bands.
FRAME_BAND_BYTES = 16_000

SCHEMA_FILES = {
    "readings": "readings.schema.json",
    "frame": "frame.schema.json",
    "status": "status.schema.json",
    "view": "view.schema.json",
    "control": "control.schema.json",
    "reply": "control-reply.schema.json",
    "error": "error.schema.json",
    "signaling": "signaling.schema.json",
}


def schema_dir() -> resources.abc.Traversable:
    return resources.files("sensorlink.schemas")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(schema_dir().joinpath(SCHEMA_FILES[name]).read_text(encoding="utf-8"))


@functools.cache
def _validator(name: str, branch_type: str | None = None) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    if branch_type is not None:
        # Validate against the one branch of a oneOf that the message's "type" selects, so the
        # error names the real field instead of "is not valid under any of the given schemas".
        for branch in schema.get("oneOf", ()):
            if branch.get("properties", {}).get("type", {}).get("const") == branch_type:
                merged = {k: v for k, v in schema.items() if k != "oneOf"}
                merged["required"] = sorted(set(schema.get("required", [])) |
                                            set(branch.get("required", [])))
                merged.update({k: v for k, v in branch.items() if k != "required"})
                schema = merged
                break
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def branch_types(name: str) -> list[str]:
    return [b["properties"]["type"]["const"] for b in load_schema(name).get("oneOf", ())]


def validate(name: str, message: Any) -> None:
    """Raise MessageError naming the offending field if ``message`` breaks schema ``name``."""
    msg_id = message.get("id") if isinstance(message, dict) else None
    if not isinstance(msg_id, int) or isinstance(msg_id, bool):
        msg_id = None
    if not isinstance(message, dict):
        raise MessageError(f"expected a map/object, got {type(message).__name__}")
    branch = None
    if "oneOf" in load_schema(name):
        branch = message.get("type")
        if branch not in branch_types(name):
            raise MessageError(f"unknown message type {branch!r}; expected one of "
                               f"{branch_types(name)}", field="type", msg_id=msg_id)
    error = jsonschema.exceptions.best_match(_validator(name, branch).iter_errors(message))
    if error is None:
        return
    path = ".".join(str(p) for p in error.absolute_path) or None
    text = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        if extra:
            path = ".".join(filter(None, [path, extra[0]]))
            text = f"unknown field (allowed: {sorted(allowed)})"
    elif error.validator == "required":
        missing = text.split("'")[1] if "'" in text else None
        path = ".".join(filter(None, [path, missing]))
        text = "required field missing"
    raise MessageError(text, field=path, msg_id=msg_id)


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
              "reply": "reply", "error": "error"}.get(kind)
    if schema is None:
        raise MessageError(f"unknown message type {kind!r}", field="type")
    validate(schema, message)
    return message
