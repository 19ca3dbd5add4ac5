"""Modbus RTU temperature/humidity transmitters on one RS-485 port, polled through pymodbus.

Defaults fit the XY-MD02 / SHT20 transmitters (e-tinkers/Modbus-RTU, examples/SHT20): 9600 8N1,
address 1, function 0x04, input registers 0x0001 (°C ×10) and 0x0002 (%RH ×10), signed
big-endian. Everything is configurable per transmitter because other models differ::

    [[sensors]]
    name = "cabinet"
    driver = "modbus-rtu"
    port = "/dev/ttyUSB1"
    poll_hz = 1

    [[sensors.transmitters]]       # an XY-MD02 with defaults
    address = 1

    [[sensors.transmitters]]
    address = 7
    function = 3
    register = 0
    count = 1
    scale = 0.01
    channels = ["oil"]
    units = ["°C"]

An exception reply, a reply with a bad CRC or a timeout from one transmitter is counted
(``exception_replies``, ``exception_<code>``, ``crc_errors``, ``timeouts``) and skipped: no reading is invented for it. Only when no
transmitter has answered for ``max_silent_polls`` polls in a row, or the port itself is gone,
does the driver raise DeviceDisconnected so the runner shows "reconnecting" and reopens.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sensorlink.driver import Driver
from sensorlink.errors import DeviceDisconnected
from sensorlink.samples import Reading, Sample, SensorInfo
from sensorlink_drivers.modbus_codec import READ_FUNCTIONS, ReplyParser, decode_registers
from sensorlink_drivers.simulated.pacing import Ticker

_QUANTITIES = {"°C": "temperature", "°F": "temperature", "K": "temperature", "%RH": "humidity"}


@dataclass(frozen=True)
class Transmitter:
    """One device on the bus and the block of registers read from it in one request."""

    address: int = 1
    function: Literal[3, 4] = 4
    register: int = 1
    count: int = 2
    scale: float = 0.1
    signed: bool = True
    channels: tuple[str, ...] = ("temperature", "humidity")
    units: tuple[str, ...] = ("°C", "%RH")

    @classmethod
    def from_table(cls, table: dict[str, Any], index: int, many: bool) -> Transmitter:
        where = f"transmitters[{index}]"
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"transmitters: {where} has unknown key {unknown[0]!r}; "
                             f"known: {sorted(known)}")
        values = dict(table)
        for key in ("channels", "units"):
            if key in values:
                values[key] = tuple(values[key])
        t = cls(**values)
        if "channels" not in table and many:
            # Several XY-MD02s on one bus: keep their default channel names apart.
            t = cls(**{**values, "channels": tuple(f"u{t.address}_{c}" for c in t.channels)})
        t.check(where)
        return t

    def check(self, where: str) -> None:
        if not 1 <= self.address <= 247:
            raise ValueError(f"transmitters: {where}.address must be 1-247")
        if self.function not in READ_FUNCTIONS:
            raise ValueError(f"transmitters: {where}.function must be 3 or 4")
        if not (0 <= self.register <= 0xFFFF and 1 <= self.count <= 125):
            raise ValueError(f"transmitters: {where} register 0-65535 and count 1-125 please")
        if len(self.channels) != self.count or len(self.units) != self.count:
            raise ValueError(f"transmitters: {where} needs one channel name and one unit per "
                             f"register (count = {self.count})")
        if self.scale == 0:
            raise ValueError(f"transmitters: {where}.scale must not be 0")


@dataclass(frozen=True)
class ModbusRtuOptions:
    port: str = "/dev/ttyUSB0"
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    poll_hz: float = 1.0
    #: seconds to wait for each reply
    timeout_s: float = 0.5
    #: requests repeated after a timeout before it counts
    retries: int = 0
    #: polls in a row with no answer from any transmitter before the bus counts as gone
    max_silent_polls: int = 3
    transmitters: list[dict] = field(default_factory=lambda: [{}])

    def __post_init__(self) -> None:
        if not 0.01 <= self.poll_hz <= 50:
            raise ValueError("poll_hz: must be 0.01-50")
        if not 0.01 <= self.timeout_s <= 10:
            raise ValueError("timeout_s: must be 0.01-10 s")
        if not self.transmitters:
            raise ValueError("transmitters: list at least one transmitter")
        many = len(self.transmitters) > 1
        parsed = tuple(Transmitter.from_table(t, i, many) for i, t in enumerate(self.transmitters))
        names = [c for t in parsed for c in t.channels]
        if len(set(names)) != len(names):
            raise ValueError("transmitters: channel names must be unique across transmitters")
        object.__setattr__(self, "parsed", parsed)


class ModbusRtu(Driver):
    kind = "probe"
    description = "Modbus RTU temperature/humidity transmitters (XY-MD02 ...) on RS-485"
    requires = ("pymodbus",)
    Options = ModbusRtuOptions

    def __init__(self, name: str, options: ModbusRtuOptions | None = None) -> None:
        super().__init__(name, options)
        self._client: Any = None
        #: a complete reply with a bad CRC arrived for the request under way (noise on the bus)
        self._saw_bad_crc = False
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._silent_polls = 0

    @property
    def transmitters(self) -> tuple[Transmitter, ...]:
        return self.options.parsed  # type: ignore[attr-defined, no-any-return]

    def info(self) -> SensorInfo:
        streams = {ch: {"quantity": _QUANTITIES.get(unit, "value"), "unit": unit,
                        "address": t.address}
                   for t in self.transmitters for ch, unit in zip(t.channels, t.units)}
        return SensorInfo(self.name, "probe", "modbus-rtu",
                          {"streams": streams, "rate_hz": self.options.poll_hz,
                           "port": self.options.port})

    async def open(self) -> None:
        from pymodbus.client import ModbusSerialClient  # lazily: listing drivers stays cheap

        o = self.options
        client = ModbusSerialClient(o.port, baudrate=o.baudrate, parity=o.parity,
                                    stopbits=o.stopbits, timeout=o.timeout_s, retries=o.retries,
                                    trace_packet=self._watch_received)
        # One worker thread: pymodbus's sync client is blocking and must not be used by two
        # threads at once. It also keeps cancellation safe: a poll whose read() was cancelled
        # (the silence timeout, stop) still runs to its end before the next call and close().
        self._executor = concurrent.futures.ThreadPoolExecutor(1, f"modbus:{self.name}")
        connected = await self._call(client.connect)
        if not connected:
            await self._call(client.close)
            raise DeviceDisconnected("cannot open serial port", sensor=self.name, port=o.port)
        self._client = client
        self._ticker = Ticker(o.poll_hz)
        self._silent_polls = 0

    def _watch_received(self, sending: bool, data: bytes) -> bytes:
        """pymodbus drops a reply whose CRC fails and waits on until its timeout, so the
        request looks unanswered. Its framer is handed the bytes received so far through this
        hook (in the worker thread): a complete reply in them that fails the CRC means a noisy
        bus, not a silent device."""
        if not sending and _has_bad_crc_reply(data):
            self._saw_bad_crc = True
        return data

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def read(self) -> Sequence[Sample]:
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        await self._ticker.wait()
        client, out, answered = self._client, [], 0
        if client is None:
            raise DeviceDisconnected("not open", sensor=self.name, port=self.options.port)
        for t in self.transmitters:
            method = (client.read_input_registers if t.function == 4
                      else client.read_holding_registers)
            self._saw_bad_crc = False
            try:
                reply = await self._call(method, t.register, count=t.count, device_id=t.address)
            except ConnectionException as exc:
                raise DeviceDisconnected(f"port went away: {exc}", sensor=self.name,
                                         port=self.options.port) from exc
            except ModbusIOException:
                self.counters["crc_errors" if self._saw_bad_crc else "timeouts"] += 1
                continue
            t_mono, t_wall = self.stamp()
            answered += 1
            if reply.isError():
                code = int(getattr(reply, "exception_code", 0))
                self.counters["exception_replies"] += 1
                self.counters[f"exception_{code}"] += 1
                continue
            registers = list(reply.registers)
            if len(registers) != t.count:
                self.counters["short_replies"] += 1
                continue
            values = decode_registers(registers, scale=t.scale, signed=t.signed)
            for channel, unit, value in zip(t.channels, t.units, values):
                out.append(Reading(self.name, channel, _QUANTITIES.get(unit, "value"), value,
                                   unit, self.next_seq(channel), t_mono, t_wall))
        self.counters["polls"] += 1
        self._silent_polls = 0 if answered else self._silent_polls + 1
        if not answered and not _port_exists(self.options.port):
            raise DeviceDisconnected("port vanished", sensor=self.name, port=self.options.port)
        if self._silent_polls >= self.options.max_silent_polls:
            raise DeviceDisconnected(f"no transmitter answered {self._silent_polls} polls in a row",
                                     sensor=self.name, port=self.options.port)
        return out

    async def close(self) -> None:
        client, executor = self._client, self._executor
        self._client, self._executor = None, None
        if executor is not None:
            if client is not None:
                await asyncio.get_running_loop().run_in_executor(executor, client.close)
            executor.shutdown(wait=False)


def _has_bad_crc_reply(data: bytes) -> bool:
    parser = ReplyParser()
    parser.feed(data)
    return parser.counters["crc_errors"] > 0


def _port_exists(port: str) -> bool:
    # A USB adapter's /dev node (or an emulator's pty link) disappears when unplugged; URLs
    # such as loop:// or rfc2217:// have no node to check.
    return "://" in port or os.path.exists(port)
