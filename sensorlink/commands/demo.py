"""sensorlink demo: one simulated sensor of each kind, no config, no hardware."""

from __future__ import annotations

import argparse

from sensorlink.commands._serving import (
    add_service_arguments, apply_service_arguments, attach_foxglove,
)
from sensorlink.config import ServiceConfig
from sensorlink.service import DEMO_SENSORS, Service, run

HELP = "run simulated sensors (thermal camera, probes, microphone array) and serve the dashboard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_service_arguments(parser)


def main(args: argparse.Namespace) -> int:
    settings = apply_service_arguments(ServiceConfig(), args)
    service = Service(settings, sensors=DEMO_SENSORS, source="demo", record_dir=args.record)
    attach_foxglove(service, args)
    return run(service)
