"""A minimal Python subscriber to a sensorlink publisher in a Janus VideoRoom (tests and
benchmarks): it joins the room's sensorlink feed and counts what arrives, as
:class:`sensorlink.webrtc.viewer.Viewer` does for a direct connection."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from typing import Any

import msgpack
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from sensorlink.analysis.directional import dbfs
from sensorlink.errors import MessageError, SignalingError
from sensorlink.webrtc.ice import rtc_configuration, set_local_answer
from sensorlink.webrtc.janus import JanusSession, JanusTarget, plugin_data
from sensorlink.webrtc.teardown import close_peer
from sensorlink.webrtc.wire import FrameAssembler, decode_message


class JanusViewer:
    """A Python subscriber to a sensorlink publisher in a Janus room: counts what arrives."""

    _ids = itertools.count(1)

    def __init__(self, url: str, *, display: str = "sensorlink") -> None:
        self.target = JanusTarget.parse(url)
        self.display = display
        self.name = f"janus-viewer{next(self._ids)}"
        self.video_frames: Counter[str] = Counter()
        self.audio_frames: Counter[str] = Counter()
        #: level of each microphone's last decoded audio frame, dBFS (RMS)
        self.audio_dbfs: dict[str, float] = {}
        self.readings = 0
        self.frames = 0
        self.statuses = 0
        self.seq_gaps = 0
        self.invalid = 0
        self.labels: set[str] = set()
        self.last_seq: dict[str, int] = {}
        self.connected = asyncio.Event()
        self.pc: RTCPeerConnection | None = None
        self._assembler = FrameAssembler()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Subscribe to the room's sensorlink publisher and stay until cancelled."""
        async with JanusSession.open(self.target.ws_url) as session:
            handle = await session.attach()
            feed = await self._find_publisher(session, handle)
            reply = await session.message(handle, {"request": "join", "ptype": "subscriber",
                                                   "room": self.target.room,
                                                   "streams": [{"feed": feed}]}, asynchronous=True)
            mids = {s["mid"]: s.get("feed_description") or s.get("type", "?")
                    for s in plugin_data(reply).get("streams", [])}
            pc = self.pc = RTCPeerConnection(rtc_configuration([]))
            tasks: list[asyncio.Task[Any]] = []

            @pc.on("track")
            def on_track(track: Any) -> None:
                mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), None)
                tasks.append(asyncio.create_task(self._consume(track, mids.get(mid, track.kind))))

            @pc.on("datachannel")
            def on_channel(channel: Any) -> None:
                self.labels.add(channel.label)
                channel.on("message", self._on_message)

            @pc.on("connectionstatechange")
            def on_state() -> None:
                if pc.connectionState == "connected":
                    self.connected.set()

            jsep = reply["jsep"]
            await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))
            # Janus relays data to a subscriber only once the subscriber has opened a channel
            # of its own (what janus.js does): this one only says "ready".
            pc.createDataChannel("JanusDataChannel")
            await set_local_answer(pc)
            await session.message(handle, {"request": "start"},
                                  {"type": "answer", "sdp": pc.localDescription.sdp,
                                   "trickle": False}, asynchronous=True)
            try:
                await session.closed.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await close_peer(pc)

    async def _find_publisher(self, session: JanusSession, handle: int) -> int:
        for _ in range(100):
            data = plugin_data(await session.message(handle, {"request": "listparticipants",
                                                              "room": self.target.room}))
            for p in data.get("participants", []):
                if p.get("publisher") and p.get("display") == self.display:
                    return p["id"]
            await asyncio.sleep(0.1)
        raise SignalingError(f"no publisher {self.display!r} in Janus room {self.target.room}")

    async def _consume(self, track: Any, sensor: str) -> None:
        counter = self.video_frames if track.kind == "video" else self.audio_frames
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                counter[sensor] += 1
                if track.kind == "audio":
                    self.audio_dbfs[sensor] = dbfs(frame.to_ndarray())

    def _on_message(self, data: bytes | str) -> None:
        try:
            message = decode_message(data)
        except (MessageError, ValueError, msgpack.UnpackException):
            self.invalid += 1
            return
        if message["type"] == "readings":
            self.readings += len(message["readings"])
            for stream, seq, *_ in message["readings"]:
                last = self.last_seq.get(stream)
                if last is not None and seq > last + 1:
                    self.seq_gaps += seq - last - 1
                self.last_seq[stream] = seq
        elif message["type"] == "frame":
            self.frames += self._assembler.add(message) is not None
        elif message["type"] == "status":
            self.statuses += 1
