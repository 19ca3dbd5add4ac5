"""The samples that flow from sources through the hub to sinks.

Every sample carries ``seq`` (contiguous per stream), ``t_mono_ns`` (monotonic clock, for
intervals) and ``t_wall_ns`` (wall clock, for people and for latency across machines), both
taken when the bytes arrived. ``to_msgpack``/``from_msgpack`` give the full record (used by the
recorder); the compact wire forms the dashboard receives live in :mod:`sensorlink.webrtc.wire`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import msgpack
import numpy as np

SensorKind = Literal["thermal", "probe", "microphone"]
Quality = Literal["ok", "suspect", "bad"]
QUALITIES: tuple[str, ...] = ("ok", "suspect", "bad")


def now_ns() -> tuple[int, int]:
    """(t_mono_ns, t_wall_ns) for a sample whose bytes arrived just now."""
    return time.monotonic_ns(), time.time_ns()


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What a source tells the hub about one sensor before it sends samples.

    ``meta`` is plain data (msgpack/JSON-able): a camera's ``width``/``height``, a microphone's
    ``rate``/``channels``/``positions`` (metres, x/y per microphone), a probe's ``streams``.
    """

    name: str
    kind: SensorKind
    driver: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "driver": self.driver, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SensorInfo:
        return cls(name=data["name"], kind=data["kind"], driver=data["driver"],
                   meta=dict(data.get("meta") or {}))


@dataclass(frozen=True, slots=True)
class Reading:
    """One scalar: a probe temperature, a humidity, a sound level, a direction of arrival."""

    sensor: str
    channel: str
    quantity: str
    value: float
    unit: str
    seq: int
    t_mono_ns: int
    t_wall_ns: int
    quality: Quality = "ok"

    @property
    def stream(self) -> str:
        return f"{self.sensor}/{self.channel}"

    def to_msgpack(self) -> bytes:
        return msgpack.packb({
            "type": "reading", "sensor": self.sensor, "channel": self.channel,
            "quantity": self.quantity, "value": float(self.value), "unit": self.unit,
            "seq": self.seq, "t_mono_ns": self.t_mono_ns, "t_wall_ns": self.t_wall_ns,
            "quality": self.quality,
        })

    @classmethod
    def from_msgpack(cls, data: bytes) -> Reading:
        d = msgpack.unpackb(data)
        return cls(sensor=d["sensor"], channel=d["channel"], quantity=d["quantity"],
                   value=d["value"], unit=d["unit"], seq=d["seq"], t_mono_ns=d["t_mono_ns"],
                   t_wall_ns=d["t_wall_ns"], quality=d["quality"])


def centi_celsius(celsius: np.ndarray) -> tuple[bytes, int]:
    """°C array → (int16 little-endian bytes, scale). Scale 100 (centi-°C) unless the frame
    holds temperatures beyond ±327 °C, where it falls back to 10 (deci-°C) instead of clipping."""
    scale = 100 if float(np.max(np.abs(celsius), initial=0.0)) < 327.0 else 10
    raw = np.clip(np.rint(celsius * scale), -32768, 32767).astype("<i2")
    return raw.tobytes(), scale


def from_centi_celsius(data: bytes, height: int, width: int, scale: int) -> np.ndarray:
    return (np.frombuffer(data, dtype="<i2").reshape(height, width) / scale).astype(np.float32)


@dataclass(frozen=True, slots=True, eq=False)
class ThermalFrame:
    """One radiometric picture: float32 °C, row 0 at the top, column 0 at the left."""

    sensor: str
    celsius: np.ndarray
    seq: int
    t_mono_ns: int
    t_wall_ns: int
    ambient_c: float | None = None

    @property
    def height(self) -> int:
        return int(self.celsius.shape[0])

    @property
    def width(self) -> int:
        return int(self.celsius.shape[1])

    def to_msgpack(self) -> bytes:
        # The full record keeps float32 so a replay is exactly what the driver produced.
        return msgpack.packb({
            "type": "thermal_frame", "sensor": self.sensor, "seq": self.seq,
            "t_mono_ns": self.t_mono_ns, "t_wall_ns": self.t_wall_ns,
            "width": self.width, "height": self.height, "ambient_c": self.ambient_c,
            "celsius_f32": np.ascontiguousarray(self.celsius, dtype="<f4").tobytes(),
        })

    @classmethod
    def from_msgpack(cls, data: bytes) -> ThermalFrame:
        d = msgpack.unpackb(data)
        celsius = np.frombuffer(d["celsius_f32"], dtype="<f4").reshape(d["height"], d["width"])
        return cls(sensor=d["sensor"], celsius=celsius.astype(np.float32), seq=d["seq"],
                   t_mono_ns=d["t_mono_ns"], t_wall_ns=d["t_wall_ns"], ambient_c=d["ambient_c"])


@dataclass(frozen=True, slots=True, eq=False)
class AudioBlock:
    """A block of PCM: int16, shape (samples, channels), interleaved when serialised."""

    sensor: str
    pcm: np.ndarray
    rate: int
    seq: int
    t_mono_ns: int
    t_wall_ns: int
    steering_deg: float | None = None

    @property
    def channels(self) -> int:
        return int(self.pcm.shape[1])

    @property
    def samples(self) -> int:
        return int(self.pcm.shape[0])

    @property
    def duration_ns(self) -> int:
        return self.samples * 1_000_000_000 // self.rate

    def to_msgpack(self) -> bytes:
        return msgpack.packb({
            "type": "audio_block", "sensor": self.sensor, "seq": self.seq,
            "t_mono_ns": self.t_mono_ns, "t_wall_ns": self.t_wall_ns, "rate": self.rate,
            "channels": self.channels, "steering_deg": self.steering_deg,
            "pcm_s16le": np.ascontiguousarray(self.pcm, dtype="<i2").tobytes(),
        })

    @classmethod
    def from_msgpack(cls, data: bytes) -> AudioBlock:
        d = msgpack.unpackb(data)
        pcm = np.frombuffer(d["pcm_s16le"], dtype="<i2").reshape(-1, d["channels"])
        return cls(sensor=d["sensor"], pcm=pcm.astype(np.int16), rate=d["rate"], seq=d["seq"],
                   t_mono_ns=d["t_mono_ns"], t_wall_ns=d["t_wall_ns"],
                   steering_deg=d["steering_deg"])


Sample = Union[ThermalFrame, Reading, AudioBlock]

_DECODERS = {"reading": Reading, "thermal_frame": ThermalFrame, "audio_block": AudioBlock}


def sample_from_msgpack(data: bytes) -> Sample:
    """Decode any full sample record (the recorder's form)."""
    kind = msgpack.unpackb(data).get("type")
    try:
        return _DECODERS[kind].from_msgpack(data)
    except KeyError as exc:
        from sensorlink.errors import ProtocolError
        raise ProtocolError(f"unknown sample type {kind!r}") from exc


class SeqCounter:
    """Contiguous sequence numbers per stream: a gap downstream means a sample was lost."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def __call__(self, stream: str) -> int:
        seq = self._next.get(stream, 0)
        self._next[stream] = seq + 1
        return seq
