"""docs/hardware.md stays true: its TOML examples build real driver options, its protocol lines
decode to what the table says, and the Arduino sketch speaks the documented format."""

from __future__ import annotations

import re
import tomllib

import pytest

from sensorlink.config import parse_config
from sensorlink.options import build_options
from sensorlink.sources.registry import load_driver
from sensorlink_drivers import ascii_bridge as ab

from support import REPO

DOC = (REPO / "docs" / "hardware.md").read_text(encoding="utf-8")
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", DOC, re.DOTALL)


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda b: re.search(r'name = "(.*?)"', b)[1])
def test_toml_examples_build_driver_options(block: str) -> None:
    config = parse_config(tomllib.loads(block), source="docs/hardware.md")
    for sensor in config.sensors:
        cls = load_driver(sensor.driver)
        options = build_options(cls.Options, sensor.options, sensor=sensor.name)
        assert cls(sensor.name, options).info().driver == sensor.driver


def test_every_driver_is_documented() -> None:
    assert {re.search(r'driver = "(.*?)"', b)[1] for b in TOML_BLOCKS} == {
        "gy-mcu90640", "modbus-rtu", "ascii-bridge"}


@pytest.mark.parametrize(("line", "first"), [
    ("$t1,23.5,C*1C", ab.BridgeReading("t1", "temperature", 23.5, "°C")),
    ("$rh1,45.25,%RH*3C", ab.BridgeReading("rh1", "humidity", 45.25, "%RH")),
    ("$tc1,MAX31855,01900C80*3B", ab.BridgeReading("tc1", "temperature", 25.0, "°C")),
    ("$tc3,MAX6675,0C80*09", ab.BridgeReading("tc3", "temperature", 100.0, "°C")),
])
def test_documented_lines_decode(line: str, first: ab.BridgeReading) -> None:
    assert f"`{line}`" in DOC
    assert ab.BridgeLineParser().feed(line.encode() + b"\r\n")[0] == first


def test_arduino_sketch_speaks_the_protocol() -> None:
    sketch = (REPO / "examples" / "arduino" / "sensorlink_bridge" / "sensorlink_bridge.ino").read_text()
    for fmt in ('"tc1,MAX31855,%08lX"', '"tc2,MAX6675,%04X"', '"*%02X\\r\\n"', "sum ^= "):
        assert fmt in sketch
    assert "Serial.begin(115200)" in sketch  # the driver's default baud rate
