"""A small HTTP/1.1 server and client over asyncio streams, with h11 doing the parsing.

WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) are plain HTTP: POST with an SDP body, PATCH
with an SDP fragment, DELETE, OPTIONS for CORS. The dashboard's server cannot carry them:
websockets' HTTP handling (``process_request``) only ever sees requests without a body (its
parser refuses any ``Content-Length`` but 0 with "unsupported request body") and its handshake
wants GET. aiohttp is not a dependency, so this module moves bytes between asyncio streams and
h11, a sans-io HTTP/1.1 parser (the style guide's model): h11 decides what is valid HTTP.

Limits: a request head of 16 KiB, a body of ``max_body`` bytes (413 beyond), an idle connection
closed after ``idle_timeout_s``. Bodies are read whole: SDP is small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

from sensorlink.errors import ConfigError, SignalingError

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 256 * 1024   # an SDP offer with every candidate is a few KiB


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str                     # percent-decoded, without the query
    query: dict[str, str]
    headers: dict[str, str]       # lower-case names; repeated fields joined with ", "
    body: bytes
    remote: str


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def text(cls, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
        return cls(status, [("Content-Type", "text/plain; charset=utf-8"), *headers],
                   (message.rstrip("\n") + "\n").encode())


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def tls_context(cert: str | None, key: str | None) -> ssl_module.SSLContext | None:
    """The server side of TLS from a certificate and key (PEM files), or None without one."""
    if not cert:
        return None
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl_module.SSLError) as exc:
        raise ConfigError(f"cannot load certificate/key: {exc}", field="tls_cert") from exc
    return context


def _decode_headers(pairs: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        key, text = name.decode("ascii").lower(), value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


class HttpServer:
    """Serves ``handler`` on one address; keep-alive, one request at a time per connection."""

    def __init__(self, handler: Handler, *, server_header: str, max_body: int = MAX_BODY,
                 idle_timeout_s: float = 30.0) -> None:
        self.handler = handler
        self.server_header = server_header
        self.max_body = max_body
        self.idle_timeout_s = idle_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int,
                    ssl: ssl_module.SSLContext | None = None) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port, ssl=ssl,
                                                  limit=MAX_HEAD)
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if peer else "?"
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            while True:
                try:
                    request = await self._read_request(conn, reader, remote)
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    await self._send(conn, writer, HttpResponse.text(status, f"bad request: {exc}"))
                    break
                if request is None:
                    break
                if isinstance(request, HttpResponse):  # refused before the handler saw it
                    await self._send(conn, writer, request)
                    break
                try:
                    response = await self.handler(request)
                except Exception:  # a bug must not take the connection's peer down with it
                    log.exception("http: %s %s failed", request.method, request.path)
                    response = HttpResponse.text(500, "internal error (logged by the service)")
                await self._send(conn, writer, response)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, TimeoutError, h11.LocalProtocolError, ssl_module.SSLError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _receive(self, conn: h11.Connection, reader: asyncio.StreamReader) -> None:
        data = await asyncio.wait_for(reader.read(65536), self.idle_timeout_s)
        conn.receive_data(data)

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader,
                            remote: str) -> HttpRequest | HttpResponse | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    await self._receive(conn, reader)
                except TimeoutError:
                    return None  # idle keep-alive connection, or a client that stalled
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                head = event
                length = _decode_headers(event.headers).get("content-length", "0")
                if length.isdigit() and int(length) > self.max_body:
                    return HttpResponse.text(413, f"request body over {self.max_body} bytes")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body:
                    return HttpResponse.text(413, f"request body over {self.max_body} bytes")
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                target = urllib.parse.urlsplit(head.target.decode("ascii", "replace"))
                return HttpRequest(
                    method=head.method.decode("ascii").upper(),
                    path=urllib.parse.unquote(target.path),
                    query=dict(urllib.parse.parse_qsl(target.query)),
                    headers=_decode_headers(head.headers), body=bytes(body), remote=remote)

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                    response: HttpResponse) -> None:
        if conn.our_state is not h11.SEND_RESPONSE:
            return  # h11 already answered or closed (a protocol error before any request)
        headers = [("Server", self.server_header), *response.headers,
                   ("Content-Length", str(len(response.body)))]
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        out = conn.send(h11.Response(status_code=response.status, headers=headers,
                                     reason=reason.encode()))
        out += conn.send(h11.Data(data=response.body)) if response.body else b""
        out += conn.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: list[tuple[str, str]]   # as received (lower-case names), repeated fields apart
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


async def http_request(method: str, url: str, *, headers: Sequence[tuple[str, str]] = (),
                       body: bytes = b"", ssl_context: ssl_module.SSLContext | None = None,
                       timeout: float = 15.0, max_body: int = MAX_BODY) -> HttpReply:
    """One request on a connection of its own (``Connection: close``); the whole reply.

    Raises :class:`SignalingError` naming the URL when the server cannot be reached, breaks
    HTTP, or does not answer within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SignalingError(f"{method} {url}: not an http:// or https:// URL")
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rpartition("@")[2]
    try:
        return await asyncio.wait_for(
            _exchange(parts.hostname, port, secure, ssl_context, method, target, host,
                      list(headers), body, max_body), timeout)
    except TimeoutError as exc:
        raise SignalingError(f"{method} {url}: no answer within {timeout:g} s") from exc
    except (OSError, h11.ProtocolError) as exc:  # ssl.SSLError is an OSError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SignalingError(f"{method} {url}: {reason}") from exc


async def _exchange(hostname: str, port: int, secure: bool,
                    ssl_context: ssl_module.SSLContext | None, method: str, target: str,
                    host: str, headers: list[tuple[str, str]], body: bytes,
                    max_body: int) -> HttpReply:
    context = (ssl_context or ssl_module.create_default_context()) if secure else None
    reader, writer = await asyncio.open_connection(hostname, port, ssl=context,
                                                   server_hostname=hostname if secure else None)
    conn = h11.Connection(h11.CLIENT)
    try:
        out = conn.send(h11.Request(method=method, target=target, headers=[
            ("Host", host), ("Connection", "close"), *headers,
            ("Content-Length", str(len(body)))]))
        out += conn.send(h11.Data(data=body)) if body else b""
        out += conn.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()
        status, reply_headers, data = 0, [], bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                reply_headers = [(k.decode("ascii").lower(), v.decode("latin-1"))
                                 for k, v in event.headers]
            elif isinstance(event, h11.Data):
                data += event.data
                if len(data) > max_body:
                    raise SignalingError(f"{method} {target}: reply body over {max_body} bytes")
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return HttpReply(status, reply_headers, bytes(data))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
