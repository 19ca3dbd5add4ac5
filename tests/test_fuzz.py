"""Bad input on every inbound path: hypothesis throws garbage at it, and the answer must be a
clear error (never a crash, a hang or a foreign exception) while the service keeps streaming.

Paths: signaling JSON over a real websocket, control bytes through ControlHandler (with the real
service behind it) and over a real data channel, config TOML through parse_config and
build_options, and every device parser in drivers/. Example counts are bounded so the suite
stays quick; long runs belong to the atheris harnesses in fuzz/ (docs/fuzzing.md).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorlink.config import ServiceConfig, load_config, parse_config
from sensorlink.errors import ConfigError, ProtocolError
from sensorlink.options import build_options
from sensorlink.samples import Reading, ThermalFrame
from sensorlink.service import Service
from sensorlink.sources.registry import load_driver
from sensorlink.sources.serial_transport import Chunk
from sensorlink.validation import branch_types, validate
from sensorlink.webrtc.control import ControlHandler
from sensorlink.webrtc.signaling import AuthThrottle
from sensorlink.webrtc.viewer import connected_viewer
from sensorlink.webrtc.wire import MAX_SIGNALING_BYTES
from sensorlink_drivers import ascii_bridge, gy_mcu90640, modbus_codec, onewire, uvc_thermal
from sensorlink_drivers.mic_array import BlockBuffer, pcm_from_array

from support import STILL_SENSORS, wait_for

OPERATOR = "fuzz-operator-token"
VIEWER = "fuzz-viewer-token"
#: SENSORLINK_FUZZ_SCALE=20 multiplies every example count below, for a longer run on request.
SCALE = max(1, int(os.environ.get("SENSORLINK_FUZZ_SCALE", "1")))
FUZZ = settings(max_examples=60 * SCALE, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW_FUZZ = settings(FUZZ, max_examples=80 * SCALE)
# aiortc uses `random` on the loop thread while hypothesis draws in the worker thread.
ASYNC_RANDOM_OK = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")
PROBES_ONLY = [s for s in STILL_SENSORS if s.name == "probes"]


@pytest.fixture
async def fuzz_service(tmp_path: Path) -> AsyncIterator[Service]:
    """A live service whose address cannot lock itself out (fuzzing sends many wrong tokens),
    which records into tmp_path when a fuzzed control says so, watched by an operator viewer."""
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=OPERATOR, viewer_token=VIEWER),
                      sensors=STILL_SENSORS, source="fuzz")
    service.record_dir = str(tmp_path / "rec")
    await service.start()
    service.signaling.throttle = AuthThrottle(limit=10**9)
    try:
        yield service
    finally:
        await service.stop()


def url(service: Service, token: str = OPERATOR) -> str:
    host, port = service.bound
    return f"http://{host}:{port}/#token={token}"


async def run_examples(test: Any, *, at_least: int = 10) -> int:
    """Run a sync hypothesis test in a worker thread; its examples call :func:`on_loop`, which
    runs a coroutine on this (the service's) event loop, so the service keeps running between
    and during examples exactly as it does in production. Returns how many examples ran."""
    global _loop
    _loop = asyncio.get_running_loop()
    _ran.clear()
    try:
        await asyncio.to_thread(test)
    finally:
        _loop = None
    assert len(_ran) >= at_least, f"only {len(_ran)} examples ran"
    print(f"{test.__name__}: {len(_ran)} inputs on the live service")
    return len(_ran)


_loop: asyncio.AbstractEventLoop | None = None
_ran: list[None] = []


def on_loop(coro: Any, timeout: float = 60.0) -> Any:
    assert _loop is not None
    _ran.append(None)
    return asyncio.run_coroutine_threadsafe(coro, _loop).result(timeout)


async def still_streams(viewer: Any, what: str) -> None:
    count = viewer.readings
    await wait_for(lambda: viewer.readings > count + 20, 30, f"readings after {what}")
    assert viewer.seq_gaps == 0


# -- strategies ----------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
SIGNALING_TYPES = ["auth", "offer", "hello", "answer", "refused", "error", "bye", ""]


@st.composite
def signaling_messages(draw: Any, offer_sdp: str) -> str | bytes:
    kind = draw(st.sampled_from(["auth", "offer", "dict", "json", "text", "bytes", "huge",
                                 "deep"]))
    if kind == "deep":  # nesting that json.loads cannot follow, within the size limit
        depth = draw(st.integers(500, 30000))
        return draw(st.sampled_from(["[", '{"a":'])) * depth
    if kind == "auth":
        token = draw(st.sampled_from([OPERATOR, VIEWER]) | st.text(max_size=300))
        msg: dict[str, Any] = {"type": "auth", "token": token}
        if draw(st.booleans()):
            msg[draw(st.sampled_from(["client", "role", "extra"]))] = draw(json_values)
        return json.dumps(msg)
    if kind == "offer":
        sdp = draw(st.sampled_from([offer_sdp]) | sdp_mutations(offer_sdp) | st.text(max_size=200))
        return json.dumps({"type": "offer", "sdp": sdp})
    if kind == "dict":
        msg = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
        if draw(st.booleans()):
            msg["type"] = draw(st.sampled_from(SIGNALING_TYPES) | json_values)
        return json.dumps(msg)
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    return json.dumps({"type": "auth", "token": "x" * (MAX_SIGNALING_BYTES + 10)})


@st.composite
def sdp_mutations(draw: Any, sdp: str) -> str:
    lines = sdp.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["drop", "dup", "garble", "truncate", "swap"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            key = lines[i].partition("=")[0]
            lines[i] = f"{key}={draw(st.text(max_size=40))}"
        elif op == "truncate":
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        if not lines:
            break
    return "\r\n".join(lines) + "\r\n"


async def browser_like_offer() -> str:
    """A real offer, as the dashboard makes it: four negotiated channels, video and audio."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for name, number in (("readings", 0), ("frames", 1), ("control", 2), ("status", 3)):
            pc.createDataChannel(name, negotiated=True, id=number)
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


# -- signaling over a real websocket -------------------------------------------------------

async def converse(service: Service, messages: list[str | bytes]) -> list[dict[str, Any]]:
    """Send each message; collect every reply. The service answers each message once, or
    refuses and closes; it never closes with an internal error."""
    host, port = service.bound
    replies: list[dict[str, Any]] = []
    ws = await websockets.connect(f"ws://{host}:{port}/ws", max_size=2**22, open_timeout=10)
    unreported = False  # an answer's connection may still fail, and say so unasked (once)
    try:
        for message in messages:
            try:
                await ws.send(message)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                validate("signaling", reply)
                # An answered connection may fail (a mutated offer's ICE) and say so unasked,
                # once, before the reply to the next message (which replaces it).
                if reply["type"] == "failed" and unreported:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    validate("signaling", reply)
                unreported = reply["type"] == "answer"
            except websockets.exceptions.ConnectionClosed:
                break
            replies.append(reply)
            if reply["type"] == "refused":
                break
        await ws.close()
        await asyncio.wait_for(ws.wait_closed(), 10)
    finally:
        await ws.close()
    # 1011 would mean the handler crashed; 1009 is "message too big", 4401 a refusal.
    assert ws.close_code in (1000, 1009, 4401, None), (ws.close_code, ws.close_reason)
    return replies


def check_conversation(messages: list[str | bytes], replies: list[dict[str, Any]]) -> None:
    if not replies:
        # Only a message over the size limit may end the talk without a word.
        assert len(messages[0]) > MAX_SIGNALING_BYTES
        return
    first = replies[0]
    if first["type"] == "hello":
        assert json.loads(messages[0])["type"] == "auth"
        assert json.loads(messages[0])["token"] in (OPERATOR, VIEWER)
        assert all(r["type"] in ("answer", "error") for r in replies[1:])
    else:
        assert first["type"] == "refused" and len(replies) == 1


@ASYNC_RANDOM_OK
async def test_signaling_survives_fuzzed_conversations(fuzz_service: Service) -> None:
    offer = await browser_like_offer()
    async with connected_viewer(url(fuzz_service)) as watcher:

        @SLOW_FUZZ
        @given(st.lists(signaling_messages(offer), min_size=1, max_size=5))
        def conversation(messages: list[str | bytes]) -> None:
            check_conversation(messages, on_loop(converse(fuzz_service, messages)))

        await run_examples(conversation)
        await still_streams(watcher, "fuzzed signaling")
        await wait_for(lambda: len(fuzz_service.viewers) == 1, 20, "fuzz sessions cleaned up")


@ASYNC_RANDOM_OK
async def test_signaling_answers_fuzzed_offers_after_auth(fuzz_service: Service) -> None:
    offer = await browser_like_offer()
    async with connected_viewer(url(fuzz_service)) as watcher:

        @SLOW_FUZZ
        @given(st.lists(sdp_mutations(offer), min_size=1, max_size=3))
        def offers(sdps: list[str]) -> None:
            messages: list[str | bytes] = [json.dumps({"type": "auth", "token": OPERATOR})]
            messages += [json.dumps({"type": "offer", "sdp": sdp}) for sdp in sdps]
            replies = on_loop(converse(fuzz_service, messages))
            assert [r["type"] for r in replies][:1] == ["hello"]
            assert len(replies) == len(messages), replies
            for reply in replies[1:]:
                assert reply["type"] == "answer" or reply["field"] == "sdp", reply

        await run_examples(offers)
        await still_streams(watcher, "fuzzed offers")


@pytest.mark.parametrize("message", [
    "[" * 30000, '{"type": "auth", "token": "x", "client": ' + "[" * 900 + "]" * 900 + "}",
    '{"type": "auth", "token": ' + '{"a":' * 10000, r'{"type": "\ud800", "token": "\udfff"}',
    b"\xff\xfe{}", "null", "[]", "7",
])
async def test_pathological_json_before_and_after_auth_gets_a_clear_answer(
        fuzz_service: Service, message: str | bytes) -> None:
    refused = await converse(fuzz_service, [message])
    assert [r["type"] for r in refused] == ["refused"]
    replies = await converse(fuzz_service, [json.dumps({"type": "auth", "token": VIEWER}), message])
    assert [r["type"] for r in replies] == ["hello", "error"]


@pytest.mark.parametrize("order", [
    ["offer"], ["hello"], ["answer"], ["auth", "auth"], ["auth", "hello"], ["auth", "refused"],
    ["auth", "offer", "auth"], ["auth", "offer", "offer"],
])
async def test_messages_out_of_order_get_a_clear_answer(fuzz_service: Service,
                                                        order: list[str]) -> None:
    offer = await browser_like_offer()
    examples = {"auth": {"type": "auth", "token": OPERATOR},
                "offer": {"type": "offer", "sdp": offer},
                "hello": {"type": "hello", "version": "1", "role": "operator", "sensors": [],
                          "channels": {}},
                "answer": {"type": "answer", "sdp": offer, "tracks": {}},
                "refused": {"type": "refused", "reason": "no"}}
    replies = await converse(fuzz_service, [json.dumps(examples[k]) for k in order])
    if order[0] != "auth":
        assert [r["type"] for r in replies] == ["refused"]
        assert "auth" in replies[0]["reason"]
        return
    assert replies[0]["type"] == "hello" and len(replies) == len(order)
    for kind, reply in zip(order[1:], replies[1:]):
        if kind == "offer":
            assert reply["type"] == "answer"
        else:
            assert reply["type"] == "error" and reply["field"] == "type", reply
            assert "offer" in reply["error"]


# -- control channel -----------------------------------------------------------------------

numbers = (st.integers(-2**63, 2**64 - 1) | st.floats() | st.sampled_from([0, -1, 360, 361, 2**53]))
control_values = numbers | st.booleans() | st.none() | st.text(max_size=30) | \
    st.lists(numbers, max_size=3) | st.sampled_from(["auto", "mic", "cam", "probes", "turbo",
                                                     "start", "stop", "pause", "seek", "speed",
                                                     "loop", "resume"])
CONTROL_FIELDS = ["type", "id", "sensor", "angle_deg", "map", "range", "action", "value",
                  "t_client_ms", "path", "extra"]


@st.composite
def control_messages(draw: Any) -> dict[str, Any]:
    msg = {"type": draw(st.sampled_from(branch_types("control")) | st.text(max_size=8)),
           "id": draw(st.integers(0, 10**6) | control_values)}
    for key in draw(st.lists(st.sampled_from(CONTROL_FIELDS), max_size=4, unique=True)):
        msg[key] = draw(control_values)
    return msg


control_payloads = (control_messages().map(msgpack.packb) | st.binary(max_size=300)
                    | st.builds(lambda v: msgpack.packb(v), control_values)
                    | st.integers(4000, 6000).map(
                        lambda n: msgpack.packb({"type": "ping", "id": 1, "pad": "x" * n})))


def check_reply(data: bytes) -> dict[str, Any]:
    reply = msgpack.unpackb(data, raw=False)
    assert reply["type"] in ("reply", "error")
    validate(reply["type"] if reply["type"] == "error" else "reply", reply)
    return reply


@ASYNC_RANDOM_OK
async def test_control_handler_answers_every_fuzzed_message(fuzz_service: Service) -> None:
    async with connected_viewer(url(fuzz_service)) as watcher:

        @settings(FUZZ, max_examples=300 * SCALE)
        @given(st.lists(control_payloads, min_size=1, max_size=4))
        def handle(payloads: list[bytes]) -> None:
            handler = ControlHandler(fuzz_service, role="operator", viewer="fuzz",
                                     rate=1e9, burst=1e9)
            for data in payloads:
                reply = check_reply(on_loop(handler.handle(data)))
                if reply["type"] == "reply":
                    message = msgpack.unpackb(data)
                    assert reply["id"] == message["id"]
            assert handler.accepted + handler.refused == len(payloads)

        await run_examples(handle)
        await fuzz_service.stop_recording()
        await still_streams(watcher, "fuzzed control messages")


async def test_non_finite_numbers_in_control_are_refused_by_field(fuzz_service: Service) -> None:
    handler = ControlHandler(fuzz_service, role="operator", viewer="fuzz")
    cases = [({"type": "steer", "sensor": "mic", "angle_deg": math.nan}, "angle_deg"),
             ({"type": "colormap", "sensor": "cam", "range": [math.nan, 40.0]}, "range.0"),
             ({"type": "colormap", "sensor": "cam", "range": [20.0, math.inf]}, "range.1"),
             ({"type": "ping", "t_client_ms": -math.inf}, "t_client_ms")]
    for msg_id, (message, field) in enumerate(cases, start=1):
        reply = check_reply(await handler.handle(msgpack.packb({**message, "id": msg_id})))
        assert reply["type"] == "error" and reply["field"] == field, reply
    assert fuzz_service.beams["mic"].fixed_angle is None
    assert fuzz_service.cameras["cam"].fixed_range is None


async def test_colour_range_upside_down_or_flat_is_a_clear_error(fuzz_service: Service) -> None:
    handler = ControlHandler(fuzz_service, role="operator", viewer="fuzz")
    for msg_id, colour_range in enumerate(([50.0, 20.0], [30.0, 30.0]), start=1):
        reply = check_reply(await handler.handle(msgpack.packb(
            {"type": "colormap", "sensor": "cam", "range": colour_range, "id": msg_id})))
        assert reply["type"] == "error" and reply["field"] == "range", reply
    async with connected_viewer(url(fuzz_service), keep_video=True) as viewer:
        frames = viewer.video_frames["cam"]
        await wait_for(lambda: viewer.video_frames["cam"] > frames + 5, 30, "video goes on")


@ASYNC_RANDOM_OK
async def test_fuzzed_control_over_a_real_data_channel(fuzz_service: Service) -> None:
    async with connected_viewer(url(fuzz_service)) as viewer:
        session = fuzz_service.viewers[-1]
        # The rate limit has its own test; here every message must reach the validator.
        session.control = ControlHandler(fuzz_service, role="operator", viewer=session.name,
                                         rate=1e9, burst=1e9)
        final_ids = itertools.count(10**12)
        payloads_for_channel = control_payloads.filter(
            lambda b: not isinstance(_id_of(b), int) or _id_of(b) < 10**9)

        @settings(FUZZ, max_examples=50 * SCALE)
        @given(st.lists(payloads_for_channel, min_size=1, max_size=8))
        def over_channel(payloads: list[bytes]) -> None:
            before = session.control.accepted + session.control.refused

            async def send() -> None:
                for data in payloads:
                    await viewer.send_raw_control(data)
                reply = await viewer.control({"type": "ping", "id": next(final_ids)}, timeout=20)
                assert reply["type"] == "reply"
                await wait_for(lambda: session.control.accepted + session.control.refused
                               == before + len(payloads) + 1, 20, "every message answered")
            on_loop(send())

        await run_examples(over_channel)
        assert viewer.invalid == 0  # every reply the service sent was valid on the wire
        await fuzz_service.stop_recording()
        await still_streams(viewer, "fuzzed data-channel control")


def _id_of(data: bytes) -> Any:
    try:
        message = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):  # garbage, or a list as a map key
        return None
    return message.get("id") if isinstance(message, dict) else None


