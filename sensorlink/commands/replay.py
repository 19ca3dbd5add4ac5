"""sensorlink replay FILE: serve a recording to the dashboard as if it were live."""

from __future__ import annotations

import argparse
from pathlib import Path

from sensorlink.commands._running import run
from sensorlink.commands._serving import (
    add_service_arguments, apply_recording_arguments, apply_service_arguments, attach_foxglove,
)
from sensorlink.config import ServiceConfig
from sensorlink.config_recording import RecordingConfig
from sensorlink.errors import ConfigError
from sensorlink.service import Service

HELP = "replay an MCAP recording through the dashboard (pause, seek, speed, loop)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an .mcap recording made by sensorlink")
    parser.add_argument("--speed", type=float, default=1.0, help="0.1 to 20 (default 1)")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument("--paused", action="store_true", help="start paused")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="start S seconds into the recording")
    add_service_arguments(parser)


def main(args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():
        raise ConfigError("no such recording", source=args.file)
    if not 0.1 <= args.speed <= 20:
        raise ConfigError(f"must be between 0.1 and 20, got {args.speed}", field="--speed")
    settings = apply_service_arguments(ServiceConfig(), args)
    service = Service(settings, replay_path=args.file, record_dir=args.record,
                      replay_options={"speed": args.speed, "loop": args.loop,
                                      "paused": args.paused, "start_s": args.start},
                      recording=apply_recording_arguments(RecordingConfig(), args))
    attach_foxglove(service, args)
    return run(service)
