"""How hub events become MCAP messages, and back: topics, JSON Schemas and the JSON bodies.

Every channel uses message encoding ``json`` with schema encoding ``jsonschema``, which Foxglove
decodes for its well-known schemas as well as for our own (bytes travel as base64 strings with
``"contentEncoding": "base64"``, the convention Foxglove documents for JSON). Thermal frames are
``foxglove.RawImage`` with encoding ``32FC1`` (little-endian float32 °C, so the exact values
survive) and audio is ``foxglove.RawAudio`` (``pcm-s16``, every channel interleaved); both carry
sensorlink's own fields (``sensor``, ``seq``, ``t_mono_ns`` ...) next to Foxglove's, which Foxglove
ignores and the replay needs. Readings, sensor descriptions, status changes and control actions
use ``sensorlink.*`` schemas.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorlink.errors import RecordingError
from sensorlink.samples import QUALITIES, AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import DRIVER_STATES, SensorStatus

SCHEMA_ENCODING = "jsonschema"
MESSAGE_ENCODING = "json"

RAW_IMAGE = "foxglove.RawImage"
RAW_AUDIO = "foxglove.RawAudio"
READING = "sensorlink.Reading"
SENSOR_INFO = "sensorlink.SensorInfo"
SENSOR_STATUS = "sensorlink.SensorStatus"
CONTROL = "sensorlink.ControlAction"

# Sensor names cannot start with "_" (config.py), so these topics never collide with a sensor's.
TOPIC_SENSORS = "/_sensorlink/sensors"
TOPIC_STATUS = "/_sensorlink/status"
TOPIC_CONTROL = "/_sensorlink/control"

SAMPLE_SCHEMAS = frozenset({RAW_IMAGE, RAW_AUDIO, READING})


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """A control action a viewer took (steer, colour map, record ...), as recorded."""

    viewer: str
    message: dict[str, Any]
    t_wall_ns: int


RecordedEvent = ThermalFrame | AudioBlock | Reading | SensorInfo | SensorStatus | ControlRecord


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    topic: str
    schema: str
    log_time: int
    #: MCAP's uint32 message sequence: the sample's seq (wrapped), so tools see gaps without decoding
    sequence: int
    data: bytes
    #: channel metadata, used when this topic is first seen
    channel_metadata: dict[str, str] = field(default_factory=dict)


# -- JSON Schemas --------------------------------------------------------------------------

_TIME = {"type": "object", "title": "time", "required": ["sec", "nsec"],
         "properties": {"sec": {"type": "integer", "minimum": 0},
                        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999}}}
_BYTES = {"type": "string", "contentEncoding": "base64"}
_NS = {"type": "integer"}
_SEQ = {"type": "integer", "minimum": 0}


def _schema(name: str, description: str, properties: dict[str, Any],
            required: list[str]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": name,
            "description": description, "type": "object", "properties": properties,
            "required": required}


SCHEMAS: dict[str, dict[str, Any]] = {
    RAW_IMAGE: _schema(RAW_IMAGE, "A raw image (Foxglove well-known schema) plus sensorlink fields", {
        "timestamp": {**_TIME, "description": "Timestamp of image"},
        "frame_id": {"type": "string", "description": "Frame of reference: the sensor name"},
        "width": {"type": "integer", "minimum": 0},
        "height": {"type": "integer", "minimum": 0},
        "encoding": {"type": "string", "description": "32FC1: little-endian float32 °C"},
        "step": {"type": "integer", "minimum": 0},
        "data": {**_BYTES, "description": "Raw image data"},
        "sensor": {"type": "string"}, "seq": _SEQ, "t_mono_ns": _NS, "t_wall_ns": _NS,
        "ambient_c": {"type": ["number", "null"]},
    }, ["timestamp", "frame_id", "width", "height", "encoding", "step", "data"]),
    RAW_AUDIO: _schema(RAW_AUDIO, "A block of PCM (Foxglove well-known schema) plus sensorlink fields", {
        "timestamp": {**_TIME, "description": "Timestamp of the start of the audio block"},
        "data": {**_BYTES, "description": "Interleaved little-endian samples"},
        "format": {"type": "string", "description": "Audio format: pcm-s16"},
        "sample_rate": {"type": "integer", "minimum": 0},
        "number_of_channels": {"type": "integer", "minimum": 0},
        "sensor": {"type": "string"}, "seq": _SEQ, "t_mono_ns": _NS, "t_wall_ns": _NS,
        "steering_deg": {"type": ["number", "null"]},
    }, ["timestamp", "data", "format", "sample_rate", "number_of_channels"]),
    READING: _schema(READING, "One scalar reading of a sensor stream", {
        "timestamp": _TIME, "sensor": {"type": "string"}, "channel": {"type": "string"},
        "quantity": {"type": "string"},
        "value": {"type": ["number", "null"], "description": "null when not finite (see nonfinite)"},
        "nonfinite": {"enum": ["nan", "inf", "-inf"]},
        "unit": {"type": "string"}, "quality": {"enum": list(QUALITIES)},
        "seq": _SEQ, "t_mono_ns": _NS, "t_wall_ns": _NS,
    }, ["sensor", "channel", "quantity", "value", "unit", "quality", "seq", "t_mono_ns",
        "t_wall_ns"]),
    SENSOR_INFO: _schema(SENSOR_INFO, "A source described a sensor to the hub", {
        "name": {"type": "string"}, "kind": {"enum": ["thermal", "probe", "microphone"]},
        "driver": {"type": "string"}, "meta": {"type": "object"},
    }, ["name", "kind", "driver", "meta"]),
    SENSOR_STATUS: _schema(SENSOR_STATUS, "A sensor changed state", {
        "sensor": {"type": "string"}, "state": {"enum": list(DRIVER_STATES)},
        "detail": {"type": "string"},
        "counters": {"type": "object", "additionalProperties": {"type": "integer"}},
        "rate_hz": {"type": "number"}, "t_wall_ns": _NS,
    }, ["sensor", "state", "detail", "counters", "rate_hz", "t_wall_ns"]),
    CONTROL: _schema(CONTROL, "A viewer's control action, as received", {
        "viewer": {"type": "string"}, "message": {"type": "object"}, "t_wall_ns": _NS,
    }, ["viewer", "message", "t_wall_ns"]),
}


def schema_bytes(name: str) -> bytes:
    return json.dumps(SCHEMAS[name], ensure_ascii=False).encode()


# -- encoding ------------------------------------------------------------------------------

def _time(t_ns: int) -> dict[str, int]:
    t_ns = max(int(t_ns), 0)
    return {"sec": t_ns // 1_000_000_000, "nsec": t_ns % 1_000_000_000}


def _dumps(obj: dict[str, Any]) -> bytes:
    # allow_nan=False: a NaN would make the file unreadable to strict JSON parsers (Foxglove).
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def encode(event: RecordedEvent, log_time: int | None = None) -> EncodedMessage:
    """One hub event (or control action) → the MCAP message that records it.

    ``log_time`` defaults to the event's own wall-clock time; SensorInfo has none, so the
    caller passes the time it saw it.
    """
    if isinstance(event, ThermalFrame):
        celsius = np.ascontiguousarray(event.celsius, dtype="<f4")
        body = {"timestamp": _time(event.t_wall_ns), "frame_id": event.sensor,
                "width": event.width, "height": event.height, "encoding": "32FC1",
                "step": event.width * 4, "data": base64.b64encode(celsius.tobytes()).decode(),
                "sensor": event.sensor, "seq": event.seq, "t_mono_ns": event.t_mono_ns,
                "t_wall_ns": event.t_wall_ns, "ambient_c": _finite_or_none(event.ambient_c)}
        return EncodedMessage(f"/{event.sensor}/thermal", RAW_IMAGE, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, _dumps(body),
                              {"sensor": event.sensor, "kind": "thermal"})
    if isinstance(event, AudioBlock):
        pcm = np.ascontiguousarray(event.pcm, dtype="<i2")
        body = {"timestamp": _time(event.t_wall_ns - event.duration_ns),
                "data": base64.b64encode(pcm.tobytes()).decode(), "format": "pcm-s16",
                "sample_rate": event.rate, "number_of_channels": event.channels,
                "sensor": event.sensor, "seq": event.seq, "t_mono_ns": event.t_mono_ns,
                "t_wall_ns": event.t_wall_ns, "steering_deg": _finite_or_none(event.steering_deg)}
        return EncodedMessage(f"/{event.sensor}/audio", RAW_AUDIO, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, _dumps(body),
                              {"sensor": event.sensor, "kind": "audio"})
    if isinstance(event, Reading):
        value = float(event.value)
        body = {"timestamp": _time(event.t_wall_ns), "sensor": event.sensor,
                "channel": event.channel, "quantity": event.quantity, "value": None,
                "unit": event.unit, "quality": event.quality, "seq": event.seq,
                "t_mono_ns": event.t_mono_ns, "t_wall_ns": event.t_wall_ns}
        if math.isfinite(value):
            body["value"] = value
        else:
            body["nonfinite"] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return EncodedMessage(f"/{event.sensor}/{event.channel}", READING, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, _dumps(body),
                              {"sensor": event.sensor, "kind": "reading",
                               "channel": event.channel, "quantity": event.quantity,
                               "unit": event.unit})
    if isinstance(event, SensorInfo):
        if log_time is None:
            raise ValueError("SensorInfo has no time of its own: pass log_time")
        return EncodedMessage(TOPIC_SENSORS, SENSOR_INFO, log_time, 0,
                              json.dumps(event.to_dict(), ensure_ascii=False, default=str).encode())
    if isinstance(event, SensorStatus):
        d = event.to_dict()
        d["rate_hz"] = _finite_or_none(d["rate_hz"]) or 0.0
        return EncodedMessage(TOPIC_STATUS, SENSOR_STATUS,
                              event.t_wall_ns if log_time is None else log_time, 0, _dumps(d))
    if isinstance(event, ControlRecord):
        body = {"viewer": event.viewer, "message": event.message, "t_wall_ns": event.t_wall_ns}
        return EncodedMessage(TOPIC_CONTROL, CONTROL,
                              event.t_wall_ns if log_time is None else log_time, 0,
                              json.dumps(body, ensure_ascii=False, default=str).encode())
    raise TypeError(f"cannot record {type(event).__name__}")


# -- decoding ------------------------------------------------------------------------------

def decode(schema_name: str, data: bytes, *, topic: str = "?") -> RecordedEvent:
    """The event an MCAP message of ``schema_name`` holds; RecordingError names the topic."""
    try:
        d = json.loads(data)
        if schema_name == RAW_IMAGE:
            if d["encoding"] != "32FC1":
                raise RecordingError(f"topic {topic}: image encoding {d['encoding']!r}, "
                                     "expected 32FC1")
            h, w = d["height"], d["width"]
            celsius = np.frombuffer(base64.b64decode(d["data"]), dtype="<f4").reshape(h, w)
            return ThermalFrame(d["sensor"], celsius.astype(np.float32), d["seq"],
                                d["t_mono_ns"], d["t_wall_ns"], d.get("ambient_c"))
        if schema_name == RAW_AUDIO:
            if d["format"] != "pcm-s16":
                raise RecordingError(f"topic {topic}: audio format {d['format']!r}, "
                                     "expected pcm-s16")
            pcm = np.frombuffer(base64.b64decode(d["data"]), dtype="<i2")
            pcm = pcm.reshape(-1, d["number_of_channels"]).astype(np.int16)
            return AudioBlock(d["sensor"], pcm, d["sample_rate"], d["seq"], d["t_mono_ns"],
                              d["t_wall_ns"], d.get("steering_deg"))
        if schema_name == READING:
            value = d["value"]
            if value is None:
                value = float(d.get("nonfinite", "nan"))
            return Reading(d["sensor"], d["channel"], d["quantity"], value, d["unit"], d["seq"],
                           d["t_mono_ns"], d["t_wall_ns"], d["quality"])
        if schema_name == SENSOR_INFO:
            return SensorInfo.from_dict(d)
        if schema_name == SENSOR_STATUS:
            return SensorStatus.from_dict(d)
        if schema_name == CONTROL:
            return ControlRecord(d["viewer"], d["message"], d["t_wall_ns"])
    except RecordingError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordingError(f"topic {topic}: cannot decode {schema_name} message: {exc!r}") from exc
    raise RecordingError(f"topic {topic}: unknown schema {schema_name!r}")
