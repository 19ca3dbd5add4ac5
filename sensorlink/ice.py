"""ICE settings: which servers to use and which local addresses to offer.

"Nothing listens beyond loopback unless configured": when the service (or a viewer) talks to a
loopback address, its ICE agent offers only 127.0.0.1, so no UDP socket opens on a LAN address.
aioice has no option for that, so its host-address lookup is replaced for this process.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

from sensorlink.config import IceServer

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
    relay-only end is enough for every pair, and so all media and data, to cross the relay."""
    # Always pass a list: RTCConfiguration() alone defaults to a public STUN server.
    return RTCConfiguration(iceServers=[
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in servers],
        iceTransportPolicy=RTCIceTransportPolicy(policy))


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
