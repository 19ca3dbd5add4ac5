"""A live Foxglove WebSocket server: the Foxglove app and Lichtblick connect to sensorlink.

``sensorlink run|demo|replay --foxglove [HOST:]PORT`` starts it beside the dashboard (loopback
unless a host is given). It speaks the Foxglove WebSocket protocol under both subprotocol
names: ``foxglove.sdk.v1`` (the current app) and ``foxglove.websocket.v1`` (Lichtblick, older
apps, @foxglove/ws-protocol), which carry the same messages. What the channels hold is
:mod:`sensorlink.bridges.foxglove_channels`.

Why not the ``foxglove-sdk`` package: its server (0.30.3) refuses ``foxglove.websocket.v1``
with HTTP 400, so Lichtblick could not connect; it has no hook to check a token before the
handshake completes, so the feed would be open to anyone who can reach the port; and it does
not report its per-client drops, which the status must show. This module is ~350 lines on
``websockets``, which the service already uses.

The token: the app cannot send headers, so it goes in the URL
(``ws://HOST:PORT/?token=TOKEN``), checked before the WebSocket is accepted (401 otherwise);
an ``Authorization: Bearer`` header works for clients that can send one. The operator token
may drive a replay's playback; the viewer token only watches.

Slow clients: the bridge reads the hub through one bounded subscription and gives each client
its own bounded queue of messages; when a client reads slower than the sensors send, its
oldest messages are dropped and counted (``status()["clients"][i]["dropped"]``, and a
warning status message to that client), so nothing a client does can stall the hub or the
other clients. Control messages (advertise, status, playback state) are never dropped.

Replay: the server announces ``playbackControl`` and ``time`` with the recording's time range,
so the app's timeline seeks, pauses, plays and changes speed
(:mod:`sensorlink.bridges.foxglove_playback`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import sensorlink
from sensorlink.bridges import foxglove_playback as fp
from sensorlink.bridges.foxglove_channels import (
    LOG_CHANNEL, ChannelSpec, channels_for, message_for, ns_time,
)
from sensorlink.hub import Hub, Subscription
from sensorlink.samples import SensorInfo

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")
MESSAGE_DATA = 1  # server binary opcode
TICK_S = 0.2  # how often a replay sends its time and playback state


class _Client:
    """One connection: its subscriptions and its two queues (data bounded, control not)."""

    def __init__(self, ws: ServerConnection, name: str, role: str, queue: int) -> None:
        self.ws = ws
        self.name = name
        self.role = role
        self.subprotocol = ws.subprotocol or ""
        self.by_channel: dict[int, int] = {}  # channel id -> subscription id
        self.data: deque[bytes] = deque()
        self.control: deque[str | bytes] = deque()
        self.queue = queue
        self.sent = 0
        self.dropped = 0
        self._reported = 0
        self._reported_at = 0.0
        self._wake = asyncio.Event()

    def offer(self, frame: bytes) -> None:
        if len(self.data) >= self.queue:
            self.data.popleft()
            self.dropped += 1
        self.data.append(frame)
        self._wake.set()

    def say(self, message: dict[str, Any] | bytes) -> None:
        self.control.append(message if isinstance(message, bytes) else json.dumps(message))
        self._wake.set()

    async def write(self) -> None:
        """Send until the connection closes: control first, then data oldest first."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.control or self.data:
                now = time.monotonic()
                if self.dropped != self._reported and now - self._reported_at >= 1.0:
                    # at most once a second: the warning must not crowd out the data
                    self._reported, self._reported_at = self.dropped, now
                    self.control.append(json.dumps({
                        "op": "status", "level": 1, "id": "sensorlink-dropped",
                        "message": f"sensorlink dropped {self.dropped} messages: this "
                                   "connection reads slower than the sensors send"}))
                message = self.control.popleft() if self.control else self.data.popleft()
                await self.ws.send(message)
                self.sent += 1

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "subprotocol": self.subprotocol,
                "subscriptions": len(self.by_channel), "queued": len(self.data),
                "sent": self.sent, "dropped": self.dropped}


