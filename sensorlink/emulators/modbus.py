"""Modbus RTU transmitters (XY-MD02 by default) answering read requests on a pty.

Several units can share the emulated bus, as on real RS-485; a request for an address that is
not there gets no answer at all, like the real thing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sensorlink.emulators import Emulator, Faults
from sensorlink_drivers import modbus_codec as mb


@dataclass
class Unit:
    """One transmitter's register map."""

    input: dict[int, int] = field(default_factory=dict)
    holding: dict[int, int] = field(default_factory=dict)


def xy_md02(address: int = 1, temperature_c: float = 30.5, humidity: float = 54.6) -> Unit:
    """XY-MD02 / SHT20 registers: input 1 = °C ×10, input 2 = %RH ×10, holding 0x101 = address,
    0x102 = baud rate (e-tinkers/Modbus-RTU, examples/SHT20)."""
    return Unit(input={1: mb.encode_value(temperature_c, scale=0.1),
                       2: mb.encode_value(humidity, scale=0.1)},
                holding={0x101: address, 0x102: 9600})


class ModbusTransmitterEmulator(Emulator):
    device = "modbus-rtu"

    def __init__(self, link: str | os.PathLike[str], *, faults: Faults | None = None,
                 units: dict[int, Unit] | None = None) -> None:
        super().__init__(link, faults=faults)
        self.units = units if units is not None else {1: xy_md02()}
        self.requests: list[mb.ReadRequest] = []
        self._parser = mb.RequestParser()

    def set_value(self, address: int, register: int, value: float, *, scale: float = 0.1,
                  signed: bool = True, table: str = "input") -> None:
        getattr(self.units[address], table)[register] = mb.encode_value(value, scale=scale,
                                                                        signed=signed)

    def on_plug(self) -> None:
        self._parser = mb.RequestParser()

    def on_bytes(self, data: bytes) -> None:
        for request in self._parser.feed(data):
            self.requests.append(request)
            reply = self.answer(request)
            if reply is not None:
                good = reply.encode()
                self.emit(good, corrupt=lambda good=good: good[:-2] + bytes((good[-2] ^ 0xFF,
                                                                              good[-1])))
        self.counters.update(self._parser.counters)
        self._parser.counters.clear()

    def answer(self, request: mb.ReadRequest) -> mb.ReadReply | mb.ExceptionReply | None:
        unit = self.units.get(request.unit)
        if unit is None:
            return None
        if self.faults.exception_code is not None:
            return mb.ExceptionReply(request.unit, request.function, self.faults.exception_code)
        if not 1 <= request.count <= mb.MAX_READ_COUNT:
            return mb.ExceptionReply(request.unit, request.function, mb.ILLEGAL_VALUE)
        table = unit.input if request.function == mb.READ_INPUT else unit.holding
        registers = range(request.address, request.address + request.count)
        if any(r not in table for r in registers):
            return mb.ExceptionReply(request.unit, request.function, mb.ILLEGAL_ADDRESS)
        return mb.ReadReply(request.unit, request.function, tuple(table[r] for r in registers))
