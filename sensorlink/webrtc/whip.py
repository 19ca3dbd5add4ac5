"""Publishing to any WHIP endpoint (RFC 9725): MediaMTX, LiveKit Ingress, Janus' simple-whip-server.

``sensorlink run|demo --publish whip://HOST[:PORT]/PATH`` (``whips://`` or ``https://`` for
TLS, ``http://`` too). WHIP endpoints take one video and one audio track per session, so:

- **one session per camera**, carrying that camera's video and one microphone's beam (the
  service's first microphone unless ``--publish-audio MIC`` / ``[whip] audio`` says which, or
  ``none``). Every session may carry the same microphone: its Opus packets are shared.
- With several cameras the URL must hold ``{sensor}``, replaced by each camera's name:
  ``whip://mediamtx:8889/press-1/{sensor}/whip`` publishes ``press-1/<camera>`` paths.
- Without cameras, one session carries the microphone alone.

Each session sends the shared encoders' packets (:mod:`sensorlink.webrtc.encoding`): publishing
costs no encode beyond what a dashboard viewer already causes, and one encode in all when
nobody else watches. The offer goes out complete (aiortc gathers before it offers and does
not trickle), with the ``Authorization: Bearer`` token when one is configured; the ``201``
answer's ``Location`` is DELETEd when the session ends. 307/308 redirects are followed. A
session that fails (the endpoint went away, ICE or DTLS failed, consent lost) is retried with
backoff, 0.5 s doubling to 10 s. Each session is one entry in the service's ``exports``.

STUN/TURN servers an endpoint returns in ``Link`` headers come after our candidates are
gathered (aiortc cannot add servers to a gathered offer): they are logged and not used; give
``[service] ice_servers`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.exceptions import InvalidStateError

from sensorlink.backoff import Backoff
from sensorlink.config_whip import WhipConfig, whip_http_url
from sensorlink.errors import ConfigError, SignalingError
from sensorlink.webrtc.background import BackgroundPublisher
from sensorlink.webrtc.http11 import HttpReply, http_request
from sensorlink.webrtc.ice import rtc_configuration
from sensorlink.webrtc.teardown import close_peer

if TYPE_CHECKING:
    from sensorlink.webrtc.host import MediaSource

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
CONNECT_TIMEOUT_S = 30.0
# What a refusal usually means, said next to the endpoint's own words.
REFUSAL_HINTS = {
    401: " (the endpoint wants another Bearer token: $SENSORLINK_WHIP_TOKEN or [whip] token)",
    403: " (the token is not allowed to publish here)",
    404: " (no WHIP endpoint at this path: check the URL, e.g. MediaMTX wants /<path>/whip)",
    415: " (the endpoint did not take application/sdp)",
}


@dataclass(frozen=True)
class WhipStream:
    """One WHIP session: the endpoint URL it POSTs to, and what it sends."""

    endpoint: str
    video: str | None
    audio: str | None


def plan_streams(config: WhipConfig, cameras: list[str], microphones: list[str]) -> list[WhipStream]:
    """Which sessions ``config`` makes for these sensors (in config order); ConfigError names
    the field when it cannot be done."""
    url = whip_http_url(config.url)
    if config.audio in (None, ""):
        mic = microphones[0] if microphones else None
    elif config.audio == "none":
        mic = None
    elif config.audio in microphones:
        mic = config.audio
    else:
        raise ConfigError(f"no microphone named {config.audio!r}; microphones: {microphones}",
                          field="whip.audio")
    if len(cameras) > 1 and not config.template:
        raise ConfigError(f"{len(cameras)} cameras and a WHIP endpoint takes one video per "
                          "session: put {sensor} in the path (one session per camera), e.g. "
                          f"{config.url.rstrip('/')}/{{sensor}}", field="whip.url")
    names: list[tuple[str | None, str | None]] = [(name, mic) for name in cameras] or \
        ([(None, mic)] if mic else [])
    if not names:
        raise ConfigError("nothing to publish: no camera and no microphone", field="whip.url")
    return [WhipStream(url.replace("{sensor}", urllib.parse.quote(video or audio or "")),
                       video, audio) for video, audio in names]


def _prefer(transceiver: Any, mime_type: str) -> None:
    """Offer only the shared encoder's codec (and its rtx), so the packets fit what is agreed."""
    kind = mime_type.split("/")[0]
    transceiver.setCodecPreferences([
        c for c in RTCRtpSender.getCapabilities(kind).codecs
        if c.mimeType.lower() in (mime_type.lower(), f"{kind}/rtx")])


