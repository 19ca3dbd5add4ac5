"""A microcontroller bridge on a pty: a boot banner, then one line per channel each period."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sensorlink.emulators import Emulator, Faults
from sensorlink_drivers import ascii_bridge as ab


@dataclass
class Thermocouple:
    """A MAX31855 (tip and cold junction) or MAX6675 (tip only) whose raw word is sent."""

    chip: str  # "MAX31855" or "MAX6675"
    tc_c: float
    cj_c: float = 25.0
    #: MAX31855: bit0 open, bit1 short to GND, bit2 short to VCC; MAX6675: any → open
    faults: int = 0

    def body(self, channel: str) -> str:
        if self.chip == "MAX31855":
            return f"{channel},MAX31855,{ab.max31855_word(self.tc_c, self.cj_c, faults=self.faults):08X}"
        return f"{channel},MAX6675,{ab.max6675_word(self.tc_c, open_circuit=bool(self.faults)):04X}"


class AsciiBridgeEmulator(Emulator):
    device = "ascii-bridge"

    def __init__(self, link: str | os.PathLike[str], *, faults: Faults | None = None,
                 rate_hz: float = 2.0,
                 readings: dict[str, tuple[float, str]] | None = None,
                 thermocouples: dict[str, Thermocouple] | None = None,
                 banner: str = "# sensorlink bridge emulator v1") -> None:
        super().__init__(link, faults=faults)
        self.rate_hz = rate_hz
        self.readings = readings if readings is not None else {
            "t1": (23.5, "C"), "rh1": (45.25, "%RH")}
        self.thermocouples = thermocouples if thermocouples is not None else {
            "tc1": Thermocouple("MAX31855", 412.75, 24.0625)}
        self.banner = banner

    def on_plug(self) -> None:
        if self.banner:
            self.link.write(self.banner.encode("ascii") + b"\r\n")

    def lines(self) -> list[tuple[str, bytes, bytes]]:
        """(channel, line, line with a bad checksum) for everything sent each period."""
        out = []
        for channel, (value, unit) in self.readings.items():
            good = ab.encode_reading(channel, value, unit or None)
            body = good[1:good.index(b"*")].decode("ascii")
            out.append((channel, good, ab.encode_line(body, bad_checksum=True)))
        for channel, tc in self.thermocouples.items():
            body = tc.body(channel)
            out.append((channel, ab.encode_line(body), ab.encode_line(body, bad_checksum=True)))
        return out

    def tick(self) -> None:
        for _, good, bad in self.lines():
            self.emit(good, corrupt=lambda bad=bad: bad)
