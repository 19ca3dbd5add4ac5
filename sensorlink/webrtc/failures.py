"""Why a peer connection failed, or why an offer was refused, in words a person can act on.

aiortc says only that a connection "failed" (its ``connectionState``), and refuses an offer with
"Failed to set remote video description send parameters". The reasons are in its transports; this
module reads them there once the connection has failed, without changing how aiortc works:

- ICE (aioice's check list): no candidate of our own (relay-only without a working TURN server),
  none from the other end, no pair that answered its connectivity checks (UDP blocked), or, after
  the connection was up, consent lost (RFC 7675: the other end stopped answering for ~30 s).
- DTLS: a handshake that completed with a certificate other than the one the offer's fingerprint
  names (checked again here, to say which), no SRTP profile in common, or a handshake that did
  not complete. (aiortc logs the OpenSSL error of the last at DEBUG, but with aiortc 1.16 and
  pyOpenSSL 26 it is an empty list: there is no more to say than that it failed.)
- Codecs: an audio or video m-line without one codec aiortc can send.

One fact exists only in a log line: an expired consent. aioice logs it and closes the
connection, which aiortc then reports as "closed", like a goodbye, not "failed". A filter on
aioice's logger keeps that line as a note of the connection whose task logged it:
:func:`watch_transports` puts a list in a context variable, which the tasks aiortc starts from
``setRemoteDescription``/``setLocalDescription`` (aioice's consent checks among them) inherit.
The filter passes on only what the ``aioice`` logger's level lets through (cli.py sets it:
``-vv`` shows aioice's debug log).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiortc import RTCPeerConnection, sdp
from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcdtlstransport import X509_DIGEST_ALGORITHMS, RTCDtlsTransport, certificate_digest
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcpeerconnection import find_common_codecs

from sensorlink.errors import SensorlinkError

_notes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "sensorlink_transport_notes", default=None)
CONSENT_EXPIRED = "ice: consent expired"


class _ConsentTap(logging.Filter):
    """On aioice's logger: notes "Consent to send expired" for the connection that logged it,
    and passes on what the ``aioice`` logger's own level lets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        notes = _notes.get()
        if notes is not None and "Consent to send expired" in str(record.msg):
            notes.append(CONSENT_EXPIRED)
        return record.levelno >= logging.getLogger("aioice").getEffectiveLevel()


def _install_tap() -> None:
    logger = logging.getLogger("aioice.ice")
    if not any(isinstance(f, _ConsentTap) for f in logger.filters):
        # DEBUG so that the records exist at all (for -vv too); the tap drops what was not asked for.
        logger.setLevel(logging.DEBUG)
        logger.addFilter(_ConsentTap())


_install_tap()


def watch_transports() -> list[str]:
    """From now on in this task, and in the tasks it starts, keep the notes of its transports
    in the list returned (call it before ``setRemoteDescription``)."""
    notes: list[str] = []
    _notes.set(notes)
    return notes


def dtls_transports(pc: RTCPeerConnection) -> list[RTCDtlsTransport]:
    """Every DTLS transport of ``pc``, once each (bundled transceivers share one)."""
    found: dict[int, RTCDtlsTransport] = {}
    if pc.sctp is not None:
        found[id(pc.sctp.transport)] = pc.sctp.transport
    for transceiver in pc.getTransceivers():
        if transceiver.sender.transport is not None:
            found.setdefault(id(transceiver.sender.transport), transceiver.sender.transport)
    return list(found.values())


# -- a connection that failed ------------------------------------------------------------------

def has_failed(pc: RTCPeerConnection, notes: Sequence[str]) -> bool:
    """connectionState "failed", or "closed" by ICE itself: aiortc closes a connection whose
    consent expired (its DTLS transport sees the end first) instead of failing it."""
    return pc.connectionState == "failed" or (pc.connectionState == "closed"
                                              and CONSENT_EXPIRED in notes)


def failure_reason(pc: RTCPeerConnection, *, was_connected: bool, notes: Sequence[str] = (),
                   peer: str = "the viewer", me: str = "the service") -> str:
    """Why ``pc`` failed (see :func:`has_failed`); ``notes`` from :func:`watch_transports`. ICE
    first: when ICE fails, aiortc still starts DTLS on it, and that fails too, as a consequence.
    Never raises: it runs inside aiortc's state-change event."""
    try:
        if CONSENT_EXPIRED in notes:
            return consent_lost(peer, me)
        transports = dtls_transports(pc)
        for dtls in transports:
            if dtls.transport.state == "failed":
                return ice_failure(dtls.transport, was_connected=was_connected, peer=peer, me=me)
        for dtls in transports:
            if dtls.state == "failed":
                return dtls_failure(dtls, pc, peer=peer, me=me)
    except Exception as exc:  # noqa: BLE001 (aiortc's private parts moved: say so, do not crash)
        return f"peer connection failed ({type(exc).__name__} while reading why: {exc})"
    return "peer connection failed, and no transport says why (run with -vv for aiortc's log)"


def _candidates(candidates: Iterable[Any], limit: int = 4) -> str:
    names = list(dict.fromkeys(f"{c.type} {c.ip}:{c.port}" for c in candidates))
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def consent_lost(peer: str = "the viewer", me: str = "the service") -> str:
    return (f"ICE consent lost: {peer} stopped answering consent checks (RFC 7675) for about "
            f"30 s: its network went away, or UDP between {peer} and {me} is blocked now")


