"""Fan-out through a real Janus VideoRoom: ten subscribers, one upstream peer on the service.

Janus (libnice) never gathers candidates on a loopback interface, and a loopback-only test may
not send to the machine's real addresses. So the test re-runs itself inside a network namespace
of its own (``unshare -n``) holding one veth pair: the service and the viewers use 10.77.0.1,
Janus 10.77.0.2, and nothing can leave the namespace. Both ends are local addresses, so the
namespace accepts packets whose source is local (``accept_local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sensorlink.config import SensorConfig, ServiceConfig
from sensorlink.errors import ConfigError
from sensorlink.service import Service
from sensorlink.validation import validate
from sensorlink.webrtc.janus import JanusPublisher, JanusSession, JanusTarget, plugin_data
from sensorlink.webrtc.janus_viewer import JanusViewer

from janus_support import (
    INSIDE, JANUS, JANUS_IP, SERVICE_IP, run_inner_test_in_namespace, setup_namespace_network,
    write_janus_config,
)
from support import STILL_SENSORS, terminate, wait_for, wait_until_listening
from tracks_support import CAMERAS, LOUDER_DB, MICROPHONES, sensor_configs

ROOM = 4242
VIEWERS = 10

@pytest.fixture
def janus(tmp_path: Path) -> Any:
    assert INSIDE, "only inside the test's own network namespace"
    # Not a skip: a missing server in CI is a failure to see, not a test to hide.
    assert Path(JANUS).exists(), f"{JANUS} is not installed: run scripts/setup.sh --browser"
    setup_namespace_network()
    port = 8188
    config = write_janus_config(tmp_path, port)
    log = tmp_path / "janus.log"
    proc = subprocess.Popen([JANUS, "-C", str(config), "-F", str(tmp_path), "-o", "-N",
                             "-L", str(log)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_listening(proc, JANUS_IP, port, what="janus",
                         log=lambda: log.read_text(errors="replace"))
    yield f"janus://{JANUS_IP}:{port}/{ROOM}"
    terminate(proc)


@pytest.mark.timeout(240)
def test_ten_subscribers_through_janus_cost_the_service_one_peer() -> None:
    """Runs the scenario below in a fresh network namespace and reports its result."""
    here = Path(__file__)
    run_inner_test_in_namespace(f"{here}::test_janus_room_scenario", cwd=here.parent.parent)


@contextlib.asynccontextmanager
async def room_with_subscribers(janus: str, monkeypatch: pytest.MonkeyPatch,
                                sensors: list[SensorConfig], subscribers: int) -> Any:
    """A service publishing ``sensors`` into the room, and ``subscribers`` JanusViewers running."""
    import aioice.ice

    # In the namespace the service's ICE offers the veth address Janus can answer.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [SERVICE_IP])
    service = Service(ServiceConfig(host=SERVICE_IP, port=0, token="test-token-123"),
                      sensors=sensors, source="test")
    publisher = JanusPublisher(service, janus)
    service.exporters.append(publisher)
    await service.start()
    viewers = [JanusViewer(janus) for _ in range(subscribers)]
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_for(lambda: publisher.state == "connected", 30,
                       f"the upstream peer ({publisher.state}: {publisher.detail})")
        tasks = [asyncio.create_task(v.run()) for v in viewers]
        yield service, publisher, viewers, tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await service.stop()


def raise_if_one_died(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done():
            task.result()  # a subscriber that died says why


@pytest.mark.netns_inner  # collected only inside the namespace (see tests/conftest.py)
@pytest.mark.timeout(200)
async def test_janus_room_scenario(janus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with room_with_subscribers(janus, monkeypatch, STILL_SENSORS, VIEWERS) as (
            service, publisher, viewers, tasks):
        def all_receiving() -> bool:
            raise_if_one_died(tasks)
            return all(v.video_frames["cam"] >= 10 and v.audio_frames["mic"] >= 25 and
                       v.readings >= 150 and v.frames >= 2 and v.statuses >= 1 for v in viewers)
        await wait_for(all_receiving, 150, "video, audio, readings and frames at every subscriber")
        for v in viewers:
            assert v.seq_gaps == 0 and v.invalid == 0, (v.name, v.seq_gaps, v.invalid)
            assert {"probes/t0", "mic/doa", "cam/ambient"} <= set(v.last_seq)
        # The service holds exactly one peer connection: the one to Janus.
        assert service.viewers == [] and publisher.connects == 1 and publisher.pc is not None
        status = service.status_message()
        validate("status", status)
        assert status["exports"] == [publisher.status()] and status["exports"][0]["state"] == "connected"
        # Janus agrees: one publisher in the room, ten subscriber handles fed from it.
        async with JanusSession.open(JanusTarget.parse(janus).ws_url) as session:
            handle = await session.attach()
            participants = plugin_data(await session.message(
                handle, {"request": "listparticipants", "room": ROOM}))["participants"]
            assert [p["display"] for p in participants if p.get("publisher")] == ["sensorlink"]


@pytest.mark.timeout(240)
def test_two_cameras_and_two_microphones_all_cross_janus() -> None:
    """Runs the scenario below in a fresh network namespace and reports its result."""
    here = Path(__file__)
    run_inner_test_in_namespace(f"{here}::test_janus_every_track_scenario", cwd=here.parent.parent)


@pytest.mark.netns_inner
@pytest.mark.timeout(200)
async def test_janus_every_track_scenario(janus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both aiortc ends of the SFU path bundle: the publisher offers (cameras, then beams),
    each subscriber answers Janus' offer. Every track must reach every subscriber."""
    async with room_with_subscribers(janus, monkeypatch, sensor_configs("interleaved"), 2) as (
            _service, _publisher, viewers, tasks):
        def every_track() -> bool:
            raise_if_one_died(tasks)
            return all(all(v.video_frames[c] >= 5 for c in CAMERAS)
                       and all(v.audio_frames[m] >= 25 for m in MICROPHONES) for v in viewers)
        await wait_for(every_track, 120, "every camera and microphone at every subscriber")
        for v in viewers:
            levels = v.audio_dbfs
            assert abs(levels["mic-a"] - levels["mic-b"] - LOUDER_DB) < 6.0, (v.name, levels)
            assert set(v.video_frames) == set(CAMERAS) and set(v.audio_frames) == set(MICROPHONES)


def test_publish_url_and_loopback_service_are_refused_with_the_field() -> None:
    assert JanusTarget.parse("janus://sfu.plant:8989/7") == JanusTarget("sfu.plant", 8989, 7)
    assert JanusTarget.parse("janus://sfu.plant/7").port == 8188
    for bad in ("http://sfu/7", "janus://sfu/room-seven", "janus:///7"):
        with pytest.raises(ConfigError) as info:
            JanusTarget.parse(bad)
        assert info.value.field == "publish"


def test_run_refuses_to_publish_from_a_loopback_service(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[service]\nlisten = "127.0.0.1:0"\n\n[[sensors]]\nname = "p"\n'
                      'driver = "sim-probes"\n')
    result = subprocess.run([sys.executable, "-m", "sensorlink.cli", "run", str(config),
                             "--publish", "janus://127.0.0.1/1"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode != 0 and "publish" in result.stderr and "loopback" in result.stderr
