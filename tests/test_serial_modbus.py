"""Modbus RTU: golden frames, CRC, register decoding, option checks and parser properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorlink.errors import ConfigError
from sensorlink.options import build_options
from sensorlink_drivers import modbus_codec as mb
from sensorlink_drivers.modbus_rtu import ModbusRtuOptions

from serial_support import DATA


def golden() -> dict[str, bytes]:
    out = {}
    for line in (DATA / "modbus_xy_md02.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _direction, *hexbytes = line.split()
            out[name] = bytes.fromhex("".join(hexbytes))
    return out


FRAMES = golden()


def test_worked_example_from_the_design_notes() -> None:
    assert mb.ReadRequest(1, 4, 1, 1).encode() == bytes.fromhex("01 04 00 01 00 01 60 0A")
    assert mb.ReadReply(1, 4, (0x0131,)).encode() == bytes.fromhex("01 04 02 01 31 79 74")
    (reply,) = mb.ReplyParser().feed(bytes.fromhex("01 04 02 01 31 79 74"))
    assert mb.decode_registers(reply.registers, scale=0.1) == [30.5]


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_golden_frames_have_good_crcs_and_round_trip(name: str) -> None:
    frame = FRAMES[name]
    assert mb.crc_ok(frame)
    if name.startswith("read_"):
        (request,) = mb.RequestParser().feed(frame)
        assert request.encode() == frame
    else:
        (reply,) = mb.ReplyParser().feed(frame)
        assert reply.encode() == frame


def test_golden_values() -> None:
    parse = mb.ReplyParser()
    both = parse.feed(FRAMES["both_30_5_54_6"])[0]
    assert mb.decode_registers(both.registers, scale=0.1) == [30.5, 54.6]
    assert parse.feed(FRAMES["device_id_1"])[0].registers == (1,)
    exc = parse.feed(FRAMES["illegal_address"])[0]
    assert exc == mb.ExceptionReply(1, 4, mb.ILLEGAL_ADDRESS)
    assert mb.RequestParser().feed(FRAMES["read_both"]) == [mb.ReadRequest(1, 4, 1, 2)]


def test_crc16_modbus_check_value() -> None:
    assert mb.crc16_modbus(b"123456789") == 0x4B37  # the catalogue check value of CRC-16/MODBUS


def test_signed_and_unsigned_registers() -> None:
    assert mb.decode_registers([0xFF33], scale=0.1) == [-20.5]  # the SHT20 README's example
    assert mb.decode_registers([0xFF33], scale=0.1, signed=False) == [6533.1]
    assert mb.decode_registers([3, 0x0BEA], scale=0.01) == [0.03, 30.5]
    assert mb.encode_value(-20.5, scale=0.1) == 0xFF33
    with pytest.raises(ValueError):
        mb.encode_value(-1, signed=False)


def test_bad_crc_and_noise_are_skipped_and_counted() -> None:
    good = FRAMES["temperature_30_5"]
    bad = good[:-1] + bytes((good[-1] ^ 1,))
    parser = mb.ReplyParser()
    assert parser.feed(b"\xff\x00" + bad + good) == [mb.ReadReply(1, 4, (0x131,))]
    assert parser.counters["crc_errors"] >= 1 and parser.counters["resync_bytes"] >= 2


def test_options_default_to_one_xy_md02_and_name_bad_fields() -> None:
    options = build_options(ModbusRtuOptions, {"port": "/dev/null"})
    (t,) = options.parsed
    assert (t.address, t.function, t.register, t.count, t.scale, t.signed) == (1, 4, 1, 2, 0.1, True)
    assert t.channels == ("temperature", "humidity") and t.units == ("°C", "%RH")
    two = build_options(ModbusRtuOptions, {"transmitters": [{"address": 1}, {"address": 2}]})
    assert [c for t in two.parsed for c in t.channels] == [
        "u1_temperature", "u1_humidity", "u2_temperature", "u2_humidity"]
    with pytest.raises(ConfigError, match="transmitters") as info:
        build_options(ModbusRtuOptions, {"transmitters": [{"address": 300}]}, sensor="rs485")
    assert info.value.field == "transmitters" and info.value.sensor == "rs485"
    with pytest.raises(ConfigError, match="one channel name"):
        build_options(ModbusRtuOptions, {"transmitters": [{"count": 1}]})
    with pytest.raises(ConfigError, match="unknown key 'slave'"):
        build_options(ModbusRtuOptions, {"transmitters": [{"slave": 1}]})


frames_st = st.one_of(
    st.builds(lambda u, f, regs: mb.ReadReply(u, f, tuple(regs)).encode(),
              st.integers(1, 247), st.sampled_from(mb.READ_FUNCTIONS),
              st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8)),
    st.builds(lambda u, f, c: mb.ExceptionReply(u, f, c).encode(),
              st.integers(1, 247), st.sampled_from(mb.READ_FUNCTIONS), st.integers(1, 11)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 50))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    replies, requests = mb.ReplyParser(), mb.RequestParser()
    for i in range(0, len(data), chunk):
        for reply in replies.feed(data[i:i + chunk]):
            assert mb.crc_ok(reply.encode())
        for request in requests.feed(data[i:i + chunk]):
            assert request.function in mb.READ_FUNCTIONS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=12), frames_st), min_size=1, max_size=6),
       st.integers(1, 64))
def test_replies_interleaved_with_noise_are_all_recovered(items: list[tuple[bytes, bytes]],
                                                          chunk: int) -> None:
    stream = b"".join(noise + frame for noise, frame in items)
    parser = mb.ReplyParser()
    got = [r.encode() for i in range(0, len(stream), chunk) for r in parser.feed(stream[i:i + chunk])]
    # Noise can by chance hold a frame with a good CRC; every real frame must still be there,
    # in order.
    wanted = iter(got)
    assert all(any(g == frame for g in wanted) for _, frame in items)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=12),
                          st.builds(mb.ReadRequest, st.integers(1, 247),
                                    st.sampled_from(mb.READ_FUNCTIONS), st.integers(0, 0xFFFF),
                                    st.integers(1, 125))), min_size=1, max_size=6))
def test_requests_interleaved_with_noise_are_all_recovered(
        items: list[tuple[bytes, mb.ReadRequest]]) -> None:
    stream = b"".join(noise + request.encode() for noise, request in items)
    got = iter(mb.RequestParser().feed(stream))
    assert all(any(g == request for g in got) for _, request in items)