# -- config --------------------------------------------------------------------------------

toml_scalars = (st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats()
                | st.text(max_size=30) | st.dates() | st.times()
                | st.datetimes(timezones=st.none() | st.just(datetime.UTC))
                | st.sampled_from(["127.0.0.1:0", "[::1]:8765", "0.0.0.0:99999", ":",
                                   "host:²", "localhost:٣", "stun:x", "turn:y", "a" * 8]))
toml_values = st.recursive(toml_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=3),
                           max_leaves=10)
SERVICE_KEYS = ["listen", "token", "viewer_token", "ice_servers", "ice_transport_policy",
                "record_dir", "tls_cert", "tls_key", "urls", "username", "credential", "other"]
MQTT_KEYS = ["host", "port", "site", "machine", "topic_prefix", "qos", "encoding", "client_id",
             "username", "password", "tls", "ca_file", "cert_file", "key_file", "keepalive_s",
             "queue", "batch", "status_interval_s", "other"]
DRIVERS = ["sim-thermal", "sim-probes", "sim-microphone", "gy-mcu90640", "modbus-rtu",
           "ascii-bridge", "p2pro", "tc001", "lepton", "ds18b20", "respeaker-usb-4mic",
           "respeaker-6mic-hat", "mic-array"]


def option_fields(driver: str) -> list[str]:
    import dataclasses
    return [f.name for f in dataclasses.fields(load_driver(driver).Options)]


