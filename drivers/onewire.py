"""DS18B20 temperature probes through the Linux 1-wire sysfs interface (``w1-gpio`` + ``w1_therm``).

The kernel lists each probe as ``/sys/bus/w1/devices/28-<serial>/``; reading its ``w1_slave``
starts a conversion (~750 ms at 12 bits) and returns two lines (kernel
Documentation/ABI/testing/sysfs-driver-w1_therm and Documentation/w1/slaves/w1_therm.rst)::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

Line one is the nine scratchpad bytes, the kernel's CRC and whether it matched; line two repeats
the bytes and gives milli-°C. Newer kernels also offer ``temperature`` (milli-°C alone). The
parsing here is pure; :class:`OneWireBus` is the thin part that lists and reads the files.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sensorlink.driver import Driver
from sensorlink.errors import DeviceDisconnected, ProtocolError
from sensorlink.samples import Quality, Reading, Sample, SensorInfo

#: The DS18B20 power-on register value, 85.000 °C: read before any conversion ran (a probe that
#: browned out and restarted mid-read) it is not a temperature.
POWER_ON_MILLI_C = 85_000
#: 0x07FF = 127.9375 °C: a conversion that stalled for lack of (parasite) power.
NO_POWER_MILLI_C = 127_937
#: Scratchpad byte 6 reads 0x0C at power-on; a completed 12-bit conversion rewrites it
#: (the kernel's ``features`` bit 1 uses the same test).
POWER_ON_BYTE6 = 0x0C
#: A reading of exactly 85 °C is believed only this close to the probe's previous reading.
PLAUSIBLE_STEP_MILLI_C = 5_000

_HEX_BYTE = re.compile(r"^[0-9a-fA-F]{2}$")
_DEVICE_ID = re.compile(r"^[0-9a-fA-F]{2}-[0-9a-fA-F]{12}$")


def dallas_crc8(data: bytes) -> int:
    """Dallas/Maxim 1-wire CRC-8 (x^8 + x^5 + x^4 + 1, reflected: 0x8C, initial value 0).

    Over scratchpad bytes 0-7 it equals byte 8; over all nine bytes it is 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True)
class W1SlaveRead:
    """One parsed ``w1_slave`` read."""

    scratchpad: bytes
    kernel_crc_ok: bool
    milli_c: int

    @property
    def crc_ok(self) -> bool:
        """Our own CRC over bytes 0-7 agrees with byte 8 (and with the kernel's verdict)."""
        return dallas_crc8(self.scratchpad[:8]) == self.scratchpad[8]


def _scratchpad(tokens: list[str], line: int) -> bytes:
    if len(tokens) < 9 or not all(_HEX_BYTE.match(t) for t in tokens[:9]):
        raise ProtocolError(f"w1_slave line {line}: expected nine hex bytes, got {tokens[:9]}")
    return bytes(int(t, 16) for t in tokens[:9])