def ice_failure(ice: RTCIceTransport, *, was_connected: bool, peer: str = "the viewer",
                me: str = "the service") -> str:
    if was_connected:
        return consent_lost(peer, me)
    local = ice.iceGatherer.getLocalCandidates()
    remote = ice.getRemoteCandidates()
    # aioice's check list is private: read it defensively, an upgrade only loses the count.
    pairs = getattr(getattr(ice, "_connection", None), "_check_list", None)
    if not local:
        return f"ICE failed: {me} had no candidate to offer"
    if not remote:
        return (f"ICE failed: {peer} sent no ICE candidates (a browser limited to TURN relays "
                "sends none when it reaches no TURN server)")
    if pairs is not None and not pairs:
        return (f"ICE failed: none of {peer}'s candidates ({_candidates(remote)}) can pair with "
                f"{me}'s ({_candidates(local)})")
    tried = (f"any of the {len(pairs)} candidate pairs" if pairs and len(pairs) > 1
             else "the candidate pair" if pairs else "any candidate pair")
    return (f"ICE failed: no connectivity check succeeded on {tried} ({me}'s: "
            f"{_candidates(local)}; {peer}'s: {_candidates(remote)}): UDP between {peer} and "
            f"{me} is blocked, or the two need a TURN relay")


def _short(fingerprint: str) -> str:
    parts = fingerprint.upper().split(":")
    return ":".join(parts[:4]) + ":…:" + parts[-1] if len(parts) > 6 else fingerprint.upper()


def _offered_fingerprints(pc: RTCPeerConnection) -> list[Any]:
    remote = pc.remoteDescription
    if remote is None:
        return []
    try:
        media = sdp.SessionDescription.parse(remote.sdp).media
    except Exception:  # noqa: BLE001 (aiortc's parser raises anything on a broken SDP)
        return []
    return [f for m in media if m.dtls is not None for f in m.dtls.fingerprints
            if f.algorithm.lower() in X509_DIGEST_ALGORITHMS]


def dtls_failure(dtls: RTCDtlsTransport, pc: RTCPeerConnection, *, peer: str = "the viewer",
                 me: str = "the service") -> str:
    ssl = getattr(dtls, "_ssl", None)
    certificate = ssl.get_peer_certificate(as_cryptography=True) if ssl and dtls.encrypted else None
    if certificate is not None:
        offered = _offered_fingerprints(pc)
        mismatched = [f for f in offered
                      if f.value.upper() != certificate_digest(certificate, f.algorithm.lower())]
        if mismatched or not offered:
            shown = mismatched[0] if mismatched else None
            said = (f"{shown.algorithm} {_short(shown.value)}" if shown
                    else "no fingerprint aiortc can check")
            algorithm = shown.algorithm.lower() if shown else "sha-256"
            got = _short(certificate_digest(certificate, algorithm))
            description = pc.remoteDescription.type if pc.remoteDescription else "description"
            return (f"DTLS failed: fingerprint mismatch: {peer}'s certificate ({algorithm} {got}) is "
                    f"not the one its {description} names ({said}): the {description} was changed "
                    "on its way, or it names another certificate")
        return f"DTLS failed: no SRTP protection profile in common with {peer}"
    return (f"DTLS handshake failed after ICE connected: {peer} and {me} agreed on no cipher "
            "suite or protocol version (e.g. a certificate key type the other end has no suite "
            "for); OpenSSL gives no more detail here")


def missing_candidates(pc: RTCPeerConnection, *, policy: str, ice_servers: int,
                       peer: str = "the viewer") -> str | None:
    """Why ICE cannot even start, right after ``setLocalDescription``: no live transport has a
    local candidate (aiortc then never starts its checks, and the connection waits forever)."""
    live = [d.transport for d in dtls_transports(pc) if d.transport.state != "closed"]
    if not live or any(ice.iceGatherer.getLocalCandidates() for ice in live):
        return None
    if policy == "relay":
        servers = ("no TURN server is configured (service.ice_servers)" if not ice_servers else
                   f"none of the {ice_servers} configured ICE servers gave a relay address "
                   "(unreachable, or wrong credentials)")
        return (f'ICE cannot start: the service offers TURN relay candidates only '
                f'(ice_transport_policy = "relay"), and {servers}')
    if not any(ice.getRemoteCandidates() for ice in live):
        # aioice drops a component the other end gave no usable candidate for, and then
        # gathers nothing for it: the cause is on the other side.
        return (f"ICE cannot start: {peer} sent no ICE candidate the service can use (none at "
                "all, or only of an address family the service does not use)")
    return "ICE cannot start: the service found no local address to offer"


# -- an offer that cannot be answered ----------------------------------------------------------

def codec_refusal(offer_sdp: str, *, peer: str = "the viewer") -> str | None:
    """The m-line aiortc refuses for want of a codec it can send, said as such; else None."""
    try:
        media_lines = sdp.SessionDescription.parse(offer_sdp).media
    except Exception:  # noqa: BLE001 (aiortc's parser raises anything, StopIteration too: fuzzing)
        return None
    for media in media_lines:
        try:
            if media.kind not in CODECS or find_common_codecs(CODECS[media.kind], media.rtp.codecs):
                continue
        except Exception:  # noqa: BLE001 (as above)
            continue
        offered = sorted({c.mimeType.split("/")[-1] for c in media.rtp.codecs})
        ours = dict.fromkeys(c.mimeType.split("/")[-1] for c in CODECS[media.kind] if not is_rtx(c))
        return (f"codec refused: {peer}'s {media.kind} m-line (mid {media.rtp.muxId}) offers "
                f"{', '.join(offered) or 'no codec'}; the service sends {', '.join(ours)}")
    return None


def offer_refusal(offer_sdp: str, exc: BaseException) -> str:
    """What to tell a viewer whose offer the service could not answer."""
    refused = codec_refusal(offer_sdp)
    if refused is not None:
        return refused
    if isinstance(exc, SensorlinkError):
        return str(exc)
    return f"bad offer: {type(exc).__name__}: {exc}"