@st.composite
def config_tables(draw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(SERVICE_KEYS), max_size=5, unique=True))
        data["service"] = {k: draw(toml_values) for k in keys} if draw(st.booleans()) \
            else draw(toml_values)
        if isinstance(data["service"], dict) and draw(st.booleans()):
            data["service"]["ice_servers"] = draw(st.lists(st.dictionaries(
                st.sampled_from(["urls", "username", "credential", "x"]),
                toml_values | st.just("stun:example.org") | st.just(["turn:h"])), max_size=2))
    sensors = []
    for _ in range(draw(st.integers(0, 3))):
        driver = draw(st.sampled_from(DRIVERS) | st.text(max_size=10))
        sensor: dict[str, Any] = {"name": draw(st.sampled_from(["cam", "p1", "a\n", ""])
                                               | st.text(max_size=10) | toml_values),
                                  "driver": driver}
        fields = option_fields(driver) if driver in DRIVERS else []
        for key in draw(st.lists(st.sampled_from(fields + ["bogus"]), max_size=4, unique=True)):
            sensor[key] = draw(toml_values)
        sensors.append(sensor if draw(st.integers(0, 9)) else draw(toml_values))
    if sensors or draw(st.booleans()):
        data["sensors"] = sensors
    if draw(st.integers(0, 3)) == 0:
        keys = draw(st.lists(st.sampled_from(MQTT_KEYS), max_size=5, unique=True))
        data["mqtt"] = {k: draw(toml_values) for k in keys}
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.text(max_size=8))] = draw(toml_values)
    return data


