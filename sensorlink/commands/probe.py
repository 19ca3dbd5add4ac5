"""sensorlink probe PORT: which known serial device answers on this port, and at what baud rate."""

from __future__ import annotations

import argparse
import json
import sys

from sensorlink.sources.serial_probe import probe_port

HELP = "try the known serial protocols (GY-MCU90640, ASCII bridge, Modbus RTU) on a port"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("port", help="serial port or pyserial URL, e.g. /dev/ttyUSB0")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="how long to listen per protocol and baud rate (default 1.5)")
    parser.add_argument("--modbus-address", type=int, default=1,
                        help="Modbus unit address to ask (default 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per answer")


def main(args: argparse.Namespace) -> int:
    def progress(text: str) -> None:
        if not args.json:
            print(f"  {text}...", file=sys.stderr)

    results = probe_port(args.port, seconds=args.seconds, modbus_address=args.modbus_address,
                         progress=progress)
    if args.json:
        for r in results:
            print(json.dumps({"port": args.port, "driver": r.driver, "baudrate": r.baudrate,
                              "detail": r.detail}))
    elif not results:
        print(f"{args.port}: nothing answered (check wiring, power and the A/B lines of RS-485)")
    for r in results if not args.json else ():
        print(f"{args.port}: {r.driver} at {r.baudrate} baud ({r.detail})")
        print(f'    driver = "{r.driver}"\n    port = "{args.port}"\n    baudrate = {r.baudrate}')
    return 0 if results else 1
