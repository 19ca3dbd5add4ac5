"""DS18B20 over Linux 1-wire: pure parsing and CRC on golden sysfs reads, and the driver against a
temporary sysfs-like tree (probes appearing, vanishing, failing their CRC)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorlink.backoff import Backoff
from sensorlink.errors import ConfigError, DeviceDisconnected, ProtocolError
from sensorlink.hub import Hub, kinds
from sensorlink.options import build_options
from sensorlink.samples import Reading, SensorInfo
from sensorlink.sources.runner import DriverRunner
from sensorlink.status import SensorStatus
from sensorlink_drivers.onewire import (
    CrcError, DS18B20Probes, OneWireBus, OneWireOptions, dallas_crc8, parse_temperature_file,
    parse_w1_slave, quality_of,
)

DATA = Path(__file__).parent / "data" / "media"


def golden(name: str) -> str:
    return (DATA / name).read_text()


def scratchpad_for(milli_c: int, byte6: int | None = None) -> bytes:
    """A DS18B20 scratchpad holding ``milli_c`` (a multiple of 62.5) at 12 bits."""
    raw = round(milli_c * 16 / 1000) & 0xFFFF
    b6 = (0x10 - (raw & 0x0F)) if byte6 is None else byte6
    pad = bytes([raw & 0xFF, raw >> 8, 0x4B, 0x46, 0x7F, 0xFF, b6, 0x10])
    return pad + bytes([dallas_crc8(pad)])


def w1_slave_text(pad: bytes, milli_c: int, verdict: str | None = None) -> str:
    hexes = " ".join(f"{b:02x}" for b in pad)
    ok = dallas_crc8(pad[:8]) == pad[8]
    return (f"{hexes} : crc={dallas_crc8(pad[:8]):02x} {verdict or ('YES' if ok else 'NO')}\n"
            f"{hexes} t={milli_c}\n")


# -- CRC and parsing on golden reads ------------------------------------------------------------

def test_dallas_crc8_matches_real_devices_and_maxim_app_note_27():
    assert dallas_crc8(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert dallas_crc8(bytes.fromhex("50054b467fff0c10")) == 0x1C
    assert dallas_crc8(b"\xff" * 8) == 0xC9
    assert dallas_crc8(bytes.fromhex("021cb801000000")) == 0xA2  # the app note's ROM example


def test_normal_read_parses_to_milli_celsius_with_both_crc_checks():
    read = parse_w1_slave(golden("w1_slave_23125.txt"))
    assert read.milli_c == 23125
    assert read.scratchpad == bytes.fromhex("72014b467fff0e1057")
    assert read.kernel_crc_ok and read.crc_ok
    assert parse_w1_slave(golden("w1_slave_minus10125.txt")).milli_c == -10125


def test_unplugged_probe_fails_the_crc():
    read = parse_w1_slave(golden("w1_slave_unplugged.txt"))
    assert not read.kernel_crc_ok and not read.crc_ok


@pytest.mark.parametrize("text, where", [
    ("", "expected 2 lines"),
    ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n", "expected 2 lines"),
    ("72 01 4b 46 7f ff 0e 10 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=1\n", "line 1"),
    ("72 01 4b 46 7f ff 0e 10 57 : crc=57 MAYBE\n72 01 4b 46 7f ff 0e 10 57 t=1\n", "line 1"),
    ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 58 t=1\n", "line 2"),
    ("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=abc\n", "line 2"),
])
def test_malformed_reads_name_the_line(text, where):
    with pytest.raises(ProtocolError, match=where):
        parse_w1_slave(text)


def test_temperature_file():
    assert parse_temperature_file("23125\n") == 23125
    assert parse_temperature_file("-55000") == -55000
    with pytest.raises(ProtocolError, match="in progress"):
        parse_temperature_file("")


def test_power_on_value_is_suspect_unless_the_probe_was_already_there():
    power_on = parse_w1_slave(golden("w1_slave_poweron.txt"))
    assert quality_of(85000, power_on.scratchpad, None) == "suspect"
    # byte 6 = 0x0C is the power-on scratchpad: suspect even after a reading near 85 °C
    assert quality_of(85000, power_on.scratchpad, 84500) == "suspect"
    converted = scratchpad_for(85000)
    assert converted[6] == 0x10
    assert quality_of(85000, converted, None) == "suspect"      # a jump from nowhere
    assert quality_of(85000, converted, 23125) == "suspect"     # a jump from room temperature
    assert quality_of(85000, converted, 84500) == "ok"          # a process really at 85 °C
    assert quality_of(85000, None, 84000) == "ok"               # `temperature` file
    assert quality_of(85000, None, None) == "suspect"
    assert quality_of(127937, scratchpad_for(127937, byte6=0x0C), 25000) == "bad"
    assert quality_of(23125, None, None) == "ok"


# -- properties -------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=16))
def test_crc_of_data_plus_its_crc_is_zero(data):
    assert dallas_crc8(data + bytes([dallas_crc8(data)])) == 0


@settings(max_examples=100, deadline=None)
@given(st.integers(-880, 2000))
def test_scratchpads_round_trip_through_w1_slave_text(sixteenths):
    milli_c = sixteenths * 1000 // 16 if sixteenths >= 0 else -((-sixteenths * 1000) // 16)
    pad = scratchpad_for(sixteenths * 62.5)
    read = parse_w1_slave(w1_slave_text(pad, milli_c))
    assert read.scratchpad == pad and read.crc_ok and read.kernel_crc_ok
    assert read.milli_c == milli_c


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=120) | st.binary(max_size=120).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_parses_or_raises_protocol_error(text):
    try:
        read = parse_w1_slave(text)
    except ProtocolError:
        return
    assert len(read.scratchpad) == 9


# -- the driver on a sysfs-like tree ----------------------------------------------------------

def add_probe(root: Path, device: str, text: str, file: str = "w1_slave") -> Path:
    (root / device).mkdir(parents=True, exist_ok=True)
    (root / device / file).write_text(text)
    return root / device


def test_bus_scan_picks_ds18b20s_only(tmp_path):
    add_probe(tmp_path, "28-0316a2794bff", golden("w1_slave_23125.txt"))
    add_probe(tmp_path, "28-0000075c1a2b", golden("w1_slave_23125.txt"))
    (tmp_path / "w1_bus_master1").mkdir()
    add_probe(tmp_path, "10-000802b4ad1f", golden("w1_slave_23125.txt"))  # a DS18S20
    assert OneWireBus(tmp_path).scan() == ["28-0000075c1a2b", "28-0316a2794bff"]
    assert OneWireBus(tmp_path, families=("28", "10")).scan()[0] == "10-000802b4ad1f"
    with pytest.raises(DeviceDisconnected, match="no 1-wire bus"):
        OneWireBus(tmp_path / "missing").scan()


def test_bus_read_refuses_bad_crc_and_zero_scratchpads(tmp_path):
    add_probe(tmp_path, "28-000000000001", golden("w1_slave_unplugged.txt"))
    add_probe(tmp_path, "28-000000000002", golden("w1_slave_zeros.txt"))
    lying = golden("w1_slave_23125.txt").replace("0e 10 57", "0e 10 58").replace("crc=57", "crc=58")
    add_probe(tmp_path, "28-000000000003", lying)  # the kernel says YES, the bytes disagree
    add_probe(tmp_path, "28-000000000004", "-1250\n", file="temperature")
    bus = OneWireBus(tmp_path)
    with pytest.raises(CrcError, match="kernel reports"):
        bus.read("28-000000000001")
    with pytest.raises(ProtocolError, match="all-zero"):
        bus.read("28-000000000002")
    with pytest.raises(CrcError, match="scratchpad CRC 57 != byte 8 58"):
        bus.read("28-000000000003")
    probe = bus.read("28-000000000004")
    assert probe.milli_c == -1250 and probe.scratchpad is None


def test_options_are_checked_naming_the_field():
    with pytest.raises(ConfigError, match="field 'devices'"):
        build_options(OneWireOptions, {"devices": ["28-xyz"]}, sensor="probes")
    with pytest.raises(ConfigError, match="field 'source'"):
        build_options(OneWireOptions, {"source": "both"}, sensor="probes")


async def next_matching(sub, predicate, timeout: float = 20.0):
    while True:
        event = await asyncio.wait_for(sub.get(), timeout)
        if predicate(event):
            return event


async def test_probes_through_runner_and_hub(tmp_path):
    a, b = "28-0316a2794bff", "28-0000075c1a2b"
    add_probe(tmp_path, a, golden("w1_slave_23125.txt"))
    add_probe(tmp_path, b, golden("w1_slave_minus10125.txt"))
    driver = DS18B20Probes("probes", OneWireOptions(root=str(tmp_path), interval_s=0.05))
    hub = Hub()
    events = hub.subscribe("test", maxsize=10_000,
                           accepts=kinds(Reading, SensorInfo, SensorStatus))
    runner = DriverRunner(driver, hub, backoff=Backoff(initial=0.05, ceiling=0.05))
    runner.start()
    try:
        # values in = values out, one stream per probe id
        first = {}
        while len(first) < 2:
            r = await next_matching(events, lambda e: isinstance(e, Reading))
            first.setdefault(r.channel, r)
        assert first[a].value == 23.125 and first[b].value == -10.125
        assert {r.unit for r in first.values()} == {"°C"}
        assert {r.quality for r in first.values()} == {"ok"}
        assert set(hub.sensors["probes"].meta["streams"]) == {a, b}

        # a third probe appears, just powered up: announced, and its 85 °C flagged
        c = "28-00000abcdef0"
        add_probe(tmp_path, c, golden("w1_slave_poweron.txt"))
        info = await next_matching(events, lambda e: isinstance(e, SensorInfo)
                                   and c in e.meta["streams"])
        assert set(info.meta["streams"]) == {a, b, c}
        r = await next_matching(events, lambda e: isinstance(e, Reading) and e.channel == c)
        assert (r.value, r.quality) == (85.0, "suspect")

        # probe b's cable is pulled: its reads fail the CRC and produce nothing
        (tmp_path / b / "w1_slave").write_text(golden("w1_slave_unplugged.txt"))
        await next_matching(events, lambda e: driver.counters["crc_errors"] >= 2)
        seen_b = [e for e in events.get_nowait(10_000) if isinstance(e, Reading) and e.channel == b]
        assert all(e.value == -10.125 for e in seen_b)

        # probe a vanishes from the bus: announced without it
        shutil.rmtree(tmp_path / a)
        info = await next_matching(events, lambda e: isinstance(e, SensorInfo)
                                   and a not in e.meta["streams"])
        assert set(info.meta["streams"]) == {b, c}
        assert driver.counters["probes_vanished"] == 1
        assert driver.counters["probes_appeared"] == 1

        # the whole bus goes (w1-gpio unloaded): reconnecting, then back when it returns
        shutil.rmtree(tmp_path)
        status = await next_matching(events, lambda e: isinstance(e, SensorStatus)
                                     and e.state == "reconnecting")
        assert "no 1-wire bus" in status.detail or "no DS18B20" in status.detail \
            or "vanished" in status.detail
        add_probe(tmp_path, a, golden("w1_slave_23125.txt"))
        await next_matching(events, lambda e: isinstance(e, SensorStatus)
                            and e.state == "connected")
        r = await next_matching(events, lambda e: isinstance(e, Reading))
        assert (r.channel, r.value) == (a, 23.125)
    finally:
        await runner.stop()
