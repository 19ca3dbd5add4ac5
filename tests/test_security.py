"""Who may connect and what they may do: TLS, tokens, lock-out, roles, files, loopback.

Everything runs against a real service on loopback (websockets + aiortc); the only stand-in is
a control target that records what reached it, used where the test is about the gatekeeper
(:class:`sensorlink.webrtc.control.ControlHandler`) and not about what the action does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection
from test_http import http_get

from sensorlink.commands import demo
from sensorlink.config import SensorConfig, ServiceConfig, parse_config
from sensorlink.errors import SignalingError
from sensorlink.service import Service
from sensorlink.validation import branch_types, load_schema
from sensorlink.webrtc import signaling
from sensorlink.webrtc.client import Refused
from sensorlink.webrtc.control import VIEWER_ACTIONS, ControlHandler
from sensorlink.webrtc.ice import restrict_host_candidates_to_loopback
from sensorlink.webrtc.viewer import Viewer, connected_viewer

from support import self_signed, wait_for

OPERATOR = "operator-token-123"
VIEWER = "viewer-token-456"
PROBES = [SensorConfig("probes", "sim-probes", {"channels": 2, "rate_hz": 50.0})]

#: One valid message per control type (the schema's oneOf branches); checked to cover them all.
CONTROL_EXAMPLES: dict[str, dict[str, Any]] = {
    "ping": {"type": "ping", "t_client_ms": 1.0},
    "steer": {"type": "steer", "sensor": "mic", "angle_deg": 90},
    "colormap": {"type": "colormap", "sensor": "cam", "map": "turbo"},
    "replay": {"type": "replay", "action": "pause"},
    "record": {"type": "record", "action": "start"},
    "recordings": {"type": "recordings", "action": "delete", "from_ns": 0, "to_ns": 1},
    "ack_alarm": {"type": "ack_alarm", "rule": "hot"},
    "region": {"type": "region", "action": "set", "sensor": "cam",
               "region": {"name": "r", "kind": "spot", "points": [[1, 1]]}},
}


async def start_service(sensors: list[SensorConfig] = PROBES, **settings: Any) -> Service:
    config = ServiceConfig(**{"host": "127.0.0.1", "port": 0, "token": OPERATOR,
                              "viewer_token": VIEWER, **settings})
    service = Service(config, sensors=sensors, source="test")
    await service.start()
    return service


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    svc = await start_service()
    try:
        yield svc
    finally:
        await svc.stop()


def ws_url(service: Service, scheme: str = "ws") -> str:
    host, port = service.bound
    return f"{scheme}://{host}:{port}/ws"


def dashboard_url(service: Service, token: str = OPERATOR, scheme: str = "http") -> str:
    host, port = service.bound
    return f"{scheme}://{host}:{port}/#token={token}"


async def auth(url: str, token: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """One raw signaling attempt: the service's first reply and how the socket was closed."""
    ws = await websockets.connect(url, open_timeout=10, **kwargs)
    try:
        # A locked-out address is refused before the service reads anything: the send may
        # meet a closing socket, the refusal is still there to read.
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await ws.send(json.dumps({"type": "auth", "token": token}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply["type"] == "refused":
            await asyncio.wait_for(ws.wait_closed(), 10)
        return reply, ws.close_code
    finally:
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await ws.close()


# -- TLS -----------------------------------------------------------------------------------

async def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="127.0.0.1")
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_tls_serves_the_dashboard_and_signaling_end_to_end(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    svc = await start_service(tls_cert=str(cert), tls_key=str(key))
    try:
        assert svc.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(cert))
        status, body = await https_get(svc.bound[1], "/", trusting)
        assert status == 200 and b"<html" in body.lower()
        async with connected_viewer(dashboard_url(svc, scheme="https"), ssl=trusting) as viewer:
            await wait_for(lambda: viewer.readings >= 50, 30, "readings over DTLS after wss")
            assert viewer.seq_gaps == 0 and viewer.hello["role"] == "operator"
        # Plain text to the TLS port is not answered as HTTP/websocket.
        with pytest.raises((websockets.exceptions.WebSocketException, OSError, EOFError)):
            await auth(ws_url(svc), OPERATOR)
        # A client that does not trust the certificate gets nowhere (and it is not retried).
        viewer = Viewer(dashboard_url(svc, scheme="https"))
        with pytest.raises(SignalingError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            await viewer.run(20, reconnect=False)
        assert viewer.connections == 0
    finally:
        await svc.stop()


async def test_a_bad_certificate_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    svc = Service(ServiceConfig(port=0, token=OPERATOR, tls_cert=str(tmp_path / "cert.pem"),
                                tls_key=str(tmp_path / "cert.pem")), sensors=PROBES)
    try:
        with pytest.raises(Exception, match="tls_cert") as info:
            await svc.start()
        assert type(info.value).__name__ == "ConfigError"
    finally:
        await svc.stop()


# -- tokens --------------------------------------------------------------------------------

async def test_wrong_tokens_are_refused_and_five_lock_the_address_out(service: Service,
                                                                        caplog) -> None:
    caplog.set_level(logging.INFO, logger="sensorlink.webrtc.signaling")
    for attempt in range(signaling.FAILED_AUTH_LIMIT):
        reply, code = await auth(ws_url(service), f"wrong-token-{attempt}")
        assert reply["type"] == "refused" and "wrong token" in reply["reason"]
        assert code == signaling.REFUSED
    # Now even the right token is refused from this address: a guesser cannot tell it hit.
    reply, code = await auth(ws_url(service), OPERATOR)
    assert reply["type"] == "refused" and "too many failed attempts" in reply["reason"]
    assert code == signaling.REFUSED
    with pytest.raises(Refused, match="too many failed attempts"):
        await Viewer(dashboard_url(service)).run(10)
    logged = [r.getMessage() for r in caplog.records if r.name == "sensorlink.webrtc.signaling"]
    assert sum("wrong token from 127.0.0.1" in m for m in logged) == signaling.FAILED_AUTH_LIMIT
    assert any("127.0.0.1 locked out" in m for m in logged)
    # The tokens that were tried are not written to the log (a typo is half a password).
    assert not any("wrong-token-" in m or OPERATOR in m for m in logged)
    assert service.signaling.refused >= signaling.FAILED_AUTH_LIMIT + 2


def test_lock_out_is_per_address_and_ends_after_its_window(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(signaling.time, "monotonic", lambda: clock[0])
    throttle = signaling.AuthThrottle(limit=5, window_s=60.0)
    for _ in range(4):
        throttle.failed("10.0.0.1")
    assert not throttle.locked("10.0.0.1")
    throttle.failed("10.0.0.1")
    assert throttle.locked("10.0.0.1") and not throttle.locked("10.0.0.2")
    clock[0] += 61.0
    assert not throttle.locked("10.0.0.1")


async def test_tokens_are_compared_in_constant_time(service: Service, monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signaling.hmac, "compare_digest", spy)
    reply, _ = await auth(ws_url(service), OPERATOR)
    assert reply["type"] == "hello" and reply["role"] == "operator"
    assert (OPERATOR.encode(), OPERATOR.encode()) in calls
    calls.clear()
    # A non-ASCII token is compared as bytes too (str compare_digest would raise on it).
    reply, _ = await auth(ws_url(service), "téléphone-ключ-🔑")
    assert reply["type"] == "refused"
    assert calls and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


async def test_nothing_is_told_before_a_valid_auth(service: Service) -> None:
    """An offer (or anything else) before auth is refused without a hello or an answer."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.createDataChannel("readings", negotiated=True, id=0)
        await pc.setLocalDescription(await pc.createOffer())
        async with websockets.connect(ws_url(service)) as ws:
            await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await asyncio.wait_for(ws.wait_closed(), 10)
        assert reply["type"] == "refused" and "auth" in reply["reason"]
        assert "sensors" not in reply and len(service.viewers) == 0
    finally:
        await pc.close()


# -- roles ---------------------------------------------------------------------------------

class RecordingTarget:
    """Stands in for the service behind the gate: remembers what got through."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    async def apply_control(self, message: dict[str, Any], *, viewer: str) -> dict[str, Any]:
        self.applied.append(message)
        return {"done": message["type"]}


def test_the_role_examples_cover_every_control_type() -> None:
    assert sorted(CONTROL_EXAMPLES) == sorted(branch_types("control"))
    assert VIEWER_ACTIONS == {"ping"}


@pytest.mark.parametrize("kind", sorted(CONTROL_EXAMPLES))
@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_each_control_type_is_allowed_only_to_its_roles(kind: str, role: str) -> None:
    target = RecordingTarget()
    handler = ControlHandler(target, role=role, viewer="v1")
    message = {**CONTROL_EXAMPLES[kind], "id": 7}
    reply = msgpack.unpackb(await handler.handle(msgpack.packb(message)))
    allowed = role == "operator" or kind in VIEWER_ACTIONS
    if allowed:
        assert reply["type"] == "reply" and reply["id"] == 7
        assert target.applied == ([] if kind == "ping" else [{**CONTROL_EXAMPLES[kind], "id": 7}])
    else:
        assert reply["type"] == "error" and reply["id"] == 7 and reply["field"] == "type"
        assert "operator" in reply["error"] and target.applied == []
        assert handler.refused == 1


async def test_a_viewer_token_cannot_steer_record_or_replay_over_the_data_channel(tmp_path) -> None:
    svc = await start_service([*PROBES, SensorConfig("mic", "sim-microphone", {}),
                               SensorConfig("cam", "sim-thermal", {"rate_hz": 2.0})])
    svc.record_dir = str(tmp_path / "rec")
    try:
        async with connected_viewer(dashboard_url(svc, VIEWER)) as viewer:
            assert viewer.hello["role"] == "viewer"
            for kind, example in sorted(CONTROL_EXAMPLES.items()):
                reply = await viewer.control(dict(example))
                if kind in VIEWER_ACTIONS:
                    assert reply["type"] == "reply", reply
                else:
                    assert reply["type"] == "error" and "operator" in reply["error"], reply
            assert svc.recorder is None and not (tmp_path / "rec").exists()
            assert svc.beams["mic"].fixed_angle is None and svc.cameras["cam"].map != "turbo"
            assert svc.hub.sensors["cam"].meta.get("regions") == []  # no region drawn
            count = viewer.readings
            await wait_for(lambda: viewer.readings > count + 20, 20, "still streaming")
        async with connected_viewer(dashboard_url(svc, OPERATOR)) as operator:
            reply = await operator.control(dict(CONTROL_EXAMPLES["steer"]))
            assert reply["type"] == "reply" and svc.beams["mic"].fixed_angle == 90
    finally:
        await svc.stop()


async def test_control_floods_are_rate_limited_and_the_stream_goes_on(service: Service) -> None:
    async with connected_viewer(dashboard_url(service)) as viewer:
        replies: list[dict[str, Any]] = []
        viewer.on_event = lambda e: replies.append(e) if e["event"] in ("reply", "error") else None
        for msg_id in range(1, 201):
            await viewer.send_raw_control(msgpack.packb({"type": "ping", "id": msg_id}))
        await wait_for(lambda: len(replies) == 200, 30, "a reply to every message")
        slowed = [r for r in replies if r["event"] == "error" and "slow down" in r["error"]]
        assert slowed and len(slowed) < 200
        # Each refusal carries the id of the message it refuses, so no caller waits in vain.
        assert {r["id"] for r in replies} == set(range(1, 201))
        count = viewer.readings
        await wait_for(lambda: viewer.readings > count + 20, 20, "still streaming")


# -- files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/schemas/%2e%2e/%2e%2e/pyproject.toml",
    "/%252e%252e/pyproject.toml", "/index.html%00.js", "/./index.html", "/web/../../README.md",
    "/..;/pyproject.toml", "/schemas/..%5c..%5cpyproject.toml", "/" + "a/" * 2000 + "x",
    "/recordings/session.mcap", "/session.mcap", "/%2e/index.html", "/index.html/",
    "/..", "/schemas/.", "/ws/../pyproject.toml", "/__pycache__/", "/schemas/%2e%2e",
])
async def test_more_paths_outside_the_dashboard_are_not_found(tmp_path, path: str) -> None:
    (tmp_path / "session.mcap").write_bytes(b"secret recording")
    svc = await start_service(record_dir=str(tmp_path))
    try:
        status, _, body = await http_get(svc.bound[1], path)
        assert status in (400, 404, 414), (path, status)
        assert b"secret recording" not in body and b"[project]" not in body
    finally:
        await svc.stop()


def test_no_control_message_can_name_a_file() -> None:
    """Replay serves only the recording the service was started with: no control message can
    carry a path, so the dashboard cannot open any other file (see SECURITY.md)."""
    def keys(node: Any) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            found |= set(node.get("properties", {}))
            for value in node.values():
                found |= keys(value)
        elif isinstance(node, list):
            for value in node:
                found |= keys(value)
        return found

    names = keys(load_schema("control"))
    assert names and not {n for n in names if any(w in n for w in ("path", "file", "dir", "url"))}


async def test_a_replay_control_with_a_path_is_refused_before_it_reaches_replay() -> None:
    target = RecordingTarget()
    handler = ControlHandler(target, role="operator", viewer="v1")
    for extra in ({"path": "/etc/passwd"}, {"file": "../other.mcap"}, {"value": "/etc/passwd"}):
        reply = msgpack.unpackb(await handler.handle(msgpack.packb(
            {"type": "replay", "action": "seek", "id": len(target.applied) + handler.refused + 1,
             **extra})))
        assert reply["type"] == "error", extra
        assert reply["field"] in ("path", "file", "value")
    assert target.applied == []


# -- loopback ------------------------------------------------------------------------------

def test_the_default_listen_address_is_loopback() -> None:
    import argparse

    assert ServiceConfig().host == "127.0.0.1"
    config = parse_config({"sensors": [{"name": "p", "driver": "sim-probes"}]})
    assert config.service.host == "127.0.0.1"
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    from sensorlink.commands._serving import apply_service_arguments
    assert apply_service_arguments(ServiceConfig(), parser.parse_args([])).host == "127.0.0.1"


async def test_the_service_on_loopback_offers_only_loopback_ice_candidates() -> None:
    import aioice.ice

    restrict_host_candidates_to_loopback(False)  # as a fresh process: aioice's own lookup
    offered_by_host = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    svc = await start_service()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for name, number in (("readings", 0), ("frames", 1), ("control", 2), ("status", 3)):
            pc.createDataChannel(name, negotiated=True, id=number)
        await pc.setLocalDescription(await pc.createOffer())
        async with websockets.connect(ws_url(svc)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": OPERATOR}))
            assert json.loads(await ws.recv())["type"] == "hello"
            await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert answer["type"] == "answer"
        candidates = [line.split()[4] for line in answer["sdp"].splitlines()
                      if line.startswith("a=candidate:")]
        assert candidates, answer["sdp"]
        assert all(ipaddress.ip_address(a).is_loopback for a in candidates), candidates
        # Meaningful only where the machine has other addresses; say which case this was.
        print("host addresses aioice would offer:", offered_by_host)
    finally:
        await pc.close()
        await svc.stop()


# -- secrets at rest -----------------------------------------------------------------------

async def test_recordings_keep_the_config_but_not_its_tokens_or_credentials(tmp_path: Path) -> None:
    from sensorlink.config import load_config
    from sensorlink.recording.reader import Recording

    secrets = ["operator-secret-8c1f", "viewer-secret-77ab", "turn-secret-d00d"]
    path = tmp_path / "sensorlink.toml"
    path.write_text(f'''
[service]
listen = "127.0.0.1:0"
token = "{secrets[0]}"
viewer_token = '{secrets[1]}'
ice_servers = [{{ urls = "turn:turn.example.org", username = "u", credential = "{secrets[2]}" }}]

[[sensors]]
name = "probes"
driver = "sim-probes"
''', encoding="utf-8")
    svc = Service.from_config(load_config(path), record_dir=str(tmp_path / "rec"))
    await svc.start()
    try:
        await wait_for(lambda: svc.recorder.status()["samples"] > 10, 20, "samples recorded")
    finally:
        await svc.stop()
    (recording_path,) = (tmp_path / "rec").glob("*.mcap")
    raw = recording_path.read_bytes()
    assert not [s for s in secrets if s.encode() in raw]
    with Recording(recording_path) as recording:
        config_text = recording.session["session"]["config"]
    assert 'driver = "sim-probes"' in config_text and config_text.count("<redacted>") == 3
