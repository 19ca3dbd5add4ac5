"""How hub events become MCAP messages, and back: topics, schemas and bodies.

Thermal frames and audio blocks are protobuf (:mod:`sensorlink.foxglove_protobuf`, in the core:
the live Foxglove bridge sends the same bytes): ``foxglove.RawImage`` with encoding ``32FC1``
(little-endian float32 °C, so the exact values survive) and ``foxglove.RawAudio`` (``pcm-s16``, every channel interleaved), each with
sensorlink's own fields (``sensor``, ``seq``, ``t_mono_ns`` ...) appended, which Foxglove shows
and the replay needs. Protobuf carries the pixels and samples as raw bytes: a message is about
a quarter smaller than JSON's base64 form, and recordings 6-14% smaller per minute, written
1.25-1.5x and replayed 1.4-1.5x as fast (bench/bench_encodings.py). Files written before
(``json`` channels, the bytes as base64 strings with ``"contentEncoding": "base64"``) decode
just the same, and ``encode(..., media="json")`` still writes that form (the benchmark's
baseline).

An alarm's change of state is recorded twice: as a ``sensorlink.AlarmEvent`` (everything the
replay needs) and as a ``foxglove.Log`` line, so Foxglove's Log panel lists the alarms with
their level. With ``[recording] audio = "flac"`` the microphone channels are
``sensorlink.CompressedAudio`` instead (in protobuf, RawAudio's fields under a name of ours):
``format`` ``flac`` and each block a complete FLAC file (:mod:`sensorlink.recording.flac`), decoded bit-exact. Foxglove's
Audio panel plays ``pcm-s16`` RawAudio only (its schema reference: "Only 'pcm-s16' is currently
supported"), so FLAC travels under a schema of our own rather than as a RawAudio it would refuse.

Readings, sensor descriptions, status changes and control actions use ``sensorlink.*`` JSON
Schemas (:mod:`sensorlink.recording.json_schemas`) with message encoding ``json``. Every schema converts under Foxglove's JSON-Schema
decoder (``parseJsonSchema`` in its mcap-support package, and in the Lichtblick fork), which
turns a whole topic into an error for one field it cannot type: each field has a single
``type`` (no unions, no bare ``enum``, no ``null``) and each object lists its ``properties``. So
a number that may be missing is left out (and a non-finite one is left out with a
``<field>_nonfinite`` string saying which), enumerations are typed strings, counters are a list
of ``{name, value}``, and free-form objects (a sensor's ``meta``, a control message) travel as
JSON text in a string field. Files written before this form (``null`` numbers, JSON objects)
decode just the same.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorlink.alarm_event import AlarmEvent
from sensorlink import foxglove_protobuf as pb
from sensorlink.errors import RecordingError
from sensorlink.recording import flac
from sensorlink.recording.json_schemas import (  # re-exported: mm.RAW_IMAGE ...
    ALARM, COMPRESSED_AUDIO, CONTROL, LOG, MESSAGE_ENCODING, NONFINITE, RAW_AUDIO, RAW_IMAGE,
    READING, SCHEMA_ENCODING, SCHEMAS, SENSOR_INFO, SENSOR_STATUS, schema_bytes,
)
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

#: message encoding -> the schema encoding that goes with it (MCAP's well-known pairs)
SCHEMA_ENCODINGS = {MESSAGE_ENCODING: SCHEMA_ENCODING, pb.MESSAGE_ENCODING: pb.SCHEMA_ENCODING}
MEDIA_FORMS = (pb.MESSAGE_ENCODING, MESSAGE_ENCODING)


# Sensor names cannot start with "_" (config.py), so these topics never collide with a sensor's.
TOPIC_SENSORS = "/_sensorlink/sensors"
TOPIC_STATUS = "/_sensorlink/status"
TOPIC_CONTROL = "/_sensorlink/control"
TOPIC_ALARMS = "/_sensorlink/alarms"
TOPIC_ALARM_LOG = "/_sensorlink/alarm_log"
#: foxglove.LogLevel: INFO for a clear or an acknowledgement, WARNING / ERROR for the levels
LOG_INFO, LOG_WARNING, LOG_ERROR = 2, 3, 4

SAMPLE_SCHEMAS = frozenset({RAW_IMAGE, RAW_AUDIO, COMPRESSED_AUDIO, READING})


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """A control action a viewer took (steer, colour map, record ...), as recorded."""

    viewer: str
    message: dict[str, Any]
    t_wall_ns: int


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A foxglove.Log line as recorded (what Foxglove shows; the replay reads AlarmEvents)."""

    level: int
    message: str
    name: str
    t_ns: int


