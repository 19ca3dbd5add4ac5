"""Microcontroller bridges that speak a line protocol (an Arduino reading thermocouple amplifiers).

The protocol, NMEA-style so it survives a noisy line and a bridge that reboots mid-line::

    $<body>*HH\\r\\n

``HH`` is the XOR of every byte between ``$`` and ``*``, two hex digits (either case). ``$``
always starts a line, so a line cut short is abandoned at the next ``$``. Bodies (ASCII):

``<id>,<value>[,<unit>]``
    A reading. ``id``: 1-32 of ``A-Z a-z 0-9 _ . -``; ``value``: a decimal number
    (``-12.5``, ``3e2``); ``unit`` optional: ``C``/``degC`` → ``°C``, ``F``/``degF`` → ``°F``,
    anything else verbatim (``%RH``, ``kPa``); no unit means °C.
``<id>,MAX31855,<8 hex digits>``
    The raw 32-bit word read from a MAX31855: bits 31..18 thermocouple °C ×0.25 (signed),
    bit 16 fault, bits 15..4 cold junction °C ×0.0625 (signed), bit 2 short to VCC, bit 1 short
    to GND, bit 0 open. Gives ``<id>`` (skipped on a fault) and ``<id>_cj``.
``<id>,MAX6675,<4 hex digits>``
    The raw 16-bit word read from a MAX6675: bits 14..3 °C ×0.25, bit 2 open thermocouple.
    Gives ``<id>`` (skipped when open).

Example: ``$tc1,MAX31855,01900C80*HH\\r\\n`` is 25.0 °C at the tip, 12.5 °C cold junction.
Anything before ``$`` (a boot banner, ``# comments``) is skipped and counted as ``resync_bytes``.
A thermocouple fault is never turned into a temperature: it is counted as ``fault_open``,
``fault_short_gnd``, ``fault_short_vcc`` and the reading is left out.
"""

from __future__ import annotations

import collections
import math
import re
from dataclasses import dataclass, field

from sensorlink.samples import Reading, Sample, SensorInfo
from sensorlink.sources.serial_transport import Chunk, SerialDriver

MAX_LINE = 128
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_UNITS = {"C": "°C", "degC": "°C", "F": "°F", "degF": "°F", "": "°C"}
_QUANTITIES = {"°C": "temperature", "°F": "temperature", "K": "temperature", "%RH": "humidity"}


def xor_checksum(body: bytes) -> int:
    total = 0
    for byte in body:
        total ^= byte
    return total


def encode_line(body: str, *, bad_checksum: bool = False) -> bytes:
    raw = body.encode("ascii")
    total = xor_checksum(raw) ^ (0x5A if bad_checksum else 0)
    return b"$" + raw + b"*%02X\r\n" % total


def encode_reading(channel: str, value: float, unit: str | None = None) -> bytes:
    # repr() is the shortest text that reads back to the same float: values in = values out.
    text = repr(float(value))
    return encode_line(f"{channel},{text}" + (f",{unit}" if unit else ""))


def max31855_word(tc_c: float, cj_c: float, *, faults: int = 0) -> int:
    """The 32-bit word a MAX31855 reports (faults: bit0 open, bit1 short GND, bit2 short VCC)."""
    tc = round(tc_c / 0.25) & 0x3FFF
    cj = round(cj_c / 0.0625) & 0xFFF
    return (tc << 18) | ((1 << 16) if faults else 0) | (cj << 4) | (faults & 0x7)


def max6675_word(tc_c: float, *, open_circuit: bool = False) -> int:
    return ((round(tc_c / 0.25) & 0xFFF) << 3) | (0x4 if open_circuit else 0)


@dataclass(frozen=True, slots=True)
class BridgeReading:
    channel: str
    quantity: str
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class BridgeFault:
    channel: str
    faults: tuple[str, ...]  # "open", "short_gnd", "short_vcc"


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def decode_max31855(channel: str, word: int) -> list[BridgeReading | BridgeFault]:
    cj = _signed((word >> 4) & 0xFFF, 12) * 0.0625
    out: list[BridgeReading | BridgeFault] = []
    if word & (1 << 16) or word & 0x7:
        names = tuple(n for bit, n in ((0, "open"), (1, "short_gnd"), (2, "short_vcc"))
                      if word & (1 << bit)) or ("fault",)
        out.append(BridgeFault(channel, names))
    else:
        out.append(BridgeReading(channel, "temperature", _signed(word >> 18, 14) * 0.25, "°C"))
    out.append(BridgeReading(f"{channel}_cj", "temperature", cj, "°C"))
    return out


def decode_max6675(channel: str, word: int) -> list[BridgeReading | BridgeFault]:
    if word & 0x4:
        return [BridgeFault(channel, ("open",))]
    return [BridgeReading(channel, "temperature", ((word >> 3) & 0xFFF) * 0.25, "°C")]


