"""The thin transport every serial driver shares: a pyserial port, a reader thread, a pure parser.

A :class:`SerialDriver` opens any pyserial URL (``/dev/ttyUSB0``, a pty path, ``loop://``),
writes its start-up commands, and hands every chunk of bytes to a sans-io parser together with
the time the chunk arrived. The parser turns bytes into protocol events and counts what it threw
away; the driver turns events into Samples. When the port vanishes (USB unplugged, pty closed)
:meth:`SerialDriver.read` raises :class:`DeviceDisconnected` and
:class:`sensorlink.sources.runner.DriverRunner` takes over: state "reconnecting", backoff, reopen.

The reader is a thread with a short blocking read rather than ``loop.add_reader`` because pyserial
URL handlers such as ``loop://`` have no file descriptor to watch.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import serial

from sensorlink.driver import Driver
from sensorlink.errors import DeviceDisconnected, DriverError
from sensorlink.samples import Sample

#: How long one blocking read in the reader thread waits; bounds how fast close() returns.
READ_SLICE_S = 0.05
#: Chunks queued between the reader thread and the event loop before the oldest is dropped.
MAX_QUEUED_CHUNKS = 4096


class Parser(Protocol):
    """What a serial driver's pure parser looks like: bytes in, events out, counters kept."""

    counters: collections.Counter[str]

    def feed(self, data: bytes) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes as they came off the port, stamped when they arrived (not when parsed)."""

    data: bytes
    t_mono_ns: int
    t_wall_ns: int


def open_port(url: str, baudrate: int, *, sensor: str | None = None,
              timeout: float = READ_SLICE_S) -> serial.SerialBase:
    """Open a pyserial port or URL, raw 8N1, mapping pyserial's errors into ours."""
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=1.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceDisconnected(f"cannot open serial port: {exc}", sensor=sensor,
                                 port=url) from exc


class _Reader(threading.Thread):
    """Reads the port until stopped; hands chunks (or the error that ended it) to the loop."""

    def __init__(self, port: serial.SerialBase, loop: asyncio.AbstractEventLoop,
                 queue: asyncio.Queue[Chunk | BaseException], name: str) -> None:
        super().__init__(name=f"serial-reader:{name}", daemon=True)
        self.port = port
        self.loop = loop
        self.queue = queue
        self.stopping = threading.Event()

    def _hand_over(self, item: Chunk | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:  # the loop closed under us: nobody is listening any more
            self.stopping.set()

    def _put(self, item: Chunk | BaseException) -> None:
        if isinstance(item, Chunk) and self.queue.qsize() >= MAX_QUEUED_CHUNKS:
            self.queue.get_nowait()  # a stalled consumer must not grow memory without bound
        self.queue.put_nowait(item)

    def run(self) -> None:
        port = self.port
        while not self.stopping.is_set():
            try:
                data = port.read(max(1, min(port.in_waiting, 65536)))
            # pyserial raises SerialException, OSError, TypeError... when a port vanishes.
            except Exception as exc:  # noqa: BLE001
                if not self.stopping.is_set():
                    self._hand_over(exc)
                return
            if data:
                self._hand_over(Chunk(data, *Driver.stamp()))


class SerialDriver(Driver, abc.ABC):
    """Base of drivers that speak a byte protocol over a serial port.

    Subclasses give ``make_parser()``, ``startup_commands()`` and ``to_samples(event, chunk)``;
    their Options dataclass has at least ``port: str`` and ``baudrate: int``.
    """

    def __init__(self, name: str, options: Any = None) -> None:
        super().__init__(name, options)
        self.port: serial.SerialBase | None = None
        self.parser: Parser | None = None
        self._reader: _Reader | None = None
        self._queue: asyncio.Queue[Chunk | BaseException] | None = None
        self._pending: list[Sample] = []

    # -- what subclasses provide ----------------------------------------------------------
    @abc.abstractmethod
    def make_parser(self) -> Parser:
        """A fresh parser: partial frames from before a reconnect must not leak into the next."""

    def startup_commands(self) -> Sequence[bytes]:
        """Bytes written once, in order, right after the port opens."""
        return ()

    @abc.abstractmethod
    def to_samples(self, event: Any, chunk: Chunk) -> list[Sample]:
        """Samples for one parser event; ``chunk`` carries the arrival time."""

    async def after_open(self) -> None:
        """Hook run after the start-up commands (e.g. switch to a new baud rate)."""

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def port_url(self) -> str:
        return str(self.options.port)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.port = await loop.run_in_executor(
            None, lambda: open_port(self.port_url, self.options.baudrate, sensor=self.name))
        self.parser = self.make_parser()
        self._pending.clear()
        for command in self.startup_commands():
            await self.write(command)
        await self.after_open()
        self._queue = asyncio.Queue()
        self._reader = _Reader(self.port, loop, self._queue, self.name)
        self._reader.start()

    async def write(self, data: bytes) -> None:
        port = self.port
        if port is None:
            raise DeviceDisconnected("port is not open", sensor=self.name, port=self.port_url)
        try:
            await asyncio.get_running_loop().run_in_executor(None, port.write, data)
        except (serial.SerialException, OSError) as exc:
            raise DeviceDisconnected(f"write failed: {exc}", sensor=self.name,
                                     port=self.port_url) from exc
        self.counters["bytes_written"] += len(data)

    async def read(self) -> Sequence[Sample]:
        if self._queue is None or self.parser is None:
            raise DriverError("read() before open()", sensor=self.name, port=self.port_url)
        # Return once a chunk held at least one protocol event, even one that makes no sample
        # (a thermocouple fault): the device is alive, so the silence timeout must not fire.
        events: list[Any] = []
        while not events:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise DeviceDisconnected(f"port went away: {item}", sensor=self.name,
                                         port=self.port_url) from item
            self.counters["bytes_read"] += len(item.data)
            events = self.parser.feed(item.data)
            self._collect_parser_counters()
            for event in events:
                self._pending.extend(self.to_samples(event, item))
        out, self._pending = self._pending, []
        return out

    def _collect_parser_counters(self) -> None:
        # Parser counters are folded in and reset so totals survive the parser being replaced
        # on reconnect.
        parser = self.parser
        if parser is not None and parser.counters:
            self.counters.update(parser.counters)
            parser.counters.clear()

    async def close(self) -> None:
        reader, port = self._reader, self.port
        self._reader, self.port = None, None
        loop = asyncio.get_running_loop()
        if reader is not None:
            # The reader wakes at least every READ_SLICE_S; join before closing so it never
            # reads from a closed file descriptor.
            reader.stopping.set()
            await loop.run_in_executor(None, reader.join, 2.0)
        if port is not None:
            # Closing a vanished port may fail; it is gone either way.
            with contextlib.suppress(serial.SerialException, OSError):
                await loop.run_in_executor(None, port.close)
        self._collect_parser_counters()