@settings(FUZZ, max_examples=400 * SCALE)
@given(config_tables())
def test_config_tables_give_a_config_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        config = parse_config(data, source="fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml")
        return
    assert config.service.host and 0 <= config.service.port <= 65535
    for sensor in config.sensors:
        try:
            cls = load_driver(sensor.driver)
            build_options(cls.Options, sensor.options, source="fuzz.toml", sensor=sensor.name)
        except ConfigError as exc:
            assert "fuzz.toml" in str(exc) or sensor.driver not in DRIVERS


@settings(FUZZ, max_examples=150 * SCALE)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_config_files_of_any_bytes_give_a_config_error(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "sensorlink.toml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


@pytest.mark.parametrize(("data", "field"), [
    ({"service": {"listen": "127.0.0.1:²"}}, "listen"),        # a digit to isdigit(), not to int()
    ({"service": {"listen": "127.0.0.1:٣"}}, "listen"),        # a digit to int(), not a port
    ({"service": {"ice_servers": [{"urls": "turn:h", "username": 5, "credential": "c"}]}},
     "ice_servers[0].username"),
    ({"service": {"ice_servers": [{"urls": "turn:h", "username": "u", "credential": []}]}},
     "ice_servers[0].credential"),
    ({"sensors": [{"name": "cam\n", "driver": "sim-thermal"}]}, "name"),
])
def test_config_edge_cases_found_by_fuzzing(data: dict[str, Any], field: str) -> None:
    data = {"sensors": [{"name": "p", "driver": "sim-probes"}], **data}
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="edge.toml")
    assert info.value.field == field, str(info.value)


