"""What the WebRTC sink needs from whoever runs it, as small Protocols.

The peer connections, the signaling server and the Janus publisher used to take the whole
``Service`` (the composition root) for typing, which tied the sink to everything the service
wires up. They need much less: the hub and the per-sensor views to stream from, the ICE settings,
a status message, and a few calls into the list of viewers. :class:`sensorlink.service.Service`
satisfies these by shape; a test or another host can supply its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sensorlink.config import ServiceConfig
from sensorlink.hub import Hub

if TYPE_CHECKING:
    from sensorlink.webrtc.fanout import ReadingsFanout
    from sensorlink.webrtc.media import Beamformer, CameraView


class Session(Protocol):
    """One viewer's peer connection as the signaling server drives it (a ViewerSession)."""

    name: str
    #: why the peer connection failed, once it has (None while it works or closed cleanly)
    failure: str | None

    async def answer(self, offer_sdp: str) -> tuple[str, dict[str, str]]: ...

    async def close(self) -> None: ...

    async def closed(self) -> None:
        """Wait until the session has closed, for whatever reason."""


class MediaSource(Protocol):
    """What a peer streams from: the hub, each camera's view, each microphone's beam, the
    readings fan-out, and the ICE settings (``settings.ice_servers`` and its policy)."""

    @property
    def hub(self) -> Hub: ...

    @property
    def settings(self) -> ServiceConfig: ...

    @property
    def cameras(self) -> Mapping[str, CameraView]: ...

    @property
    def beams(self) -> Mapping[str, Beamformer]: ...

    @property
    def readings(self) -> ReadingsFanout: ...

    def status_message(self) -> dict[str, Any]:
        """The status every viewer is sent (sensors, recording, replay, exports)."""

    def on_spectrum(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``listener`` with each spectrogram row of a microphone's beam; returns the
        function that stops it."""

    def alarm_rules(self) -> list[dict[str, Any]]:
        """The alarm rules, as the dashboard lists them beside the alarms."""


class ViewerHost(MediaSource, Protocol):
    """What one viewer's session needs: the media, control, and a goodbye when it closes."""

    #: what the viewer role may do besides looking (a replay of its own it may steer)
    viewer_actions: frozenset[str]

    async def apply_control(self, message: dict[str, Any], *, viewer: str) -> dict[str, Any]: ...

    def viewer_closed(self, session: Session) -> None: ...


class SignalingHost(Protocol):
    """What the signaling server needs: who a token is, the hello, and new viewer sessions."""

    def role_for(self, token: str) -> str | None: ...

    def hello(self, role: str) -> dict[str, Any]: ...

    def new_viewer(self, *, role: str, remote: str) -> Session: ...

    def viewer_closed(self, session: Session) -> None: ...

    async def open_replay(self, window: dict[str, Any], role: str) -> SignalingHost:
        """A replay of part of the recordings (``window``: from_ns, to_ns) on a hub of its
        own, for one websocket; raises a SensorlinkError saying why it cannot."""

    async def close_replay(self, host: SignalingHost) -> None: ...
