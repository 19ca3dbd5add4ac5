"""Publishing to a Janus VideoRoom, so that many viewers cost the service one upstream peer.

``sensorlink run --publish janus://HOST:PORT/ROOM`` makes the service a VideoRoom *publisher*
over Janus' WebSocket API (``janus-protocol``): one aiortc peer connection carries one VP8
track per thermal camera, one Opus track per microphone beam, and the ``readings``, ``frames``
and ``status`` data channels (in-band, by label: Janus relays VideoRoom data by label, it does
not know our negotiated ids). Each stream's description is its sensor name, so a subscriber maps
mids to sensors from the room's stream list. Viewers then subscribe to the room, not to us.

Janus relays all of a publisher's data on one channel per subscriber (labelled with the
publisher's id, reliable and ordered whatever the publisher's channel was): our messages carry
their ``type``, so a subscriber tells readings, frames and status apart without the label.
What does not cross Janus: the ``control`` channel (a VideoRoom is one-way, publisher → room).
Steering, colour maps and recording stay on the direct connection to the service.

Janus (libnice) never offers loopback candidates, so the service must offer an address Janus
can reach: a service that keeps ICE on loopback (listening on 127.0.0.1) cannot publish.

:mod:`sensorlink.webrtc.janus_viewer` holds a minimal Python subscriber (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription

from sensorlink.backoff import Backoff
from sensorlink.errors import ConfigError, SignalingError
from sensorlink.webrtc.background import BackgroundPublisher
from sensorlink.webrtc.fanout import frame_sender, pump, wait_open
from sensorlink.webrtc.ice import rtc_configuration
from sensorlink.webrtc.teardown import close_peer

if TYPE_CHECKING:
    from sensorlink.webrtc.host import MediaSource

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
HIGH_WATER = 256 * 1024
FRAMES_MAX_HZ = 5.0   # exact-°C frames through the SFU: every subscriber gets each one


@dataclass(frozen=True)
class JanusTarget:
    host: str
    port: int
    room: int

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @classmethod
    def parse(cls, url: str) -> JanusTarget:
        """``janus://HOST[:PORT]/ROOM`` (port 8188, Janus' WebSocket default)."""
        parts = urllib.parse.urlsplit(url)
        room = parts.path.strip("/")
        if parts.scheme != "janus" or not parts.hostname or not room.isdigit():
            raise ConfigError(f"expected janus://HOST[:PORT]/ROOM with a numeric room, got {url!r}",
                              field="publish")
        return cls(parts.hostname, parts.port or 8188, int(room))