def test_config_files_that_cannot_be_read_give_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.toml").write_bytes(b'[service]\ntoken = "caf\xe9-caf\xe9"\n')
    for path in (tmp_path / "latin1.toml", tmp_path, tmp_path / "missing.toml"):
        with pytest.raises(ConfigError, match=str(path)):
            load_config(path)


# -- device parsers ------------------------------------------------------------------------

chunks = st.lists(st.binary(max_size=2000), max_size=6)


def _frame(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    picture = rng.integers(-2000, 12000, size=(gy_mcu90640.HEIGHT, gy_mcu90640.WIDTH))
    return gy_mcu90640.encode_frame(picture.astype(np.int16), 2500)


CHUNK = Chunk(b"", 1, 2)


@FUZZ
@given(chunks, st.integers(0, 2**32 - 1), chunks)
def test_gy_mcu90640_parser_finds_frames_in_any_garbage(before: list[bytes], seed: int,
                                                         after: list[bytes]) -> None:
    parser = gy_mcu90640.Mlx90640FrameParser()
    driver = gy_mcu90640.GyMcu90640("cam")
    frame = _frame(seed)
    events = []
    for data in [*before, frame, *after]:
        events += parser.feed(data)
    total = sum(map(len, before)) + len(frame) + sum(map(len, after))
    assert all(isinstance(e, gy_mcu90640.Mlx90640Frame) for e in events)
    assert any(e.raw == frame for e in events)
    counted = parser.counters
    assert counted["frames"] == len(events)
    assert counted["frames"] * gy_mcu90640.FRAME_SIZE + counted["resync_bytes"] <= total
    for event in events:
        frame_sample, ambient = driver.to_samples(event, CHUNK)
        assert isinstance(frame_sample, ThermalFrame) and frame_sample.celsius.shape == (24, 32)
        assert np.isfinite(frame_sample.celsius).all()
        assert isinstance(ambient, Reading) and math.isfinite(ambient.value)


def _line(channel: str, value: float) -> bytes:
    return ascii_bridge.encode_reading(channel, value, "C")


@FUZZ
@given(chunks, st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)), chunks,
       st.booleans())