def parse_w1_slave(text: str) -> W1SlaveRead:
    """Parse the two lines of ``w1_slave``; ProtocolError (naming the line) if malformed."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) != 2:
        raise ProtocolError(f"w1_slave: expected 2 lines, got {len(lines)}")
    first, second = lines[0].split(), lines[1].split()
    pad = _scratchpad(first, 1)
    verdict = first[-1] if first else ""
    if len(first) != 12 or first[9] != ":" or not first[10].startswith("crc=") \
            or verdict not in ("YES", "NO"):
        raise ProtocolError("w1_slave line 1: expected '<9 bytes> : crc=XX YES|NO', "
                            f"got {lines[0]!r}")
    if _scratchpad(second, 2) != pad:
        raise ProtocolError("w1_slave line 2: scratchpad differs from line 1")
    if len(second) != 10 or not second[9].startswith("t="):
        raise ProtocolError(f"w1_slave line 2: expected 't=<milli-°C>', got {lines[1]!r}")
    return W1SlaveRead(pad, verdict == "YES", _milli(second[9][2:], "w1_slave line 2"))


def parse_temperature_file(text: str) -> int:
    """The ``temperature`` file: milli-°C alone. Empty while a bulk conversion runs."""
    value = text.strip()
    if not value:
        raise ProtocolError("temperature: empty (conversion still in progress)")
    return _milli(value, "temperature")


def _milli(value: str, where: str) -> int:
    if not re.fullmatch(r"-?\d{1,7}", value):
        raise ProtocolError(f"{where}: expected an integer milli-°C, got {value!r}")
    return int(value)


def quality_of(milli_c: int, scratchpad: bytes | None, previous_milli_c: int | None) -> Quality:
    """Judge a value: the power-on 85 °C is ``suspect`` unless the scratchpad shows a completed
    conversion or the probe was already near 85 °C; a stalled conversion is ``bad``."""
    power_on_pad = scratchpad is not None and scratchpad[6] == POWER_ON_BYTE6
    if milli_c == NO_POWER_MILLI_C and (scratchpad is None or power_on_pad):
        return "bad"
    if milli_c == POWER_ON_MILLI_C:
        near = previous_milli_c is not None and \
            abs(previous_milli_c - POWER_ON_MILLI_C) <= PLAUSIBLE_STEP_MILLI_C
        if power_on_pad or not near:
            return "suspect"
    return "ok"


class CrcError(ProtocolError):
    """The scratchpad failed the Dallas CRC (noise on a long cable, a weak pull-up)."""


@dataclass(frozen=True)
class ProbeRead:
    device: str
    milli_c: int
    scratchpad: bytes | None


class OneWireBus:
    """The thin, blocking part: list ``<family>-*`` devices under a sysfs root and read them."""

    def __init__(self, root: str | os.PathLike[str], families: Sequence[str] = ("28",),
                 source: Literal["auto", "w1_slave", "temperature"] = "auto") -> None:
        self.root = Path(root)
        self.families = tuple(f.lower() for f in families)
        self.source = source

    def scan(self) -> list[str]:
        if not self.root.is_dir():
            raise DeviceDisconnected(f"no 1-wire bus at {self.root} (is the w1-gpio overlay "
                                     "and w1_therm loaded?)", port=str(self.root))
        return sorted(p.name for p in self.root.iterdir()
                      if _DEVICE_ID.match(p.name) and p.name[:2].lower() in self.families)

    def read(self, device: str) -> ProbeRead:
        """Read one probe; OSError if it vanished, ProtocolError if its answer is unusable."""
        base = self.root / device
        use_w1_slave = self.source == "w1_slave" or (
            self.source == "auto" and (base / "w1_slave").exists())
        if use_w1_slave:
            text = (base / "w1_slave").read_text(encoding="ascii", errors="replace")
            parsed = parse_w1_slave(text)
            if not parsed.kernel_crc_ok:
                raise CrcError(f"{device}: kernel reports CRC mismatch")
            if not parsed.crc_ok:
                raise CrcError(f"{device}: scratchpad CRC {dallas_crc8(parsed.scratchpad[:8]):02x} "
                               f"!= byte 8 {parsed.scratchpad[8]:02x}")
            if not any(parsed.scratchpad):
                # An all-zero scratchpad passes the CRC (CRC of zeros is 0): a probe that lost
                # its data line mid-read, not 0 °C.
                raise ProtocolError(f"{device}: all-zero scratchpad")
            return ProbeRead(device, parsed.milli_c, parsed.scratchpad)
        text = (base / "temperature").read_text(encoding="ascii", errors="replace")
        return ProbeRead(device, parse_temperature_file(text), None)


@dataclass(frozen=True)
class OneWireOptions:
    #: where the kernel lists 1-wire devices
    root: str = "/sys/bus/w1/devices"
    #: seconds between reads of all probes (each read takes ~750 ms per probe at 12 bits)
    interval_s: float = 5.0
    #: read only these device ids (e.g. "28-0316a2794bff"); empty = every probe found
    devices: list[str] = field(default_factory=list)
    #: family codes to pick up: 28 = DS18B20 (10 = DS18S20, 22 = DS1822, 3b = DS1825)
    families: list[str] = field(default_factory=lambda: ["28"])
    #: which file to read; "auto" prefers w1_slave (so the CRC can be checked here)
    source: Literal["auto", "w1_slave", "temperature"] = "auto"

    def __post_init__(self) -> None:
        if not 0.05 <= self.interval_s <= 3600:
            raise ValueError("interval_s: must be between 0.05 and 3600")
        bad = [d for d in self.devices if not _DEVICE_ID.match(d)]
        if bad:
            raise ValueError(f"devices: {bad[0]!r} is not a 1-wire id like '28-0316a2794bff'")


class DS18B20Probes(Driver):
    kind = "probe"
    description = "DS18B20 temperature probes on the Linux 1-wire bus (sysfs w1_therm)"
    Options = OneWireOptions

    def __init__(self, name: str, options: OneWireOptions | None = None) -> None:
        super().__init__(name, options)
        o = self.options
        self.bus = OneWireBus(o.root, o.families, o.source)
        self.present: tuple[str, ...] = ()
        self._previous: dict[str, int] = {}
        self._next_ns = 0

    def info(self) -> SensorInfo:
        streams = {d: {"quantity": "temperature", "unit": "°C"} for d in self.present}
        return SensorInfo(self.name, "probe", "ds18b20",
                          {"streams": streams, "rate_hz": 1.0 / self.options.interval_s,
                           "root": self.options.root})

    def _wanted(self, found: list[str]) -> tuple[str, ...]:
        if not self.options.devices:
            return tuple(found)
        wanted = {d.lower() for d in self.options.devices}
        return tuple(d for d in found if d.lower() in wanted)

    def _update_present(self, found: tuple[str, ...]) -> None:
        if found == self.present:
            return
        appeared = set(found) - set(self.present)
        vanished = set(self.present) - set(found)
        self.counters["probes_appeared"] += len(appeared) if self.present else 0
        self.counters["probes_vanished"] += len(vanished)
        for device in vanished:
            self._previous.pop(device, None)  # a probe that comes back starts from power-up
        self.present = found
        self.info_revision += 1

    async def open(self) -> None:
        found = self._wanted(await asyncio.to_thread(self.bus.scan))
        if not found:
            raise DeviceDisconnected(f"no DS18B20 ({'/'.join(self.bus.families)}-*) under "
                                     f"{self.bus.root}", sensor=self.name, port=str(self.bus.root))
        self._update_present(found)
        self._next_ns = time.monotonic_ns()

    async def read(self) -> Sequence[Sample]:
        delay = self._next_ns - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        period = int(self.options.interval_s * 1e9)
        self._next_ns = max(self._next_ns + period, time.monotonic_ns())
        found = self._wanted(await asyncio.to_thread(self.bus.scan))
        if not found:
            raise DeviceDisconnected("every probe vanished", sensor=self.name,
                                     port=str(self.bus.root))
        self._update_present(found)
        out: list[Sample] = []
        for device in found:
            try:
                probe = await asyncio.to_thread(self.bus.read, device)
            except CrcError:
                self.counters["crc_errors"] += 1
                continue
            except ProtocolError:
                self.counters["bad_reads"] += 1
                continue
            except OSError:
                # Vanished between the scan and the read, or an I/O error on the bus.
                self.counters["read_errors"] += 1
                continue
            t_mono, t_wall = self.stamp()
            quality = quality_of(probe.milli_c, probe.scratchpad, self._previous.get(device))
            if quality == "ok":
                self._previous[device] = probe.milli_c
            else:
                self.counters[f"{quality}_readings"] += 1
            out.append(Reading(self.name, device, "temperature", probe.milli_c / 1000.0, "°C",
                               self.next_seq(device), t_mono, t_wall, quality))
        return out
