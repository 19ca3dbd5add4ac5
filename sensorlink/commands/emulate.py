"""sensorlink emulate DEVICE --link PATH: play a serial device on a pty so the real driver runs.

Examples::

    sensorlink emulate gy-mcu90640 --link /tmp/gy --rate 4 --bad-checksum-every 10
    sensorlink emulate modbus-rtu --link /tmp/rs485 --unit 1:21.5:40 --unit 2:-3.5:80
    sensorlink emulate ascii-bridge --link /tmp/bridge --reading oven=180.25,C \\
        --max31855 tc1=412.75,24.0625 --max6675 tc2=99.5 --garbage-every 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from sensorlink.emulators import EMULATORS, Emulator, Faults, create_emulator
from sensorlink.errors import ConfigError

HELP = "play a serial device (GY-MCU90640, Modbus transmitter, ASCII bridge) on a pty at PATH"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", choices=sorted(EMULATORS))
    parser.add_argument("--link", required=True, help="path of the symlink to the pty to create")
    parser.add_argument("--duration", type=float, default=None, help="exit after SECONDS")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--garbage-every", type=int, default=0, metavar="N")
    faults.add_argument("--truncate-every", type=int, default=0, metavar="N")
    faults.add_argument("--bad-checksum-every", type=int, default=0, metavar="N")
    faults.add_argument("--silent", action="store_true", help="read commands, send nothing")
    faults.add_argument("--exception", type=int, default=None, metavar="CODE",
                        help="modbus: answer every request with this exception code")
    faults.add_argument("--unplug-every", type=float, default=None, metavar="SECONDS",
                        help="unplug (pty closed, link removed) every SECONDS ...")
    faults.add_argument("--unplug-for", type=float, default=2.0, metavar="SECONDS",
                        help="... for this long (default 2)")
    gy = parser.add_argument_group("gy-mcu90640")
    gy.add_argument("--rate", type=float, default=None, help="frames (or bridge lines) per second")
    gy.add_argument("--ambient", type=float, default=24.0, help="ambient °C")
    gy.add_argument("--hot", type=float, default=60.0, help="hot spot °C")
    mb = parser.add_argument_group("modbus-rtu")
    mb.add_argument("--unit", action="append", default=[], metavar="ADDR:TEMP:RH",
                    help="an XY-MD02 at ADDR reading TEMP °C and RH %%; repeat for more units")
    br = parser.add_argument_group("ascii-bridge")
    br.add_argument("--reading", action="append", default=[], metavar="ID=VALUE[,UNIT]")
    br.add_argument("--max31855", action="append", default=[], metavar="ID=TC,CJ[,FAULTBITS]")
    br.add_argument("--max6675", action="append", default=[], metavar="ID=TC[,open]")


def _split(text: str, flag: str) -> tuple[str, list[str]]:
    key, sep, rest = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected ID=..., got {text!r}", field=flag)
    return key, rest.split(",")


def device_options(args: argparse.Namespace) -> dict[str, Any]:
    try:
        if args.device == "gy-mcu90640":
            return {"rate_hz": args.rate or 4.0, "ambient_c": args.ambient, "hot_c": args.hot}
        if args.device == "modbus-rtu":
            from sensorlink.emulators.modbus import xy_md02

            units = {}
            for spec in args.unit or ["1:30.5:54.6"]:
                addr, temp, rh = spec.split(":")
                units[int(addr)] = xy_md02(int(addr), float(temp), float(rh))
            return {"units": units}
        from sensorlink.emulators.ascii_bridge import Thermocouple

        options: dict[str, Any] = {"rate_hz": args.rate or 2.0}
        if args.reading or args.max31855 or args.max6675:
            readings, tcs = {}, {}
            for text in args.reading:
                key, parts = _split(text, "--reading")
                readings[key] = (float(parts[0]), parts[1] if len(parts) > 1 else "C")
            for text in args.max31855:
                key, parts = _split(text, "--max31855")
                tcs[key] = Thermocouple("MAX31855", float(parts[0]), float(parts[1]),
                                        int(parts[2]) if len(parts) > 2 else 0)
            for text in args.max6675:
                key, parts = _split(text, "--max6675")
                tcs[key] = Thermocouple("MAX6675", float(parts[0]),
                                        faults=int(len(parts) > 1 and parts[1] == "open"))
            options.update(readings=readings, thermocouples=tcs)
        return options
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"cannot read the device options: {exc}") from exc


async def run(emulator: Emulator, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    print(f"emulating {args.device} on {emulator.path} -> {emulator.link.slave_name}")
    if args.duration is not None:
        loop.call_later(args.duration, stop.set)
    try:
        while not stop.is_set():
            if args.unplug_every is None:
                await stop.wait()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.unplug_every)
            if stop.is_set():
                break
            emulator.unplug()
            print(f"unplugged for {args.unplug_for:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.unplug_for)
            emulator.replug()
            print(f"plugged in again at {emulator.link.slave_name}")
    finally:
        await emulator.stop()
        print(f"stopped; {dict(emulator.counters)}")


def main(args: argparse.Namespace) -> int:
    faults = Faults(garbage_every=args.garbage_every, truncate_every=args.truncate_every,
                    bad_checksum_every=args.bad_checksum_every, silent=args.silent,
                    exception_code=args.exception)
    emulator = create_emulator(args.device, args.link, faults=faults, **device_options(args))
    asyncio.run(run(emulator, args))
    return 0