def test_ascii_bridge_parser_finds_lines_in_any_garbage(before: list[bytes], value: float,
                                                        after: list[bytes], lax: bool) -> None:
    parser = ascii_bridge.BridgeLineParser(require_checksum=not lax)
    driver = ascii_bridge.AsciiBridge("bridge")
    line = _line("oven", value)
    events = []
    for data in [*before, line, *after]:
        events += parser.feed(data)
    assert all(isinstance(e, ascii_bridge.BridgeReading | ascii_bridge.BridgeFault) for e in events)
    assert any(isinstance(e, ascii_bridge.BridgeReading) and e.channel == "oven"
               and e.value == value for e in events), events
    for event in events:
        for sample in driver.to_samples(event, CHUNK):
            assert isinstance(sample, Reading) and math.isfinite(sample.value)
    assert all(v >= 0 for v in parser.counters.values())


@FUZZ
@given(chunks, st.integers(1, 247), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8),
       chunks)
def test_modbus_reply_parser_finds_replies_in_any_garbage(before: list[bytes], unit: int,
                                                          registers: list[int],
                                                          after: list[bytes]) -> None:
    reply = modbus_codec.ReadReply(unit, 4, tuple(registers))
    parser = modbus_codec.ReplyParser()
    events = []
    for data in [*before, reply.encode(), *after]:
        events += parser.feed(data)
    assert all(isinstance(e, (modbus_codec.ReadReply, modbus_codec.ExceptionReply)) for e in events)
    assert reply in events
    for event in events:
        if isinstance(event, modbus_codec.ReadReply):
            values = modbus_codec.decode_registers(event.registers, scale=0.1, signed=True)
            assert all(math.isfinite(v) for v in values)


