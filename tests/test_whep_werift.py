"""The WHEP endpoint serves players on a WebRTC stack we did not write, and DELETE leaves nothing.

The players are werift (tests/node/whep_client.mjs: pure TypeScript ICE, DTLS, SRTP, RTP, and
node's fetch), one per camera at once, each with another microphone; what each recorded is
decoded by FFmpeg (PyAV). The service runs in this process, so after the DELETEs its asyncio
tasks, threads and file descriptors are counted against what they were before the players
came. The browser side (standard JavaScript in Chromium) is tests/browser/test_whep.py.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sensorlink.config import ServiceConfig
from sensorlink.config_whip import WhepConfig
from sensorlink.service import Service
from sensorlink.webrtc.whep import WhepServer

from leak_support import back_to, counts
from support import wait_for
from tracks_support import LOUDER_DB, sensor_configs
from whip_support import WhepPlayer, decode_tracks

TOKEN = "whep-werift-token"
SILENCE_DBFS = -60.0
PLAYS = {"cam-a": "mic-a", "cam-b": "mic-b"}


def post_status(url: str, headers: dict[str, str]) -> int:
    """POST an offer-shaped body with the standard library's client; the status."""
    request = urllib.request.Request(url, data=b"v=0\r\n", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("order", ["cameras-first", "interleaved"])
async def test_werift_players_get_each_camera_and_delete_restores_every_count(
        tmp_path: Path, order: str) -> None:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN,
                                    whep=WhepConfig(host="127.0.0.1", port=0)),
                      sensors=sensor_configs(order), source="test")
    await service.start()
    whep = next(e for e in service.exporters if isinstance(e, WhepServer))
    players = {camera: WhepPlayer() for camera in PLAYS}
    try:
        baseline, baseline_tasks = counts(), set(asyncio.all_tasks())
        sdp = {"Content-Type": "application/sdp"}
        assert await asyncio.to_thread(post_status, whep.url + "cam-a", sdp) == 401
        assert await asyncio.to_thread(post_status, whep.url + "cam-a",
                                       {**sdp, "Authorization": "Bearer wrong"}) == 401
        for camera, mic in PLAYS.items():
            status = await players[camera].play(f"{whep.url}{camera}?audio={mic}", TOKEN,
                                                tmp_path / f"{camera}.webm")
            assert status == 201, players[camera].events
        for camera, player in players.items():
            await player.wait_for(lambda e: e["event"] == "rtp" and e["video"] >= 100
                                  and e["audio"] >= 100, f"{camera}'s RTP")
        assert whep.status()["players"] == 2
        # Each player is one more subscriber of its camera's shared encoder: no encoder of its own.
        for camera in PLAYS:
            assert len(service.cameras[camera].encoder._tracks) == 1, camera
        deleted = {camera: await player.delete() for camera, player in players.items()}
        assert {c: d["status"] for c, d in deleted.items()} == {c: 200 for c in PLAYS}
        await wait_for(lambda: whep.status()["players"] == 0, 30, "no WHEP session left")
        assert all(not service.cameras[c].encoder._tracks for c in PLAYS)
        await back_to(baseline, baseline_tasks)
    finally:
        for player in players.values():
            await player.stop()
        await service.stop()
    received = {camera: decode_tracks(d["file"]) for camera, d in deleted.items()}
    for camera, got in received.items():
        assert got.frames >= 10, (camera, got)
        assert set(got.video_sizes) == {service.cameras[camera].video_size}, camera
        assert got.audio_dbfs > SILENCE_DBFS, (camera, got.audio_dbfs)
    # cam-a came with mic-a, 18 dB louder than cam-b's mic-b: each got the microphone it asked for.
    assert received["cam-a"].audio_dbfs - received["cam-b"].audio_dbfs > LOUDER_DB / 2