class JanusSession:
    """Janus' JSON API over one WebSocket: transactions, one session, plugin handles, keepalive."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.session_id: int | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._async: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str) -> Any:
        async with websockets.connect(url, subprotocols=["janus-protocol"], open_timeout=10,
                                      max_size=2**22) as ws:
            session = cls(ws)
            session._reader = asyncio.create_task(session._read())
            try:
                created = await session.call({"janus": "create"})
                session.session_id = created["data"]["id"]
                session._keepalive = asyncio.create_task(session._keep_alive())
                yield session
            finally:
                for task in (session._keepalive, session._reader):
                    if task is not None:
                        task.cancel()
                with contextlib.suppress(Exception):
                    await ws.send(json.dumps({"janus": "destroy", "session_id": session.session_id,
                                              "transaction": secrets.token_hex(6)}))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                kind, txn = message.get("janus"), message.get("transaction")
                if kind == "ack" and txn in self._async:
                    continue  # the plugin's answer follows as an event with this transaction
                if txn in self._async and kind in ("event", "error"):
                    future = self._async.pop(txn)
                elif txn in self._waiting:
                    future = self._waiting.pop(txn)
                else:
                    self.events.setdefault(message.get("sender", 0), asyncio.Queue()).put_nowait(message)
                    continue
                if not future.done():
                    future.set_result(message)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in (*self._waiting.values(), *self._async.values()):
                if not future.done():
                    future.set_exception(SignalingError("Janus closed the connection"))

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(20)  # Janus' session_timeout defaults to 60 s
            await self.ws.send(json.dumps({"janus": "keepalive", "session_id": self.session_id,
                                           "transaction": secrets.token_hex(6)}))

    async def call(self, message: dict[str, Any], *, asynchronous: bool = False,
                   timeout: float = 20.0) -> dict[str, Any]:
        txn = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        (self._async if asynchronous else self._waiting)[txn] = future
        if self.session_id is not None:
            message = {"session_id": self.session_id, **message}
        await self.ws.send(json.dumps({**message, "transaction": txn}))
        reply = await asyncio.wait_for(future, timeout)
        error = reply.get("error") or (reply.get("plugindata", {}).get("data", {}).get("error"))
        if reply.get("janus") == "error" or error:
            text = error.get("reason") if isinstance(error, dict) else error
            raise SignalingError(f"Janus refused {message.get('body', message)}: {text}")
        return reply

    async def attach(self, plugin: str = VIDEOROOM) -> int:
        handle = (await self.call({"janus": "attach", "plugin": plugin}))["data"]["id"]
        self.events.setdefault(handle, asyncio.Queue())
        return handle

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None,
                      *, asynchronous: bool = False) -> dict[str, Any]:
        request: dict[str, Any] = {"janus": "message", "handle_id": handle, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        return await self.call(request, asynchronous=asynchronous)


def plugin_data(reply: dict[str, Any]) -> dict[str, Any]:
    return reply.get("plugindata", {}).get("data", {})


async def ensure_room(session: JanusSession, handle: int, room: int, publishers: int = 4) -> bool:
    """Create the room when it does not exist (not permanent); True if we created it."""
    if plugin_data(await session.message(handle, {"request": "exists", "room": room})).get("exists"):
        return False
    await session.message(handle, {"request": "create", "room": room, "publishers": publishers,
                                   "videocodec": "vp8", "audiocodec": "opus",
                                   "description": f"sensorlink {room}"})
    return True


class JanusPublisher(BackgroundPublisher):
    """The service's one upstream peer: every camera, beam and data stream into a VideoRoom."""

    kind = "janus"
    task_name = "janus-publish"

    def __init__(self, service: MediaSource, url: str, *, display: str = "sensorlink") -> None:
        self.service = service
        self.target = JanusTarget.parse(url)
        self.display = display
        self.state = "stopped"
        self.detail = ""
        self.connects = 0
        self.readings_sent = 0
        self.publisher_id: int | None = None
        self.readings_dropped = 0
        self.pc: RTCPeerConnection | None = None

    def status(self) -> dict[str, Any]:
        return {"name": "janus", "kind": self.kind,
                "target": f"janus://{self.target.host}:{self.target.port}/{self.target.room}",
                "state": self.state, "detail": self.detail, "sent": self.readings_sent,
                "dropped": self.readings_dropped, "connects": self.connects}

    async def _run(self) -> None:
        backoff = Backoff(initial=0.5, ceiling=10.0)
        while True:
            try:
                await self._publish_once(backoff)
            except (OSError, SignalingError, websockets.exceptions.WebSocketException,
                    TimeoutError) as exc:
                self.detail = str(exc) or type(exc).__name__
                log.warning("janus: %s: %s", self.target.ws_url, self.detail)
            except Exception as exc:  # a bug or a bad answer must show, not kill the publisher
                self.detail = f"{type(exc).__name__}: {exc}"
                log.exception("janus: publishing to %s failed", self.target.ws_url)
            self.state = "disconnected"
            await asyncio.sleep(backoff.next())
            self.state = "connecting"

    async def _publish_once(self, backoff: Backoff) -> None:
        service = self.service
        async with JanusSession.open(self.target.ws_url) as session:
            handle = await session.attach()
            await ensure_room(session, handle, self.target.room)
            joined = plugin_data(await session.message(
                handle, {"request": "join", "ptype": "publisher", "room": self.target.room,
                         "display": self.display}, asynchronous=True))
            self.publisher_id = joined.get("id")
            pc = self.pc = RTCPeerConnection(rtc_configuration(service.settings.ice_servers,
                                                               service.settings.ice_transport_policy))
            subs: list[Any] = []
            tasks: list[asyncio.Task[Any]] = []
            try:
                from sensorlink.webrtc.media import BeamAudioTrack, ThermalVideoTrack

                streams = []
                for name, view in service.cameras.items():
                    streams.append((pc.addTransceiver(ThermalVideoTrack(view), "sendonly"), name))
                for name, beam in service.beams.items():
                    streams.append((pc.addTransceiver(BeamAudioTrack(beam), "sendonly"), name))
                channels = {label: pc.createDataChannel(label) for label in ("readings", "status")}
                channels["frames"] = pc.createDataChannel("frames", ordered=False, maxRetransmits=0)
                await pc.setLocalDescription(await pc.createOffer())
                descriptions = [{"mid": t.mid, "description": name} for t, name in streams]
                reply = await session.message(
                    handle, {"request": "publish", "descriptions": descriptions},
                    {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False},
                    asynchronous=True)
                jsep = reply.get("jsep")
                if not jsep:
                    raise SignalingError(f"Janus sent no answer: {plugin_data(reply)}")
                await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))
                lost = asyncio.Event()

                @pc.on("connectionstatechange")
                def _state() -> None:
                    if pc.connectionState == "connected":
                        self.state, self.detail = "connected", ""
                        self.connects += 1
                        backoff.reset()
                    elif pc.connectionState in ("failed", "closed"):
                        lost.set()

                readings = service.readings.open()
                subs.append(readings)
                tasks += [asyncio.create_task(self._send_readings(channels["readings"], readings)),
                          asyncio.create_task(self._send_status(channels["status"]))]
                for view in service.cameras.values():
                    subs.append(view.on_frame(self._frame_sender(channels["frames"], view)))
                closed = asyncio.create_task(session.closed.wait())
                gone = asyncio.create_task(lost.wait())
                await asyncio.wait({closed, gone}, return_when=asyncio.FIRST_COMPLETED)
                for task in (closed, gone):
                    task.cancel()
                raise SignalingError("Janus connection lost" if session.closed.is_set()
                                     else f"peer connection {pc.connectionState}")
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for sub in subs:
                    with contextlib.suppress(ValueError):
                        sub.close() if hasattr(sub, "close") else sub()
                for transceiver in pc.getTransceivers():
                    if transceiver.sender.track is not None:
                        transceiver.sender.track.stop()
                await close_peer(pc)
                self.pc = None

    async def _send_readings(self, channel: Any, outlet: Any) -> None:
        base = self.readings_dropped

        def sent(count: int) -> None:
            self.readings_sent += count
            self.readings_dropped = base + outlet.dropped  # Janus could not keep up with us
        await pump(channel, outlet, HIGH_WATER, sent)

    async def _send_status(self, channel: Any) -> None:
        await wait_open(channel)
        while channel.readyState == "open":
            channel.send(msgpack.packb(self.service.status_message()))
            await asyncio.sleep(1.0)

    def _frame_sender(self, channel: Any, view: Any) -> Callable[[Any], None]:
        return frame_sender(channel, view, max_hz=FRAMES_MAX_HZ, high_water=HIGH_WATER,
                            replay=self.service.hub.replay)
