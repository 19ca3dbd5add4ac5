"""Every camera and every microphone reaches the Python viewer (``sensorlink view``), whatever
the order of the sensors in the config, and with or without BUNDLE.

The service answers and the viewer offers, both on aiortc: both ends of the bundling are ours.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sensorlink.config import ServiceConfig
from sensorlink.service import Service
from sensorlink.webrtc.ice import bundle_as_offered, offered_bundle
from sensorlink.webrtc.viewer import Viewer, connected_viewer

from support import wait_for
from tracks_support import (
    CAMERAS, LOUDER_DB, MICROPHONES, json_line_where, sensor_configs, sensors_toml,
)

TOKEN = "every-track-token"
SILENCE_DBFS = -60.0


def every_track_arrived(viewer: Viewer) -> bool:
    return (all(viewer.video_frames[c] >= 5 and c in viewer.last_video for c in CAMERAS)
            and all(viewer.audio_frames[m] >= 25 for m in MICROPHONES))


def assert_every_track_is_its_sensor(viewer: Viewer, service: Service) -> None:
    assert sorted(viewer.tracks.values()) == sorted(CAMERAS + MICROPHONES)
    for camera in CAMERAS:
        width, height = service.cameras[camera].video_size
        assert viewer.last_video[camera].shape == (height, width, 3), camera
    levels = viewer.audio_dbfs
    assert all(levels[m] > SILENCE_DBFS for m in MICROPHONES), levels
    # Each track carries its own microphone: the louder source is the louder track.
    assert abs(levels["mic-a"] - levels["mic-b"] - LOUDER_DB) < 6.0, levels


@pytest.mark.parametrize("bundle", [True, False], ids=["bundle", "no-bundle"])
@pytest.mark.parametrize("order", ["cameras-first", "microphones-first", "interleaved"])
async def test_every_camera_and_microphone_reaches_the_viewer(order: str, bundle: bool) -> None:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN),
                      sensors=sensor_configs(order), source="test")
    await service.start()
    try:
        host, port = service.bound
        async with connected_viewer(f"http://{host}:{port}/#token={TOKEN}", keep_video=True,
                                    bundle=bundle) as viewer:
            await wait_for(lambda: every_track_arrived(viewer), 30,
                           f"video from {CAMERAS} and audio from {MICROPHONES}")
            assert_every_track_is_its_sensor(viewer, service)
            # Our answer bundles what the offer bundled and nothing else (RFC 8843).
            (session,) = service.viewers
            answer = session.pc.localDescription.sdp
            offer_group = offered_bundle(session.pc.remoteDescription.sdp)
            assert offered_bundle(answer) == offer_group
            assert (offer_group is not None and len(offer_group) == 5) is bundle
            assert " 9 UDP/TLS/RTP/SAVPF" not in answer  # no m-line left on a stopped transport
    finally:
        await service.stop()


def test_the_answer_bundles_only_what_the_offer_bundled_in_the_offer_s_order() -> None:
    answer = "v=0\r\na=group:BUNDLE 0 1 2 3\r\nm=audio 9 x\r\na=mid:0\r\n"
    partial = "v=0\r\na=group:BUNDLE 2 0\r\nm=audio 9 x\r\n"
    assert offered_bundle(bundle_as_offered(partial, answer)) == ["2", "0"]
    unbundled = bundle_as_offered("v=0\r\nm=audio 9 x\r\n", answer)
    assert offered_bundle(unbundled) is None and unbundled.endswith("a=mid:0\r\n")
    # a group attribute of a media section is not the session's BUNDLE group
    assert offered_bundle("v=0\r\nm=audio 9 x\r\na=group:BUNDLE 0\r\n") is None


async def test_sensorlink_view_reports_every_track_and_its_level(tmp_path: Path) -> None:
    config = tmp_path / "plant.toml"
    config.write_text(f'[service]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n\n'
                      + sensors_toml("alternating"))
    service = subprocess.Popen([sys.executable, "-m", "sensorlink.cli", "run", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    view = None
    try:
        assert service.stdout is not None
        url = await asyncio.to_thread(_dashboard_url, service.stdout)
        view = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sensorlink.cli", "view", url, "--json", "--quiet-readings",
            stdout=asyncio.subprocess.PIPE)
        assert view.stdout is not None
        media = await asyncio.wait_for(json_line_where(view.stdout, _every_track_counted,
                                                       "every track had arrived"), 60)
        assert set(media["video_frames"]) == set(CAMERAS)
        levels = media["audio_dbfs"]
        assert all(levels[m] > SILENCE_DBFS for m in MICROPHONES), levels
        assert abs(levels["mic-a"] - levels["mic-b"] - LOUDER_DB) < 6.0, levels
    finally:
        if view is not None and view.returncode is None:
            view.terminate()
            await view.wait()
        service.terminate()
        service.wait(20)


def _dashboard_url(stdout: object) -> str:
    for line in stdout:  # type: ignore[attr-defined]
        if "Dashboard: " in line:
            return line.split("Dashboard: ", 1)[1].strip()
    raise AssertionError("the service printed no dashboard URL")


def _every_track_counted(event: dict[str, Any]) -> bool:
    return (event.get("event") == "media" and all(event["video_frames"].get(c, 0) >= 5 for c in CAMERAS)
            and all(event["audio_frames"].get(m, 0) >= 25 for m in MICROPHONES))
