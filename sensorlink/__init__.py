"""sensorlink: stream a machine's sensors live over WebRTC and record them."""

from sensorlink.errors import (
    ConfigError,
    ControlError,
    DriverError,
    ProtocolError,
    RecordingError,
    SensorlinkError,
    SignalingError,
)
from sensorlink.samples import AudioBlock, Reading, Sample, SensorInfo, ThermalFrame

__version__ = "0.1.0"

__all__ = [
    "AudioBlock",
    "ConfigError",
    "ControlError",
    "DriverError",
    "ProtocolError",
    "Reading",
    "RecordingError",
    "Sample",
    "SensorInfo",
    "SensorlinkError",
    "SignalingError",
    "ThermalFrame",
    "__version__",
]
