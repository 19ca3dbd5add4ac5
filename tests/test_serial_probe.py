"""`sensorlink probe` finds each emulated device; `sensorlink emulate` runs as a command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from sensorlink import cli
from sensorlink.emulators import Faults, create_emulator
from sensorlink.errors import DeviceDisconnected
from sensorlink.sources.serial_probe import probe_port

from support import wait_for


@pytest.mark.parametrize(("device", "detail"), [
    ("gy-mcu90640", "ambient 24.00 °C"),
    ("modbus-rtu", "input register 1 = 30.5"),
    ("ascii-bridge", "t1 = 23.5 °C"),
])
async def test_probe_finds_the_emulated_device(tmp_path: Path, device: str, detail: str) -> None:
    link = str(tmp_path / device)
    async with create_emulator(device, link):
        (found,) = await asyncio.to_thread(probe_port, link, seconds=0.6)
    assert found.driver == device
    assert detail in found.detail
    # Each protocol's usual baud rate is the first one at which it is tried.
    assert found.baudrate == (9600 if device == "modbus-rtu" else 115200)


async def test_probe_finds_a_gy_module_saved_in_query_mode(tmp_path: Path) -> None:
    link = str(tmp_path / "gy")
    async with create_emulator("gy-mcu90640", link, mode="query") as emu:
        (found,) = await asyncio.to_thread(probe_port, link, seconds=0.6)
    assert found.driver == "gy-mcu90640"
    assert (0x35, 0x01) in emu.commands  # type: ignore[attr-defined]


async def test_probe_reports_nothing_for_a_silent_device(tmp_path: Path) -> None:
    link = str(tmp_path / "mute")
    async with create_emulator("modbus-rtu", link, faults=Faults(silent=True)):
        found = await asyncio.to_thread(probe_port, link, seconds=0.2)
    assert found == []


def test_probe_of_a_missing_port_names_it() -> None:
    with pytest.raises(DeviceDisconnected, match="/nonexistent/ttyUSB9"):
        probe_port("/nonexistent/ttyUSB9", seconds=0.1)


async def test_emulate_and_probe_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "bridge"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorlink.cli", "emulate", "ascii-bridge", "--link", str(link),
        "--reading", "oven=180.25,C", "--max6675", "tc2=99.5", "--rate", "20",
        "--duration", "60", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await wait_for(link.exists, what="the emulator's pty link")
        code = await asyncio.to_thread(cli.main, ["probe", str(link), "--seconds", "0.6",
                                                  "--json"])
        assert code == 0
        answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert answer["driver"] == "ascii-bridge" and answer["baudrate"] == 115200
        assert "oven = 180.25 °C" in answer["detail"]
    finally:
        proc.terminate()
        async with asyncio.timeout(30):
            raw, _ = await proc.communicate()
    out = raw.decode()
    assert f"emulating ascii-bridge on {link}" in out and "stopped" in out
    assert not link.exists()