class FoxgloveBridge:
    """The server; a service exporter (``start()``, ``stop()``, ``status()``)."""

    kind = "foxglove"

    def __init__(self, hub: Hub, *, host: str = "127.0.0.1", port: int = 8766,
                 authorize: Callable[[str], str | None],
                 playback: Callable[[], fp.Playback | None] = lambda: None,
                 queue: int = 1024, name: str = "sensorlink") -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self.authorize = authorize
        #: the replay being served, if any (it exists only once the service has started)
        self._playback = playback
        self._control_lock = asyncio.Lock()
        self._requests: set[asyncio.Task[None]] = set()
        self.queue = queue
        self.name = name
        self.bound: tuple[str, int] | None = None
        self.clients: list[_Client] = []
        self.rejected = 0
        self.connects = 0
        #: messages sent to and dropped for clients that have left
        self._gone = {"sent": 0, "dropped": 0}
        self._channels: dict[ChannelSpec, int] = {}
        self._specs: dict[int, ChannelSpec] = {}
        self._ids = itertools.count(1)
        self._names = itertools.count(1)
        self._server: Server | None = None
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_state: tuple[int, float] | None = None  # (status, speed) last sent

    @property
    def playback(self) -> fp.Playback | None:
        return self._playback()

    @property
    def url(self) -> str:
        host, port = self.bound or (self.host, self.port)
        return f"ws://{f'[{host}]' if ':' in host else host}:{port}/"

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._channel(LOG_CHANNEL)
        for info in self.hub.sensors.values():
            for spec in channels_for(info):
                self._channel(spec)
        self._sub = self.hub.subscribe("foxglove", maxsize=max(self.queue * 4, 4096))
        self._server = await serve(self._serve, self.host, self.port,
                                   subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
                                   process_request=self._check_token,
                                   max_size=1 << 20, compression=None)
        sock = next(iter(self._server.sockets))
        self.bound = sock.getsockname()[:2]
        self._tasks.append(asyncio.create_task(self._pump(), name="foxglove:pump"))
        playback = self.playback
        if playback is not None:
            self._tasks.append(asyncio.create_task(self._tick(playback), name="foxglove:tick"))
        log.info("Foxglove WebSocket on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in (*self._tasks, *self._requests):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._requests, return_exceptions=True)
        self._tasks.clear()
        if self._sub is not None:
            self._sub.close()

    def status(self) -> dict[str, Any]:
        """The bridge as the dashboard's status shows it (status.schema.json exports)."""
        return {"name": "foxglove", "kind": self.kind, "target": self.url,
                "state": "listening" if self._server is not None else "stopped",
                "detail": f"{len(self.clients)} client(s)", "clients": len(self.clients),
                "connections": [c.state() for c in self.clients],
                "queued": sum(len(c.data) for c in self.clients),
                "dropped": self._gone["dropped"] + sum(c.dropped for c in self.clients) +
                (self._sub.dropped if self._sub is not None else 0),
                "sent": self._gone["sent"] + sum(c.sent for c in self.clients),
                "connects": self.connects, "rejected": self.rejected}

    # -- connections -----------------------------------------------------------------------
    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        token = _token_of(request)
        if token and self.authorize(token) is not None:
            return None
        self.rejected += 1
        return connection.respond(HTTPStatus.UNAUTHORIZED,
                                  "sensorlink: missing or wrong token (ws://HOST:PORT/?token=...)\n")

    async def _serve(self, ws: ServerConnection) -> None:
        token = _token_of(ws.request) if ws.request is not None else ""
        client = _Client(ws, f"foxglove-{next(self._names)}", self.authorize(token) or "viewer",
                         self.queue)
        client.say(self._server_info())
        client.say({"op": "advertise", "channels": [
            spec.advertised(cid) for spec, cid in self._channels.items()]})
        self.clients.append(client)
        self.connects += 1
        log.info("%s connected (%s, %s)", client.name, client.subprotocol, client.role)
        writer = asyncio.create_task(client.write(), name=f"{client.name}:write")
        try:
            async for message in ws:
                self._handle(client, message)
        except ConnectionClosed:
            pass
        finally:
            self.clients.remove(client)
            self._gone["sent"] += client.sent
            self._gone["dropped"] += client.dropped
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            log.info("%s left (sent %d, dropped %d)", client.name, client.sent, client.dropped)

    def _server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"op": "serverInfo", "name": self.name,
                                "capabilities": [], "supportedEncodings": [],
                                "metadata": {"sensorlink": sensorlink.__version__},
                                "sessionId": str(time.time_ns())}
        if self.playback is not None:
            info["capabilities"] = ["time", "playbackControl"]
            info["dataStartTime"] = ns_time(self.playback.start_ns)
            info["dataEndTime"] = ns_time(self.playback.end_ns)
        return info

    def _handle(self, client: _Client, message: str | bytes) -> None:
        if isinstance(message, bytes):
            if message[:1] == bytes([fp.PLAYBACK_CONTROL_REQUEST]):
                task = asyncio.create_task(self._playback_request(client, message[1:]))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)
            else:
                self._error(client, f"unsupported binary opcode {message[:1].hex() or 'none'}")
            return
        try:
            request = json.loads(message)
            op = request["op"]
            if op == "subscribe":
                for sub in request["subscriptions"]:
                    self._subscribe(client, int(sub["id"]), int(sub["channelId"]))
            elif op == "unsubscribe":
                gone = {int(i) for i in request["subscriptionIds"]}
                client.by_channel = {c: s for c, s in client.by_channel.items() if s not in gone}
            else:
                self._error(client, f"unsupported op {op!r}")
        except (ValueError, KeyError, TypeError) as exc:
            self._error(client, f"bad message: {exc!r}")

    def _subscribe(self, client: _Client, sub_id: int, channel_id: int) -> None:
        if channel_id not in self._specs:
            self._error(client, f"no channel {channel_id}")
            return
        client.by_channel[channel_id] = sub_id
        if self._specs[channel_id] is LOG_CHANNEL:
            # A client that connects late still learns each sensor's state and the alarms on.
            for event in (*self.hub.statuses.values(), *self.hub.alarms.values()):
                found = message_for(event)
                if found is not None:
                    client.offer(_data_frame(sub_id, found[1], found[2]))

    @staticmethod
    def _error(client: _Client, text: str) -> None:
        client.say({"op": "status", "level": 2, "message": f"sensorlink: {text}"})

    # -- data ------------------------------------------------------------------------------
    def _channel(self, spec: ChannelSpec) -> int:
        cid = self._channels.get(spec)
        if cid is None:
            cid = self._channels[spec] = next(self._ids)
            self._specs[cid] = spec
            for client in self.clients:
                client.say({"op": "advertise", "channels": [spec.advertised(cid)]})
        return cid

    async def _pump(self) -> None:
        """Hub events → one encoded payload each → a frame per subscribed client."""
        assert self._sub is not None
        while True:
            first = await self._sub.get()
            for event in [first, *self._sub.get_nowait(255)]:
                try:
                    found = message_for(event)
                except (TypeError, ValueError) as exc:  # one bad event never stops the feed
                    log.warning("foxglove: skipped an event it cannot encode: %r", exc)
                    continue
                if found is None:
                    if isinstance(event, SensorInfo):  # a sensor described late
                        for spec in channels_for(event):
                            self._channel(spec)
                    continue
                spec, log_time, payload = found
                cid = self._channel(spec)
                for client in self.clients:
                    sub_id = client.by_channel.get(cid)
                    if sub_id is not None:
                        client.offer(_data_frame(sub_id, log_time, payload))

    # -- playback --------------------------------------------------------------------------
    async def _playback_request(self, client: _Client, data: bytes) -> None:
        playback = self.playback
        try:
            request = fp.PlaybackRequest.parse(data)
        except ValueError as exc:
            self._error(client, str(exc))
            return
        if playback is None:
            self._error(client, "this service is live, not replaying: no playback control")
            return
        if client.role != "operator":
            self._error(client, "playback control needs the operator token")
            return
        async with self._control_lock:  # one request at a time, in the order they came
            await fp.apply(playback, request, self._discard_queued)
            self._broadcast_state(playback, request.request_id)

    def _discard_queued(self) -> None:
        """After a seek, what was queued is from the old position: the app's timeline has
        moved on, so it is discarded (not counted as dropped)."""
        if self._sub is not None:
            self._sub.get_nowait(1 << 30)
        for client in self.clients:
            client.data.clear()

    def _broadcast_state(self, playback: fp.Playback, request_id: str = "") -> None:
        self._last_state = fp.state_of(playback)[::2]
        frame = fp.state_frame(playback, request_id)
        for client in self.clients:
            client.say(frame)

    async def _tick(self, playback: fp.Playback) -> None:
        """The replay's clock for the app's timeline, and its state when that changes
        (it ends, or the dashboard paused it)."""
        while True:
            await asyncio.sleep(TICK_S)
            frame = fp.time_frame(playback)
            for client in self.clients:
                client.offer(frame)
            if fp.state_of(playback)[::2] != self._last_state:
                self._broadcast_state(playback)


def _token_of(request: Request) -> str:
    """The token from ``?token=`` (what the Foxglove app can send), else a Bearer header."""
    token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
    auth = request.headers.get("Authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return token


def _data_frame(sub_id: int, log_time: int, payload: bytes) -> bytes:
    return struct.pack("<BIQ", MESSAGE_DATA, sub_id, max(int(log_time), 0)) + payload
