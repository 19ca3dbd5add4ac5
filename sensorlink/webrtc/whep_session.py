"""One WHEP player's peer connection: a camera's video and a microphone's beam, nothing else.

The player offers (recvonly), the service answers (sendonly) with every candidate it has: aiortc
gathers before it answers and never trickles. The player may trickle its own candidates after
the answer (HTTP PATCH, RFC 8840 fragments), as browser players that POST at once do; aioice
keeps checking until the player says end-of-candidates, so those still pair. ICE restarts are
not supported (aiortc has none), which a PATCH with new ICE credentials is told (422).

The tracks are the shared encoders' packets (:mod:`sensorlink.webrtc.encoding`) whenever the
player takes VP8 and Opus, so a WHEP player costs no encode, exactly like a dashboard viewer.
All tracks share the peer connection's one MediaStream id (aiortc gives every sender of a peer
the same one), as WHEP asks: players that do ``video.srcObject = event.streams[0]`` get both.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from sensorlink.errors import PeerConnectionFailed, SignalingError
from sensorlink.webrtc import failures
from sensorlink.webrtc.encoding import settle_on
from sensorlink.webrtc.ice import rtc_configuration, set_local_answer
from sensorlink.webrtc.media import BeamAudioTrack, ThermalVideoTrack
from sensorlink.webrtc.teardown import close_peer

if TYPE_CHECKING:
    from sensorlink.webrtc.host import MediaSource

log = logging.getLogger(__name__)

#: A player that POSTs an offer and never connects (closed its tab, a firewall) is dropped then.
CONNECT_TIMEOUT_S = 30.0


class NotAcceptable(SignalingError):
    """The offer is valid but cannot be served as a whole (no m-line for what was asked, or no
    codec in common): WHIP/WHEP answer 406 rather than a partly working session."""


class IceRestartRefused(SignalingError):
    """A PATCH carried new ICE credentials: an ICE restart, which aiortc cannot do."""


@dataclass
class IceFragment:
    """What an ``application/trickle-ice-sdpfrag`` body says (RFC 8840)."""

    ufrag: str | None = None
    pwd: str | None = None
    #: (mid or None, the candidate line's value after "candidate:")
    candidates: list[tuple[str | None, str]] = field(default_factory=list)
    end: bool = False

    @classmethod
    def parse(cls, text: str) -> IceFragment:
        fragment, mid = cls(), None
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("m="):
                mid = None
            elif line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=ice-ufrag:"):
                fragment.ufrag = line[12:]
            elif line.startswith("a=ice-pwd:"):
                fragment.pwd = line[10:]
            elif line.startswith("a=candidate:"):
                if len(line[12:].split()) < 8:
                    raise SignalingError(f"malformed candidate line {line[:80]!r}")
                fragment.candidates.append((mid, line[12:]))
            elif line == "a=end-of-candidates":
                fragment.end = True
            elif line and not line.startswith(("a=", "m=", "c=")):
                raise SignalingError(f"not an SDP fragment line: {line[:80]!r}")
        return fragment


def _first_attribute(sdp: str, name: str) -> str | None:
    prefix = f"a={name}:"
    return next((line[len(prefix):].strip() for line in sdp.splitlines()
                 if line.startswith(prefix)), None)


class WhepSession:
    """A camera (``video``) and/or a microphone beam (``audio``) to one WHEP player."""

    def __init__(self, host: MediaSource, *, video: str | None, audio: str | None,
                 remote: str) -> None:
        self.host = host
        self.id = secrets.token_urlsafe(18)       # the session URL is the capability to end it
        self.etag = f'"{secrets.token_hex(8)}"'   # one ICE session for good: no restarts
        self.video, self.audio, self.remote = video, audio, remote
        self.name = f"whep:{self.id[:6]}"
        self.connected = False
        self.failure: str | None = None
        settings = host.settings
        self.pc = RTCPeerConnection(rtc_configuration(settings.ice_servers,
                                                      settings.ice_transport_policy))
        self._tracks: list[Any] = []
        self._closed = asyncio.Event()
        self._notes: list[str] = []
        self._watchdog: asyncio.Task[None] | None = None

        @self.pc.on("connectionstatechange")
        def _state() -> Any:
            state = self.pc.connectionState
            if state == "connected":
                self.connected = True
            if self.failure is None and failures.has_failed(self.pc, self._notes):
                self.failure = failures.failure_reason(self.pc, was_connected=self.connected,
                                                       notes=self._notes)
            log.info("%s (%s): peer connection %s%s", self.name, remote, state,
                     f": {self.failure}" if state == "failed" and self.failure else "")
            return self.close() if state in ("failed", "closed") else None

    async def answer(self, offer_sdp: str) -> str:
        """Apply the player's offer and return the answer, every local candidate in it.

        Raises SignalingError (the offer's fault: 400/406) or PeerConnectionFailed (no
        candidate to offer)."""
        if not any(line.startswith("m=") for line in offer_sdp.splitlines()):
            raise SignalingError("not an SDP offer: it has no m= line")
        self._notes = failures.watch_transports()
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError and friends for a bad SDP
            refused = failures.codec_refusal(offer_sdp, peer="the player")
            if refused is not None:
                raise NotAcceptable(refused) from exc
            raise SignalingError(failures.offer_refusal(offer_sdp, exc)) from exc
        sent = 0
        for kind, sensor in (("video", self.video), ("audio", self.audio)):
            transceiver = next((t for t in self.pc.getTransceivers() if t.kind == kind), None)
            if sensor is None or transceiver is None:
                continue
            if kind == "video":
                view = self.host.cameras[sensor]
                track = (view.encoder.subscribe() if settle_on(transceiver, "video/VP8")
                         else ThermalVideoTrack(view))
            else:
                beam = self.host.beams[sensor]
                track = (beam.encoder.subscribe() if settle_on(transceiver, "audio/opus")
                         else BeamAudioTrack(beam))
            self._tracks.append(track)
            self.pc.addTrack(track)
            sent += 1
        if not sent:
            wanted = " and ".join(k for k, s in (("video", self.video), ("audio", self.audio)) if s)
            raise NotAcceptable(f"the offer has no {wanted} m-line to send on")
        await set_local_answer(self.pc)
        settings = self.host.settings
        unreachable = failures.missing_candidates(self.pc, policy=settings.ice_transport_policy,
                                                  ice_servers=len(settings.ice_servers),
                                                  peer="the player")
        if unreachable is not None:
            raise PeerConnectionFailed(unreachable)
        self._watchdog = asyncio.create_task(self._drop_if_never_connected(),
                                             name=f"{self.name}:watchdog")
        return self.pc.localDescription.sdp

    async def add_candidates(self, body: str) -> None:
        """A trickle PATCH: the player's further candidates (and perhaps end-of-candidates)."""
        fragment = IceFragment.parse(body)
        offered = self.pc.remoteDescription
        ufrag = _first_attribute(offered.sdp, "ice-ufrag") if offered else None
        if fragment.ufrag is not None and ufrag is not None and fragment.ufrag != ufrag:
            raise IceRestartRefused("ICE restart is not supported (aiortc has none): end this "
                                    "session (DELETE) and POST a new offer")
        mids = [t.mid for t in self.pc.getTransceivers() if t.mid is not None]
        for mid, value in fragment.candidates:
            try:
                candidate = candidate_from_sdp(value)
            except (ValueError, IndexError, AssertionError) as exc:
                raise SignalingError(f"malformed candidate {value[:80]!r}") from exc
            candidate.sdpMid = mid if mid in mids else (mids[0] if mids else None)
            await self.pc.addIceCandidate(candidate)
        if fragment.end:
            await self.pc.addIceCandidate(None)

    async def _drop_if_never_connected(self) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if not self.connected:
            self.failure = self.failure or (f"the player did not connect within "
                                            f"{CONNECT_TIMEOUT_S:g} s")
            log.info("%s (%s): %s", self.name, self.remote, self.failure)
            await self.close()

    async def closed(self) -> None:
        await self._closed.wait()

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for track in self._tracks:
            track.stop()  # release the shared encoders before anything awaits
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        await close_peer(self.pc)
