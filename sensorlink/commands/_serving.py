"""Options shared by the commands that start a service (demo, run, replay)."""

from __future__ import annotations

import argparse
import dataclasses

from sensorlink.config import ServiceConfig, parse_listen
from sensorlink.config_recording import RecordingConfig
from sensorlink.config_whip import WhepConfig, parse_whep_listen
from sensorlink.errors import ConfigError
from sensorlink.service import Service


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to serve the dashboard on (default 127.0.0.1:8765; "
                             "port 0 picks a free one)")
    parser.add_argument("--token", help="operator token (default: generated and printed)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS/WSS with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    parser.add_argument("--record", metavar="DIR", help="record everything to MCAP files in DIR")
    group = parser.add_argument_group("recording ([recording] in a config; these win)")
    group.add_argument("--always", action=argparse.BooleanOptionalAction, default=None,
                       help="record from start-up (default: when there is a record_dir; "
                       "--no-always: only when an operator starts it)")
    group.add_argument("--segment-minutes", type=float, metavar="M",
                       help="a new segment every M minutes (default 15)")
    group.add_argument("--segment-mb", type=float, metavar="MB", help="... or every MB")
    group.add_argument("--keep-days", type=float, metavar="D",
                       help="delete segments older than D days")
    group.add_argument("--keep-alarm-days", type=float, metavar="D",
                       help="... but keep those that hold an alarm D days")
    group.add_argument("--max-total-gb", type=float, metavar="GB",
                       help="delete the oldest segments beyond GB of recordings")
    group.add_argument("--min-free-gb", type=float, metavar="GB",
                       help="pause recording below GB free (default 0.25; 0: off)")
    group.add_argument("--audio", choices=("pcm", "flac"),
                       help="record microphones as PCM (Foxglove plays it) or lossless FLAC")
    parser.add_argument("--whep", metavar="[HOST:]PORT",
                        help="serve WHEP players on PORT: POST /whep/<camera>, the token as the "
                             "Bearer (host: the service's own, loopback by default)")
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
    if args.whep:
        host, port = parse_whep_listen(args.whep, "--whep")
        changes["whep"] = dataclasses.replace(settings.whep or WhepConfig(), host=host, port=port)
    return dataclasses.replace(settings, **changes) if changes else settings


_RECORDING_FLAGS = ("always", "segment_minutes", "segment_mb", "keep_days", "keep_alarm_days",
                    "max_total_gb", "min_free_gb", "audio")


def apply_recording_arguments(config: RecordingConfig, args: argparse.Namespace) -> RecordingConfig:
    """The command line's recording flags over the config's ``[recording]``; ``--record DIR``
    records from start-up, as it always has."""
    changes: dict[str, object] = {k: getattr(args, k) for k in _RECORDING_FLAGS
                                  if getattr(args, k, None) is not None}
    if getattr(args, "record", None) and getattr(args, "always", None) is None:
        changes["always"] = True
    try:
        return dataclasses.replace(config, **changes) if changes else config
    except ValueError as exc:  # __post_init__ names the field: say which flag it came from
        name, _, message = str(exc).partition(": ")
        raise ConfigError(message, field=f"--{name.replace('_', '-')}") from exc
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
