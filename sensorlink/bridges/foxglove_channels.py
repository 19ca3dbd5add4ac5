"""What the live Foxglove feed carries: one channel per stream, and each hub event's message.

- ``/<camera>/thermal``: ``foxglove.RawImage`` in protobuf, ``32FC1`` (float32 °C, exact), the
  same bytes a recording holds (:mod:`sensorlink.foxglove_protobuf`), so the Image panel shows
  it and a reader gets the very values the camera sent, with ``seq`` and ``t_mono_ns`` beside.
- ``/<microphone>/audio``: ``foxglove.RawAudio`` in protobuf (``pcm-s16``, every channel
  interleaved) for the Audio panel.
- ``/<sensor>/<channel>``: each reading stream as JSON, ``value`` a plain number so the Plot
  panel plots ``/probes/t0.value``. A non-finite value has no JSON number: it is left out and
  ``value_nonfinite`` says which ("nan", "inf", "-inf"), as recordings do.
- ``/sensorlink/log``: ``foxglove.Log`` in protobuf: every sensor state change and every alarm
  event (raised, escalated, cleared, acknowledged ...), for the Log panel.

Channels appear when their stream first does (a probe's channels are only known once it
reports), and each carries the schema its messages decode with.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

from sensorlink import foxglove_protobuf as pb
from sensorlink.alarm_event import AlarmEvent
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

LOG_TOPIC = "/sensorlink/log"
READING = "sensorlink.Reading"

_TIME = {"type": "object", "properties": {"sec": {"type": "integer", "minimum": 0},
                                          "nsec": {"type": "integer", "minimum": 0}}}
#: Foxglove's JSON-Schema rules: one type per field, every object lists its properties
READING_SCHEMA = json.dumps({
    "title": READING, "type": "object",
    "properties": {
        "timestamp": _TIME, "sensor": {"type": "string"}, "channel": {"type": "string"},
        "quantity": {"type": "string"}, "value": {"type": "number"},
        "value_nonfinite": {"type": "string"}, "unit": {"type": "string"},
        "quality": {"type": "string"}, "seq": {"type": "integer"},
        "t_mono_ns": {"type": "integer"}}})

#: a sensor state -> Foxglove Log level
STATE_LEVELS = {"starting": "INFO", "connected": "INFO", "reconnecting": "WARNING",
                "failed": "ERROR", "stopped": "INFO"}
#: an alarm event -> Foxglove Log level: an alarm is an ERROR, a warning a WARNING
ALARM_LEVELS = {"alarm": "ERROR", "warning": "WARNING"}


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel as the Advertise message describes it (without the id)."""

    topic: str
    encoding: str
    schema_name: str
    #: the schema: JSON Schema text, or a FileDescriptorSet (sent base64, as the protocol says)
    schema: bytes
    schema_encoding: str

    def advertised(self, channel_id: int) -> dict[str, Any]:
        text = self.schema.decode() if self.schema_encoding == "jsonschema" \
            else base64.b64encode(self.schema).decode("ascii")
        return {"id": channel_id, "topic": self.topic, "encoding": self.encoding,
                "schemaName": self.schema_name, "schema": text,
                "schemaEncoding": self.schema_encoding}


LOG_CHANNEL = ChannelSpec(LOG_TOPIC, "protobuf", pb.LOG, pb.LOG_SCHEMA_DATA, "protobuf")


def ns_time(t_ns: int) -> dict[str, int]:
    """A time as the protocol's JSON writes it."""
    sec, nsec = divmod(max(int(t_ns), 0), 1_000_000_000)
    return {"sec": sec, "nsec": nsec}


def _reading_body(r: Reading) -> bytes:
    body: dict[str, Any] = {"timestamp": ns_time(r.t_wall_ns), "sensor": r.sensor,
                            "channel": r.channel, "quantity": r.quantity, "unit": r.unit,
                            "quality": r.quality, "seq": r.seq, "t_mono_ns": r.t_mono_ns}
    value = float(r.value)
    if math.isfinite(value):
        body["value"] = value
    else:
        body["value_nonfinite"] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(body, separators=(",", ":")).encode()


def status_line(status: SensorStatus) -> str:
    return f"{status.sensor}: {status.state}" + (f" ({status.detail})" if status.detail else "")


def alarm_line(event: AlarmEvent) -> str:
    by = f" by {event.by}" if event.by else ""
    return f"{event.level} {event.transition}{by}: {event.rule} on {event.stream}: {event.message}"


def _image(sensor: str) -> ChannelSpec:
    return ChannelSpec(f"/{sensor}/thermal", "protobuf", "foxglove.RawImage",
                       pb.SCHEMA_DATA["foxglove.RawImage"], "protobuf")


def _audio(sensor: str) -> ChannelSpec:
    return ChannelSpec(f"/{sensor}/audio", "protobuf", "foxglove.RawAudio",
                       pb.SCHEMA_DATA["foxglove.RawAudio"], "protobuf")


def channels_for(info: SensorInfo) -> list[ChannelSpec]:
    """The channels a described sensor will send on, advertised before its first sample
    (a paused replay shows its topics at once); reading streams appear with their first."""
    if info.kind == "thermal":
        return [_image(info.name)]
    if info.kind == "microphone":
        return [_audio(info.name)]
    return []


def message_for(event: object) -> tuple[ChannelSpec, int, bytes] | None:
    """(channel, log time, payload) for a hub event the feed carries; None for others
    (sensor descriptions travel as the channels themselves: :func:`channels_for`)."""
    if isinstance(event, ThermalFrame):
        return _image(event.sensor), event.t_wall_ns, pb.encode_frame(event)
    if isinstance(event, AudioBlock):
        return _audio(event.sensor), event.t_wall_ns, pb.encode_block(event)
    if isinstance(event, Reading):
        spec = ChannelSpec(f"/{event.sensor}/{event.channel}", "json", READING,
                           READING_SCHEMA.encode(), "jsonschema")
        return spec, event.t_wall_ns, _reading_body(event)
    if isinstance(event, SensorStatus):
        return LOG_CHANNEL, event.t_wall_ns, pb.encode_log(
            event.t_wall_ns, STATE_LEVELS.get(event.state, "INFO"), event.sensor,
            status_line(event))
    if isinstance(event, AlarmEvent):
        level = ALARM_LEVELS.get(event.level, "WARNING") if event.active else "INFO"
        return LOG_CHANNEL, event.t_wall_ns, pb.encode_log(
            event.t_wall_ns, level, f"alarm/{event.rule}", alarm_line(event))
    return None
