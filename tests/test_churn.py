"""Viewer churn: 200 viewers join and leave while the demo streams, and nothing is left behind.

The service runs in this process with simulated sensors (camera, probes, microphone). A steady
viewer stays connected through all of it. Around it, real aiortc viewers (signaling over the
websocket, ICE, DTLS, SCTP) join and leave in three ways:

- **leave mid-encode**: the viewer says goodbye (closes its websocket and peer) while the
  camera's shared VP8 encoder has a frame in the executor;
- **peer closed, no goodbye**: the viewer closes its peer connection and leaves the websocket
  open; the service must notice from the peer alone;
- **websocket dropped**: the TCP connection is cut without a close handshake while the peer is
  up; the service must close the peer itself.

The steady viewer takes H264, so it has an encode of its own and the shared VP8 encoder belongs
to the churning viewers: it starts and stops with them, as it does when a dashboard reloads.
Mid-encode leavers come one after another, so each leaves as the encoder's only viewer and its
goodbye cancels the encoder's run (while it encodes, many times: the test counts it); three
lanes of connecting viewers (VP8 and H264 in turn) come and go around them at the same time.

Afterwards the steady viewer must still get gap-free readings, video and audio, and the
process's asyncio tasks, threads and open file descriptors must be back where they were after a
warm-up (executor threads are made lazily, up to the pool's size: those are allowed to stay).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import websockets
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription

from sensorlink.config import ServiceConfig
from sensorlink.service import Service
from sensorlink.webrtc.ice import rtc_configuration
from sensorlink.webrtc.teardown import close_peer
from sensorlink.webrtc.viewer import connected_viewer

from leak_support import back_to, counts
from support import STILL_SENSORS, wait_for

TOKEN = "churn-token-123"
CYCLES = 200
CONNECTED_LANES = 3  # viewers that connect and then leave, at once (plus one mid-encode lane)
STYLES = ("mid-encode", "peer-closed", "websocket-dropped")


class ChurnViewer:
    """A minimal real viewer: the dashboard's signaling and peer setup, no consumers."""

    def __init__(self, service: Service, video_codec: str = "VP8") -> None:
        host, port = service.bound
        self.service = service
        self.video_codec = video_codec
        self.ws_url = f"ws://{host}:{port}/ws"
        self.ws: Any = None
        self.pc: RTCPeerConnection | None = None
        self.session: Any = None
        self.connected = asyncio.Event()

    async def join(self, *, connect: bool) -> None:
        self.ws = await websockets.connect(self.ws_url, max_size=2**20, open_timeout=10)
        await self.ws.send(json.dumps({"type": "auth", "token": TOKEN}))
        hello = json.loads(await self.ws.recv())
        assert hello["type"] == "hello", hello
        pc = self.pc = RTCPeerConnection(rtc_configuration([]))
        for name, channel_id in hello["channels"].items():
            pc.createDataChannel(name, negotiated=True, id=channel_id)
        wanted = (f"video/{self.video_codec}".lower(), "video/rtx")
        for sensor in hello["sensors"]:
            if sensor["kind"] == "thermal":
                pc.addTransceiver("video", direction="recvonly").setCodecPreferences(
                    [c for c in RTCRtpReceiver.getCapabilities("video").codecs
                     if c.mimeType.lower() in wanted])
            elif sensor["kind"] == "microphone":
                pc.addTransceiver("audio", direction="recvonly")

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()

        await pc.setLocalDescription(await pc.createOffer())
        await self.ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
        answer = json.loads(await self.ws.recv())
        assert answer["type"] == "answer", answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        # Our session on the service: the one whose remote description carries our ICE ufrag.
        ufrag = next(line for line in pc.localDescription.sdp.splitlines()
                     if line.startswith("a=ice-ufrag:"))
        self.session = next(s for s in self.service.viewers
                            if s.pc.remoteDescription is not None
                            and ufrag in s.pc.remoteDescription.sdp)
        if connect:
            await asyncio.wait_for(self.connected.wait(), 20)

    async def leave(self, style: str) -> None:
        assert self.pc is not None
        if style == "mid-encode":
            # Goodbye while the camera's shared encoder has this viewer's frame in the executor.
            encoder = self.service.cameras["cam"].encoder
            await wait_for(lambda: encoder._offload.busy, 10, "an encode in the executor",
                           interval=0.0005)
            await self.ws.close()
            await close_peer(self.pc)
        elif style == "peer-closed":
            await close_peer(self.pc)  # and not a word on the websocket
        else:
            self.ws.transport.abort()  # the TCP connection cut, the peer left up
        await wait_for(lambda: self.session not in self.service.viewers, 20,
                       f"{self.session.name} closed by the service after {style}")

    async def cleanup(self) -> None:
        if self.pc is not None:
            await close_peer(self.pc)
        if self.ws is not None:
            self.ws.transport.abort()
            await self.ws.wait_closed()


