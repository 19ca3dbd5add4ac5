"""Relay-only ICE through a real coturn on loopback: readings and video cross the TURN server.

The service is configured with ``ice_transport_policy = "relay"`` (aiortc's RTCConfiguration
iceTransportPolicy → aioice TransportPolicy.RELAY), so it offers TURN relay candidates only and
every candidate pair, hence every packet, goes through coturn. The viewer does the same.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sensorlink.config import IceServer, ServiceConfig, parse_config
from sensorlink.errors import ConfigError, SignalingError
from sensorlink.service import Service
from sensorlink.webrtc.viewer import Viewer, connected_viewer

from support import STILL_SENSORS, terminate, wait_for, wait_until_listening

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


@pytest.fixture(autouse=True)
def _coturn_installed() -> None:
    # Not a skip: a missing server in CI is a failure to see, not a test to hide.
    assert Path(TURNSERVER).exists(), f"{TURNSERVER} is not installed: run scripts/setup.sh --browser"


TOKEN = "test-token-123"
USER, PASSWORD, REALM = "sensorlink", "relay-secret", "sensorlink.test"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    # TURN listens on UDP and TCP; take a port free for both.
    while True:
        with socket.socket(type=kind) as u, socket.socket() as t:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@pytest.fixture
def coturn(tmp_path: Path) -> Any:
    port = free_port()
    log = tmp_path / "turn.log"
    relay_low = 40000 + (port % 2000) * 10
    proc = subprocess.Popen(
        [TURNSERVER, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
         f"--listening-port={port}", f"--min-port={relay_low}", f"--max-port={relay_low + 9}",
         "--lt-cred-mech", f"--user={USER}:{PASSWORD}", f"--realm={REALM}",
         # Our peers are on loopback, which coturn refuses to relay to by default.
         "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-multicast-peers",
         "--simple-log", f"--log-file={log}", "--verbose", "--fingerprint"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    wait_until_listening(proc, "127.0.0.1", port, what="turnserver")
    yield port, log
    terminate(proc)


def nominated_pairs(pc: Any) -> list[Any]:
    """The ICE pairs aioice nominated for ``pc`` (test-only peek at private state)."""
    transports = {pc.sctp.transport.transport} if pc.sctp is not None else set()
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.transport is not None:
            transports.add(transceiver.receiver.transport.transport)
    pairs = []
    for ice in transports:
        pairs += list(ice._connection._nominated.values())
    return pairs


def turn_log_text(log: Path) -> str:
    # coturn appends a date to --log-file unless --simple-log; accept either.
    found = sorted(log.parent.glob(log.stem + "*"))
    return "".join(p.read_text(errors="replace") for p in found)


async def test_relay_only_connection_carries_readings_and_video(coturn) -> None:
    port, log = coturn
    turn = [IceServer(urls=[f"turn:127.0.0.1:{port}?transport=udp"], username=USER,
                      credential=PASSWORD)]
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN, ice_servers=turn,
                                    ice_transport_policy="relay"),
                      sensors=STILL_SENSORS, source="test")
    await service.start()
    try:
        host, http_port = service.bound
        assert service.hello("operator")["ice_servers"][0]["username"] == USER
        async with connected_viewer(f"http://{host}:{http_port}/#token={TOKEN}", ice_servers=turn,
                                    ice_transport_policy="relay") as viewer:
            await wait_for(lambda: viewer.readings >= 300 and viewer.video_frames["cam"] >= 10
                           and viewer.audio_frames["mic"] >= 10, 60, "readings, video and audio")
            assert viewer.seq_gaps == 0 and viewer.invalid == 0
            # Every nominated pair, on both ends, has a relay candidate on our side.
            for pc in (viewer._pc, service.viewers[0].pc):
                pairs = nominated_pairs(pc)
                assert pairs, "no nominated ICE pair"
                assert all(p.local_candidate.type == "relay" for p in pairs), pairs
                assert all(p.remote_candidate.type == "relay" for p in pairs), pairs
        # coturn's own accounting: our user's allocations relayed seconds of video and readings
        # (not just ICE checks). It reports when an allocation closes.
        def relayed_bytes() -> int:
            return sum(int(b) for b in re.findall(
                r"peer usage: realm=<[^>]*>, username=<" + USER + r">, rp=\d+, rb=(\d+)",
                turn_log_text(log)))
        await wait_for(lambda: relayed_bytes() > 30_000, 30, "coturn's usage report")
    finally:
        await service.stop()


async def test_relay_policy_offers_no_direct_candidate_at_all() -> None:
    """Without a TURN server a relay-only service has nothing to offer: no host path leaks."""
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN,
                                    ice_transport_policy="relay"),
                      sensors=STILL_SENSORS[1:2], source="test")
    await service.start()
    host, http_port = service.bound
    viewer = Viewer(f"http://{host}:{http_port}/#token={TOKEN}")
    try:
        # The service has no candidate to answer with, says so instead, drops the session.
        with pytest.raises(SignalingError, match="ICE cannot start.*no TURN server is configured"):
            await asyncio.wait_for(viewer.run(reconnect=False), 30)
        assert viewer.connections == 0 and viewer.readings == 0
        await wait_for(lambda: not service.viewers, 10, "the failed session to be dropped")
    finally:
        await service.stop()


def test_ice_transport_policy_is_checked() -> None:
    base = {"sensors": [{"name": "p", "driver": "sim-probes"}]}
    config = parse_config({**base, "service": {"ice_transport_policy": "relay"}})
    assert config.service.ice_transport_policy == "relay"
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "service": {"ice_transport_policy": "turn-only"}})
    assert info.value.field == "service.ice_transport_policy"
