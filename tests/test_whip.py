"""WHIP publish (RFC 9725) reaches an endpoint on a stack we did not write, with no extra encode.

No WHIP server ships in PyPI, Debian or npm (MediaMTX, LiveKit and simple-whip-server come from
GitHub releases, out of reach here), so the endpoint is a few lines of node in the test
(tests/node/whip_endpoint.mjs) over werift, a WebRTC stack in pure TypeScript: its own ICE,
DTLS, SRTP, RTP and WebM writer. What it received is decoded by FFmpeg (PyAV): frames of the
camera's size and audio above silence, per session.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sensorlink.config import SensorConfig, ServiceConfig
from sensorlink.config_whip import WhipConfig
from sensorlink.errors import ConfigError
from sensorlink.service import Service
from sensorlink.webrtc.viewer import connected_viewer
from sensorlink.webrtc.whip import WhipPublisher, plan_streams

from support import STILL_SENSORS, wait_for
from tracks_support import CAMERAS, sensor_configs
from whip_support import ScriptedEndpoint, WhipEndpoint, decode_tracks

TOKEN = "whip-service-token"
STREAM_KEY = "whip-stream-key-1"
SILENCE_DBFS = -60.0


def published(service: Service) -> WhipPublisher:
    return next(e for e in service.exporters if isinstance(e, WhipPublisher))


async def start_publishing(sensors: list[SensorConfig], url: str, token: str | None = STREAM_KEY,
                           audio: str | None = None) -> Service:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN), sensors=sensors,
                      source="test")
    service.exporters.append(WhipPublisher(service, WhipConfig(url=url, token=token, audio=audio)))
    await service.start()
    return service


@pytest.mark.parametrize("order", ["cameras-first", "interleaved"])
async def test_each_camera_is_published_with_its_microphone_and_no_extra_encode(
        tmp_path: Path, order: str) -> None:
    endpoint = WhipEndpoint(tmp_path / "received", token=STREAM_KEY)
    port = await endpoint.start()
    service = await start_publishing(sensor_configs(order),
                                     f"whip://127.0.0.1:{port}/plant/{{sensor}}/whip", audio="mic-b")
    try:
        publisher = published(service)
        await wait_for(lambda: publisher.status()["state"] == "connected", 45,
                       f"every WHIP session connected ({publisher.status()})")
        assert sorted(e["path"] for e in endpoint.matching(lambda e: e["event"] == "session")) \
            == [f"/plant/{camera}/whip" for camera in sorted(CAMERAS)]
        host, sport = service.bound
        async with connected_viewer(f"http://{host}:{sport}/#token={TOKEN}") as viewer:
            await wait_for(lambda: all(viewer.video_frames[c] >= 3 for c in CAMERAS), 30,
                           "the viewer's video")
            # One encode per frame for the viewer and the WHIP session together: every packet
            # the encoder made went to both, and it made no more than one per frame.
            for camera in CAMERAS:
                encoder = service.cameras[camera].encoder
                tracks = list(encoder._tracks)
                assert len(tracks) == 2, (camera, tracks)  # the viewer's and the publisher's
                before = (encoder.frames_encoded, [t.delivered for t in tracks])
                await wait_for(lambda: encoder.frames_encoded >= before[0] + 30, 30, "30 encodes")
                encoded = encoder.frames_encoded - before[0]
                assert [t.delivered - d for t, d in zip(tracks, before[1])] == [encoded, encoded]
    finally:
        await service.stop()  # DELETEs every session: the endpoint finishes its files
    deleted = [await endpoint.wait_for(lambda e: e["event"] == "deleted", "DELETE", count=n)
               for n in (1, 2)]
    await endpoint.stop()
    assert not endpoint.matching(lambda e: e["event"] in ("refused", "error"))
    for event in deleted:
        camera = event["path"].split("/")[2]
        received = decode_tracks(event["file"])
        # werift's recorder starts at a keyframe (every 2 s) and drops what its jitter buffer
        # could not order, so it holds fewer frames than were sent: most of them, decodable.
        assert received.frames >= 10, (camera, received)
        assert set(received.video_sizes) == {service.cameras[camera].video_size}, camera
        assert received.audio_dbfs > SILENCE_DBFS, (camera, received.audio_dbfs)


async def test_the_publish_reconnects_when_the_endpoint_comes_back(tmp_path: Path) -> None:
    endpoint = WhipEndpoint(tmp_path / "first")
    port = await endpoint.start()
    service = await start_publishing(STILL_SENSORS, f"http://127.0.0.1:{port}/live", token=None)
    try:
        publisher = published(service)
        await wait_for(lambda: publisher.status()["state"] == "connected", 45, "connected")
        await endpoint.stop()  # closes its peer connections, as a restarting server does
        await wait_for(lambda: publisher.status()["state"] != "connected", 45, "the loss seen")
        again = WhipEndpoint(tmp_path / "second")
        await again.start(port)
        await wait_for(lambda: publisher.status()["connects"] == 2
                       and publisher.status()["state"] == "connected", 60,
                       f"connected again ({publisher.status()})")
        status = service.status_message()["exports"]
        assert [(e["kind"], e["state"], e["connects"]) for e in status] == [("whip", "connected", 2)]
        encoder = service.cameras["cam"].encoder
        sent = encoder.frames_encoded
        await wait_for(lambda: encoder.frames_encoded >= sent + 40, 30, "40 frames to the new one")
    finally:
        await service.stop()
    deleted = await again.wait_for(lambda e: e["event"] == "deleted", "DELETE")
    await again.stop()
    assert decode_tracks(deleted["file"]).frames >= 10


async def test_a_refused_token_shows_in_the_exports_and_is_retried(tmp_path: Path) -> None:
    endpoint = WhipEndpoint(tmp_path / "received", token=STREAM_KEY)
    port = await endpoint.start()
    service = await start_publishing(STILL_SENSORS, f"whip://127.0.0.1:{port}/live",
                                     token="not-the-stream-key")
    try:
        publisher = published(service)
        await endpoint.wait_for(lambda e: e["event"] == "refused", "a second refused POST", count=2)
        status = publisher.status()
        assert status["state"] in ("disconnected", "connecting") and "401" in status["detail"]
        assert endpoint.matching(lambda e: e["event"] == "refused")[0]["authorization"] \
            == "Bearer not-the-stream-key"
    finally:
        await service.stop()
        await endpoint.stop()


def test_several_cameras_need_a_sensor_placeholder() -> None:
    with pytest.raises(ConfigError, match=r"\{sensor\}") as caught:
        plan_streams(WhipConfig(url="whip://h/live"), ["cam-a", "cam-b"], ["mic"])
    assert caught.value.field == "whip.url"
    with pytest.raises(ConfigError, match="no microphone named 'mic-z'"):
        plan_streams(WhipConfig(url="whip://h/{sensor}", audio="mic-z"), ["cam-a"], ["mic"])
    streams = plan_streams(WhipConfig(url="whips://h:8443/{sensor}/whip", audio="none"),
                           ["cam a", "cam-b"], ["mic"])
    assert [(s.endpoint, s.video, s.audio) for s in streams] == [
        ("https://h:8443/cam%20a/whip", "cam a", None), ("https://h:8443/cam-b/whip", "cam-b", None)]
    # No camera: the microphone alone.
    assert [(s.video, s.audio) for s in plan_streams(WhipConfig(url="http://h/x"), [], ["m"])] \
        == [(None, "m")]


async def test_demo_publishes_with_the_token_from_the_environment(tmp_path: Path) -> None:
    endpoint = WhipEndpoint(tmp_path / "received", token=STREAM_KEY)
    port = await endpoint.start()
    env = {**os.environ, "SENSORLINK_WHIP_TOKEN": STREAM_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "sensorlink.cli", "demo", "--listen",
                             "127.0.0.1:0", "--publish", f"whip://127.0.0.1:{port}/demo"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "err").open("wb"))
    try:
        await endpoint.wait_for(lambda e: e["event"] == "state" and e["state"] == "connected",
                                "the demo connected")
        session = endpoint.matching(lambda e: e["event"] == "session")[0]
        assert session["path"] == "/demo" and sorted(session["kinds"]) == ["audio", "video"]
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
    await endpoint.wait_for(lambda e: e["event"] == "deleted", "the demo's DELETE on SIGTERM")
    await endpoint.stop()


@pytest.mark.parametrize(("status", "headers", "body", "expected"), [
    (404, {"Content-Type": "text/plain"}, b"stream not found", "404 stream not found (no WHIP endpoint"),
    (201, {"Content-Type": "application/sdp", "Location": "/s/1"}, b"v=0\r\nnot an answer\r\n",
     "answer is not usable SDP"),
    (201, {"Content-Type": "application/sdp"}, b"v=0\r\n", "201 without a Location header"),
    (201, {"Content-Type": "text/html", "Location": "/s/1"}, b"<html>", "not an application/sdp"),
], ids=["404", "bad-answer", "no-location", "not-sdp"])
async def test_a_broken_endpoint_is_named_in_the_status_and_retried(
        status: int, headers: dict[str, str], body: bytes, expected: str) -> None:
    endpoint = ScriptedEndpoint(status, headers, body)
    try:
        service = await start_publishing(STILL_SENSORS, f"whip://127.0.0.1:{endpoint.port}/live")
        try:
            publisher = published(service)
            await wait_for(lambda: len(endpoint.posts) >= 2, 45, "a retried POST")
            await wait_for(lambda: expected in publisher.status()["detail"], 10,
                           f"{expected!r} in {publisher.status()}")
            assert publisher.status()["state"] in ("disconnected", "connecting")
            assert publisher.status()["connects"] == 0
            post = endpoint.posts[0]
            assert (post["path"], post["content-type"], post["authorization"]) == \
                ("/live", "application/sdp", f"Bearer {STREAM_KEY}")
        finally:
            await service.stop()
    finally:
        endpoint.close()


def test_the_token_comes_from_a_file_or_the_environment_before_the_config(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import argparse

    from sensorlink.commands._publishing import TOKEN_ENV, add_publishers

    def publisher(publish: str | None, audio: str | None, whip: WhipConfig | None,
                  token_file: Path | None = None) -> WhipConfig:
        service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN),
                          sensors=STILL_SENSORS, source="test")
        add_publishers(service, argparse.Namespace(
            publish=publish, publish_audio=audio, publish_token_file=token_file), whip)
        return published(service).config

    config = WhipConfig(url="whip://h/live", token="from-file", audio="mic")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert publisher(None, None, config) == config
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert publisher(None, None, config) == WhipConfig("whip://h/live", "from-env", "mic")
    # --publish and --publish-audio win over the file's url and audio; the token stays.
    assert publisher("whips://other/x", "none", config) == \
        WhipConfig("whips://other/x", "from-env", "none")
    key = tmp_path / "stream-key"
    key.write_text("from-file-arg\n", encoding="utf-8")
    assert publisher(None, None, config, key).token == "from-file-arg"
    monkeypatch.delenv(TOKEN_ENV)
    assert publisher("whip://h/y", None, None) == WhipConfig("whip://h/y", None, None)
    for bad, reason in ((tmp_path / "missing", "cannot read"), (tmp_path / "empty", "no token")):
        if reason == "no token":
            bad.write_text("\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=reason) as caught:
            publisher("whip://h/y", None, None, bad)
        assert caught.value.field == "publish-token-file"
