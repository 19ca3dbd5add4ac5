"""sensorlink run CONFIG.toml: the sensors a config file lists."""

from __future__ import annotations

import argparse
import dataclasses

from sensorlink.commands._publishing import add_publish_arguments, add_publishers
from sensorlink.commands._running import run
from sensorlink.commands._serving import (
    add_service_arguments, apply_recording_arguments, apply_service_arguments, attach_foxglove,
)
from sensorlink.config import load_config
from sensorlink.service import Service

HELP = "run the sensors listed in a TOML config and serve the dashboard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="TOML file: [service] and [[sensors]] tables")
    add_service_arguments(parser)
    add_publish_arguments(parser)


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config = dataclasses.replace(config, service=apply_service_arguments(config.service, args))
    service = Service.from_config(config, record_dir=args.record,
                                  recording=apply_recording_arguments(config.recording, args))
    add_publishers(service, args, config.whip)
    attach_foxglove(service, args)
    return run(service)