RecordedEvent = (ThermalFrame | AudioBlock | Reading | SensorInfo | SensorStatus | ControlRecord
                 | AlarmEvent | LogRecord)


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
    #: how ``data`` is encoded: "json" or "protobuf"
    message_encoding: str = MESSAGE_ENCODING

    @property
    def schema_encoding(self) -> str:
        return SCHEMA_ENCODINGS[self.message_encoding]

    @property
    def schema_data(self) -> bytes:
        """The schema record's data: JSON Schema text, or a protobuf FileDescriptorSet."""
        if self.message_encoding == pb.MESSAGE_ENCODING:
            return pb.SCHEMA_DATA[self.schema]
        return schema_bytes(self.schema)


# -- encoding ------------------------------------------------------------------------------

def _time(t_ns: int) -> dict[str, int]:
    t_ns = max(int(t_ns), 0)
    return {"sec": t_ns // 1_000_000_000, "nsec": t_ns % 1_000_000_000}


def _json_text_of(obj: Any) -> str:
    # default=str as before: a driver's meta is meant to be plain data; anything else is kept
    # as its text rather than failing the recording.
    return json.dumps(obj, ensure_ascii=False, default=str)


def _dumps(obj: dict[str, Any]) -> bytes:
    # allow_nan=False: a NaN would make the file unreadable to strict JSON parsers (Foxglove).
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _nonfinite_name(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _put_number(body: dict[str, Any], name: str, value: float | None,
                flag: str | None = None) -> None:
    """``body[name] = value`` when finite; left out when None; left out with a flag saying
    which when not finite (JSON has no NaN, and Foxglove no type for a null)."""
    if value is None:
        return
    value = float(value)
    if math.isfinite(value):
        body[name] = value
    else:
        body[flag or f"{name}_nonfinite"] = _nonfinite_name(value)


def _get_number(d: dict[str, Any], name: str, flag: str | None = None) -> float | None:
    """The inverse of :func:`_put_number`; also reads the first form's ``null``."""
    value = d.get(name)
    if value is not None:
        return value
    word = d.get(flag or f"{name}_nonfinite")
    if word is None:
        return None
    if word not in NONFINITE:
        raise ValueError(f"{flag or name + '_nonfinite'} is {word!r}, expected one of {NONFINITE}")
    return float(word)


def _json_field(d: dict[str, Any], name: str) -> Any:
    """A free-form field: JSON text in ``<name>_json`` now, a JSON object in the first form."""
    text = d.get(f"{name}_json")
    if text is None:
        return d[name]
    if not isinstance(text, str):
        raise ValueError(f"{name}_json is not a string")
    return json.loads(text)


def encode(event: RecordedEvent, log_time: int | None = None, *,
           audio: str = "pcm", media: str = pb.MESSAGE_ENCODING) -> EncodedMessage:
    """One hub event (or control action) → the MCAP message that records it.

    ``log_time`` defaults to the event's own wall-clock time; SensorInfo has none, so the
    caller passes the time it saw it. ``media`` is the form of thermal frames and audio
    blocks: "protobuf", or "json" (the form files had before). ``audio="flac"`` records audio
    blocks losslessly compressed instead (arrays of more than eight channels stay PCM: FLAC's
    limit).
    """
    if media not in MEDIA_FORMS:
        raise ValueError(f"media must be one of {MEDIA_FORMS}, got {media!r}")
    if isinstance(event, ThermalFrame) and media == pb.MESSAGE_ENCODING:
        return EncodedMessage(f"/{event.sensor}/thermal", RAW_IMAGE, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, pb.encode_frame(event),
                              {"sensor": event.sensor, "kind": "thermal"}, pb.MESSAGE_ENCODING)
    if isinstance(event, AudioBlock) and media == pb.MESSAGE_ENCODING:
        if audio == "flac" and flac.supports(event.channels):
            pcm = np.ascontiguousarray(event.pcm, dtype="<i2")
            schema, data = COMPRESSED_AUDIO, pb.encode_block(
                event, compressed=("flac", flac.encode(pcm, event.rate)))
        else:
            schema, data = RAW_AUDIO, pb.encode_block(event)
        return EncodedMessage(f"/{event.sensor}/audio", schema, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, data,
                              {"sensor": event.sensor, "kind": "audio"}, pb.MESSAGE_ENCODING)
    if isinstance(event, ThermalFrame):
        celsius = np.ascontiguousarray(event.celsius, dtype="<f4")
        body = {"timestamp": _time(event.t_wall_ns), "frame_id": event.sensor,
                "width": event.width, "height": event.height, "encoding": "32FC1",
                "step": event.width * 4, "data": base64.b64encode(celsius.tobytes()).decode(),
                "sensor": event.sensor, "seq": event.seq, "t_mono_ns": event.t_mono_ns,
                "t_wall_ns": event.t_wall_ns}
        _put_number(body, "ambient_c", event.ambient_c)
        return EncodedMessage(f"/{event.sensor}/thermal", RAW_IMAGE, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, _dumps(body),
                              {"sensor": event.sensor, "kind": "thermal"})
    if isinstance(event, AudioBlock):
        pcm = np.ascontiguousarray(event.pcm, dtype="<i2")
        compressed = audio == "flac" and flac.supports(event.channels)
        body = {"timestamp": _time(event.t_wall_ns - event.duration_ns),
                "data": base64.b64encode(flac.encode(pcm, event.rate) if compressed
                                         else pcm.tobytes()).decode(),
                "format": "flac" if compressed else "pcm-s16",
                "sample_rate": event.rate, "number_of_channels": event.channels,
                "sensor": event.sensor, "seq": event.seq, "t_mono_ns": event.t_mono_ns,
                "t_wall_ns": event.t_wall_ns}
        _put_number(body, "steering_deg", event.steering_deg)
        return EncodedMessage(f"/{event.sensor}/audio", COMPRESSED_AUDIO if compressed
                              else RAW_AUDIO, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, _dumps(body),
                              {"sensor": event.sensor, "kind": "audio"})
    if isinstance(event, Reading):
        body = {"timestamp": _time(event.t_wall_ns), "sensor": event.sensor,
                "channel": event.channel, "quantity": event.quantity, "unit": event.unit,
                "quality": event.quality, "seq": event.seq, "t_mono_ns": event.t_mono_ns,
                "t_wall_ns": event.t_wall_ns}
        _put_number(body, "value", event.value, "nonfinite")
        return EncodedMessage(f"/{event.sensor}/{event.channel}", READING, event.t_wall_ns,
                              event.seq & 0xFFFFFFFF, _dumps(body),
                              {"sensor": event.sensor, "kind": "reading",
                               "channel": event.channel, "quantity": event.quantity,
                               "unit": event.unit})
    if isinstance(event, SensorInfo):
        if log_time is None:
            raise ValueError("SensorInfo has no time of its own: pass log_time")
        body = {"name": event.name, "kind": event.kind, "driver": event.driver,
                "meta_json": _json_text_of(event.meta)}
        return EncodedMessage(TOPIC_SENSORS, SENSOR_INFO, log_time, 0, _dumps(body))
    if isinstance(event, SensorStatus):
        d = event.to_dict()
        d["rate_hz"] = _finite_or_none(d["rate_hz"]) or 0.0
        d["counters"] = [{"name": str(k), "value": v} for k, v in d["counters"].items()]
        return EncodedMessage(TOPIC_STATUS, SENSOR_STATUS,
                              event.t_wall_ns if log_time is None else log_time, 0, _dumps(d))
    if isinstance(event, ControlRecord):
        body = {"viewer": event.viewer, "message_json": _json_text_of(event.message),
                "t_wall_ns": event.t_wall_ns}
        return EncodedMessage(TOPIC_CONTROL, CONTROL,
                              event.t_wall_ns if log_time is None else log_time, 0, _dumps(body))
    if isinstance(event, AlarmEvent):
        body = {k: v for k, v in event.to_dict().items() if k not in ("value", "limit")}
        body["timestamp"] = _time(event.t_wall_ns)
        _put_number(body, "value", event.value)
        _put_number(body, "limit", event.limit)
        return EncodedMessage(TOPIC_ALARMS, ALARM, event.t_wall_ns if log_time is None
                              else log_time, event.seq & 0xFFFFFFFF, _dumps(body),
                              {"rule": event.rule, "stream": event.stream})
    raise TypeError(f"cannot record {type(event).__name__}")


def encode_alarm(event: AlarmEvent) -> list[EncodedMessage]:
    """An alarm event → its sensorlink.AlarmEvent message and its foxglove.Log line."""
    level = LOG_INFO if event.transition in ("cleared", "acknowledged", "reset") else \
        (LOG_ERROR if event.level == "alarm" else LOG_WARNING)
    log = {"timestamp": _time(event.t_wall_ns), "level": level,
           "message": f"[{event.level} {event.transition}] {event.message}"
                      + (f" (by {event.by})" if event.by else ""),
           "name": f"alarm/{event.rule}", "file": event.stream, "line": 0}
    return [encode(event), EncodedMessage(TOPIC_ALARM_LOG, LOG, event.t_wall_ns,
                                          event.seq & 0xFFFFFFFF, _dumps(log))]


# -- decoding ------------------------------------------------------------------------------

def decodable(schema_name: str, message_encoding: str) -> bool:
    """Whether :func:`decode` reads messages of this schema in this encoding."""
    if message_encoding == pb.MESSAGE_ENCODING:
        return schema_name in pb.SCHEMA_DATA
    return message_encoding == MESSAGE_ENCODING and schema_name in SCHEMAS


def decode(schema_name: str, data: bytes, *, topic: str = "?",
           encoding: str = MESSAGE_ENCODING) -> RecordedEvent:
    """The event an MCAP message of ``schema_name`` holds, in ``encoding`` (the channel's
    message encoding); RecordingError names the topic."""
    if encoding == pb.MESSAGE_ENCODING:
        try:
            if schema_name == RAW_IMAGE:
                return pb.decode_frame(data)
            if schema_name == RAW_AUDIO:
                return pb.decode_block(data)
            if schema_name == COMPRESSED_AUDIO:
                return pb.decode_block(data, decompress=flac.decode)
        except ValueError as exc:
            raise RecordingError(f"topic {topic}: cannot decode {schema_name} message: "
                                 f"{exc}") from exc
        raise RecordingError(f"topic {topic}: no protobuf form of {schema_name!r}")
    if encoding != MESSAGE_ENCODING:
        raise RecordingError(f"topic {topic}: unknown message encoding {encoding!r}")
    try:
        d = json.loads(data)
        if schema_name == RAW_IMAGE:
            if d["encoding"] != "32FC1":
                raise RecordingError(f"topic {topic}: image encoding {d['encoding']!r}, "
                                     "expected 32FC1")
            h, w = d["height"], d["width"]
            celsius = np.frombuffer(base64.b64decode(d["data"]), dtype="<f4").reshape(h, w)
            return ThermalFrame(d["sensor"], celsius.astype(np.float32), d["seq"],
                                d["t_mono_ns"], d["t_wall_ns"], _get_number(d, "ambient_c"))
        if schema_name in (RAW_AUDIO, COMPRESSED_AUDIO):
            if d["format"] not in ("pcm-s16", "flac"):
                raise RecordingError(f"topic {topic}: audio format {d['format']!r}, "
                                     "expected pcm-s16 or flac")
            raw, channels = base64.b64decode(d["data"]), d["number_of_channels"]
            if d["format"] == "flac":
                pcm = flac.decode(raw, channels)
            else:
                pcm = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.int16)
            return AudioBlock(d["sensor"], pcm, d["sample_rate"], d["seq"], d["t_mono_ns"],
                              d["t_wall_ns"], _get_number(d, "steering_deg"))
        if schema_name == READING:
            value = _get_number(d, "value", "nonfinite")
            if value is None:
                value = math.nan  # the first form wrote a bare null for NaN
            return Reading(d["sensor"], d["channel"], d["quantity"], value, d["unit"], d["seq"],
                           d["t_mono_ns"], d["t_wall_ns"], d["quality"])
        if schema_name == SENSOR_INFO:
            return SensorInfo.from_dict({**d, "meta": _json_field(d, "meta")})
        if schema_name == SENSOR_STATUS:
            counters = d.get("counters") or {}
            if isinstance(counters, list):
                counters = {c["name"]: c["value"] for c in counters}
            return SensorStatus.from_dict({**d, "counters": counters})
        if schema_name == CONTROL:
            return ControlRecord(d["viewer"], _json_field(d, "message"), d["t_wall_ns"])
        if schema_name == ALARM:
            return AlarmEvent.from_dict({**d, "value": _get_number(d, "value"),
                                         "limit": _get_number(d, "limit")})
        if schema_name == LOG:
            t = d["timestamp"]
            return LogRecord(d["level"], d["message"], d["name"], t["sec"] * 10**9 + t["nsec"])
    except RecordingError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordingError(f"topic {topic}: cannot decode {schema_name} message: {exc!r}") from exc
    raise RecordingError(f"topic {topic}: unknown schema {schema_name!r}")