@FUZZ
@given(chunks, st.integers(1, 247), st.integers(0, 0xFFFF), st.integers(1, 125), chunks)
def test_modbus_request_parser_finds_requests_in_any_garbage(before: list[bytes], unit: int,
                                                             register: int, count: int,
                                                             after: list[bytes]) -> None:
    request = modbus_codec.ReadRequest(unit, 4, register, count)
    parser = modbus_codec.RequestParser()
    events = []
    for data in [*before, request.encode(), *after]:
        events += parser.feed(data)
    assert request in events
    assert all(isinstance(e, modbus_codec.ReadRequest) for e in events)


w1_tokens = st.sampled_from(["50", "05", "4b", "46", "7f", "ff", "0c", "10", "1c", ":", "crc=1c",
                             "YES", "NO", "t=85000", "t=-1", "t=", "t=99999999", "zz", ""])


@FUZZ
@given(st.text(max_size=200) | st.lists(st.lists(w1_tokens, max_size=13), max_size=3)
       .map(lambda rows: "\n".join(" ".join(r) for r in rows)))
def test_w1_slave_text_gives_a_read_or_a_protocol_error(text: str) -> None:
    try:
        read = onewire.parse_w1_slave(text)
    except ProtocolError:
        return
    assert len(read.scratchpad) == 9 and isinstance(read.milli_c, int)
    onewire.quality_of(read.milli_c, read.scratchpad, None)


