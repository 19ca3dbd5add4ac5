"""Every camera and every microphone reaches headless Chromium, in several orders of the
config's sensors, with Chromium's default bundling, with max-bundle and with no BUNDLE at all.

Chromium offers, the service (aiortc) answers. What arrived is read two ways: the dashboard's
own per-camera counters (frames the <video> of that camera's panel presented, and its size) and
Chromium's getStats() per inbound RTP stream (framesDecoded; totalAudioEnergy, which is zero for
silence). A harness script, loaded before the page's own, only records the page's peer
connection and its stats, and for the bundling variants sets Chromium's bundle policy or takes
the BUNDLE group out of the offer before Chromium applies it, as a peer that does not bundle
sends it. The dashboard's code runs unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard_support import RunningService, wait_page
from multi_support import start_run
from tracks_support import CAMERAS, LOUDER_DB, MICROPHONES, sensors_toml

pytestmark = pytest.mark.browser

TOKEN = "every-track-operator"
WAIT_MS = 45_000

HARNESS = """
(() => {
  const options = window.__harness;
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.__stats = { inbound: [], transports: 0 };
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}, ...rest) {
      super({ ...config, ...options.config }, ...rest);
      window.__pcs.push(this);
    }
  };
  if (options.strip_bundle) {
    const apply = Native.prototype.setLocalDescription;
    Native.prototype.setLocalDescription = function (desc) {
      if (desc && desc.type === "offer") {
        desc = { type: "offer", sdp: desc.sdp.replace(/a=group:BUNDLE[^\\r\\n]*\\r\\n/, "") };
      }
      return apply.call(this, desc);
    };
  }
  setInterval(async () => {
    const pc = window.__pcs[window.__pcs.length - 1];
    if (!pc) return;
    const inbound = [];
    let transports = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp") {
        inbound.push({ kind: s.kind, mid: s.mid, frames_decoded: s.framesDecoded ?? 0,
                       width: s.frameWidth ?? 0, energy: s.totalAudioEnergy ?? 0,
                       duration: s.totalSamplesDuration ?? 0,
                       concealed: s.concealedSamples ?? 0, received: s.totalSamplesReceived ?? 0 });
      } else if (s.type === "transport" && s.dtlsState === "connected") {
        transports++;
      }
    });
    window.__stats = { inbound, transports, connection: pc.connectionState,
                       offer: pc.localDescription?.sdp ?? "" };
  }, 250);
})();
"""

VARIANTS = {
    # (order of the sensors, Chromium's RTCConfiguration additions, strip BUNDLE from the offer)
    "cameras-first": ("cameras-first", {}, False),
    "microphones-first": ("microphones-first", {}, False),
    "interleaved": ("interleaved", {}, False),
    "interleaved-max-bundle": ("interleaved", {"bundlePolicy": "max-bundle"}, False),
    "alternating-no-bundle": ("alternating", {}, True),
}


@pytest.fixture
def plant(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningService]:
    order = VARIANTS[request.node.callspec.params["variant"]][0]
    config = f'[service]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n\n{sensors_toml(order)}'
    running = start_run(tmp_path / "plant", config)
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_track_reaches_chromium(variant: str, plant: RunningService, browser: Any) -> None:
    _, config, strip_bundle = VARIANTS[variant]
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        harness = {"config": config, "strip_bundle": strip_bundle}
        context.add_init_script(script=f"window.__harness = {json.dumps(harness)};\n{HARNESS}")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        answers: list[dict[str, Any]] = []

        def on_socket(ws: Any) -> None:
            def received(payload: str | bytes) -> None:
                message = json.loads(payload)
                if message.get("type") == "answer":
                    answers.append(message)
            ws.on("framereceived", received)
        page.on("websocket", on_socket)
        page.goto(plant.url_with(TOKEN))
        wait_page(page, "s.state === 'live' && window.__stats?.connection === 'connected'"
                        " && (window.__stats.inbound ?? []).filter((x) => x.kind === 'video'"
                        "      && x.frames_decoded >= 5).length === arg[0].length"
                        " && (window.__stats.inbound ?? []).filter((x) => x.kind === 'audio'"
                        "      && x.energy > 0 && x.duration > 1).length === arg[1].length"
                        " && arg[0].every((c) => (s.cameras[c]?.video.frames ?? 0) >= 5)",
                  [list(CAMERAS), list(MICROPHONES)], timeout=WAIT_MS)
        stats = page.evaluate("() => window.__stats")
        cameras = page.evaluate("() => window.sensorlink.cameras")
        (answer,) = answers
        sensor_of = answer["tracks"]
        inbound = {sensor_of[s["mid"]]: s for s in stats["inbound"]}
        assert set(inbound) == set(CAMERAS) | set(MICROPHONES)
        # Each camera's panel shows a picture of that camera's size (they differ), decoded.
        for camera in CAMERAS:
            assert inbound[camera]["kind"] == "video"
            assert cameras[camera]["video"]["width"] == inbound[camera]["width"] > 0
        assert cameras["cam-a"]["video"]["width"] != cameras["cam-b"]["video"]["width"]
        # Each microphone's track carries sound, and its own: mic-a's source is the louder one.
        # The level of what arrived: the jitter buffer's concealment (near-silence it plays when
        # packets come late, as on a loaded machine) counts in totalSamplesDuration but is not
        # the track's sound, so the duration is that of the samples received (spec: received
        # includes concealed).
        level = {m: 10 * math.log10(inbound[m]["energy"] / (inbound[m]["duration"] * max(
            1e-3, 1 - inbound[m]["concealed"] / max(inbound[m]["received"], 1))))
            for m in MICROPHONES}
        assert abs(level["mic-a"] - level["mic-b"] - LOUDER_DB) < 6.0, level
        # What the variant is about really happened: one transport when bundled, one per
        # m-line (4 media + data) when not.
        bundled = "a=group:BUNDLE" in stats["offer"]
        assert bundled is not strip_bundle
        assert ("a=group:BUNDLE" in answer["sdp"]) is bundled
        assert stats["transports"] == (1 if bundled else 5), stats
        assert " 9 UDP/TLS/RTP/SAVPF" not in answer["sdp"]
        assert errors == []
    finally:
        context.close()
