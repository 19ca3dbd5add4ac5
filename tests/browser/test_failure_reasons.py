"""What a person sees when Chromium's connection fails: the reason, on the dashboard.

The page and the service are the real ones; only the page's signaling is changed on its way, by
Playwright's websocket routing (the SDP rewrites of tests/offer_tampering.py), as a broken or
hostile middlebox would change it. Why these two failures: both are caused by the offer alone,
so they happen the same way on every run, whatever the machine's load or network:

- a fingerprint that does not match Chromium's certificate: the DTLS handshake completes (on
  Chromium's side too, its own check passes), then the service sees the mismatch and is the
  only one who can say so;
- a video m-line with no codec the service can send: the service refuses the offer, which the
  page used to count as an invalid message and then wait forever.

(An ICE failure would need Chromium's UDP blocked, or a TURN-only policy without TURN, which
Chromium itself reports only after its own ~30 s timeouts: slower, and a test of Chromium.)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from dashboard_support import RunningService, wait_page
from offer_tampering import only_unsendable_codec, rewrite_offer, wrong_fingerprint

WAIT_MS = 60_000


def open_with_changed_offers(new_page: Any, url: str, change: Callable[[str], str]) -> Any:
    page = new_page("about:blank")

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda message: server.send(
            rewrite_offer(message, change) if isinstance(message, str) else message))
    page.route_web_socket(re.compile(r"/ws$"), route)
    page.goto(url)
    return page


def shown_failure(page: Any, pattern: str) -> str:
    """Wait until the status panel's "Last failure" matches; return what it says."""
    wait_page(page, "new RegExp(arg).test(s.failure ?? '')", pattern, timeout=WAIT_MS)
    shown = page.get_by_test_id("link-failure")
    assert shown.is_visible()
    text = shown.inner_text()
    assert re.search(pattern, text), text
    assert "bad" in (shown.get_attribute("class") or "")
    return text


def test_a_fingerprint_mismatch_is_shown_with_the_services_reason(
        new_page: Any, service: RunningService) -> None:
    page = open_with_changed_offers(new_page, service.url, wrong_fingerprint)
    said = (r"DTLS failed: fingerprint mismatch: the viewer's certificate \(sha-256 [0-9A-F:…]+\) "
            r"is not the one its offer names")
    text = shown_failure(page, f"^connection failed: {said}")
    # Chromium's DTLS completed with the service's genuine certificate: the reason came from
    # the service, over signaling, and the service logged it.
    assert re.search(f"INFO sensorlink.webrtc.peer: viewer\\d+ \\(127.0.0.1\\): peer connection failed: "
                     f"{said}", service.log.read_text(errors="replace")), text
    assert page.evaluate("() => window.sensorlink.counts.readings") == 0
    # It keeps trying (a middlebox may go away) and says why each time, never "Live".
    wait_page(page, "['reconnecting', 'connecting', 'authenticating', 'negotiating', 'answering',"
                    " 'connecting-media'].includes(s.state)", timeout=WAIT_MS)


def test_an_offer_the_service_cannot_answer_is_shown_with_the_codec(
        new_page: Any, service: RunningService) -> None:
    change = functools.partial(only_unsendable_codec, kind="video")
    page = open_with_changed_offers(new_page, service.url, change)
    said = (r"codec refused: the viewer's video m-line \(mid \d+\) offers AV1; the service sends "
            r"VP8, H264")
    shown_failure(page, f"^service refused the offer: {said}")
    assert re.search(f"offer refused: {said}", service.log.read_text(errors="replace"))
    assert page.evaluate("() => window.sensorlink.invalid") == []  # an answer, not garbage
