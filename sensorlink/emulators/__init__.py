"""Serial devices played on a pty, so the real drivers run without hardware.

Each emulator speaks its device's wire format byte for byte (using the driver module's own
encoders), listens for the commands a driver sends, and can inject faults: garbage between
messages, truncated messages, bad checksums, silence, Modbus exception replies, and unplugging
(the pty closes and the path disappears until :meth:`Emulator.replug`). They are the test
fixtures and what ``sensorlink emulate DEVICE --link PATH`` runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from sensorlink.emulators.pty_link import PtyLink

#: device name (the driver's entry-point name) -> "module:Class"
EMULATORS = {
    "gy-mcu90640": "sensorlink.emulators.gy_mcu90640:GyMcu90640Emulator",
    "modbus-rtu": "sensorlink.emulators.modbus:ModbusTransmitterEmulator",
    "ascii-bridge": "sensorlink.emulators.ascii_bridge:AsciiBridgeEmulator",
}


@dataclass
class Faults:
    """What goes wrong, counted per message sent. Mutable: flip it while the emulator runs."""

    #: after every Nth message, a burst of random bytes
    garbage_every: int = 0
    #: every Nth message is cut in half
    truncate_every: int = 0
    #: every Nth message carries a wrong checksum/CRC
    bad_checksum_every: int = 0
    #: send nothing at all (commands and requests are still read)
    silent: bool = False
    #: Modbus: answer every request with this exception code
    exception_code: int | None = None
    seed: int = 0


class Emulator:
    """A device on a pty. Subclasses implement :meth:`on_bytes` and, if they stream, :meth:`tick`."""

    device: ClassVar[str]
    #: messages per second for streaming devices; None for request/response devices
    rate_hz: float | None = None

    def __init__(self, link: str | os.PathLike[str], *, faults: Faults | None = None) -> None:
        self.link = PtyLink(link)
        self.faults = faults or Faults()
        self.counters: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(self.faults.seed)
        self._task: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return str(self.link.path)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.link.open(self.on_bytes)
        self.on_plug()
        self._task = asyncio.create_task(self._stream(), name=f"emulator:{self.device}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.link.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def unplug(self) -> None:
        self.link.close()
        self.counters["unplugs"] += 1

    def replug(self) -> None:
        self.link.open(self.on_bytes)
        self.on_plug()

    # -- device behaviour -----------------------------------------------------------------
    def on_plug(self) -> None:
        """Called each time the device is plugged in (a bridge prints its banner here)."""

    def on_bytes(self, data: bytes) -> None:
        """Bytes the driver wrote to the port."""

    def tick(self) -> None:
        """One period of a streaming device."""

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            rate = self.rate_hz
            if not rate:
                await asyncio.sleep(0.1)
                next_t = loop.time()
                continue
            next_t = max(next_t + 1.0 / rate, loop.time() - 1.0)
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            if self.link.is_open:
                self.tick()

    def emit(self, message: bytes, corrupt: Callable[[], bytes] | None = None) -> None:
        """Send one message through the fault plan."""
        f = self.faults
        self.counters["messages"] += 1
        n = self.counters["messages"]
        if f.silent:
            self.counters["silenced"] += 1
            return
        if f.bad_checksum_every and n % f.bad_checksum_every == 0 and corrupt is not None:
            message = corrupt()
            self.counters["bad_checksums"] += 1
        if f.truncate_every and n % f.truncate_every == 0:
            message = message[:len(message) // 2]
            self.counters["truncated"] += 1
        if self.link.write(message):
            self.counters["sent"] += 1
        if f.garbage_every and n % f.garbage_every == 0:
            self.link.write(self.garbage())
            self.counters["garbage"] += 1

    def garbage(self) -> bytes:
        return bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 48)))


def emulator_class(device: str) -> type[Emulator]:
    try:
        target = EMULATORS[device]
    except KeyError:
        raise KeyError(f"no emulator for {device!r}; emulated devices: {sorted(EMULATORS)}") from None
    module, _, name = target.partition(":")
    cls: type[Emulator] = getattr(importlib.import_module(module), name)
    return cls


def create_emulator(device: str, link: str, *, faults: Faults | None = None,
                    **options: Any) -> Emulator:
    return emulator_class(device)(link, faults=faults, **options)
