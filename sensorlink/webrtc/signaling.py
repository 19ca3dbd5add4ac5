"""The signaling and dashboard server (websockets): serves the dashboard's own files, and on
``/ws`` authenticates a viewer by token and exchanges offer/answer for its peer connection.

It serves nothing but the files shipped in ``sensorlink/web`` and the wire schemas: paths are
resolved and must stay inside those folders. Tokens are compared in constant time; repeated
failures from one address are refused for a while and logged.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import mimetypes
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import sensorlink
from sensorlink.errors import MessageError, SensorlinkError
from sensorlink.validation import validate
from sensorlink.webrtc.failures import offer_refusal
from sensorlink.webrtc.http_api import Route, serve_api
from sensorlink.webrtc.wire import MAX_SIGNALING_BYTES

if TYPE_CHECKING:
    from sensorlink.webrtc.host import Session, SignalingHost

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
FAILED_AUTH_LIMIT = 5          # failures per address ...
FAILED_AUTH_WINDOW_S = 60.0    # ... within this window lock the address out for the window
REFUSED = 4401                 # websocket close code for a refused token
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' "
                                "'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' "
                                "blob: mediastream:; connect-src 'self' ws: wss:; "
                                "frame-ancestors 'none'"),
}
#: an authenticated HTTP endpoint: (request headers, remote address) →
#: (status, body, content type, extra headers); a 401 counts as a failed attempt
Endpoint = Callable[[Headers, str], tuple[int, bytes, str, dict[str, str]]]
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/json", ".json")


def static_roots() -> dict[str, Path]:
    """URL prefix → folder. Only these folders are ever read."""
    web = Path(str(resources.files("sensorlink.web")))
    schemas = Path(str(resources.files("sensorlink.schemas")))
    return {"/schemas/": schemas.resolve(), "/": web.resolve()}


def resolve_static(path: str, roots: dict[str, Path]) -> Path | None:
    """The file a URL path names, or None when it is not one of ours (traversal included)."""
    path = urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0])
    if "\x00" in path or "\\" in path:
        return None
    if path == "/":
        path = "/index.html"
    for prefix, root in roots.items():
        if path.startswith(prefix):
            relative = path[len(prefix):]
            if not relative or any(part in ("..", "") or part.startswith(".")
                                   for part in relative.split("/")):
                return None
            candidate = (root / relative).resolve()
            if candidate.is_relative_to(root) and candidate.is_file() \
                    and candidate.suffix != ".py" and "__pycache__" not in candidate.parts:
                return candidate
            return None
    return None


class AuthThrottle:
    """Remembers failed token attempts per address."""

    def __init__(self, limit: int = FAILED_AUTH_LIMIT, window_s: float = FAILED_AUTH_WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, address: str) -> collections.deque[float]:
        times = self._failures.setdefault(address, collections.deque())
        while times and time.monotonic() - times[0] > self.window_s:
            times.popleft()
        return times

    def locked(self, address: str) -> bool:
        return len(self._recent(address)) >= self.limit

    def failed(self, address: str) -> None:
        self._recent(address).append(time.monotonic())


class SignalingServer:
    def __init__(self, service: SignalingHost) -> None:
        self.service = service
        self.throttle = AuthThrottle()
        self.roots = static_roots()
        self.refused = 0
        #: GET /api/... routes (path → handler(query, role)), sensorlink.webrtc.http_api
        self.routes: dict[str, Route] = {}
        #: other systems' endpoints on the same server (``/metrics``), added by the service
        self.endpoints: dict[str, Endpoint] = {}
        self._server: Server | None = None

    async def start(self, host: str, port: int, ssl: Any = None) -> tuple[str, int]:
        self._server = await serve(self._handle, host, port, process_request=self._http,
                                   max_size=MAX_SIGNALING_BYTES, ssl=ssl,
                                   server_header=f"sensorlink/{sensorlink.__version__}")
        sock = self._server.sockets[0]
        bound = sock.getsockname()
        return bound[0], bound[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- HTTP: the dashboard's files -------------------------------------------------------
    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] == "/ws":
            return None  # go on with the websocket handshake
        if request.path.startswith("/api/"):
            address = str(connection.remote_address[0]) if connection.remote_address else "?"
            return await serve_api(request, self.routes, address=address,
                                   role_for=self.service.role_for, throttle=self.throttle,
                                   headers=SECURITY_HEADERS)
        endpoint = self.endpoints.get(request.path.split("?", 1)[0])
        if endpoint is not None:
            return self._endpoint(connection, request, endpoint)
        file = resolve_static(request.path, self.roots)
        if file is None:
            return self._response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/json":
            content_type += "; charset=utf-8"
        return self._response(HTTPStatus.OK, file.read_bytes(), content_type)

    def _endpoint(self, connection: ServerConnection, request: Request,
                  endpoint: Endpoint) -> Response:
        # The same lockout as the websocket's auth: a scraper guessing tokens is refused.
        address = str(connection.remote_address[0]) if connection.remote_address else "?"
        if self.throttle.locked(address):
            return self._response(HTTPStatus.TOO_MANY_REQUESTS, b"too many failed attempts\n",
                                  "text/plain; charset=utf-8")
        code, body, content_type, extra = endpoint(request.headers, address)
        if code == HTTPStatus.UNAUTHORIZED:
            self.throttle.failed(address)
            log.warning("http: wrong or missing token for %s from %s", request.path, address)
        return self._response(HTTPStatus(code), body, content_type, extra)

    @staticmethod
    def _response(status: HTTPStatus, body: bytes, content_type: str,
                  extra: dict[str, str] | None = None) -> Response:
        headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                           **SECURITY_HEADERS, **(extra or {})})
        return Response(status.value, status.phrase, headers, body)

    # -- websocket: signaling --------------------------------------------------------------
    async def _send(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        await ws.send(json.dumps(message))

    async def _receive(self, ws: ServerConnection, timeout: float | None = None) -> dict[str, Any]:
        raw = await asyncio.wait_for(ws.recv(), timeout) if timeout else await ws.recv()
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: "[[[[..." nested thousands deep fits in 64 KiB (found by fuzzing).
            raise MessageError("not valid JSON") from exc
        validate("signaling", message)
        return message

    async def _refuse(self, ws: ServerConnection, reason: str) -> None:
        self.refused += 1
        try:
            await self._send(ws, {"type": "refused", "reason": reason})
            # A close reason is at most 123 bytes of UTF-8, not characters: a reason quoting a
            # non-ASCII message broke the close (found by fuzzing).
            await ws.close(REFUSED, reason.encode("utf-8")[:120].decode("utf-8", "ignore"))
        except ConnectionClosed:
            pass

    async def _handle(self, ws: ServerConnection) -> None:
        address = str(ws.remote_address[0]) if ws.remote_address else "?"
        if self.throttle.locked(address):
            log.warning("signaling: %s locked out after repeated wrong tokens", address)
            await self._refuse(ws, "too many failed attempts; try again later")
            return
        try:
            auth = await self._receive(ws, AUTH_TIMEOUT_S)
        except TimeoutError:  # its str() is empty: say what did not happen
            await self._refuse(ws, f"expected an auth message first (none within "
                                   f"{AUTH_TIMEOUT_S:g} s)")
            return
        except (MessageError, ConnectionClosed) as exc:
            await self._refuse(ws, f"expected an auth message first ({exc})")
            return
        if auth["type"] != "auth":
            await self._refuse(ws, "expected an auth message first")
            return
        role = self.service.role_for(auth["token"])
        if role is None:
            self.throttle.failed(address)
            log.warning("signaling: wrong token from %s", address)
            await self._refuse(ws, "wrong token: open the URL that sensorlink printed "
                                   "(it ends in #token=...)")
            return
        host = self.service
        if "replay" in auth:
            # This websocket replays part of the recordings library, on a hub of its own; its
            # peer connection is made and closed exactly like a live one.
            try:
                host = await self.service.open_replay(auth["replay"], role)
            except SensorlinkError as exc:
                await self._refuse(ws, f"replay: {exc}")
                return
        try:
            await self._serve(ws, host, role, address)
        finally:
            if host is not self.service:
                await self.service.close_replay(host)

    async def _serve(self, ws: ServerConnection, host: SignalingHost, role: str,
                     address: str) -> None:
        await self._send(ws, host.hello(role))
        session = None
        reporter: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    message = await self._receive(ws)
                except MessageError as exc:
                    await self._send(ws, {"type": "error", "id": None, "error": str(exc),
                                          "field": exc.field})
                    continue
                if message["type"] != "offer":
                    await self._send(ws, {"type": "error", "id": None, "field": "type",
                                          "error": f"unexpected {message['type']!r}; send an offer"})
                    continue
                if session is not None:
                    await self._close_session(host, session, reporter)  # a new offer replaces
                session = host.new_viewer(role=role, remote=address)
                try:
                    sdp, tracks = await session.answer(message["sdp"])
                except Exception as exc:  # noqa: BLE001 (see below)
                    # aiortc accepts some broken offers in setRemoteDescription and then fails
                    # in createAnswer with AttributeError and the like (found by fuzzing): any
                    # failure here is the offer's fault, answered as such. So is an ICE that
                    # cannot start (no candidate to pair): an offer gets an answer or an error.
                    reason = offer_refusal(message["sdp"], exc)
                    log.info("signaling: %s (%s): offer refused: %s", session.name, address,
                             reason)
                    await self._send(ws, {"type": "error", "id": None, "error": reason,
                                          "field": "sdp"})
                    await self._close_session(host, session)
                    session = None
                    continue
                await self._send(ws, {"type": "answer", "sdp": sdp, "tracks": tracks})
                reporter = asyncio.create_task(self._report_failure(ws, session),
                                               name=f"{session.name}:failure")
        except ConnectionClosed:
            pass
        finally:
            if session is not None:
                await self._close_session(host, session, reporter)

    async def _report_failure(self, ws: ServerConnection, session: Session) -> None:
        """Tell the viewer why its peer connection failed, while its websocket is still open
        (the session logs it; the viewer decides whether to try again)."""
        await session.closed()
        if session.failure is not None:
            try:
                await self._send(ws, {"type": "failed", "reason": session.failure})
            except ConnectionClosed:
                pass

    async def _close_session(self, host: SignalingHost, session: Session,
                             reporter: asyncio.Task[None] | None = None) -> None:
        try:
            await session.close()
        except Exception as exc:  # noqa: BLE001 (see below)
            # aiortc's close() fails on a connection a broken offer left half-built; the
            # session must still leave the service's list of viewers.
            log.info("signaling: closing %s: %r", getattr(session, "name", "?"), exc)
            host.viewer_closed(session)
        if reporter is not None:
            # Closed, the session wakes its reporter, which says why if it had failed.
            await asyncio.gather(reporter, return_exceptions=True)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
