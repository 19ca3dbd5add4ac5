"""sensorlink run CONFIG.toml: the sensors a config file lists."""

from __future__ import annotations

import argparse
import dataclasses

from sensorlink.commands._serving import (
    add_service_arguments, apply_service_arguments, attach_foxglove,
)
from sensorlink.config import load_config
from sensorlink.errors import ConfigError
from sensorlink.service import Service, run
from sensorlink.webrtc.ice import is_loopback

HELP = "run the sensors listed in a TOML config and serve the dashboard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="TOML file: [service] and [[sensors]] tables")
    add_service_arguments(parser)
    parser.add_argument("--publish", metavar="janus://HOST[:PORT]/ROOM",
                        help="also publish video, audio and data to a Janus VideoRoom (one "
                             "upstream peer however many viewers join the room)")


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config = dataclasses.replace(config, service=apply_service_arguments(config.service, args))
    service = Service.from_config(config, record_dir=args.record)
    if args.publish:
        from sensorlink.webrtc.janus import JanusPublisher

        if is_loopback(config.service.host):
            # A loopback service offers only 127.0.0.1 to ICE, and Janus never pairs with it.
            raise ConfigError("publishing to Janus needs a service that listens on an address "
                              "Janus can reach (--listen HOST:PORT), not loopback",
                              field="publish")
        service.exporters.append(JanusPublisher(service, args.publish))
    attach_foxglove(service, args)
    return run(service)
