"""Options shared by the commands that start a service (demo, run, replay)."""

from __future__ import annotations

import argparse
import dataclasses

from sensorlink.config import ServiceConfig, parse_listen
from sensorlink.config_whip import WhepConfig, parse_whep_listen


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to serve the dashboard on (default 127.0.0.1:8765; "
                             "port 0 picks a free one)")
    parser.add_argument("--token", help="operator token (default: generated and printed)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS/WSS with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    parser.add_argument("--record", metavar="DIR", help="record everything to MCAP files in DIR")
    parser.add_argument("--whep", metavar="[HOST:]PORT",
                        help="serve WHEP players on PORT: POST /whep/<camera>, the token as the "
                             "Bearer (host: the service's own, loopback by default)")


def apply_service_arguments(settings: ServiceConfig, args: argparse.Namespace) -> ServiceConfig:
    changes: dict[str, object] = {}
    if args.listen:
        changes["host"], changes["port"] = parse_listen(args.listen, "--listen")
    if args.token:
        changes["token"] = args.token
    if args.tls_cert or args.tls_key:
        changes["tls_cert"], changes["tls_key"] = args.tls_cert, args.tls_key
    if args.whep:
        host, port = parse_whep_listen(args.whep, "--whep")
        changes["whep"] = dataclasses.replace(settings.whep or WhepConfig(), host=host, port=port)
    return dataclasses.replace(settings, **changes) if changes else settings