class BridgeLineParser:
    """Sans-io: ``feed(bytes) -> [BridgeReading | BridgeFault]``.

    Counters: ``lines``, ``resync_bytes``, ``checksum_errors``, ``missing_checksum``,
    ``malformed_lines``, ``overlong_lines``, ``truncated_lines`` (a ``$`` arrived mid-line).
    """

    def __init__(self, *, require_checksum: bool = True) -> None:
        self.require_checksum = require_checksum
        self.counters: collections.Counter[str] = collections.Counter()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[BridgeReading | BridgeFault]:
        buf = self._buf
        buf += data
        out: list[BridgeReading | BridgeFault] = []
        while True:
            start = buf.find(b"$")
            if start < 0:
                self.counters["resync_bytes"] += len(buf)
                buf.clear()
                return out
            if start:
                self.counters["resync_bytes"] += start
                del buf[:start]
            end = buf.find(b"\n")
            restart = buf.find(b"$", 1)
            if 0 <= restart and (end < 0 or restart < end):
                self.counters["truncated_lines"] += 1
                del buf[:restart]
                continue
            if end < 0:
                if len(buf) > MAX_LINE:
                    self.counters["overlong_lines"] += 1
                    buf.clear()
                return out
            line = bytes(buf[1:end]).rstrip(b"\r")
            del buf[:end + 1]
            if len(line) > MAX_LINE:
                self.counters["overlong_lines"] += 1
                continue
            out.extend(self._line(line))

    def _line(self, line: bytes) -> list[BridgeReading | BridgeFault]:
        body, star, check = line.rpartition(b"*")
        if not star:
            if self.require_checksum:
                self.counters["missing_checksum"] += 1
                return []
            body = line
        elif len(check) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in check) \
                or int(check, 16) != xor_checksum(body):
            self.counters["checksum_errors"] += 1
            return []
        try:
            events = self._body(body.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            events = None
        if events is None:
            self.counters["malformed_lines"] += 1
            return []
        self.counters["lines"] += 1
        return events

    @staticmethod
    def _body(body: str) -> list[BridgeReading | BridgeFault] | None:
        fields = body.split(",")
        if not 2 <= len(fields) <= 3 or not _ID.match(fields[0]):
            return None
        channel = fields[0]
        if len(fields) == 3 and fields[1] in ("MAX31855", "MAX6675"):
            digits = 8 if fields[1] == "MAX31855" else 4
            if len(fields[2]) != digits or not re.fullmatch(r"[0-9A-Fa-f]+", fields[2]):
                return None
            decode = decode_max31855 if digits == 8 else decode_max6675
            return decode(channel, int(fields[2], 16))
        if not _NUMBER.match(fields[1]):
            return None
        value = float(fields[1])
        unit_text = fields[2] if len(fields) == 3 else ""
        if not math.isfinite(value) or len(unit_text) > 16 or not unit_text.isprintable():
            return None
        unit = _UNITS.get(unit_text, unit_text)
        return [BridgeReading(channel, _QUANTITIES.get(unit, "value"), value, unit)]


@dataclass(frozen=True)
class AsciiBridgeOptions:
    port: str = "/dev/ttyACM0"
    baudrate: int = 115200
    #: reject lines without ``*HH`` (turn off only for a bridge you cannot reflash)
    require_checksum: bool = True
    #: channel ids the dashboard should expect before the first line arrives
    channels: list[str] = field(default_factory=list)
    #: no valid line for this long means the bridge is gone: reopen the port
    silence_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        bad = [c for c in self.channels if not _ID.match(c)]
        if bad:
            raise ValueError(f"channels: {bad[0]!r} is not a valid id (1-32 of A-Z a-z 0-9 _ . -)")
        if self.silence_timeout_s <= 0:
            raise ValueError("silence_timeout_s: must be positive")


class AsciiBridge(SerialDriver):
    kind = "probe"
    description = "microcontroller bridge speaking $id,value,unit*HH lines (MAX31855/MAX6675 too)"
    Options = AsciiBridgeOptions

    def __init__(self, name: str, options: AsciiBridgeOptions | None = None) -> None:
        super().__init__(name, options)
        self.silence_timeout_s = self.options.silence_timeout_s

    def info(self) -> SensorInfo:
        streams = {c: {"quantity": "temperature", "unit": "°C"} for c in self.options.channels}
        return SensorInfo(self.name, "probe", "ascii-bridge",
                          {"streams": streams, "port": self.options.port})

    def make_parser(self) -> BridgeLineParser:
        return BridgeLineParser(require_checksum=self.options.require_checksum)

    def to_samples(self, event: BridgeReading | BridgeFault, chunk: Chunk) -> list[Sample]:
        if isinstance(event, BridgeFault):
            for fault in event.faults:
                self.counters[f"fault_{fault}"] += 1
            return []
        return [Reading(self.name, event.channel, event.quantity, event.value, event.unit,
                        self.next_seq(event.channel), chunk.t_mono_ns, chunk.t_wall_ns)]
