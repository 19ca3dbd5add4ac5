"""A viewer on GStreamer's webrtcbin, with its default RSA certificate, gets everything.

webrtcbin (Debian's GStreamer 1.22, libnice, libsrtp, OpenSSL) is neither aiortc nor Chromium:
it runs in a child process under Debian's own Python (tests/gst_webrtc_viewer.py), speaks our
signaling over the websocket, offers (with BUNDLE, and once without), and decodes VP8, Opus
and the msgpack readings itself. Before sensorlink.webrtc.dtls, its RSA certificate ended every
handshake with "no shared cipher".
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sensorlink.config import ServiceConfig
from sensorlink.service import Service

from tracks_support import CAMERAS, LOUDER_DB, MICROPHONES, json_line_where, sensor_configs

SYSTEM_PYTHON = "/usr/bin/python3"
HARNESS = Path(__file__).with_name("gst_webrtc_viewer.py")
TOKEN = "gstreamer-token"
SILENCE_DBFS = -60.0


def harness_env() -> dict[str, str]:
    """The environment without the venv's: the child must use Debian's Python packages."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def everything_arrived(event: dict[str, Any]) -> bool:
    if event["event"] == "failed":
        raise AssertionError(f"webrtcbin failed: {event}")
    if event["event"] != "counts":
        return False
    audio = event["audio"]
    return (all(event["video_frames"].get(c, 0) >= 10 for c in CAMERAS)
            and all(audio.get(m, {}).get("frames", 0) >= 50 for m in MICROPHONES)
            and event["readings"] >= 300)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("bundle", ["max-bundle", "none"])
async def test_webrtcbin_with_its_rsa_certificate_receives_video_audio_and_readings(
        bundle: str, tmp_path: Path) -> None:
    assert Path(SYSTEM_PYTHON).exists(), "needs Debian's python3 with GStreamer: scripts/setup.sh --browser"
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN),
                      sensors=sensor_configs("interleaved"), source="test")
    await service.start()
    stderr = tmp_path / "webrtcbin.err"
    child = None
    try:
        host, port = service.bound
        child = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, str(HARNESS), f"ws://{host}:{port}/ws", TOKEN, "--bundle", bundle,
            stdout=asyncio.subprocess.PIPE, stderr=stderr.open("wb"), env=harness_env())
        assert child.stdout is not None
        try:
            offer = await asyncio.wait_for(json_line_where(
                child.stdout, lambda e: e["event"] == "offer", "its offer"), 60)
            counts = await asyncio.wait_for(json_line_where(
                child.stdout, everything_arrived, "video, audio and readings arrived"), 90)
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"{exc}; webrtcbin's stderr:\n"
                                 f"{stderr.read_text(errors='replace')[-3000:]}") from exc
        # It offered as a peer that bundles, or as one that does not.
        assert ("a=group:BUNDLE" in offer["sdp"]) is (bundle == "max-bundle")
        # The peer really is an RSA one, and we are the DTLS client that had to accept it.
        (session,) = service.viewers
        dtls = session.pc.sctp.transport
        assert dtls._role == "client"
        assert isinstance(dtls._ssl.get_peer_certificate().to_cryptography().public_key(),
                          rsa.RSAPublicKey)
        assert dtls._ssl.get_cipher_name().startswith("ECDHE-RSA-")
        # Readings: from every sensor, in order, none missing.
        assert counts["seq_gaps"] == 0, counts
        assert {"probes/t0", "probes/t1", "cam-a/ambient", "cam-b/ambient", "mic-a/level",
                "mic-b/level", "mic-a/doa", "mic-b/doa"} <= set(counts["streams"]), counts
        # Audio: each microphone's own sound, decoded from Opus by GStreamer.
        levels = {m: counts["audio"][m]["dbfs"] for m in MICROPHONES}
        assert all(level > SILENCE_DBFS for level in levels.values()), levels
        assert abs(levels["mic-a"] - levels["mic-b"] - LOUDER_DB) < 6.0, levels
    finally:
        if child is not None and child.returncode is None:
            child.terminate()
            await child.wait()
        await service.stop()