async def cycle(service: Service, index: int, stats: Counter[str]) -> None:
    style = STYLES[index % len(STYLES)]
    # Mid-encode leavers take the shared VP8 encoder, so that their leaving stops it while it
    # encodes; the others alternate between it and an H264 encode of their own.
    viewer = ChurnViewer(service, "H264" if style != "mid-encode" and index % 2 else "VP8")
    try:
        # A mid-encode leaver goes as soon as the service has answered (a reload), the others
        # once their peer is up.
        await viewer.join(connect=style != "mid-encode")
        await viewer.leave(style)
        stats[style] += 1
    finally:
        await viewer.cleanup()


async def test_200_viewers_join_and_leave_and_nothing_is_left_behind() -> None:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN),
                      sensors=STILL_SENSORS, source="churn")
    await service.start()
    host, port = service.bound
    stats: Counter[str] = Counter()
    try:
        lost: list[dict[str, Any]] = []

        def on_event(event: dict[str, Any]) -> None:
            if event["event"] in ("stale", "disconnected"):
                lost.append({**event, "t": time.monotonic()})
        async with connected_viewer(f"http://{host}:{port}/#token={TOKEN}", on_event=on_event,
                                    video_codec="H264") as steady:
            await wait_for(lambda: steady.readings > 50 and steady.video_frames
                           and steady.audio_frames, 30, "the steady viewer's first media")
            for index in range(2 * len(STYLES)):  # warm-up: two of each, then the baseline
                await cycle(service, index, stats)
            await wait_for(lambda: len(service.viewers) == 1, 30, "only the steady viewer")
            baseline, baseline_tasks = counts(), set(asyncio.all_tasks())
            encoder = service.cameras["cam"].encoder
            cancelled_before = encoder.left_mid_encode
            started = time.monotonic()

            mid_encode = iter(i for i in range(CYCLES) if STYLES[i % len(STYLES)] == "mid-encode")
            connected = iter(i for i in range(CYCLES) if STYLES[i % len(STYLES)] != "mid-encode")

            async def lane(indices: Any) -> None:
                for index in indices:
                    await cycle(service, index, stats)
            await asyncio.gather(lane(mid_encode),
                                 *(lane(connected) for _ in range(CONNECTED_LANES)))
            elapsed = time.monotonic() - started
            await wait_for(lambda: len(service.viewers) == 1, 30, "only the steady viewer")
            after = await back_to(baseline, baseline_tasks)
            cancelled = encoder.left_mid_encode - cancelled_before
            print(f"churn: {CYCLES} cycles in {elapsed:.1f} s, {dict(stats)}, "
                  f"{cancelled} encoder runs cancelled mid-encode; "
                  f"baseline {baseline}, after {after}")
            assert sum(stats[s] for s in STYLES) == CYCLES + 2 * len(STYLES)
            assert cancelled > 0  # leaving mid-encode did stop the encoder while it encoded

            before = (steady.readings, dict(steady.video_frames), dict(steady.audio_frames))
            await wait_for(lambda: steady.readings > before[0] + 100
                           and all(steady.video_frames[s] > before[1].get(s, 0) + 10
                                   for s in service.cameras)
                           and all(steady.audio_frames[s] > before[2].get(s, 0) + 50
                                   for s in service.beams), 30,
                           "the steady viewer's media after the churn")
            assert steady.connections == 1 and not lost, lost  # connected through all of it
            assert steady.seq_gaps == 0 and steady.invalid == 0
            assert steady.last_status["viewer"]["readings_dropped"] == 0
    finally:
        await service.stop()