class WhipSession(BackgroundPublisher):
    """One stream to a WHIP endpoint, kept up for as long as the service runs."""

    kind = "whip"

    def __init__(self, host: MediaSource, stream: WhipStream, token: str | None) -> None:
        self.host = host
        self.stream = stream
        self.token = token
        self.name = self.task_name = f"whip:{stream.video or stream.audio}"
        self.state = "stopped"
        self.detail = ""
        self.connects = 0
        self.location: str | None = None
        self.pc: RTCPeerConnection | None = None

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "target": self.stream.endpoint,
                "state": self.state, "detail": self.detail, "connects": self.connects}

    def _headers(self, *extra: tuple[str, str]) -> list[tuple[str, str]]:
        auth = [("Authorization", f"Bearer {self.token}")] if self.token else []
        return [*auth, *extra]

    async def _run(self) -> None:
        backoff = Backoff(initial=0.5, ceiling=10.0)
        while True:
            try:
                await self._publish_once(backoff)
            except (OSError, SignalingError, TimeoutError) as exc:
                self.detail = str(exc) or type(exc).__name__
                log.warning("%s: %s", self.name, self.detail)
            except Exception as exc:  # a bug or a strange answer must show, not end publishing
                self.detail = f"{type(exc).__name__}: {exc}"
                log.exception("%s: publishing to %s failed", self.name, self.stream.endpoint)
            self.state = "disconnected"
            await asyncio.sleep(backoff.next())
            self.state = "connecting"

    async def _post_offer(self, sdp: str) -> tuple[str, HttpReply]:
        """POST the offer, following 307/308; the final URL and the 201 reply."""
        url = self.stream.endpoint
        for _ in range(MAX_REDIRECTS + 1):
            reply = await http_request("POST", url, body=sdp.encode(), headers=self._headers(
                ("Content-Type", "application/sdp"), ("Accept", "application/sdp")))
            if reply.status in (307, 308) and reply.header("location"):
                url = urllib.parse.urljoin(url, reply.header("location") or "")
                continue
            if reply.status != 201:
                text = reply.body.decode("utf-8", "replace").strip().splitlines()
                hint = REFUSAL_HINTS.get(reply.status, "")
                raise SignalingError(f"POST {url}: {reply.status} "
                                     f"{text[0][:200] if text else '(no body)'}{hint}")
            return url, reply
        raise SignalingError(f"POST {self.stream.endpoint}: more than {MAX_REDIRECTS} redirects")

    async def _publish_once(self, backoff: Backoff) -> None:
        settings = self.host.settings
        pc = self.pc = RTCPeerConnection(rtc_configuration(settings.ice_servers,
                                                           settings.ice_transport_policy))
        tracks: list[Any] = []
        try:
            if self.stream.video is not None:
                tracks.append(self.host.cameras[self.stream.video].encoder.subscribe())
                _prefer(pc.addTransceiver(tracks[-1], "sendonly"), "video/VP8")
            if self.stream.audio is not None:
                tracks.append(self.host.beams[self.stream.audio].encoder.subscribe())
                _prefer(pc.addTransceiver(tracks[-1], "sendonly"), "audio/opus")
            await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
            url, reply = await self._post_offer(pc.localDescription.sdp)
            location = reply.header("location")
            if not location:
                raise SignalingError(f"POST {url}: 201 without a Location header")
            self.location = urllib.parse.urljoin(url, location)
            if reply.all("link"):
                log.info("%s: the endpoint offers ICE servers %s (not used: configure "
                         "[service] ice_servers)", self.name, reply.all("link"))
            await self._accept_answer(pc, url, reply)
            await self._until_lost(pc, backoff)
        finally:
            for track in tracks:
                track.stop()  # the shared encoders stop for us at once
            await close_peer(pc)
            self.pc = None
            await self._delete()

    async def _accept_answer(self, pc: RTCPeerConnection, url: str, reply: HttpReply) -> None:
        """The 201's body as our answer; a body that is not one says so, naming the endpoint."""
        content_type = (reply.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/sdp":
            raise SignalingError(f"POST {url}: 201 with Content-Type {content_type or '(none)'}, "
                                 "not an application/sdp answer")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(
                reply.body.decode("utf-8", "replace"), "answer"))
        except (ValueError, KeyError, IndexError, InvalidStateError) as exc:
            raise SignalingError(f"POST {url}: the endpoint's answer is not usable SDP "
                                 f"({type(exc).__name__}: {exc})") from exc

    async def _until_lost(self, pc: RTCPeerConnection, backoff: Backoff) -> None:
        connected, lost = asyncio.Event(), asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                connected.set()
            elif pc.connectionState in ("failed", "closed"):
                lost.set()

        try:
            await asyncio.wait_for(connected.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise SignalingError(f"no connection to the endpoint within {CONNECT_TIMEOUT_S:g} s "
                                 f"(ICE {pc.iceConnectionState})") from None
        self.state, self.detail = "connected", ""
        self.connects += 1
        backoff.reset()
        log.info("%s: publishing to %s (session %s)", self.name, self.stream.endpoint,
                 self.location)
        await lost.wait()
        raise SignalingError(f"peer connection {pc.connectionState}")

    async def _delete(self) -> None:
        """End the session on the endpoint (RFC 9725 4.2); best effort, the endpoint may be gone."""
        location, self.location = self.location, None
        if location is None:
            return
        with contextlib.suppress(SignalingError):
            reply = await http_request("DELETE", location, headers=self._headers(), timeout=5.0)
            if reply.status >= 300:
                log.info("%s: DELETE %s: %s", self.name, location, reply.status)


class WhipPublisher:
    """Every WHIP session of the service, as one exporter: the cameras are known only once the
    service has started its sources, so the sessions are planned in :meth:`start`."""

    kind = "whip"

    def __init__(self, host: MediaSource, config: WhipConfig) -> None:
        whip_http_url(config.url)  # a bad URL fails now, before anything starts
        self.host = host
        self.config = config
        self.sessions: list[WhipSession] = []

    async def start(self) -> None:
        streams = plan_streams(self.config, list(self.host.cameras), list(self.host.beams))
        self.sessions = [WhipSession(self.host, stream, self.config.token) for stream in streams]
        for session in self.sessions:
            await session.start()

    async def stop(self) -> None:
        await asyncio.gather(*(session.stop() for session in self.sessions))

    def status(self) -> dict[str, Any]:
        """One row for all sessions: connected when every one is, details per session."""
        states = [s.state for s in self.sessions] or ["stopped"]
        state = states[0] if len(set(states)) == 1 else (
            "connecting" if "connecting" in states else "disconnected")
        detail = "; ".join(f"{s.stream.video or s.stream.audio}: {s.state}"
                           + (f" ({s.detail})" if s.detail else "") for s in self.sessions)
        return {"name": "whip", "kind": self.kind, "target": self.config.url, "state": state,
                "detail": detail, "connects": sum(s.connects for s in self.sessions)}
