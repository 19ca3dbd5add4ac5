"""One viewer's WebRTC peer connection: its media tracks and its four data channels.

Channels are negotiated with fixed ids (sensorlink.webrtc.wire.CHANNELS) so both ends create them
without in-band setup. All share one SCTP association, so each sender watches its channel's
buffered amount and leaves room for the others: readings queue in a bounded subscription that
drops the oldest (and counts it) when this viewer cannot keep up, frames are skipped.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import socket
from typing import TYPE_CHECKING, Any

import msgpack
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdatachannel import RTCDataChannel

from sensorlink.errors import PeerConnectionFailed, SignalingError
from sensorlink.webrtc import failures
from sensorlink.webrtc.control import ControlHandler
from sensorlink.webrtc.encoding import settle_on
from sensorlink.webrtc.fanout import frame_sender, pump, wait_open
from sensorlink.webrtc.ice import rtc_configuration, set_local_answer
from sensorlink.webrtc.media import BeamAudioTrack, ThermalVideoTrack
from sensorlink.webrtc.teardown import close_peer
from sensorlink.webrtc.wire import CHANNELS, encode_alarms, encode_spectrum

if TYPE_CHECKING:
    from sensorlink.webrtc.host import ViewerHost

log = logging.getLogger(__name__)
_viewer_ids = itertools.count(1)

READINGS_QUEUE = 100_000       # readings a slow viewer may fall behind before the oldest drop
HIGH_WATER = 256 * 1024        # bytes buffered in a channel before its sender waits
FRAMES_MAX_HZ = 10.0           # exact-°C frames per camera per second at most (unreliable channel)
#: Receive buffer asked for on the peer's UDP sockets. aioice asks for 256 KB, but aiortc lets up
#: to 1 MB (its advertised SCTP window) be in flight: a receiver busy for a few milliseconds then
#: overflows the socket, and each lost datagram costs a retransmission (a lost tail, a 1 s RTO
#: stall). Profiled at full rate on loopback, SACK gap handling for those losses took ~36% of the
#: service's CPU. The kernel caps the request at net.core.rmem_max.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def enlarge_receive_buffers(pc: RTCPeerConnection, size: int = UDP_RECEIVE_BUFFER) -> int:
    """Ask for ``size`` bytes of receive buffer on every UDP socket of ``pc``'s ICE transports
    (once candidates are gathered). Returns how many sockets were changed."""
    changed = 0
    for ice in {dtls.transport for dtls in failures.dtls_transports(pc)}:
        # aioice keeps its sockets private; reach them defensively so an upgrade degrades to a no-op.
        for protocol in getattr(getattr(ice, "_connection", None), "_protocols", ()):
            sock = getattr(protocol, "transport", None)
            sock = sock.get_extra_info("socket") if sock is not None else None
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
                changed += 1
    return changed


class ViewerSession:
    def __init__(self, service: ViewerHost, *, role: str, remote: str = "?") -> None:
        self.service = service
        self.role = role
        self.name = f"viewer{next(_viewer_ids)}"
        self.remote = remote
        self.pc = RTCPeerConnection(rtc_configuration(service.settings.ice_servers,
                                                      service.settings.ice_transport_policy))
        self.channels: dict[str, RTCDataChannel] = {
            "readings": self.pc.createDataChannel("readings", negotiated=True, id=CHANNELS["readings"]),
            "frames": self.pc.createDataChannel("frames", negotiated=True, id=CHANNELS["frames"],
                                                ordered=False, maxRetransmits=0),
            "control": self.pc.createDataChannel("control", negotiated=True, id=CHANNELS["control"]),
            "status": self.pc.createDataChannel("status", negotiated=True, id=CHANNELS["status"]),
        }
        for channel in self.channels.values():
            channel.bufferedAmountLowThreshold = HIGH_WATER // 4
        self.control = ControlHandler(service, role=role, viewer=self.name,
                                      viewer_actions=service.viewer_actions)
        # Batched and encoded once for every viewer (sensorlink.webrtc.fanout); this is our share.
        self.readings_sub = service.readings.open(READINGS_QUEUE)
        self.frame_counts: collections.Counter[str] = collections.Counter()
        self.readings_sent = 0
        self._tracks: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._unlisten: list[Any] = []
        self._status_wakeup = asyncio.Event()
        self._closed = asyncio.Event()
        #: why the peer connection failed, once it has (sent to the viewer by sensorlink.webrtc.signaling)
        self.failure: str | None = None
        self._was_connected = False
        self._notes: list[str] = []  # what aiortc/aioice logged about its transports
        self.channels["control"].on("message", self._on_control)

        @self.pc.on("connectionstatechange")
        def _state() -> Any:
            state = self.pc.connectionState
            if state == "connected":
                self._was_connected = True
            if self.failure is None and failures.has_failed(self.pc, self._notes):
                # Read the transports now, in the event itself: close() clears what they hold.
                self.failure = failures.failure_reason(self.pc, was_connected=self._was_connected,
                                                       notes=self._notes)
                log.info("%s (%s): peer connection failed: %s", self.name, self.remote, self.failure)
            else:
                log.info("%s (%s): peer connection %s", self.name, self.remote, state)
            return self.close() if state in ("failed", "closed") else None  # pyee runs it as a task

    # -- negotiation -----------------------------------------------------------------------
    async def answer(self, offer_sdp: str) -> tuple[str, dict[str, str]]:
        """Apply the viewer's offer; return our answer and which transceiver carries which sensor."""
        self._notes = failures.watch_transports()
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError and friends for a bad SDP
            raise SignalingError(f"bad offer: {exc}") from exc
        tracks: dict[str, str] = {}
        service = self.service
        wanted = ([("video", name) for name in service.cameras] +
                  [("audio", name) for name in service.beams])
        free = {kind: [t for t in self.pc.getTransceivers() if t.kind == kind] for kind in ("video", "audio")}
        for kind, sensor in wanted:
            if not free[kind]:
                continue  # the viewer did not ask for this many tracks; it still gets readings
            transceiver = free[kind].pop(0)
            # One encode per sensor for every viewer when the viewer takes our codec; a viewer
            # that does not gets its own encode.
            if kind == "audio":
                beam = service.beams[sensor]
                track = (beam.encoder.subscribe() if settle_on(transceiver, "audio/opus")
                         else BeamAudioTrack(beam))
            else:
                view = service.cameras[sensor]
                track = (view.encoder.subscribe() if settle_on(transceiver, "video/VP8")
                         else ThermalVideoTrack(view))
            self._tracks.append(track)
            self.pc.addTrack(track)
            tracks[transceiver.mid] = sensor
        await set_local_answer(self.pc)
        settings = self.service.settings
        unreachable = failures.missing_candidates(self.pc, policy=settings.ice_transport_policy,
                                                  ice_servers=len(settings.ice_servers))
        if unreachable is not None:
            raise PeerConnectionFailed(unreachable)
        enlarge_receive_buffers(self.pc)
        self._start_senders()
        return self.pc.localDescription.sdp, tracks

    def _start_senders(self) -> None:
        self._tasks = [asyncio.create_task(self._send_readings(), name=f"{self.name}:readings"),
                       asyncio.create_task(self._send_status(), name=f"{self.name}:status")]
        for view in self.service.cameras.values():
            self._unlisten.append(view.on_frame(frame_sender(
                self.channels["frames"], view, max_hz=FRAMES_MAX_HZ, high_water=HIGH_WATER,
                replay=self.service.hub.replay, counts=self.frame_counts)))
            self._unlisten.append(view.on_view_change(self._status_wakeup.set))
        self._unlisten.append(self.service.hub.on_status_change(lambda _s: self._status_wakeup.set()))
        # Alarms go out as they change (the banner must not wait for the next status), and
        # spectrogram rows beside the exact-°C frames.
        self._unlisten.append(self.service.hub.on_alarm(self._send_alarm))
        self._unlisten.append(self.service.on_spectrum(self._send_spectrum))

    def _send_alarm(self, event: Any) -> None:
        channel = self.channels["status"]
        if channel.readyState == "open":
            channel.send(encode_alarms(self.service.hub.alarms.values(), event))

    def _send_spectrum(self, row: Any) -> None:
        channel = self.channels["frames"]
        if channel.readyState != "open" or channel.bufferedAmount > HIGH_WATER:
            self.frame_counts["spectra_skipped"] += 1
            return
        channel.send(encode_spectrum(row, replay=self.service.hub.replay))

    # -- senders ---------------------------------------------------------------------------
    async def _send_readings(self) -> None:
        def sent(count: int) -> None:
            self.readings_sent += count
        await pump(self.channels["readings"], self.readings_sub, HIGH_WATER, sent)

    def round_trip_s(self) -> float | None:
        """The peer connection's smoothed round-trip time as SCTP measures it (what the data
        channels feel), or None before the first measurement."""
        sctp = getattr(self.pc, "sctp", None)
        return getattr(sctp, "_srtt", None) if sctp is not None else None

    def status_message(self) -> dict[str, Any]:
        message = self.service.status_message()
        message["viewer"] = {"readings_dropped": self.readings_sub.dropped,
                             "readings_sent": self.readings_sent,
                             "frames_sent": self.frame_counts["sent"],
                             "frames_skipped": self.frame_counts["skipped"],
                             "control_refused": self.control.refused}
        return message

    async def _send_status(self) -> None:
        channel = self.channels["status"]
        await wait_open(channel)
        channel.send(encode_alarms(self.service.hub.alarms.values(),
                                   rules=self.service.alarm_rules()))
        views_sent: dict[str, Any] = {}
        while channel.readyState == "open":
            for name, view in self.service.cameras.items():
                key = (view.map, view.fixed_range)
                if views_sent.get(name) != key:
                    channel.send(msgpack.packb(view.view_message()))
                    views_sent[name] = key
            channel.send(msgpack.packb(self.status_message()))
            self._status_wakeup.clear()
            try:
                await asyncio.wait_for(self._status_wakeup.wait(), timeout=1.0)
            except TimeoutError:
                pass

    def _on_control(self, data: bytes | str) -> None:
        async def reply() -> None:
            response = await self.control.handle(data)
            if self.channels["control"].readyState == "open":
                self.channels["control"].send(response)
            if self.control.accepted:
                self._status_wakeup.set()
        task = asyncio.create_task(reply())
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    # -- teardown --------------------------------------------------------------------------
    async def closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        # Release the shared encoders first, before anything awaits: a viewer that left
        # costs them nothing from now on.
        for track in self._tracks:
            track.stop()
        self.readings_sub.close()
        for unlisten in self._unlisten:
            try:
                unlisten()
            except ValueError:
                pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await close_peer(self.pc)
        self.service.viewer_closed(self)
