"""A connection that fails says why: in the service's log at INFO, to the viewer over signaling,
and in what ``sensorlink view`` prints.

Each failure is caused for real, by a real ``sensorlink view`` in its own process against a real
service in this one: an offer the service cannot answer and a fingerprint that does not match
(both changed on their way by a signaling proxy, tests/offer_tampering.py), UDP dropped before the
service reads it (ICE never connects, or loses consent once connected), and a relay-only service
with no TURN server. aioice's STUN timers are shortened so that ICE gives up in seconds, not 30.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice.ice
import aioice.stun
import pytest
import websockets
from test_security import OPERATOR as TOKEN
from test_security import PROBES, dashboard_url, start_service, ws_url

from sensorlink.service import Service
from sensorlink.webrtc import signaling

from offer_tampering import SignalingProxy, only_unsendable_codec, wrong_fingerprint
from support import STILL_SENSORS, wait_for


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    """Every kind of sensor, so the offer has video and audio m-lines to refuse."""
    svc = await start_service(STILL_SENSORS)
    try:
        yield svc
    finally:
        await svc.stop()


class ViewRun:
    """``sensorlink [GLOBAL] view URL --json [ARGS]`` in its own process, read line by line."""

    def __init__(self, url: str, *args: str, global_args: tuple[str, ...] = ()) -> None:
        self.argv = [sys.executable, "-m", "sensorlink.cli", *global_args, "view", url, "--json",
                     "--quiet-readings", *args]
        self.events: list[dict[str, Any]] = []
        self.stderr = ""
        self.returncode: int | None = None

    async def until(self, done: Callable[[dict[str, Any]], bool], timeout: float = 90) -> None:
        """Run until an event satisfies ``done`` (then stop it) or the process exits by itself."""
        proc = await asyncio.create_subprocess_exec(*self.argv, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE,
                                                    stdin=subprocess.DEVNULL)
        assert proc.stdout is not None and proc.stderr is not None
        errors = asyncio.create_task(proc.stderr.read())  # drained, so -vv never blocks it

        async def read() -> bool:
            assert proc.stdout is not None
            async for line in proc.stdout:
                self.events.append(json.loads(line))
                if done(self.events[-1]):
                    return True
            return False  # it ended by itself
        stop = True
        try:
            stop = await asyncio.wait_for(read(), timeout)
        finally:
            if stop:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            self.returncode = await asyncio.wait_for(proc.wait(), 30)
            self.stderr = (await errors).decode(errors="replace")

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events if e["event"] == "disconnected"]


def failed_with(pattern: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == "disconnected" and re.search(pattern, e["reason"]) is not None


def logged(caplog: pytest.LogCaptureFixture, pattern: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.INFO and r.name.startswith("sensorlink")
            and re.search(pattern, r.getMessage())]


@pytest.fixture
def fast_stun(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice retransmits a STUN request 6 times (~31 s before a check fails) and lets consent
    lapse after 6 misses 5 s apart: shortened in this (the service's) process only."""
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.3)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 2)


