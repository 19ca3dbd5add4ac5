"""ICE settings: which servers to use, which local addresses to offer, how m-lines share transports.

"Nothing listens beyond loopback unless configured": when the service (or a viewer) talks to a
loopback address, its ICE agent offers only 127.0.0.1, so no UDP socket opens on a LAN address.
aioice has no option for that, so its host-address lookup is replaced for this process.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiortc import (
    RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection,
    RTCSessionDescription,
)

from sensorlink.config import IceServer
from sensorlink.webrtc.dtls import accept_rsa_peers

_original_get_host_addresses: Any = None
_original_mdns: Any = None


class _NoMdns:
    """Stands in for aioice's mDNS resolver on loopback: resolving a browser's ``.local``
    candidate would open a wildcard socket on port 5353 and multicast on the LAN. The browser's
    connectivity checks reach us anyway, and aioice learns its address from them."""

    async def resolve(self, name: str) -> None:
        return None


async def _no_mdns(subscriber: object) -> _NoMdns:
    return _NoMdns()


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def restrict_host_candidates_to_loopback(enabled: bool = True) -> None:
    """Offer only loopback host candidates from now on in this process (or undo it)."""
    import aioice.ice

    global _original_get_host_addresses, _original_mdns
    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice.ice.get_host_addresses
        _original_mdns = aioice.ice.get_or_create_mdns_protocol
    if enabled:
        def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return ["127.0.0.1"] if use_ipv4 else (["::1"] if use_ipv6 else [])

        aioice.ice.get_host_addresses = loopback_only
        aioice.ice.get_or_create_mdns_protocol = _no_mdns
    else:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        aioice.ice.get_or_create_mdns_protocol = _original_mdns


def rtc_configuration(servers: list[IceServer], policy: str = "all") -> RTCConfiguration:
    """``policy`` "relay" gathers TURN candidates only (aioice's TransportPolicy.RELAY): one
    relay-only end is enough for every pair, and so all media and data, to cross the relay.

    Bundle policy max-compat, so that every track of every kind works (aiortc 1.16). Under
    aiortc's default, balanced, a transceiver whose kind already has one is created on that
    first transceiver's transport and flagged ``_bundled``. When the remote description's
    BUNDLE group arrives, ``RTCPeerConnection.setRemoteDescription`` moves every group member
    that is *not* flagged onto the first mid's transport and stops the transports it left,
    but skips the flagged ones: if the first transceiver of a kind is not the group's first
    m-line, the second (third...) of that kind stays on a stopped transport, is answered with
    port 9 and no candidates, and never sends. With max-compat every m-line starts on its own
    transport, so the BUNDLE group moves them all; without a BUNDLE group each keeps its own,
    as a peer that does not bundle expects. (max-bundle has the same flaw: the data channels'
    transport, created first, is stopped as "left" although it is the group's transport.)
    """
    accept_rsa_peers()  # every peer connection we make goes through here (sensorlink.webrtc.dtls)
    # Always pass a list: RTCConfiguration() alone defaults to a public STUN server.
    return RTCConfiguration(iceServers=[
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in servers],
        iceTransportPolicy=RTCIceTransportPolicy(policy), bundlePolicy=RTCBundlePolicy.MAX_COMPAT)


def offered_bundle(sdp: str) -> list[str] | None:
    """The mids of a description's first BUNDLE group (the one aiortc applies), or None."""
    for line in sdp.splitlines():
        if line.startswith("a=group:BUNDLE"):
            return line.split()[1:]
        if line.startswith("m="):
            break  # groups are session-level attributes
    return None


def restrict_bundle(sdp: str, mids: list[str]) -> str:
    """``sdp`` with its BUNDLE group cut down to ``mids`` (in their order), or removed."""
    answered = set(offered_bundle(sdp) or [])
    kept = [mid for mid in mids if mid in answered]
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=group:BUNDLE"):
            if not kept:
                continue
            line = "a=group:BUNDLE " + " ".join(kept)
        out.append(line)
    return "\r\n".join(out)


def bundle_as_offered(offer_sdp: str, answer_sdp: str) -> str:
    """``answer_sdp`` with its BUNDLE group cut down to what the offer bundled.

    aiortc's ``createAnswer`` puts every m-line in one BUNDLE group whatever the offer said,
    while its ``setRemoteDescription`` applied only the offer's group. An offerer that did not
    bundle (or bundled only some m-lines) would then move its m-lines onto one transport while
    ours stay apart, and the answer would break RFC 8843 (an answer bundles no mid the offer did
    not). The group keeps the offer's order, so both ends agree on which mid carries it.
    """
    return restrict_bundle(answer_sdp, offered_bundle(offer_sdp) or [])


async def set_local_answer(pc: RTCPeerConnection) -> None:
    """Create and apply ``pc``'s answer to the offer it holds, bundled as the offer asked."""
    answer = await pc.createAnswer()
    sdp = bundle_as_offered(pc.remoteDescription.sdp, answer.sdp)
    await pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type="answer"))


def ice_servers_for_browser(servers: list[IceServer]) -> list[dict[str, Any]]:
    out = []
    for s in servers:
        entry: dict[str, Any] = {"urls": list(s.urls)}
        if s.username is not None:
            entry["username"] = s.username
        if s.credential is not None:
            entry["credential"] = s.credential
        out.append(entry)
    return out
