"""What is on this serial port? Try each known protocol at its usual baud rates.

Listening comes first (a GY-MCU90640 streams by default, a bridge prints lines on its own); only
then does the probe send anything, and only harmless requests: the GY's "send one frame" query
and a Modbus read of input register 1 at address 1. Each attempt uses the protocol's own pure
parser, so an answer only counts when a frame's checksum or CRC is right.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import serial

from sensorlink.errors import DeviceDisconnected
from sensorlink.sources.serial_transport import open_port
from sensorlink_drivers import ascii_bridge as ab
from sensorlink_drivers import gy_mcu90640 as gy
from sensorlink_drivers import modbus_codec as mb


@dataclass(frozen=True)
class ProbeResult:
    driver: str      # the driver to put in the config
    baudrate: int
    detail: str      # what answered, in words


def _listen(port: serial.SerialBase, seconds: float, feed: Callable[[bytes], str | None],
            request: bytes = b"") -> str | None:
    port.reset_input_buffer()
    if request:
        port.write(request)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = port.read(max(1, min(port.in_waiting, 4096)))
        if data:
            found = feed(data)
            if found:
                return found
    return None


class _Passive:
    """Feeds what a port says by itself to the GY frame parser and the bridge line parser."""

    def __init__(self) -> None:
        self.gy = gy.Mlx90640FrameParser()
        self.bridge = ab.BridgeLineParser()
        self.found: tuple[str, str] | None = None

    def __call__(self, data: bytes) -> str | None:
        frames = self.gy.feed(data)
        if frames:
            f = frames[0]
            self.found = ("gy-mcu90640", (f"GY-MCU90640 frame: {f.celsius.min():.1f}.."
                                          f"{f.celsius.max():.1f} °C, "
                                          f"ambient {f.ambient_c:.2f} °C"))
            return self.found[1]
        readings = [e for e in self.bridge.feed(data) if isinstance(e, ab.BridgeReading)]
        if readings:
            r = readings[0]
            self.found = ("ascii-bridge", f"bridge line: {r.channel} = {r.value} {r.unit}")
            return self.found[1]
        return None


def _modbus_feed(address: int) -> Callable[[bytes], str | None]:
    parser = mb.ReplyParser()

    def feed(data: bytes) -> str | None:
        for reply in parser.feed(data):
            if reply.unit != address:
                continue
            if isinstance(reply, mb.ExceptionReply):
                return f"Modbus unit {address} answered with exception {reply.code}"
            value = mb.decode_registers(reply.registers, scale=0.1)[0]
            return f"Modbus unit {address}: input register 1 = {value} (×0.1, XY-MD02 °C)"
        return None

    return feed


#: Baud rates in the order tried: each protocol's usual rate comes early.
BAUDRATES = (115200, 9600, 460800, 19200, 4800)
GY_BAUDS = (115200, 460800, 9600)
MODBUS_BAUDS = (9600, 19200, 4800)


def _probe_at(port: serial.SerialBase, baud: int, seconds: float,
              modbus_address: int) -> ProbeResult | None:
    # Listen first: a streaming GY-MCU90640 or a bridge needs no prompting.
    passive = _Passive()
    if _listen(port, seconds, passive) and passive.found:
        return ProbeResult(passive.found[0], baud, passive.found[1])
    if baud in GY_BAUDS:
        # A module saved in query mode answers A5 35 01 with one frame.
        passive = _Passive()
        if _listen(port, seconds / 2, passive, gy.mode_command("query")) and passive.found:
            return ProbeResult(passive.found[0], baud, passive.found[1])
    if baud in MODBUS_BAUDS:
        request = mb.ReadRequest(modbus_address, mb.READ_INPUT, 1, 1).encode()
        detail = _listen(port, seconds / 2, _modbus_feed(modbus_address), request)
        if detail:
            return ProbeResult("modbus-rtu", baud, detail)
    return None


def probe_port(url: str, *, seconds: float = 1.5, baudrates: Iterable[int] = BAUDRATES,
               modbus_address: int = 1,
               progress: Callable[[str], None] | None = None) -> list[ProbeResult]:
    """What answered on ``url`` (empty if nothing did); stops at the first answer.

    Raises DeviceDisconnected if the port cannot be opened or fails while probing.
    """
    for baud in baudrates:
        if progress:
            progress(f"listening and asking at {baud} baud")
        port = open_port(url, baud)
        try:
            found = _probe_at(port, baud, seconds, modbus_address)
        except (serial.SerialException, OSError) as exc:
            raise DeviceDisconnected(f"port failed while probing: {exc}", port=url) from exc
        finally:
            port.close()
        if found:
            return [found]
    return []