class InboundUdpFirewall:
    """Drops every datagram that reaches this process's ICE sockets, as a host firewall that
    drops UDP to the service would (the viewers run in other processes). Open until closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.closed = False
        self.dropped = 0
        original = aioice.ice.StunProtocol.datagram_received
        firewall = self

        def datagram_received(protocol: Any, data: bytes, addr: tuple[str, int]) -> None:
            if firewall.closed:
                firewall.dropped += 1
                return
            original(protocol, data, addr)
        monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", datagram_received)


# -- offers the service cannot answer ---------------------------------------------------------

@pytest.mark.parametrize("kind, offered, ours", [("video", "AV1", "VP8, H264"),
                                                 ("audio", "iLBC", "opus, G722, PCMU, PCMA")])
async def test_an_offer_without_a_codec_the_service_can_send_is_refused_saying_which(
        service: Service, caplog: pytest.LogCaptureFixture, kind: str, offered: str,
        ours: str) -> None:
    caplog.set_level(logging.INFO, logger="sensorlink")
    change = functools.partial(only_unsendable_codec, kind=kind)
    async with SignalingProxy(ws_url(service), change) as proxy:
        view = ViewRun(proxy.url(TOKEN))
        await view.until(lambda e: False)  # it stops by itself: the same offer fails the same way
    said = (f"codec refused: the viewer's {kind} m-line \\(mid \\d+\\) offers {offered}; "
            f"the service sends {ours}")
    assert logged(caplog, f"offer refused: {said}"), caplog.text
    assert view.returncode == 3, view.stderr
    assert re.search(f"refused: service refused the offer: {said}", view.stderr), view.stderr
    await wait_for(lambda: not service.viewers, 20, "the refused session closed")


# -- DTLS --------------------------------------------------------------------------------------

async def test_a_fingerprint_that_does_not_match_fails_dtls_and_says_so(
        service: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensorlink")
    said = (r"DTLS failed: fingerprint mismatch: the viewer's certificate \(sha-256 [0-9A-F:…]+\) "
            r"is not the one its offer names \(sha-256 [0-9A-F:…]+\)")
    async with SignalingProxy(ws_url(service), wrong_fingerprint) as proxy:
        view = ViewRun(proxy.url(TOKEN))
        await view.until(failed_with(said))
    assert logged(caplog, f"peer connection failed: {said}"), caplog.text
    # The viewer's own side of DTLS completed (our certificate matched our answer): only the
    # service saw the mismatch, so the reason it printed came over signaling.
    assert re.search(f"^peer connection failed: {said}", view.reasons()[0]), view.reasons()
    await wait_for(lambda: not service.viewers, 20, "the failed session closed")


# -- ICE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("when, said", [
    ("from the start", r"ICE failed: no connectivity check succeeded on the candidate pair "
                       r"\(the service's: host 127\.0\.0\.1:\d+; the viewer's: host "
                       r"127\.0\.0\.1:\d+\): UDP between the viewer and the service is blocked"),
    ("once streaming", r"ICE consent lost: the viewer stopped answering consent checks "
                       r"\(RFC 7675\)"),
])
async def test_blocked_udp_fails_ice_and_says_so(
        service: Service, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        fast_stun: None, when: str, said: str) -> None:
    caplog.set_level(logging.INFO, logger="sensorlink")
    firewall = InboundUdpFirewall(monkeypatch)
    firewall.closed = when == "from the start"

    def watch(event: dict[str, Any]) -> bool:
        if event["event"] == "readings":  # connected and streaming: now the firewall closes
            firewall.closed = True
        return failed_with(said)(event)
    view = ViewRun(dashboard_url(service))
    await view.until(watch)
    assert firewall.dropped > 0
    assert logged(caplog, f"peer connection failed: {said}"), caplog.text
    connected = any(e["event"] == "connected" for e in view.events)
    assert connected == (when == "once streaming"), view.events
    await wait_for(lambda: not service.viewers, 20, "the failed session closed")


async def test_a_relay_only_service_without_turn_refuses_the_offer_saying_why(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensorlink")
    service = await start_service(PROBES, ice_transport_policy="relay")
    try:
        said = (r'ICE cannot start: the service offers TURN relay candidates only '
                r'\(ice_transport_policy = "relay"\), and no TURN server is configured')
        view = ViewRun(dashboard_url(service))
        await view.until(lambda e: False)  # an answer without candidates would wait forever
        assert logged(caplog, f"offer refused: {said}"), caplog.text
        assert view.returncode == 3, view.stderr
        assert re.search(f"refused: service refused the offer: {said}", view.stderr), view.stderr
        await wait_for(lambda: not service.viewers, 20, "the refused session closed")
    finally:
        await service.stop()


# -- what -v and -vv show ----------------------------------------------------------------------

async def test_vv_shows_aiortcs_debug_log_and_v_does_not(service: Service) -> None:
    runs = {}
    for flags in (("-v",), ("-vv",)):
        view = ViewRun(dashboard_url(service), global_args=flags)
        await view.until(lambda e: e["event"] == "readings")
        runs[flags[0]] = view.stderr
    # aiortc's own lines, the DTLS handshake's among them, and aioice's STUN messages (its
    # logger passes through the filter that notes expired consents: that must still show what
    # -vv asks for, and only that).
    assert re.search(r"DEBUG aiortc\.rtcdtlstransport: RTCDtlsTransport\(\w+\) - DTLS handshake "
                     r"complete", runs["-vv"]), runs["-vv"][-3000:]
    assert re.search(r"DEBUG aioice\.ice: ", runs["-vv"]), runs["-vv"][-3000:]
    assert "aiortc" not in runs["-v"] and "aioice" not in runs["-v"], runs["-v"][-3000:]


# -- signaling refusals ------------------------------------------------------------------------

async def test_a_viewer_that_sends_no_auth_is_told_so(service: Service,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signaling, "AUTH_TIMEOUT_S", 0.5)
    async with websockets.connect(ws_url(service), open_timeout=10) as ws:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
        await asyncio.wait_for(ws.wait_closed(), 30)
    assert reply == {"type": "refused",
                     "reason": "expected an auth message first (none within 0.5 s)"}
    assert ws.close_code == signaling.REFUSED
