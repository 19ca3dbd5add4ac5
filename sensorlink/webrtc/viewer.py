"""A headless viewer: connects like the dashboard does and reports what arrives.

Used by ``sensorlink view`` (one JSON line per readings batch, frame and status, plus video and
audio frame counts) and by tests and benchmarks that need a real remote peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl as ssl_module
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import websockets
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from sensorlink.analysis.directional import dbfs
from sensorlink.backoff import Backoff
from sensorlink.config import IceServer
from sensorlink.errors import MessageError, PeerConnectionFailed, SignalingError
from sensorlink.validation import validate
from sensorlink.webrtc import failures
from sensorlink.webrtc.client import CertificateNotTrusted, OfferRefused, Refused, signaling_url
from sensorlink.webrtc.ice import (
    is_loopback, restrict_bundle, restrict_host_candidates_to_loopback, rtc_configuration,
)
from sensorlink.webrtc.peer import enlarge_receive_buffers
from sensorlink.webrtc.teardown import close_peer
from sensorlink.webrtc.wire import FrameAssembler, decode_message

log = logging.getLogger(__name__)


class Viewer:
    #: The service sends status at least every second: a connection that carries nothing for
    #: this long is gone (a blocked UDP port), long before ICE consent (~30 s) would say so.
    stale_after_s: float = 6.0

    def __init__(self, url: str, token: str | None = None, *,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 ice_servers: list[IceServer] | None = None, keep_video: bool = False,
                 validate_messages: bool = True, received: Any = None,
                 ssl: ssl_module.SSLContext | None = None,
                 ice_transport_policy: str = "all", video_codec: str | None = None,
                 bundle: bool = True, replay: dict[str, int] | None = None) -> None:
        self.ws_url, url_token = signaling_url(url)
        self.token = token or url_token
        if not self.token:
            raise SignalingError("no token: pass --token or a URL ending in #token=...")
        self.on_event = on_event or (lambda event: None)
        self.ice_servers = ice_servers or []
        self.ice_transport_policy = ice_transport_policy
        #: offer only this video codec (e.g. "H264"), as some browsers and devices do
        self.video_codec = video_codec
        #: False: offer no BUNDLE group, as an endpoint that does not bundle does (each m-line
        #: then has an ICE and DTLS transport of its own)
        self.bundle = bundle
        #: {"from_ns", "to_ns"}: replay that window of the service's recordings library instead
        self.replay = replay
        self.keep_video = keep_video
        self.validate_messages = validate_messages
        #: optional sensorlink.webrtc.received.ReceivedSamples: what arrives, as samples (for --record)
        self.received = received
        # For wss:// to a service with a self-signed certificate: a context that trusts it.
        self.ssl = ssl
        self.hello: dict[str, Any] = {}
        self.tracks: dict[str, str] = {}
        self.video_frames: Counter[str] = Counter()
        self.audio_frames: Counter[str] = Counter()
        #: level of each microphone's last decoded audio frame, dBFS (RMS): silence shows here
        self.audio_dbfs: dict[str, float] = {}
        self.last_video: dict[str, np.ndarray] = {}
        self.last_frames: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
        self.last_status: dict[str, Any] = {}
        #: the last alarm list the service sent (active alarms, the event that changed it)
        self.alarms: dict[str, Any] = {}
        self.readings = 0
        self.frames = 0
        self.seq_gaps = 0
        self.invalid = 0
        self.connections = 0
        self.last_seq: dict[str, int] = {}
        self.connected = asyncio.Event()
        #: why each failed peer connection failed, as the service (or this end) said
        self.failures: list[str] = []
        self._failure: str | None = None
        self._last_message_mono = 0.0
        self._control_open = asyncio.Event()
        self._assembler = FrameAssembler()
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._pc: RTCPeerConnection | None = None
        self._control: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        host = urllib.parse.urlsplit(self.ws_url).hostname or ""
        if is_loopback(host):
            restrict_host_candidates_to_loopback()

    # -- one connection --------------------------------------------------------------------
    async def _session(self, lost: asyncio.Event) -> None:
        tls = {"ssl": self.ssl} if self.ssl is not None else {}
        async with websockets.connect(self.ws_url, max_size=2**20, open_timeout=10, **tls) as ws:
            # A locked-out address is refused before the service reads our auth: the send may
            # meet a closing socket, but the refusal is queued to read (and must not be retried).
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                await ws.send(json.dumps({"type": "auth", "token": self.token,
                                          "client": "sensorlink view",
                                          **({"replay": self.replay} if self.replay else {})}))
            hello = json.loads(await ws.recv())
            if hello.get("type") == "refused":
                raise Refused(hello.get("reason", "refused"))
            validate("signaling", hello)
            self.hello = hello
            if self.received is not None:
                self.received.on_hello(hello)
            self.on_event({"event": "hello", "role": hello["role"], "replay": hello["replay"],
                           "sensors": [s["name"] for s in hello["sensors"]]})
            pc = self._pc = RTCPeerConnection(rtc_configuration(self.ice_servers,
                                                                self.ice_transport_policy))
            ids = hello["channels"]
            channels = {
                "readings": pc.createDataChannel("readings", negotiated=True, id=ids["readings"]),
                "frames": pc.createDataChannel("frames", negotiated=True, id=ids["frames"],
                                               ordered=False, maxRetransmits=0),
                "control": pc.createDataChannel("control", negotiated=True, id=ids["control"]),
                "status": pc.createDataChannel("status", negotiated=True, id=ids["status"]),
            }
            self._control = channels["control"]
            channels["control"].on("open", self._control_open.set)
            for channel in channels.values():
                channel.on("message", self._on_message)
            for sensor in hello["sensors"]:
                if sensor["kind"] == "thermal":
                    transceiver = pc.addTransceiver("video", direction="recvonly")
                    if self.video_codec:
                        wanted = (f"video/{self.video_codec}".lower(), "video/rtx")
                        transceiver.setCodecPreferences([
                            c for c in RTCRtpReceiver.getCapabilities("video").codecs
                            if c.mimeType.lower() in wanted])
                elif sensor["kind"] == "microphone":
                    pc.addTransceiver("audio", direction="recvonly")

            @pc.on("track")
            def on_track(track: Any) -> None:
                self._tasks.append(asyncio.create_task(self._consume(track)))

            was_connected = False
            notes = failures.watch_transports()  # before the descriptions: see failures.py

            @pc.on("connectionstatechange")
            def on_state() -> None:
                nonlocal was_connected
                if pc.connectionState == "connected":
                    was_connected = True
                    self.connections += 1
                    self.connected.set()
                    self.on_event({"event": "connected", "connections": self.connections})
                elif pc.connectionState in ("failed", "closed", "disconnected"):
                    if self._failure is None and failures.has_failed(pc, notes):
                        # Our own view; the service's, when it has one, comes over signaling.
                        self._failure = failures.failure_reason(
                            pc, was_connected=was_connected, notes=notes, peer="the service",
                            me="this viewer")
                    lost.set()

            offer = await pc.createOffer()
            if not self.bundle:
                offer = RTCSessionDescription(sdp=restrict_bundle(offer.sdp, []), type="offer")
            await pc.setLocalDescription(offer)
            enlarge_receive_buffers(pc)  # the same reason as the service's side: see peer.py
            await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
            while True:
                answer = await self._signal(ws)
                if answer.get("type") == "answer":
                    break
                if answer.get("type") == "error":
                    raise OfferRefused(f"service refused the offer: {answer.get('error')}")
            self.tracks = answer["tracks"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            listener = asyncio.create_task(self._listen(ws, lost))
            lost_wait = asyncio.create_task(lost.wait())
            watchdog = asyncio.create_task(self._watch_silence(lost))
            await asyncio.wait({listener, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
            for task in (listener, lost_wait, watchdog):
                task.cancel()
            if self._failure is not None:
                raise PeerConnectionFailed(f"peer connection failed: {self._failure}")

    async def _signal(self, ws: Any) -> dict[str, Any]:
        """The next signaling message that passes the schema (others are counted and shown)."""
        while True:
            try:
                message = json.loads(await ws.recv())
                validate("signaling", message)
                return message
            except (ValueError, MessageError) as exc:
                self.invalid += 1
                self.on_event({"event": "invalid", "error": f"signaling: {exc}"})

    async def _listen(self, ws: Any, lost: asyncio.Event) -> None:
        """Read signaling for as long as the session lasts: the service says here why the
        peer connection failed (ICE, DTLS), which this end may not see for a while."""
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            while True:
                message = await self._signal(ws)
                if message["type"] == "failed":
                    self._failure = message["reason"]
                    lost.set()
                    return

    async def _watch_silence(self, lost: asyncio.Event) -> None:
        await self.connected.wait()
        self._last_message_mono = time.monotonic()
        while not lost.is_set():
            await asyncio.sleep(min(1.0, self.stale_after_s / 4))
            silent_s = time.monotonic() - self._last_message_mono
            if silent_s > self.stale_after_s:
                self.on_event({"event": "stale", "silent_s": round(silent_s, 1)})
                lost.set()

    async def _teardown(self) -> None:
        if self._failure is not None:
            self.failures.append(self._failure)
            self._failure = None
        self.connected.clear()
        self._control_open.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for future in self._replies.values():
            future.cancel()
        self._replies.clear()
        if self._pc is not None:
            await close_peer(self._pc)
            self._pc = None

    async def run(self, duration: float | None = None, *, reconnect: bool = True) -> None:
        """Stay connected (reconnecting with backoff) for ``duration`` seconds, or forever."""
        deadline = None if duration is None else time.monotonic() + duration

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        backoff = Backoff(initial=0.5, ceiling=5.0)
        while True:
            lost = asyncio.Event()
            if remaining() == 0.0:
                return
            reason = "connection closed"
            try:
                await asyncio.wait_for(self._session(lost), remaining())
            except TimeoutError as exc:
                if remaining() == 0.0:
                    return  # the duration is up
                reason = str(exc) or "timed out"  # e.g. the websocket's opening handshake
            except Refused:
                raise
            except ssl_module.SSLCertVerificationError as exc:
                raise CertificateNotTrusted(self.ws_url, exc) from exc
            except (OSError, websockets.exceptions.WebSocketException, SignalingError) as exc:
                reason = str(exc) or type(exc).__name__
            finally:
                await self._teardown()
            if not reconnect:
                raise SignalingError(reason)
            # Never sleep past the deadline: the last wait is cut short, then run() returns.
            left = remaining()
            delay = backoff.next() if left is None else min(backoff.next(), left)
            self.on_event({"event": "disconnected", "reason": reason, "retry_s": round(delay, 3)})
            await asyncio.sleep(delay)

    # -- what arrives ----------------------------------------------------------------------
    async def _consume(self, track: Any) -> None:
        sensor = None
        if self._pc is not None:
            for transceiver in self._pc.getTransceivers():
                if transceiver.receiver.track is track:
                    sensor = self.tracks.get(transceiver.mid, transceiver.mid)
        sensor = sensor or track.kind
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self.video_frames[sensor] += 1
                    if self.keep_video:
                        self.last_video[sensor] = frame.to_ndarray(format="rgb24")
                else:
                    self.audio_frames[sensor] += 1
                    self.audio_dbfs[sensor] = dbfs(frame.to_ndarray())
                    if self.received is not None:
                        self.received.on_audio(sensor, frame)
        except MediaStreamError:
            pass

    def _on_message(self, data: bytes | str) -> None:
        self._last_message_mono = time.monotonic()
        try:
            message = decode_message(data) if self.validate_messages else msgpack.unpackb(data)
        except (MessageError, ValueError, msgpack.UnpackException) as exc:
            self.invalid += 1
            self.on_event({"event": "invalid", "error": str(exc)})
            return
        kind = message["type"]
        if kind == "readings":
            rows = message["readings"]
            self.readings += len(rows)
            for stream, seq, *_ in rows:
                last = self.last_seq.get(stream)
                if last is not None and seq != last + 1 and seq > last:
                    self.seq_gaps += seq - last - 1
                self.last_seq[stream] = seq
            if self.received is not None:
                self.received.on_readings(rows)
            self.on_event({"event": "readings", "count": len(rows), "received_ns": time.time_ns(),
                           "readings": rows})
        elif kind == "frame":
            done = self._assembler.add(message)
            if done is not None:
                meta, celsius = done
                self.frames += 1
                self.last_frames[meta["sensor"]] = (meta, celsius)
                if self.received is not None:
                    self.received.on_frame(meta, celsius)
                self.on_event({"event": "frame", "sensor": meta["sensor"], "seq": meta["seq"],
                               "t_wall_ns": meta["t_wall_ns"], "received_ns": time.time_ns(),
                               "width": meta["width"], "height": meta["height"],
                               "min_c": round(float(np.min(celsius)), 2),
                               "max_c": round(float(np.max(celsius)), 2)})
        elif kind in ("reply", "error"):
            future = self._replies.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
            self.on_event({"event": kind, **{k: v for k, v in message.items() if k != "type"}})
        elif kind == "status":
            self.last_status = message
            if self.received is not None:
                self.received.on_status(message)
            self.on_event({"event": "status", "sensors": message["sensors"],
                           "viewer": message.get("viewer"), "beams": message.get("beams"),
                           "recording": message.get("recording"), "replay": message.get("replay")})
        elif kind == "view":
            self.on_event({"event": "view", "sensor": message["sensor"], "map": message["map"],
                           "auto": message["auto"], "range": message["range"]})
        elif kind == "alarms":
            self.alarms = message
            self.on_event({"event": "alarms", "received_ns": time.time_ns(),
                           **{k: v for k, v in message.items() if k != "type"}})

    async def control(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send a control message (an id is added) and wait for its reply or error."""
        await asyncio.wait_for(self._control_open.wait(), timeout)
        msg_id = message.get("id", next(self._ids))
        message = {**message, "id": msg_id}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[msg_id] = future
        self._control.send(msgpack.packb(message))
        return await asyncio.wait_for(future, timeout)

    async def send_raw_control(self, data: bytes) -> None:
        await asyncio.wait_for(self._control_open.wait(), 10)
        self._control.send(data)

    def media_counts(self) -> dict[str, Any]:
        return {"event": "media", "video_frames": dict(self.video_frames),
                "audio_frames": dict(self.audio_frames),
                "audio_dbfs": {k: round(v, 1) for k, v in self.audio_dbfs.items()},
                "readings": self.readings,
                "frames": self.frames, "seq_gaps": self.seq_gaps, "invalid": self.invalid}


@contextlib.asynccontextmanager
async def connected_viewer(url: str, token: str | None = None, **kwargs: Any) -> Any:
    """A Viewer running in the background for the duration of the ``async with``."""
    viewer = Viewer(url, token, **kwargs)
    task = asyncio.create_task(viewer.run())
    try:
        waiter = asyncio.create_task(viewer.connected.wait())
        done, _ = await asyncio.wait({waiter, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises why it ended
        if waiter not in done:
            raise SignalingError("viewer did not connect within 30 s")
        yield viewer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
