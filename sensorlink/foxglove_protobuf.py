"""Thermal frames and audio blocks as protobuf: ``foxglove.RawImage`` and ``foxglove.RawAudio``
with sensorlink's own fields added.

Foxglove recommends protobuf for images: the pixels travel as raw bytes, where JSON needs
base64 (a third more bytes, and an encode and a decode on every message). The messages keep
Foxglove's well-known names and fields, taken from Foxglove's compiled schemas
(``foxglove-schemas-protobuf``), so the Image and Audio panels show them; sensorlink's fields
(``sensor``, ``seq``, ``t_mono_ns``, ``t_wall_ns``, the camera's ambient or the beam's steering
angle) are appended from field number 100 on. Each channel's schema is a FileDescriptorSet
that holds those fields too, so any protobuf reader decodes them by name, and one that only
knows Foxglove's own schema skips them as unknown fields.

Values stay exact: the pixels are the frame's little-endian float32 °C, the audio its int16
PCM, both byte for byte; optional numbers (ambient, steering) have presence, so "unknown" and
a NaN stay apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from foxglove_schemas_protobuf import Log_pb2, RawAudio_pb2, RawImage_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from sensorlink.samples import AudioBlock, ThermalFrame

SCHEMA_ENCODING = "protobuf"
MESSAGE_ENCODING = "protobuf"

_F = descriptor_pb2.FieldDescriptorProto
#: sensorlink's fields, the same numbers in both messages (the last one differs by message)
_EXTRA = [("sensor", 100, _F.TYPE_STRING), ("seq", 101, _F.TYPE_UINT64),
          ("t_mono_ns", 102, _F.TYPE_INT64), ("t_wall_ns", 103, _F.TYPE_INT64)]


def _extended(official: Any, optional_double: str) -> descriptor_pb2.FileDescriptorProto:
    """Foxglove's file for ``official`` with sensorlink's fields appended to its message."""
    proto = descriptor_pb2.FileDescriptorProto()
    official.DESCRIPTOR.file.CopyToProto(proto)
    # Our own file name: the official file may sit in the same process's default pool.
    proto.name = f"sensorlink/{proto.name}"
    message = proto.message_type[0]
    for name, number, kind in _EXTRA:
        message.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    # proto3 "optional": a synthetic one-field oneof gives the number presence.
    message.oneof_decl.add(name=f"_{optional_double}")
    message.field.add(name=optional_double, number=104, type=_F.TYPE_DOUBLE,
                      label=_F.LABEL_OPTIONAL, proto3_optional=True,
                      oneof_index=len(message.oneof_decl) - 1)
    return proto


_TIMESTAMP_FILE = descriptor_pb2.FileDescriptorProto()
timestamp_pb2.DESCRIPTOR.CopyToProto(_TIMESTAMP_FILE)


def _descriptor_set(file: descriptor_pb2.FileDescriptorProto) -> bytes:
    """What a channel's schema holds: the file and the one file it imports."""
    return descriptor_pb2.FileDescriptorSet(file=[_TIMESTAMP_FILE, file]).SerializeToString()


# A pool of our own, so the extended messages never meet Foxglove's in the default pool.
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_TIMESTAMP_FILE)
_IMAGE_FILE = _extended(RawImage_pb2.RawImage, "ambient_c")
_AUDIO_FILE = _extended(RawAudio_pb2.RawAudio, "steering_deg")
# Compressed (FLAC) audio: RawAudio's very fields under a name of our own, so Foxglove's Audio
# panel (pcm-s16 only) never takes it for audio it can play, while any reader decodes it.
_COMPRESSED_FILE = descriptor_pb2.FileDescriptorProto()
_COMPRESSED_FILE.CopyFrom(_AUDIO_FILE)
_COMPRESSED_FILE.name, _COMPRESSED_FILE.package = "sensorlink/CompressedAudio.proto", "sensorlink"
_COMPRESSED_FILE.message_type[0].name = "CompressedAudio"
for _file in (_IMAGE_FILE, _AUDIO_FILE, _COMPRESSED_FILE):
    _POOL.Add(_file)
RawImage = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("foxglove.RawImage"))
RawAudio = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("foxglove.RawAudio"))
CompressedAudio = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("sensorlink.CompressedAudio"))

#: schema name -> the FileDescriptorSet a channel of that schema carries
SCHEMA_DATA = {"foxglove.RawImage": _descriptor_set(_IMAGE_FILE),
               "foxglove.RawAudio": _descriptor_set(_AUDIO_FILE),
               "sensorlink.CompressedAudio": _descriptor_set(_COMPRESSED_FILE)}

