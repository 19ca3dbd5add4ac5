"""sensorlink demo: one simulated sensor of each kind, no config, no hardware."""

from __future__ import annotations

import argparse

from sensorlink.commands._publishing import add_publish_arguments, add_publishers
from sensorlink.commands._serving import (
    add_service_arguments, apply_recording_arguments, apply_service_arguments, attach_foxglove,
)
from sensorlink.config import ServiceConfig
from sensorlink.config_plant import OpcuaConfig
from sensorlink.config_recording import RecordingConfig
from sensorlink.errors import ConfigError
from sensorlink.service import DEMO_MONITORING, DEMO_SENSORS, Service, run

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
