"""The JSON Schemas of the MCAP channels sensorlink writes in ``json`` (schema encoding
``jsonschema``), and the schema names of every channel.

Every schema converts under Foxglove's JSON-Schema decoder (``parseJsonSchema`` in its
mcap-support package, and in the Lichtblick fork): see :mod:`sensorlink.recording.messages`
for the rules that follow from it.
"""

from __future__ import annotations

import json
from typing import Any

from sensorlink.alarm_event import ALARM_LEVELS, ALARM_TRANSITIONS
from sensorlink.samples import QUALITIES
from sensorlink.status import DRIVER_STATES

SCHEMA_ENCODING = "jsonschema"
MESSAGE_ENCODING = "json"

RAW_IMAGE = "foxglove.RawImage"
RAW_AUDIO = "foxglove.RawAudio"
COMPRESSED_AUDIO = "sensorlink.CompressedAudio"
READING = "sensorlink.Reading"
SENSOR_INFO = "sensorlink.SensorInfo"
SENSOR_STATUS = "sensorlink.SensorStatus"
CONTROL = "sensorlink.ControlAction"
ALARM = "sensorlink.AlarmEvent"
LOG = "foxglove.Log"


# -- JSON Schemas --------------------------------------------------------------------------

_TIME = {"type": "object", "title": "time", "required": ["sec", "nsec"],
         "properties": {"sec": {"type": "integer", "minimum": 0},
                        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999}}}
_BYTES = {"type": "string", "contentEncoding": "base64"}
_NS = {"type": "integer"}
_SEQ = {"type": "integer", "minimum": 0}
NONFINITE = ("nan", "inf", "-inf")
_NONFINITE = {"type": "string", "enum": list(NONFINITE),
              "description": "present instead of the number when it is not finite"}


def _json_text(what: str) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json",
            "description": f"{what}, as JSON text (free-form: no fixed properties)"}


def _optional_number(name: str, description: str) -> dict[str, Any]:
    """A number that may be missing (left out) or not finite (left out, ``<name>_nonfinite``)."""
    return {name: {"type": "number", "description": f"{description}; absent when unknown"},
            f"{name}_nonfinite": _NONFINITE}


def _enum(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _schema(name: str, description: str, properties: dict[str, Any],
            required: list[str]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": name,
            "description": description, "type": "object", "properties": properties,
            "required": required}


_AUDIO_REQUIRED = ["timestamp", "data", "format", "sample_rate", "number_of_channels"]


def _audio_fields(data: str, audio_format: str) -> dict[str, Any]:
    """PCM and FLAC blocks share every field but what ``data`` holds and ``format``."""
    return {
        "timestamp": {**_TIME, "description": "Timestamp of the start of the audio block"},
        "data": {**_BYTES, "description": data},
        "format": {"type": "string", "description": f"Audio format: {audio_format}"},
        "sample_rate": {"type": "integer", "minimum": 0},
        "number_of_channels": {"type": "integer", "minimum": 0},
        "sensor": {"type": "string"}, "seq": _SEQ, "t_mono_ns": _NS, "t_wall_ns": _NS,
        **_optional_number("steering_deg", "where the beam was steered, degrees"),
    }

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
        **_optional_number("ambient_c", "the camera's own ambient temperature, °C"),
    }, ["timestamp", "frame_id", "width", "height", "encoding", "step", "data"]),
    RAW_AUDIO: _schema(RAW_AUDIO, "A block of PCM (Foxglove well-known schema) plus sensorlink fields",
                       _audio_fields("Interleaved little-endian samples", "pcm-s16"),
                       list(_AUDIO_REQUIRED)),
    READING: _schema(READING, "One scalar reading of a sensor stream", {
        "timestamp": _TIME, "sensor": {"type": "string"}, "channel": {"type": "string"},
        "quantity": {"type": "string"},
        "value": {"type": "number", "description": "absent when not finite (see nonfinite)"},
        "nonfinite": _NONFINITE,
        "unit": {"type": "string"}, "quality": _enum(QUALITIES),
        "seq": _SEQ, "t_mono_ns": _NS, "t_wall_ns": _NS,
    }, ["sensor", "channel", "quantity", "unit", "quality", "seq", "t_mono_ns", "t_wall_ns"]),
    SENSOR_INFO: _schema(SENSOR_INFO, "A source described a sensor to the hub", {
        "name": {"type": "string"}, "kind": _enum(["thermal", "probe", "microphone"]),
        "driver": {"type": "string"},
        "meta_json": _json_text("what the driver says about the sensor (size, rate, geometry)"),
    }, ["name", "kind", "driver", "meta_json"]),
    SENSOR_STATUS: _schema(SENSOR_STATUS, "A sensor changed state", {
        "sensor": {"type": "string"}, "state": _enum(DRIVER_STATES),
        "detail": {"type": "string"},
        "counters": {"type": "array", "description": "growing totals, in the driver's order",
                     "items": {"type": "object", "required": ["name", "value"],
                               "properties": {"name": {"type": "string"},
                                              "value": {"type": "integer"}}}},
        "rate_hz": {"type": "number"}, "t_wall_ns": _NS,
    }, ["sensor", "state", "detail", "counters", "rate_hz", "t_wall_ns"]),
    COMPRESSED_AUDIO: _schema(COMPRESSED_AUDIO, "A block of losslessly compressed audio",
                              _audio_fields("The block as a complete FLAC file (int16 samples)",
                                            "flac"), list(_AUDIO_REQUIRED)),
    CONTROL: _schema(CONTROL, "A viewer's control action, as received", {
        "viewer": {"type": "string"}, "message_json": _json_text("the control message"),
        "t_wall_ns": _NS,
    }, ["viewer", "message_json", "t_wall_ns"]),
    ALARM: _schema(ALARM, "An alarm rule's change of state (sensorlink.alarm_event.AlarmEvent)", {
        "timestamp": _TIME, "rule": {"type": "string"}, "stream": {"type": "string"},
        "transition": _enum(ALARM_TRANSITIONS), "level": _enum(ALARM_LEVELS),
        "active": {"type": "boolean"}, "acknowledged": {"type": "boolean"},
        "latching": {"type": "boolean"}, "message": {"type": "string"},
        "by": {"type": "string", "description": "who acknowledged"},
        "seq": _SEQ, "t_mono_ns": _NS, "t_wall_ns": _NS, "since_wall_ns": _NS,
        **_optional_number("value", "the value that caused the change"),
        **_optional_number("limit", "the limit it crossed"),
    }, ["timestamp", "rule", "stream", "transition", "level", "active", "acknowledged",
        "message", "seq", "t_mono_ns", "t_wall_ns", "since_wall_ns"]),
    LOG: {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": LOG,
          "description": "A log message (Foxglove well-known schema)", "type": "object",
          "properties": {
              "timestamp": {**_TIME, "description": "Timestamp of log message"},
              "level": {"title": "foxglove.LogLevel", "description": "Log level", "oneOf": [
                  {"title": title, "const": value} for value, title in enumerate(
                      ("UNKNOWN", "DEBUG", "INFO", "WARNING", "ERROR", "FATAL"))]},
              "message": {"type": "string"}, "name": {"type": "string"},
              "file": {"type": "string"}, "line": {"type": "integer", "minimum": 0}},
          "required": ["timestamp", "level", "message", "name", "file", "line"]},
}


def schema_bytes(name: str) -> bytes:
    return json.dumps(SCHEMAS[name], ensure_ascii=False).encode()
