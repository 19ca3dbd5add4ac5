"""A WHEP endpoint (draft-ietf-wish-whep): any WHEP player pulls a camera and its microphone.

```
POST    /whep/<camera>[?audio=<mic>|none]   offer (application/sdp), Authorization: Bearer <token>
        -> 201 Created, answer (application/sdp), Location: /whep/session/<id>, ETag, Link
           (rel="ice-server", the service's STUN/TURN servers)
POST    /whep/<mic>                         the microphone's beam alone
PATCH   /whep/session/<id>                  trickled candidates (application/trickle-ice-sdpfrag)
        -> 204; If-Match required (428 without, 412 stale); new ICE credentials -> 422
DELETE  /whep/session/<id>                  -> 200, the peer connection closed
OPTIONS (any)                               -> 204 with CORS and Accept-Post / Accept-Patch
```
A camera's audio is the microphone named by ``?audio=``, else the service's first microphone.
Either token works (a viewer may watch); wrong tokens count towards the signaling server's
lock-out per address. CORS: ``allow_origins`` (default any origin). That is safe because
nothing here rides on ambient credentials (no cookies): a page elsewhere must hold the token
to get anything, exactly like a player outside a browser.

Served on a port of its own (:mod:`sensorlink.webrtc.http11` says why), over TLS when the
service has a certificate. Status goes in the service's ``exports``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

import sensorlink
from sensorlink.config_whip import WhepConfig
from sensorlink.errors import ConfigError, SignalingError
from sensorlink.webrtc.failures import offer_refusal
from sensorlink.webrtc.http11 import HttpRequest, HttpResponse, HttpServer, tls_context
from sensorlink.webrtc.ice import is_loopback
from sensorlink.webrtc.signaling import AuthThrottle
from sensorlink.webrtc.whep_session import IceRestartRefused, NotAcceptable, WhepSession

from sensorlink.webrtc.host import MediaSource

if TYPE_CHECKING:
    from sensorlink.config import IceServer

log = logging.getLogger(__name__)

SDP = "application/sdp"
FRAGMENT = "application/trickle-ice-sdpfrag"
ENDPOINT_METHODS = "OPTIONS, POST"
SESSION_METHODS = "OPTIONS, PATCH, DELETE"


class WhepHost(MediaSource, Protocol):
    """What the WHEP endpoint needs: the media, and who a token is."""

    def role_for(self, token: str) -> str | None: ...


def ice_server_links(servers: list[IceServer]) -> list[tuple[str, str]]:
    """``Link: <url>; rel="ice-server"`` per STUN/TURN URL, credentials as in RFC 9725 4.6."""
    links = []
    for server in servers:
        for url in server.urls:
            value = f'<{url}>; rel="ice-server"'
            if server.username is not None:
                value += f'; username="{server.username}"'
            if server.credential is not None:
                value += f'; credential="{server.credential}"; credential-type="password"'
            links.append(("Link", value))
    return links


class WhepServer:
    """Started and stopped with the service, like an exporter; ``status()`` goes in exports."""

    kind = "whep"

    def __init__(self, host: WhepHost, config: WhepConfig, throttle: AuthThrottle) -> None:
        self.host = host
        self.config = config
        self.throttle = throttle
        self.sessions: dict[str, WhepSession] = {}
        self.served = 0
        self.refused = 0
        self.url = ""
        self.state = "stopped"
        self._http = HttpServer(self.handle, server_header=f"sensorlink/{sensorlink.__version__}")

    # -- lifecycle (the exporter interface) ---------------------------------------------------
    async def start(self) -> None:
        settings = self.host.settings
        host = self.config.host or settings.host
        if is_loopback(settings.host) and not is_loopback(host):
            raise ConfigError(f"WHEP on {host} needs the service beyond loopback too (--listen): "
                              "a loopback service offers ICE only on 127.0.0.1", field="whep.listen")
        context = tls_context(settings.tls_cert, settings.tls_key)
        try:
            bound_host, port = await self._http.start(host, self.config.port, ssl=context)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{self.config.port}: "
                              f"{exc.strerror or exc}", field="whep.listen") from exc
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"{'https' if context else 'http'}://{shown}:{port}/whep/"
        self.state = "listening"
        log.info("WHEP: %s<camera> (Authorization: Bearer <token>)", self.url)

    async def stop(self) -> None:
        await self._http.stop()
        for session in list(self.sessions.values()):
            await session.close()
        self.sessions.clear()
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        live = [s for s in self.sessions.values() if not s.is_closed]
        playing = sum(1 for s in live if s.connected)
        return {"name": "whep", "kind": self.kind, "target": self.url, "state": self.state,
                "detail": f"{len(live)} players ({playing} connected), {self.refused} refused",
                "players": len(live), "connects": self.served}

    # -- HTTP ---------------------------------------------------------------------------------
    async def handle(self, request: HttpRequest) -> HttpResponse:
        response = await self._route(request)
        response.headers += self._cors(request)
        response.headers.append(("Cache-Control", "no-store"))
        return response

    async def _route(self, request: HttpRequest) -> HttpResponse:
        parts = request.path.strip("/").split("/")
        if parts[0] != "whep" or len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != "session"):
            return HttpResponse.text(404, "not found: POST an offer to /whep/<camera>")
        session_id = parts[2] if len(parts) == 3 else None
        allow = SESSION_METHODS if session_id else ENDPOINT_METHODS
        if request.method == "OPTIONS":
            accept = ("Accept-Patch", FRAGMENT) if session_id else ("Accept-Post", SDP)
            return HttpResponse(204, [("Allow", allow), accept])
        if request.method not in allow.split(", "):
            return HttpResponse.text(405, f"{request.method} is not supported here; {allow}",
                                     [("Allow", allow)])
        refused = self._authorize(request)
        if refused is not None:
            return refused
        if session_id is None:
            return await self._create(request, parts[1])
        session = self.sessions.get(session_id)
        if session is None or session.is_closed:
            return HttpResponse.text(404, "no such session (ended, or never created)")
        if request.method == "DELETE":
            await session.close()
            self.sessions.pop(session_id, None)
            return HttpResponse(200)
        return await self._patch(request, session)

    def _authorize(self, request: HttpRequest) -> HttpResponse | None:
        challenge = [("WWW-Authenticate", 'Bearer realm="sensorlink"')]
        if self.throttle.locked(request.remote):
            self.refused += 1
            return HttpResponse.text(429, "too many wrong tokens from this address; try later",
                                     [("Retry-After", str(int(self.throttle.window_s)))])
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.refused += 1
            return HttpResponse.text(401, "send the service's token as 'Authorization: Bearer "
                                          "<token>'", challenge)
        if self.host.role_for(token.strip()) is None:
            self.refused += 1
            self.throttle.failed(request.remote)
            log.warning("whep: wrong token from %s", request.remote)
            return HttpResponse.text(401, "wrong token", challenge)
        return None

    def _media_for(self, sensor: str, audio: str | None) -> tuple[str | None, str | None]:
        cameras, beams = self.host.cameras, self.host.beams
        if sensor in beams:
            return None, sensor
        if sensor not in cameras:
            raise LookupError(f"no camera or microphone named {sensor!r}; cameras: "
                              f"{sorted(cameras)}, microphones: {sorted(beams)}")
        if audio in (None, ""):
            return sensor, next(iter(beams), None)
        if audio == "none":
            return sensor, None
        if audio not in beams:
            raise LookupError(f"audio: no microphone named {audio!r}; microphones: {sorted(beams)}")
        return sensor, audio

    async def _create(self, request: HttpRequest, sensor: str) -> HttpResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != SDP:
            return HttpResponse.text(415, f"the offer must be sent as {SDP}, got "
                                          f"{content_type or 'no Content-Type'}")
        try:
            video, audio = self._media_for(sensor, request.query.get("audio"))
        except LookupError as exc:
            return HttpResponse.text(404, str(exc.args[0]))
        self.sessions = {k: s for k, s in self.sessions.items() if not s.is_closed}
        if len(self.sessions) >= self.config.max_players:
            return HttpResponse.text(503, f"{self.config.max_players} players already watch",
                                     [("Retry-After", "10")])
        try:
            offer = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return HttpResponse.text(400, "the offer is not UTF-8 text")
        session = WhepSession(self.host, video=video, audio=audio, remote=request.remote)
        try:
            answer = await session.answer(offer)
        except Exception as exc:  # noqa: BLE001 (any failure here is the offer's, see signaling)
            await session.close()
            reason = str(exc) if isinstance(exc, SignalingError) else offer_refusal(offer, exc)
            # 406: WHIP's (and so WHEP's) answer to an offer it cannot serve as a whole.
            status = 406 if isinstance(exc, NotAcceptable) else 400
            log.info("whep: offer from %s refused: %s", request.remote, reason)
            return HttpResponse.text(status, reason)
        self.sessions[session.id] = session
        self.served += 1
        asyncio.get_running_loop().create_task(self._forget_when_closed(session))
        log.info("%s: %s playing %s%s", session.name, request.remote, video or audio,
                 f" with {audio}" if video and audio else "")
        headers = [("Content-Type", SDP), ("Location", f"/whep/session/{session.id}"),
                   ("ETag", session.etag), *ice_server_links(self.host.settings.ice_servers)]
        return HttpResponse(201, headers, answer.encode())

    async def _forget_when_closed(self, session: WhepSession) -> None:
        await session.closed()
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]

    async def _patch(self, request: HttpRequest, session: WhepSession) -> HttpResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FRAGMENT:
            return HttpResponse.text(415, f"send ICE candidates as {FRAGMENT}")
        match = request.headers.get("if-match")
        if match is None:
            return HttpResponse.text(428, "If-Match is required (the ETag of the 201, or *)")
        if match.strip() != "*" and session.etag not in [m.strip() for m in match.split(",")]:
            return HttpResponse.text(412, "If-Match does not name this ICE session")
        try:
            await session.add_candidates(request.body.decode("utf-8", "replace"))
        except IceRestartRefused as exc:
            return HttpResponse.text(422, str(exc))
        except SignalingError as exc:
            return HttpResponse.text(400, str(exc))
        return HttpResponse(204)

    def _cors(self, request: HttpRequest) -> list[tuple[str, str]]:
        origin = request.headers.get("origin")
        allowed = self.config.allow_origins
        if origin is None or not ("*" in allowed or origin in allowed):
            return [("Vary", "Origin")] if origin is not None else []
        headers = [("Access-Control-Allow-Origin", "*" if "*" in allowed else origin),
                   ("Access-Control-Allow-Methods", "OPTIONS, POST, PATCH, DELETE"),
                   ("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match"),
                   ("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Post, "
                                                     "Accept-Patch"),
                   ("Access-Control-Max-Age", "600"), ("Vary", "Origin")]
        if request.headers.get("access-control-request-private-network") == "true":
            # Chromium asks before a public page may reach a loopback or LAN address.
            headers.append(("Access-Control-Allow-Private-Network", "true"))
        return headers
