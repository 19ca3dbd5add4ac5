"""ASCII bridge: the recorded session, MAX31855/MAX6675 datasheet words, line resync, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorlink_drivers import ascii_bridge as ab

from serial_support import DATA

R, F = ab.BridgeReading, ab.BridgeFault


def test_recorded_session() -> None:
    parser = ab.BridgeLineParser()
    events = parser.feed((DATA / "ascii_bridge_session.bin").read_bytes())
    assert events == [
        R("t1", "temperature", 23.5, "°C"),
        R("rh1", "humidity", 45.25, "%RH"),
        R("tc1", "temperature", 25.0, "°C"), R("tc1_cj", "temperature", 12.5, "°C"),
        R("tc2", "temperature", -0.25, "°C"), R("tc2_cj", "temperature", -0.0625, "°C"),
        F("tc5", ("open",)), R("tc5_cj", "temperature", 25.0, "°C"),
        R("tc3", "temperature", 100.0, "°C"),
        F("tc4", ("open",)),
        R("t1", "temperature", -12.75, "°C"),
        R("p1", "value", 101.3, "kPa"),
    ]
    assert parser.counters["checksum_errors"] == 1       # "$t1,23.6,C*00"
    assert parser.counters["truncated_lines"] == 1       # "$t1,23." then a reset
    assert parser.counters["resync_bytes"] == len("\r\n# sensorlink bridge v1 (arduino uno)\r\n")
    assert parser.counters["lines"] == 9


# MAX31855 datasheet, Table 2 (thermocouple, 14 bits) and Table 3 (cold junction, 12 bits).
@pytest.mark.parametrize(("tc_bits", "tc_c"), [
    (0b01100100000000, 1600.0), (0b00011111010000, 500.0), (0b00000001100100, 25.0),
    (0b00000000000000, 0.0), (0b11111111111111, -0.25), (0b11110000011000, -250.0)])
@pytest.mark.parametrize(("cj_bits", "cj_c"), [
    (0b011111110000, 127.0), (0b000110010000, 25.0), (0b111111111111, -0.0625),
    (0b110010010000, -55.0)])
def test_max31855_datasheet_words(tc_bits: int, tc_c: float, cj_bits: int, cj_c: float) -> None:
    word = (tc_bits << 18) | (cj_bits << 4)
    assert ab.decode_max31855("tc", word) == [R("tc", "temperature", tc_c, "°C"),
                                              R("tc_cj", "temperature", cj_c, "°C")]
    assert ab.max31855_word(tc_c, cj_c) == word


@pytest.mark.parametrize(("bits", "names"), [
    (0b001, ("open",)), (0b010, ("short_gnd",)), (0b100, ("short_vcc",)),
    (0b011, ("open", "short_gnd"))])
def test_max31855_faults_never_become_temperatures(bits: int, names: tuple[str, ...]) -> None:
    word = ab.max31855_word(0.0, 21.5, faults=bits)
    assert word & (1 << 16)
    assert ab.decode_max31855("tc", word) == [F("tc", names), R("tc_cj", "temperature", 21.5, "°C")]


def test_max6675_words() -> None:
    assert ab.decode_max6675("k", 0x0C80) == [R("k", "temperature", 100.0, "°C")]
    assert ab.decode_max6675("k", 0x7FF8) == [R("k", "temperature", 1023.75, "°C")]
    assert ab.decode_max6675("k", 0x0C84) == [F("k", ("open",))]
    assert ab.max6675_word(1023.75) == 0x7FF8


def test_line_encoding_is_nmea_style() -> None:
    assert ab.encode_line("t1,23.5,C") == b"$t1,23.5,C*1C\r\n"
    assert ab.encode_reading("t1", 23.5, "C") == b"$t1,23.5,C*1C\r\n"
    assert ab.BridgeLineParser().feed(b"$t1,23.5,C*1c\n") == [R("t1", "temperature", 23.5, "°C")]


@pytest.mark.parametrize(("line", "counter"), [
    (b"$t1,23.5,C\r\n", "missing_checksum"),
    (b"$t1,23.5,C*1D\r\n", "checksum_errors"),
    (ab.encode_line("t1,abc,C"), "malformed_lines"),
    (ab.encode_line("t1,nan"), "malformed_lines"),
    (ab.encode_line("bad id,1"), "malformed_lines"),
    (ab.encode_line("tc,MAX31855,123"), "malformed_lines"),
    (b"$" + b"9" * 200 + b"\r\n", "overlong_lines"),
])
def test_bad_lines_are_counted_not_decoded(line: bytes, counter: str) -> None:
    parser = ab.BridgeLineParser()
    assert parser.feed(line + ab.encode_reading("ok", 1.0)) == [R("ok", "temperature", 1.0, "°C")]
    assert parser.counters[counter] == 1


def test_checksum_can_be_made_optional() -> None:
    parser = ab.BridgeLineParser(require_checksum=False)
    assert parser.feed(b"$t1,23.5,C\r\n") == [R("t1", "temperature", 23.5, "°C")]


channel_st = st.text(alphabet="abcxyz019_.-", min_size=1, max_size=12)
value_st = st.floats(allow_nan=False, allow_infinity=False, width=64)
unit_st = st.sampled_from(["C", "%RH", "kPa", "", "F"])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=800), st.integers(1, 64))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    parser = ab.BridgeLineParser()
    for i in range(0, len(data), chunk):
        for event in parser.feed(data[i:i + chunk]):
            assert isinstance(event, (R, F))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=30).filter(lambda b: b"\n" not in b),
                          channel_st, value_st, unit_st), min_size=1, max_size=8),
       st.integers(1, 64))
def test_lines_interleaved_with_noise_are_all_recovered(
        items: list[tuple[bytes, str, float, str]], chunk: int) -> None:
    # Noise is what a line carries between messages (a reset, a banner): it never holds "\n"
    # after a "$", so the line protocol's framing tells it apart.
    stream = b"".join(noise + b"\n" + ab.encode_reading(c, v, u or None)
                      for noise, c, v, u in items)
    parser = ab.BridgeLineParser()
    got = [e for i in range(0, len(stream), chunk) for e in parser.feed(stream[i:i + chunk])]
    expected = [R(c, ab._QUANTITIES.get(ab._UNITS.get(u, u), "value"), v, ab._UNITS.get(u, u))
                for _, c, v, u in items]
    assert [e for e in got if e in expected] == expected
