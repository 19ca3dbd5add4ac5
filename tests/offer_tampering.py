"""Offers changed on their way to the service, as a broken or hostile middlebox would change
them, for the tests of what a failed connection says (tests/test_failures.py and the dashboard's).

The viewers are the real ones (``sensorlink view``, Chromium); only the signaling between them
and the service is rewritten: by :class:`SignalingProxy` here, by Playwright's websocket routing
in the browser tests. Both use the SDP rewrites below.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection, serve

FINGERPRINT = re.compile(r"^(a=fingerprint:\S+ )([0-9A-Fa-f:]+)", re.MULTILINE)
#: codecs aiortc cannot send: an m-line that offers only these cannot be answered
UNSENDABLE = {"video": "AV1/90000", "audio": "iLBC/8000"}


def wrong_fingerprint(sdp: str) -> str:
    """The offer with every certificate fingerprint changed in its first byte: the DTLS
    handshake still completes, and then the certificate does not match."""
    def flip(match: re.Match[str]) -> str:
        first, rest = match.group(2).split(":", 1)
        return f"{match.group(1)}{(int(first, 16) ^ 0xFF):02X}:{rest}"
    changed, count = FINGERPRINT.subn(flip, sdp)
    assert count, "no a=fingerprint line to change"
    return changed


def only_unsendable_codec(sdp: str, kind: str) -> str:
    """The offer with every ``kind`` m-line offering one codec aiortc cannot send."""
    out: list[str] = []
    section = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            section = line[2:].split(" ", 1)[0]
            if section == kind:
                head = line.split(" ")[:3]
                out.append(" ".join([*head, "96"]))
                out.append(f"a=rtpmap:96 {UNSENDABLE[kind]}")
                continue
        if section == kind and re.match(r"a=(rtpmap|fmtp|rtcp-fb):", line):
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def rewrite_offer(text: str, change: Callable[[str], str]) -> str:
    """A signaling message (JSON text) with its offer's SDP changed; anything else as it was."""
    try:
        message = json.loads(text)
    except ValueError:
        return text
    if isinstance(message, dict) and message.get("type") == "offer":
        message["sdp"] = change(message["sdp"])
        return json.dumps(message)
    return text


class SignalingProxy:
    """A websocket relay in front of a service's ``/ws``: each message from the viewer passes
    through ``change`` (see :func:`rewrite_offer`), the service's replies pass unchanged."""

    def __init__(self, upstream: str, change: Callable[[str], str]) -> None:
        self.upstream = upstream
        self.change = change
        self.port = 0
        self._server: Any = None

    async def __aenter__(self) -> SignalingProxy:
        self._server = await serve(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws#token={token}"

    async def _relay(self, viewer: ServerConnection) -> None:
        async with websockets.connect(self.upstream, max_size=2**20) as service:
            async def pipe(source: Any, target: Any, change: Callable[[str], str]) -> None:
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    async for text in source:
                        await target.send(change(text))
                await target.close()
            await asyncio.gather(pipe(viewer, service, lambda t: rewrite_offer(t, self.change)),
                                 pipe(service, viewer, lambda t: t))
