"""Every serial driver against its emulator over a pty, through DriverRunner and the Hub.

One test class, run once per driver: values in = values out exactly; injected faults (garbage,
bad checksums, truncation) never produce a wrong value; unplug/replug goes reconnecting →
connected; a silent device goes reconnecting and comes back. Waits are on hub events, with a
bound so a failure cannot hang.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensorlink.emulators import Emulator, Faults, create_emulator
from sensorlink.emulators.modbus import xy_md02
from sensorlink.samples import Reading, ThermalFrame

from serial_support import Rig, make_driver
from support import wait_for


@dataclass
class Case:
    driver: str
    emulator: dict[str, Any]
    options: dict[str, Any]
    #: asserts that what came through the hub is exactly what the emulator sent
    check: Callable[[Rig, Emulator], Awaitable[None]]
    #: parser counters that must grow under injected faults
    fault_counters: tuple[str, ...]


async def check_gy(rig: Rig, emu: Any) -> None:
    frames = await rig.samples(ThermalFrame, 4)
    for frame in frames:
        index = round(float(frame.celsius[0, 0]) * 100) - 1000
        want = (emu.picture(index) / 100).astype(np.float32)
        assert np.array_equal(frame.celsius, want), f"frame {index} differs"
        assert frame.ambient_c == 24.0
    (ambient,) = await rig.samples(Reading, 1, where=lambda r: r.channel == "ambient")
    assert (ambient.value, ambient.unit) == (24.0, "°C")
    emu.ambient_c = 31.25
    await rig.samples(Reading, 1, where=lambda r: r.channel == "ambient" and r.value == 31.25)
    emu.ambient_c = 24.0


async def every_channel(rig: Rig, channels: set[str]) -> list[Reading]:
    """Readings until each channel has been seen (faults may drop some); every one is kept."""
    out: list[Reading] = []
    while not channels <= {r.channel for r in out}:
        assert len(out) < 500, f"never saw {channels - {r.channel for r in out}}"
        out.extend(await rig.samples(Reading, 1))
    return out


async def check_modbus(rig: Rig, emu: Any) -> None:
    truth = {"u1_temperature": (30.5, "°C"), "u1_humidity": (54.6, "%RH"),
             "u2_temperature": (-20.5, "°C"), "u2_humidity": (12.3, "%RH")}
    for r in await every_channel(rig, set(truth)):
        assert (r.value, r.unit) == truth[r.channel], r
    emu.set_value(2, 1, -7.9)
    await rig.samples(Reading, 1, where=lambda r: r.channel == "u2_temperature" and r.value == -7.9)
    emu.set_value(2, 1, -20.5)


async def check_bridge(rig: Rig, emu: Any) -> None:
    truth = {"t1": (23.5, "°C"), "rh1": (45.25, "%RH"), "tc1": (412.75, "°C"),
             "tc1_cj": (24.0625, "°C")}
    for r in await every_channel(rig, set(truth)):
        assert (r.value, r.unit) == truth[r.channel], r
    emu.readings["t1"] = (-3.125, "C")
    await rig.samples(Reading, 1, where=lambda r: r.channel == "t1" and r.value == -3.125)
    emu.readings["t1"] = (23.5, "C")


CASES = {
    "gy-mcu90640": Case("gy-mcu90640", {"rate_hz": 25.0},
                        {"silence_timeout_s": 0.6, "emissivity": 0.93},
                        check_gy, ("checksum_errors", "resync_bytes")),
    "modbus-rtu": Case("modbus-rtu",
                       {"units": {1: xy_md02(1, 30.5, 54.6), 2: xy_md02(2, -20.5, 12.3)}},
                       {"poll_hz": 20.0, "timeout_s": 0.15, "max_silent_polls": 2,
                        "transmitters": [{"address": 1}, {"address": 2}]},
                       check_modbus, ("crc_errors",)),
    "ascii-bridge": Case("ascii-bridge", {"rate_hz": 25.0}, {"silence_timeout_s": 0.6},
                         check_bridge, ("checksum_errors", "resync_bytes")),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
async def rig(case: Case, tmp_path: Path) -> AsyncIterator[tuple[Rig, Emulator]]:
    link = str(tmp_path / case.driver)
    emu = create_emulator(case.driver, link, **case.emulator)
    await emu.start()
    driver = make_driver(case.driver, "dut", {"port": link, **case.options})
    try:
        async with Rig(driver) as r:
            await r.state("connected")
            yield r, emu
    finally:
        await emu.stop()


class TestSerialBackToBack:
    async def test_values_in_equal_values_out(self, case: Case, rig: tuple[Rig, Emulator]) -> None:
        r, emu = rig
        await case.check(r, emu)
        assert r.runner.state == "connected"

    async def test_injected_faults_never_give_a_wrong_value(
            self, case: Case, rig: tuple[Rig, Emulator]) -> None:
        r, emu = rig
        # Periods coprime to the 3 lines a bridge sends per tick, or one channel is always hit.
        emu.faults.garbage_every, emu.faults.bad_checksum_every = 2, 4
        emu.faults.truncate_every = 0 if case.driver == "modbus-rtu" else 5
        await case.check(r, emu)
        await case.check(r, emu)
        counters = r.driver.counters
        assert all(counters[name] > 0 for name in case.fault_counters), dict(counters)
        assert emu.counters["garbage"] > 0 and emu.counters["bad_checksums"] > 0

    async def test_unplug_and_replug(self, case: Case, rig: tuple[Rig, Emulator]) -> None:
        r, emu = rig
        await case.check(r, emu)
        emu.unplug()
        assert not os.path.exists(emu.path)
        status = await r.state("reconnecting")
        assert "dut" in status.detail and emu.path in status.detail
        emu.replug()
        await r.state("connected")
        await case.check(r, emu)
        assert r.driver.counters["disconnects"] >= 1

    async def test_silent_device_goes_reconnecting_then_recovers(
            self, case: Case, rig: tuple[Rig, Emulator]) -> None:
        r, emu = rig
        await case.check(r, emu)
        emu.faults.silent = True
        status = await r.state("reconnecting")
        assert "no data" in status.detail or "no transmitter answered" in status.detail
        emu.faults.silent = False
        await r.state("connected")
        await case.check(r, emu)


async def test_modbus_exception_replies_are_counted_not_fatal(tmp_path: Path) -> None:
    link = str(tmp_path / "rs485")
    emu = create_emulator("modbus-rtu", link, faults=Faults(exception_code=2))
    await emu.start()
    driver = make_driver("modbus-rtu", "xy", {"port": link, "poll_hz": 20.0, "timeout_s": 0.2,
                                              "max_silent_polls": 2})
    try:
        async with Rig(driver) as r:
            await r.state("connected")
            # The state does not change, so there is no hub event to wait on: poll the counter.
            await wait_for(lambda: driver.counters["exception_2"] >= 5, what="5 exception replies")
            assert r.runner.state == "connected"
            assert driver.counters["samples"] == 0  # nothing invented for a refused request
            assert r.hub.statuses["xy"].state == "connected"
            emu.faults.exception_code = None
            (reading,) = await r.samples(Reading, 1, where=lambda s: s.channel == "temperature")
            assert reading.value == 30.5 and reading.unit == "°C"
    finally:
        await emu.stop()


@pytest.mark.parametrize("fault", ["bad_crc", "silent"])
async def test_modbus_noisy_bus_and_silent_device_are_told_apart(tmp_path: Path,
                                                                 fault: str) -> None:
    """A reply that arrives with a bad CRC is a noisy bus (crc_errors); no reply at all is a
    silent device (timeouts): status must not lump them together."""
    link = str(tmp_path / "rs485")
    emu = create_emulator("modbus-rtu", link)
    await emu.start()
    driver = make_driver("modbus-rtu", "xy", {"port": link, "poll_hz": 20.0, "timeout_s": 0.15,
                                              "retries": 0, "max_silent_polls": 1000})
    try:
        async with Rig(driver) as r:
            await r.samples(Reading, 1)
            if fault == "bad_crc":
                emu.faults.bad_checksum_every = 1
            else:
                emu.faults.silent = True
            counted, other = ("crc_errors", "timeouts") if fault == "bad_crc" else \
                ("timeouts", "crc_errors")
            await wait_for(lambda: driver.counters[counted] >= 3, what=f"3 {counted}")
            assert driver.counters[other] == 0, dict(driver.counters)
            if fault == "bad_crc":
                assert emu.counters["bad_checksums"] >= 3
    finally:
        await emu.stop()


async def test_gy_startup_commands_reach_the_module(tmp_path: Path) -> None:
    link = str(tmp_path / "gy")
    emu: Any = create_emulator("gy-mcu90640", link, rate_hz=25.0)
    await emu.start()
    driver = make_driver("gy-mcu90640", "cam", {"port": link, "rate_hz": 8, "emissivity": 0.95,
                                                "switch_baudrate": 460800, "save": True})
    try:
        async with Rig(driver) as r:
            await r.samples(ThermalFrame, 1)
            assert emu.commands[:5] == [(0x25, 0x04), (0x45, 95), (0x15, 0x03), (0x65, 0x01),
                                        (0x35, 0x02)]
            assert (emu.rate_hz, emu.emissivity, emu.baudrate) == (8.0, 0.95, 460800)
            assert emu.saved == {"rate_hz": 8.0, "baudrate": 460800, "emissivity": 0.95}
    finally:
        await emu.stop()


async def test_gy_query_mode_asks_for_each_frame(tmp_path: Path) -> None:
    link = str(tmp_path / "gy")
    emu: Any = create_emulator("gy-mcu90640", link, rate_hz=25.0, mode="query")
    await emu.start()
    driver = make_driver("gy-mcu90640", "cam", {"port": link, "mode": "query"})
    try:
        async with Rig(driver) as r:
            await check_gy(r, emu)
            assert emu.mode == "query"
            assert emu.commands.count((0x35, 0x01)) >= 4
    finally:
        await emu.stop()


async def test_serial_sensors_run_in_the_service_from_a_config(tmp_path: Path) -> None:
    """The path `sensorlink run` takes: TOML table → registry → options → runner → hub."""
    from sensorlink.config import ServiceConfig, parse_config
    from sensorlink.service import Service

    emus = [create_emulator("gy-mcu90640", str(tmp_path / "gy"), rate_hz=25.0),
            create_emulator("modbus-rtu", str(tmp_path / "rs485")),
            create_emulator("ascii-bridge", str(tmp_path / "bridge"), rate_hz=25.0)]
    config = parse_config({"sensors": [
        {"name": "cam", "driver": "gy-mcu90640", "port": str(tmp_path / "gy")},
        {"name": "cabinet", "driver": "modbus-rtu", "port": str(tmp_path / "rs485"),
         "poll_hz": 20.0},
        {"name": "furnace", "driver": "ascii-bridge", "port": str(tmp_path / "bridge")},
    ]})
    for emu in emus:
        await emu.start()
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token="test-token-123"),
                      sensors=config.sensors, source="test")
    sub = service.hub.subscribe("test", maxsize=10_000)
    await service.start()
    try:
        seen: dict[str, Any] = {}
        async with asyncio.timeout(20):
            while set(seen) != {"cam", "cabinet", "furnace"}:
                event = await sub.get()
                if isinstance(event, (ThermalFrame, Reading)) and event.sensor not in seen:
                    seen[event.sensor] = event
        assert isinstance(seen["cam"], ThermalFrame) and seen["cam"].width == 32
        assert seen["cabinet"].value in (30.5, 54.6)
        assert seen["furnace"].value in (23.5, 45.25, 412.75, 24.0625)
        assert {service.hub.statuses[n].state for n in seen} == {"connected"}
    finally:
        await service.stop()
        for emu in emus:
            await emu.stop()
