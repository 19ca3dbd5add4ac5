"""A WHEP player in headless Chromium plays each camera and its microphone from the service.

The player (whep_player.html) is a few lines of standard browser JavaScript, RTCPeerConnection
and fetch, as a page on another origin would write it; the test serves it from an origin of its
own, so every request crosses origins (the Authorization header forces a CORS preflight). What
Chromium decoded is read from getStats(): framesDecoded and frameWidth per video stream,
totalAudioEnergy per audio stream (zero for silence). Two cameras of different sizes and two
microphones 18 dB apart, in two orders of the config: pulling each camera gives that camera
(its width), and ``?audio=`` that microphone (its level).
"""

from __future__ import annotations

import http.server
import math
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard_support import RunningService
from multi_support import free_port, service_config, start_run
from sensorlink.colormap import upscale_factor
from tracks_support import LOUDER_DB, SENSORS, sensors_toml

pytestmark = pytest.mark.browser

TOKEN = "whep-operator-token"
VIEWER = "whep-viewer-token"
WAIT_MS = 45_000
PLAYER = Path(__file__).with_name("whep_player.html")


def video_width(camera: str) -> int:
    options = SENSORS[camera][1]
    width = options["width"] * upscale_factor(options["width"], options["height"])
    return width + width % 2


@pytest.fixture(scope="module")
def player_origin() -> Iterator[str]:
    """The player page, served from an origin that is not the service's."""
    page = PLAYER.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/player.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module", params=["cameras-first", "interleaved"])
def whep_service(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, str]]:
    port = free_port()
    config = service_config(listen="127.0.0.1:0", token=TOKEN, viewer_token=VIEWER,
                            sensors=sensors_toml(request.param),
                            extra=f'[whep]\nlisten = "127.0.0.1:{port}"\n')
    running = start_run(tmp_path_factory.mktemp(f"whep-{request.param}"), config)
    try:
        yield running, f"http://127.0.0.1:{port}/whep/"
    finally:
        running.stop()


@pytest.fixture
def player(browser: Any, player_origin: str) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(player_origin)
    try:
        yield page
    finally:
        context.close()


def wait_player(page: Any, name: str, condition: str) -> dict[str, Any]:
    """Player ``name``'s stats once ``condition`` (JavaScript over ``s``, its stats) holds."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.wait_for_function(f"(name) => {{ const s = window.players[name]?.stats; "
                               f"return s !== undefined && !!({condition}); }}",
                               arg=name, timeout=WAIT_MS)
    except PlaywrightTimeout as exc:
        raise AssertionError(f"waited for {condition!r}; the player: " + repr(page.evaluate(
            "(name) => { const p = window.players[name]; return { stats: p?.stats, "
            "status: p?.status, error: p?.error, patches: p?.patches }; }", name))) from exc
    return page.evaluate("(name) => window.whepStats(name)", name)


def wait_playing(page: Any, name: str, frames: int = 20) -> dict[str, Any]:
    """Stats of player ``name`` once it decoded ``frames`` video frames and received audio
    packets that are not silence."""
    return wait_player(page, name, f"s.video?.frames_decoded >= {frames} && "
                                   "s.audio?.packets >= 50 && s.audio?.energy > 0")


def test_a_whep_player_plays_a_camera_and_its_microphone_then_delete_ends_it(
        whep_service: tuple[RunningService, str], player: Any) -> None:
    _, base = whep_service
    status = player.evaluate("([u, t]) => window.whepPlay('p', u, t)", [base + "cam-a", VIEWER])
    assert status == 201, player.evaluate("() => window.players.p.error")
    answer = player.evaluate("() => window.players.p.answer")
    # One MediaStream for both tracks (WHEP), so event.streams[0] carries picture and sound.
    assert len({line.split()[0] for line in answer.splitlines() if line.startswith("a=msid:")}) == 1
    assert answer.count("a=sendonly") == 2 and "a=candidate:" in answer
    stats = wait_playing(player, "p")
    assert stats["video"]["width"] == video_width("cam-a")
    assert player.evaluate("() => window.whepStop('p', 'whep-viewer-token')") == 200
    # The session is gone on the service: its URL no longer exists, and the peer connection
    # the service closed leaves Chromium's "connected" state.
    location = player.evaluate("() => window.players.p.location")
    assert delete(location, VIEWER) == 404
    wait_player(player, "p", "s.state !== 'connected'")


def test_each_camera_with_the_microphone_asked_for(whep_service: tuple[RunningService, str],
                                                   player: Any) -> None:
    _, base = whep_service
    for name, path in (("a", "cam-a?audio=mic-a"), ("b", "cam-b?audio=mic-b")):
        assert player.evaluate("([n, u, t]) => window.whepPlay(n, u, t)",
                               [name, base + path, TOKEN]) == 201
    a, b = wait_playing(player, "a"), wait_playing(player, "b")
    assert (a["video"]["width"], b["video"]["width"]) == (video_width("cam-a"), video_width("cam-b"))
    assert a["video"]["width"] != b["video"]["width"]
    # Mean power (energy per second of audio): mic-a is 18 dB louder than mic-b.
    louder_db = 10 * math.log10((a["audio"]["energy"] / a["audio"]["duration"])
                                / (b["audio"]["energy"] / b["audio"]["duration"]))
    assert louder_db > LOUDER_DB / 2, louder_db
    for name in ("a", "b"):
        assert player.evaluate("(n) => window.whepStop(n, 'whep-operator-token')", name) == 200


def test_a_player_that_trickles_its_candidates(whep_service: tuple[RunningService, str],
                                               player: Any) -> None:
    _, base = whep_service
    assert player.evaluate("([u, t]) => window.whepPlay('t', u, t, { trickle: true })",
                           [base + "cam-b", TOKEN]) == 201
    assert player.evaluate("() => window.players.t.patches") == [204]
    assert wait_playing(player, "t")["video"]["width"] == video_width("cam-b")
    assert player.evaluate("() => window.whepStop('t', 'whep-operator-token')") == 200


def test_a_wrong_token_is_refused_before_any_peer_connection(
        whep_service: tuple[RunningService, str], player: Any) -> None:
    _, base = whep_service
    assert player.evaluate("([u, t]) => window.whepPlay('w', u, t)",
                           [base + "cam-a", "not-the-token"]) == 401
    assert player.evaluate("([u, t]) => window.whepPlay('x', u, t)",
                           [base + "no-such-camera", TOKEN]) == 404
    assert "cam-a" in player.evaluate("() => window.players.x.error")


def delete(url: str, token: str) -> int:
    """DELETE with the standard library's client (not ours); the status."""
    request = urllib.request.Request(url, method="DELETE",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