@FUZZ
@given(st.binary(max_size=120))
def test_a_ds18b20_probe_with_any_file_content_gives_a_reading_or_a_counted_error(
        tmp_path_factory: Any, raw: bytes) -> None:
    root = tmp_path_factory.mktemp("w1")
    (root / "28-0316a2794bff").mkdir()
    (root / "28-0316a2794bff" / "w1_slave").write_bytes(raw)
    options = onewire.OneWireOptions(root=str(root), interval_s=0.05)
    driver = onewire.DS18B20Probes("probes", options)

    async def one_read() -> list[Any]:
        await driver.open()
        return list(await driver.read())

    samples = asyncio.run(one_read())
    errors = sum(driver.counters[k] for k in ("crc_errors", "bad_reads", "read_errors"))
    assert len(samples) + errors == 1
    assert all(isinstance(s, Reading) and math.isfinite(s.value) for s in samples)


@FUZZ
@given(st.sampled_from(sorted(uvc_thermal.MODELS)), st.binary(max_size=64), st.booleans())
def test_uvc_frames_of_any_bytes_decode_or_give_a_protocol_error(model: str, raw: bytes,
                                                                 full: bool) -> None:
    spec = uvc_thermal.MODELS[model]
    if full:  # the right size, arbitrary content
        raw = (raw or b"\x01") * (spec.frame_bytes // max(len(raw), 1) + 1)
        raw = raw[:spec.frame_bytes]
    try:
        celsius = uvc_thermal.FrameDecoder(spec, rotate=90, mirror=True).decode(raw)
    except ProtocolError:
        assert not full or not any(raw)
        return
    assert full and celsius.dtype == np.float32 and np.isfinite(celsius).all()


@FUZZ
@given(st.sampled_from(["s16", "s16p", "s32", "s32p", "flt", "fltp", "dbl", "u8", "u8p", "x"]),
       st.integers(1, 8), st.integers(0, 3), st.integers(0, 40))
def test_microphone_pcm_of_any_shape_converts_or_gives_a_protocol_error(
        fmt: str, channels: int, rows: int, cols: int) -> None:
    dtype = {"s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64,
             "u8": np.uint8}.get(fmt.rstrip("p"), np.int16)
    array = np.zeros((rows, cols), dtype=dtype)
    buffer = BlockBuffer(16, channels)
    try:
        pcm = pcm_from_array(array, fmt, channels)
        blocks = buffer.push(pcm)
    except ProtocolError:
        return
    assert pcm.dtype == np.int16 and pcm.shape[1] == channels
    assert all(b.shape == (16, channels) for b in blocks)


@pytest.mark.parametrize("harness", ["parsers", "control", "config", "signaling"])
def test_the_atheris_harnesses_replay_their_seed_corpus(harness: str) -> None:
    """fuzz/ is run on request (docs/fuzzing.md); this keeps it from rotting: each harness
    replays its seed corpus without atheris, as it replays a crash input."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    corpus = repo / "fuzz" / "corpus" / harness
    assert any(corpus.iterdir())
    done = subprocess.run([sys.executable, str(repo / "fuzz" / f"fuzz_{harness}.py"), str(corpus)],
                          check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SENSORLINK_FUZZ_REPLAY": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "inputs replayed, no unexpected exception" in done.stdout


def test_every_parser_in_drivers_is_fuzzed_here() -> None:
    """A new parser in drivers/ must get a fuzz test here: this lists the ones covered."""
    import importlib
    import inspect

    import sensorlink_drivers

    covered = {"Mlx90640FrameParser", "BridgeLineParser", "ReplyParser", "RequestParser",
               "FrameDecoder", "BlockBuffer"}
    found = set()
    for path in Path(sensorlink_drivers.__file__).parent.glob("*.py"):
        module = importlib.import_module(f"sensorlink_drivers.{path.stem}")
        found |= {name for name, obj in vars(module).items()
                  if inspect.isclass(obj) and obj.__module__ == module.__name__
                  and (name.endswith(("Parser", "Decoder")) or name == "BlockBuffer")}
    assert found == covered, f"not fuzzed: {found - covered}; gone: {covered - found}"
