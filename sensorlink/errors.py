"""One exception tree for everything sensorlink raises.

Each error names what it is about (the file, the sensor, the port or the field) so that the
message alone tells an engineer on the factory floor what to fix. Foreign errors are re-raised
``from`` the original so the cause stays visible.
"""

from __future__ import annotations


class SensorlinkError(Exception):
    """Root of every error sensorlink raises on purpose."""


class ConfigError(SensorlinkError):
    """A configuration file or option is wrong; the message names the file, sensor and field."""

    def __init__(self, message: str, *, source: str | None = None, sensor: str | None = None,
                 field: str | None = None) -> None:
        self.source = source
        self.sensor = sensor
        self.field = field
        where = []
        if source:
            where.append(source)
        if sensor:
            where.append(f"sensor {sensor!r}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class DriverError(SensorlinkError):
    """A driver could not load, open or read its device."""

    def __init__(self, message: str, *, sensor: str | None = None, port: str | None = None) -> None:
        self.sensor = sensor
        self.port = port
        prefix = " ".join(p for p in (f"sensor {sensor!r}" if sensor else "",
                                      f"on {port}" if port else "") if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DriverUnavailable(DriverError):
    """The driver's Python package (or OS facility) is missing on this machine."""


class DeviceDisconnected(DriverError):
    """The device went away (unplugged, port closed); the runner reconnects with backoff."""


class ProtocolError(SensorlinkError):
    """Bytes from a device or a peer do not follow the protocol."""


class MessageError(ProtocolError):
    """A wire message failed validation against schemas/; names the offending field."""

    def __init__(self, message: str, *, field: str | None = None, msg_id: int | None = None) -> None:
        self.field = field
        self.msg_id = msg_id
        super().__init__(f"field {field!r}: {message}" if field else message)


class ControlError(MessageError):
    """A control message was well-formed but cannot be carried out."""


class SignalingError(SensorlinkError):
    """Signaling failed: refused token, bad offer, server gone."""


class PeerConnectionFailed(SignalingError):
    """A peer connection cannot work or stopped working; the message says why (ICE, DTLS)."""


class RecordingError(SensorlinkError):
    """A recording could not be written or read."""
