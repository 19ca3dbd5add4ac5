"""sensorlink demo: one simulated sensor of each kind, no config, no hardware."""

from __future__ import annotations

import argparse

from sensorlink.commands._publishing import add_publish_arguments, add_publishers
from sensorlink.commands._running import run
from sensorlink.commands._serving import (
    add_service_arguments, apply_recording_arguments, apply_service_arguments, attach_foxglove,
)
from sensorlink.config import SensorConfig, ServiceConfig
from sensorlink.config_monitoring import parse_monitoring
from sensorlink.config_plant import OpcuaConfig
from sensorlink.config_recording import RecordingConfig
from sensorlink.errors import ConfigError
from sensorlink.service import Service

DEMO_SENSORS = [
    SensorConfig("machine-cam", "sim-thermal", {}),
    SensorConfig("bearing-probes", "sim-probes", {}),
    # The bearing noise grows 12 dB over the first minute, as a failing bearing would.
    SensorConfig("spindle-mic", "sim-microphone", {"bearing_rise_db": 12.0,
                                                   "bearing_rise_tau_s": 30.0}),
]
#: What the demo watches with no config: the hot spot's housing, the bearing's band, the probes.
#: Both alarms cross their warning and then their alarm level within the first minute.
DEMO_MONITORING = parse_monitoring(
    {"machine-cam": {"regions": [{"name": "housing", "kind": "box", "points": [[4, 4], [27, 19]]}]},
     "spindle-mic": {"bands": {"custom": [{"name": "bearing", "low_hz": 1400.0,
                                           "high_hz": 3000.0}]}}},
    [{"name": "housing-hot", "stream": "machine-cam/housing/max", "condition": "above",
      "warning": 50.0, "alarm": 54.0, "deadband": 2.0, "on_delay_s": 2.0, "latch": True,
      "message": "Housing hot spot"},
     {"name": "bearing-noise", "stream": "spindle-mic/band/bearing", "condition": "above",
      "warning": -27.0, "alarm": -24.0, "deadband": 1.5, "on_delay_s": 1.0,
      "message": "Bearing band (1.4-3 kHz) rising"},
     {"name": "probes-silent", "sensor": "bearing-probes", "condition": "disconnected",
      "alarm": 10.0}], None, "demo")

HELP = "run simulated sensors (thermal camera, probes, microphone array) and serve the dashboard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_service_arguments(parser)
    add_publish_arguments(parser)
    parser.add_argument("--opcua", metavar="ENDPOINT", nargs="?", const=OpcuaConfig().endpoint,
                        help="also serve OPC UA, anonymous, on ENDPOINT (default "
                             f"{OpcuaConfig().endpoint})")


def main(args: argparse.Namespace) -> int:
    settings = apply_service_arguments(ServiceConfig(), args)
    service = Service(settings, sensors=DEMO_SENSORS, source="demo", record_dir=args.record,
                      monitoring=DEMO_MONITORING,
                      recording=apply_recording_arguments(RecordingConfig(), args))
    add_publishers(service, args)
    attach_foxglove(service, args)
    if args.opcua:
        try:
            service.serve_opcua(OpcuaConfig(endpoint=args.opcua))
        except ValueError as exc:  # OpcuaConfig names the field: "endpoint: ..."
            raise ConfigError(str(exc).partition(": ")[2], field="--opcua") from exc
    return run(service)
