"""Read-only JSON routes beside the dashboard's files: ``GET /api/...`` with a token.

The service registers routes (path → ``handler(query, role)``) in
:attr:`sensorlink.webrtc.signaling.SignalingServer.routes`; the recordings library registers its
own (sensorlink.recording.library_api). The token travels in an ``Authorization: Bearer``
header, never in the URL (which ends up in logs and histories), and is checked like the
signaling one: constant time, and five failures from one address lock it out for a while. A
handler's MessageError becomes a 400 naming the field; the body is always JSON.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Protocol

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from sensorlink.errors import MessageError

log = logging.getLogger(__name__)

Route = Callable[[dict[str, list[str]], str], Awaitable[Any]]
MAX_QUERY = 4096


class Throttle(Protocol):
    def locked(self, address: str) -> bool: ...

    def failed(self, address: str) -> None: ...


def _json(status: HTTPStatus, body: Any, headers: dict[str, str]) -> Response:
    data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Response(status.value, status.phrase, Headers({
        **headers, "Content-Type": "application/json; charset=utf-8",
        "Content-Length": str(len(data))}), data)


async def serve_api(request: Request, routes: dict[str, Route], *, address: str,
                    role_for: Callable[[str], str | None], throttle: Throttle,
                    headers: dict[str, str]) -> Response:
    path, _, query_text = request.path.partition("?")
    route = routes.get(path)
    if route is None:
        return _json(HTTPStatus.NOT_FOUND, {"error": f"no route {path[:100]}"}, headers)
    if throttle.locked(address):
        return _json(HTTPStatus.TOO_MANY_REQUESTS,
                     {"error": "too many failed attempts; try again later"}, headers)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    role = role_for(token.strip()) if scheme.lower() == "bearer" and token else None
    if role is None:
        throttle.failed(address)
        log.warning("api: wrong or missing token from %s for %s", address, path)
        return _json(HTTPStatus.UNAUTHORIZED,
                     {"error": "a token is needed: Authorization: Bearer TOKEN"}, headers)
    if len(query_text) > MAX_QUERY:
        return _json(HTTPStatus.BAD_REQUEST, {"error": "query too long", "field": None}, headers)
    query = urllib.parse.parse_qs(query_text, keep_blank_values=True)
    try:
        body = await route(query, role)
    except MessageError as exc:
        return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc), "field": exc.field}, headers)
    return _json(HTTPStatus.OK, body, headers)
