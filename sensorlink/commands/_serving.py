"""Options shared by the commands that start a service (demo, run, replay)."""

from __future__ import annotations

import argparse
import dataclasses

from sensorlink.config import ServiceConfig, parse_listen
from sensorlink.service import Service


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to serve the dashboard on (default 127.0.0.1:8765; "
                             "port 0 picks a free one)")
    parser.add_argument("--token", help="operator token (default: generated and printed)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS/WSS with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    parser.add_argument("--record", metavar="DIR", help="record everything to MCAP files in DIR")
    parser.add_argument("--foxglove", metavar="[HOST:]PORT",
                        help="also serve the Foxglove app and Lichtblick live on this port "
                             "(loopback unless HOST is given; the token goes in the URL: "
                             "ws://HOST:PORT/?token=TOKEN; docs/foxglove.md)")


def apply_service_arguments(settings: ServiceConfig, args: argparse.Namespace) -> ServiceConfig:
    changes: dict[str, object] = {}
    if args.listen:
        changes["host"], changes["port"] = parse_listen(args.listen, "--listen")
    if args.token:
        changes["token"] = args.token
    if args.tls_cert or args.tls_key:
        changes["tls_cert"], changes["tls_key"] = args.tls_cert, args.tls_key
    return dataclasses.replace(settings, **changes) if changes else settings


def attach_foxglove(service: Service, args: argparse.Namespace) -> None:
    """``--foxglove [HOST:]PORT``: a Foxglove WebSocket server beside the dashboard."""
    if not args.foxglove:
        return
    from sensorlink.bridges.foxglove import FoxgloveBridge

    value = args.foxglove if ":" in args.foxglove else f"127.0.0.1:{args.foxglove}"
    host, port = parse_listen(value, "--foxglove")
    service.exporters.append(FoxgloveBridge(service.hub, host=host, port=port,
                                            authorize=service.role_for,
                                            playback=lambda: service.replay))
