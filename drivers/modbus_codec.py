"""Modbus RTU framing, pure: CRC-16/MODBUS, read requests and replies, exception replies.

The driver talks through pymodbus; this codec exists so the emulator, ``sensorlink probe`` and
the golden tests have an implementation of the wire format that does not share pymodbus's code
(two independent implementations that agree on the bytes).

CRC-16/MODBUS: init 0xFFFF, reflected polynomial 0xA001, sent low byte first. Worked example
(e-tinkers/Modbus-RTU, examples/SHT20): request ``01 04 00 01 00 01 60 0A``, reply
``01 04 02 01 31 79 74`` = 305 → 30.5 °C at ×10.
"""

from __future__ import annotations

import collections
import struct
from dataclasses import dataclass

READ_HOLDING, READ_INPUT = 0x03, 0x04
READ_FUNCTIONS = (READ_HOLDING, READ_INPUT)
#: exception codes from the Modbus application protocol spec
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 0x01, 0x02, 0x03, 0x04
MAX_READ_COUNT = 125


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", crc16_modbus(body))


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16_modbus(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    unit: int
    function: int
    address: int
    count: int

    def encode(self) -> bytes:
        return with_crc(struct.pack(">BBHH", self.unit, self.function, self.address, self.count))


@dataclass(frozen=True, slots=True)
class ReadReply:
    unit: int
    function: int
    registers: tuple[int, ...]  # unsigned 16-bit, as on the wire

    def encode(self) -> bytes:
        regs = struct.pack(f">{len(self.registers)}H", *self.registers)
        return with_crc(bytes((self.unit, self.function, len(regs))) + regs)


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    unit: int
    function: int  # the request's function, without the 0x80 bit
    code: int

    def encode(self) -> bytes:
        return with_crc(bytes((self.unit, self.function | 0x80, self.code)))


def decode_registers(registers: tuple[int, ...] | list[int], *, scale: float = 1.0,
                     signed: bool = True) -> list[float]:
    """Register values → engineering values (two's complement when ``signed``)."""
    ndigits = _decimals(scale)
    out = []
    for reg in registers:
        raw = reg - 0x10000 if signed and reg & 0x8000 else reg
        out.append(round(raw * scale, ndigits))
    return out


def encode_value(value: float, *, scale: float = 1.0, signed: bool = True) -> int:
    """Engineering value → register (the inverse of :func:`decode_registers`)."""
    raw = round(value / scale)
    low, high = (-0x8000, 0x7FFF) if signed else (0, 0xFFFF)
    if not low <= raw <= high:
        raise ValueError(f"{value} does not fit a {'signed' if signed else 'unsigned'} register "
                         f"at scale {scale}")
    return raw & 0xFFFF


def _decimals(scale: float) -> int:
    # round() to the scale's own decimals so 3 × 0.1 reads 0.3, not 0.30000000000000004.
    text = repr(float(scale))
    if "e-" in text:
        mantissa, exp = text.split("e-")
        return int(exp) + max(0, len(mantissa.partition(".")[2]))
    return len(text.partition(".")[2].rstrip("0"))


class RequestParser:
    """Server side (emulator): ``feed(bytes) -> [ReadRequest | (unit, function)]``.

    Read requests are 8 bytes; any other function is reported as ``(unit, function)`` when its
    length can be known (only reads are supported, so the emulator answers ILLEGAL_FUNCTION).
    A window that does not check out drops one byte (``resync_bytes``).
    """

    def __init__(self) -> None:
        self.counters: collections.Counter[str] = collections.Counter()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[ReadRequest]:
        buf = self._buf
        buf += data
        out = []
        while len(buf) >= 8:
            frame = bytes(buf[:8])
            if frame[1] in READ_FUNCTIONS and crc_ok(frame):
                unit, function, address, count = struct.unpack(">BBHH", frame[:6])
                out.append(ReadRequest(unit, function, address, count))
                self.counters["requests"] += 1
                del buf[:8]
                continue
            self.counters["resync_bytes"] += 1
            del buf[:1]
        return out


class ReplyParser:
    """Client side (probe, tests): ``feed(bytes) -> [ReadReply | ExceptionReply]`` with resync.

    A reply's length follows from its function byte (and byte count): reads are
    ``5 + byte_count``, exceptions 5. Anything whose CRC fails drops one byte and looks again;
    ``crc_errors`` counts frames whose shape fitted but whose CRC did not.
    """

    def __init__(self) -> None:
        self.counters: collections.Counter[str] = collections.Counter()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[ReadReply | ExceptionReply]:
        buf = self._buf
        buf += data
        out: list[ReadReply | ExceptionReply] = []
        while len(buf) >= 5:
            size = _reply_size(buf, 0)
            if size and len(buf) < size:
                # Noise can look like the start of a long reply; without RTU's silent-interval
                # timing, the only way past it is a complete valid reply further on.
                later = next((k for k in range(1, len(buf) - 4)
                              if _complete_reply_at(buf, k)), None)
                if later is None:
                    return out
                self.counters["resync_bytes"] += later
                del buf[:later]
                continue
            if size and crc_ok(bytes(buf[:size])):
                frame = bytes(buf[:size])
                function = frame[1]
                if size == 5 and function & 0x80:
                    out.append(ExceptionReply(frame[0], function & 0x7F, frame[2]))
                else:
                    regs = struct.unpack(f">{frame[2] // 2}H", frame[3:-2])
                    out.append(ReadReply(frame[0], function, regs))
                self.counters["replies"] += 1
                del buf[:size]
                continue
            if size:
                self.counters["crc_errors"] += 1
            self.counters["resync_bytes"] += 1
            del buf[:1]
        return out


def _reply_size(buf: bytearray, at: int) -> int:
    """Length of the reply that would start at ``at`` (0 if no reply can start there)."""
    function = buf[at + 1]
    if function in READ_FUNCTIONS:
        count = buf[at + 2]
        return 0 if count % 2 or count > 2 * MAX_READ_COUNT else 5 + count
    if function & 0x80 and function & 0x7F in READ_FUNCTIONS:
        return 5
    return 0


def _complete_reply_at(buf: bytearray, at: int) -> bool:
    size = _reply_size(buf, at)
    return bool(size) and at + size <= len(buf) and crc_ok(bytes(buf[at:at + size]))
