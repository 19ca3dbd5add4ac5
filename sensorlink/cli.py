"""The ``sensorlink`` command: one subcommand per module in :mod:`sensorlink.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``main(args) -> int``; it is a thin function over the library. Commands are found by listing the
package, so adding one means adding a module.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import logging
import os
import pkgutil
import sys

import sensorlink
from sensorlink.errors import SensorlinkError


def _command_modules() -> dict[str, str]:
    import sensorlink.commands as pkg

    return {info.name.replace("_", "-"): f"{pkg.__name__}.{info.name}"
            for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorlink",
        description="Stream a machine's sensors live over WebRTC to a browser, and record them.")
    parser.add_argument("--version", action="version", version=f"sensorlink {sensorlink.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output: -v sensorlink's (with why a viewer's connection "
                             "failed), -vv also aiortc's and aioice's debug log, -vvv everything")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in sorted(_command_modules().items()):
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def enable_crash_dumps() -> None:
    """Make a native crash (a codec, a C library under a driver) print every thread's Python
    stack to stderr: the evidence a segfault otherwise takes with it."""
    if faulthandler.is_enabled():
        return  # already on (PYTHONFAULTHANDLER, -X faulthandler, pytest): keep its file
    try:
        faulthandler.enable(all_threads=True)
    except (RuntimeError, ValueError, OSError, AttributeError):
        pass  # no usable stderr (None, or not a file): nowhere to print


def main(argv: list[str] | None = None) -> int:
    enable_crash_dumps()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    # Line-buffered so the URL a command prints reaches a file or a service journal at once.
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    level = logging.WARNING - 10 * args.verbose if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # Third-party loggers stay at WARNING unless asked for: -vv opens the WebRTC stack's debug
    # log (ICE checks, DTLS handshakes), -vvv the websocket, Modbus, OPC UA and HTTP client
    # traffic as well (asyncua alone logs a thousand INFO lines building its address space).
    for noisy, opened_at in (("aioice", 2), ("aiortc", 2), ("websockets", 3), ("pymodbus", 3),
                             ("asyncua", 3), ("httpx", 3), ("httpcore", 3)):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose >= opened_at
                                          else max(level, logging.WARNING))
    os.environ.setdefault("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf")
    try:
        return int(args._main(args) or 0)
    except SensorlinkError as exc:
        print(f"sensorlink {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly as Unix tools do, with their status
        # (128 + SIGPIPE); stdout now goes nowhere, so the flush at exit cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