# foxglove.Log as Foxglove compiled it (status changes and alarms on the live feed).
_LOG_FILE = descriptor_pb2.FileDescriptorProto()
Log_pb2.DESCRIPTOR.CopyToProto(_LOG_FILE)
LOG = "foxglove.Log"
LOG_SCHEMA_DATA = _descriptor_set(_LOG_FILE)
#: Foxglove's Log levels by name (DEBUG 1 ... FATAL 5)
LOG_LEVELS = dict(Log_pb2.Log.Level.items())


def _stamp(message: Any, t_ns: int) -> None:
    t_ns = max(int(t_ns), 0)
    message.timestamp.seconds, message.timestamp.nanos = divmod(t_ns, 1_000_000_000)


def encode_frame(frame: ThermalFrame) -> bytes:
    celsius = np.ascontiguousarray(frame.celsius, dtype="<f4")
    m = RawImage(frame_id=frame.sensor, width=frame.width, height=frame.height,
                 encoding="32FC1", step=frame.width * 4, data=celsius.tobytes(),
                 sensor=frame.sensor, seq=frame.seq, t_mono_ns=frame.t_mono_ns,
                 t_wall_ns=frame.t_wall_ns)
    _stamp(m, frame.t_wall_ns)
    if frame.ambient_c is not None:
        m.ambient_c = frame.ambient_c
    return m.SerializeToString()


def encode_block(block: AudioBlock, *, compressed: tuple[str, bytes] | None = None) -> bytes:
    """A RawAudio of the block's PCM; or, ``compressed=(format, data)``, a CompressedAudio."""
    if compressed is None:
        cls, audio_format = RawAudio, "pcm-s16"
        data = np.ascontiguousarray(block.pcm, dtype="<i2").tobytes()
    else:
        cls, (audio_format, data) = CompressedAudio, compressed
    m = cls(data=data, format=audio_format, sample_rate=block.rate,
                 number_of_channels=block.channels, sensor=block.sensor, seq=block.seq,
                 t_mono_ns=block.t_mono_ns, t_wall_ns=block.t_wall_ns)
    _stamp(m, block.t_wall_ns - block.duration_ns)  # Foxglove: the start of the block
    if block.steering_deg is not None:
        m.steering_deg = block.steering_deg
    return m.SerializeToString()


def encode_log(t_wall_ns: int, level: str, name: str, message: str) -> bytes:
    """A ``foxglove.Log`` message: ``level`` is one of LOG_LEVELS' names."""
    m = Log_pb2.Log(level=LOG_LEVELS[level], name=name, message=message)
    _stamp(m, t_wall_ns)
    return m.SerializeToString()


def decode_frame(data: bytes) -> ThermalFrame:
    """ValueError (naming what is wrong) for bytes that are not such a frame."""
    m = _parse(RawImage, data)
    if m.encoding != "32FC1":
        raise ValueError(f"image encoding {m.encoding!r}, expected 32FC1")
    if m.step != m.width * 4 or len(m.data) != m.step * m.height:
        raise ValueError(f"{len(m.data)} bytes of pixels for {m.width}x{m.height}, step {m.step}")
    celsius = np.frombuffer(m.data, dtype="<f4").reshape(m.height, m.width).astype(np.float32)
    return ThermalFrame(m.sensor or m.frame_id, celsius, m.seq, m.t_mono_ns, m.t_wall_ns,
                        m.ambient_c if m.HasField("ambient_c") else None)


def decode_block(data: bytes, decompress: Callable[[bytes, int], np.ndarray] | None = None
                 ) -> AudioBlock:
    """A RawAudio block; with ``decompress(data, channels)``, a CompressedAudio one."""
    m = _parse(RawAudio if decompress is None else CompressedAudio, data)
    if m.number_of_channels < 1:
        raise ValueError(f"{m.number_of_channels} audio channels")
    if decompress is not None:
        pcm = decompress(m.data, m.number_of_channels)
    elif m.format != "pcm-s16":
        raise ValueError(f"audio format {m.format!r}, expected pcm-s16")
    elif len(m.data) % (2 * m.number_of_channels):
        raise ValueError(f"{len(m.data)} bytes of PCM for {m.number_of_channels} channels")
    else:
        pcm = np.frombuffer(m.data, dtype="<i2").reshape(-1, m.number_of_channels).astype(np.int16)
    return AudioBlock(m.sensor, pcm, m.sample_rate, m.seq, m.t_mono_ns, m.t_wall_ns,
                      m.steering_deg if m.HasField("steering_deg") else None)


def _parse(cls: Any, data: bytes) -> Any:
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise ValueError(f"not a protobuf {cls.DESCRIPTOR.full_name}: {exc}") from exc
