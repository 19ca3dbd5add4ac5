"""What our DTLS offers: ECDHE suites for a peer whose certificate is ECDSA *or* RSA.

aiortc 1.16 (``RTCCertificate._create_ssl_context`` in aiortc/rtcdtlstransport.py) sets the
cipher list to four ECDHE-ECDSA suites only. In (D)TLS 1.2 the suite also names the kind of
key the *server's* certificate holds. sensorlink always answers, with ``a=setup:active``, so
aiortc is the DTLS client and the viewer the server: a viewer with an RSA certificate (GStreamer
webrtcbin's default, and any stack configured so) finds no suite it may use and ends the
handshake with "no shared cipher". The same suites with RSA (the ones browsers offer) fix that.

Our own certificate stays ECDSA: when aiortc is the server it can only pick an ECDSA suite,
and as the client its certificate is checked against the signature algorithms the server asks
for, where OpenSSL's defaults accept ECDSA and RSA alike; so only the list needed widening.

A patch of aiortc, so it is installed only on the aiortc versions it was checked against
(``CHECKED``); on any other version aiortc is left alone and tests/test_gstreamer_peer.py says
whether that version still needs it.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

#: aiortc releases whose DTLS offers ECDHE-ECDSA only, checked by reading rtcdtlstransport.py
CHECKED = ("1.16.",)
#: ECDSA first (what aiortc offered), then the same suites for an RSA certificate
CIPHERS = b":".join([
    b"ECDHE-ECDSA-AES128-GCM-SHA256", b"ECDHE-RSA-AES128-GCM-SHA256",
    b"ECDHE-ECDSA-CHACHA20-POLY1305", b"ECDHE-RSA-CHACHA20-POLY1305",
    b"ECDHE-ECDSA-AES128-SHA", b"ECDHE-RSA-AES128-SHA",
    b"ECDHE-ECDSA-AES256-SHA", b"ECDHE-RSA-AES256-SHA",
])

_installed = False


def accept_rsa_peers() -> bool:
    """Make aiortc's DTLS contexts offer and accept ECDHE-RSA suites too; True when active.

    Idempotent; called before every peer connection sensorlink creates (ice.rtc_configuration).
    """
    global _installed
    if _installed:
        return True
    version = metadata.version("aiortc")
    if not version.startswith(CHECKED):
        log.debug("aiortc %s: DTLS cipher list left as aiortc sets it", version)
        return False
    from aiortc.rtcdtlstransport import RTCCertificate

    original = RTCCertificate._create_ssl_context

    def create_ssl_context(self: Any, srtp_profiles: Any) -> Any:
        context = original(self, srtp_profiles)
        context.set_cipher_list(CIPHERS)
        return context

    RTCCertificate._create_ssl_context = create_ssl_context  # type: ignore[method-assign]
    _installed = True
    return True
