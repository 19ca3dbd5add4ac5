"""The live Foxglove feed, read by a client we did not write: @foxglove/ws-protocol's
FoxgloveClient under node (tests/node/foxglove_client.mjs), over both subprotocol names, from a
service with several cameras, probes and microphones; and a replay's timeline driven by it."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import struct
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import websockets
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

from sensorlink import foxglove_protobuf as pb
from sensorlink.alarm_event import AlarmEvent
from sensorlink.commands._serving import attach_foxglove
from sensorlink.config import SensorConfig, ServiceConfig
from sensorlink.hub import Subscription
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import Recorder
from sensorlink.samples import Reading, ThermalFrame
from sensorlink.schemas import __file__ as _schemas_init
from sensorlink.service import Service

NODE_DIR = Path(__file__).parent / "node"
STATUS_SCHEMA = json.loads((Path(_schemas_init).parent / "status.schema.json").read_text())
TOKEN = "fox-operator-token"
PIXEL = (5, 7)  # row, col of the pixel whose °C the client reports

# Several of each kind, in two orders; small frames and blocks keep two cores unhurried.
SENSORS = [
    SensorConfig("cam-a", "sim-thermal", {"width": 16, "height": 12, "seed": 1}),
    SensorConfig("probes-a", "sim-probes", {"channels": 2}),
    SensorConfig("mic-a", "sim-microphone", {}),
    SensorConfig("cam-b", "sim-thermal", {"width": 20, "height": 10, "seed": 2}),
    SensorConfig("probes-b", "sim-probes", {"channels": 3}),
    SensorConfig("mic-b", "sim-microphone", {"seed": 5}),
]
ORDERS = {"by-name": SENSORS, "reversed": SENSORS[::-1]}


def _service(sensors: list[SensorConfig] = (), **kwargs: Any) -> Service:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN), sensors=sensors,
                      source="test", **kwargs)
    attach_foxglove(service, argparse.Namespace(foxglove="127.0.0.1:0"))
    return service


def _bridge(service: Service) -> Any:
    (bridge,) = [e for e in service.exporters if e.kind == "foxglove"]
    return bridge


async def _foxglove_client(url: str, subprotocol: str, spec: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node and (NODE_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir(), \
        "tests/node is not installed: run scripts/setup.sh --browser"
    proc = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "foxglove_client.mjs"), url, subprotocol,
        json.dumps({"timeout_s": 200, **spec}), cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    report = json.loads(out)
    assert proc.returncode == 0 and "error" not in report, (report.get("error"), err[-2000:])
    assert report["subprotocol"] == subprotocol and report["errors"] == []
    return report


def _contiguous(seqs: list[int]) -> bool:
    return bool(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def _until(predicate: Any, what: str, timeout: float = 60.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def _truth(sub: Subscription, truth: dict[tuple[str, int], Any]) -> None:
    for event in sub.get_nowait(1 << 30):
        if isinstance(event, ThermalFrame):
            truth[(f"/{event.sensor}/thermal", event.seq)] = event.celsius[PIXEL]
        elif isinstance(event, Reading):
            truth[(f"/{event.sensor}/{event.channel}", event.seq)] = event.value


@pytest.mark.timeout(300)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("subprotocol", ["foxglove.sdk.v1", "foxglove.websocket.v1"])
async def test_the_foxglove_client_gets_every_stream_live_and_exact(subprotocol, order):
    sensors = ORDERS[order]
    service = _service(sensors)
    truth_sub = service.hub.subscribe("truth", maxsize=1 << 20)
    await service.start()
    try:
        bridge = _bridge(service)
        await _until(lambda: {s.name for s in sensors} <= {
            n for n, st in service.hub.statuses.items() if st.state == "connected"},
            "every sensor connected")
        # An alarm that is on when the client connects reaches it on the log channel.
        service.hub.alarm(AlarmEvent("bearing-hot", "probes-a/t0", "raised", "alarm", True,
                                     False, "t0 above 80 °C", 1, 1, 1, 1, 81.5, 80.0))
        report = await _foxglove_client(f"{bridge.url}?token={TOKEN}", subprotocol, {
            "pixel": PIXEL, "frames": 12, "blocks": 20, "readings": 10,
            "logs": len(sensors) + 1})
        truth: dict[tuple[str, int], Any] = {}
        _truth(truth_sub, truth)
        status = service.status_message()
    finally:
        await service.stop()

    cams = [s for s in sensors if s.driver == "sim-thermal"]
    mics = [s for s in sensors if s.driver == "sim-microphone"]
    probes = [s for s in sensors if s.driver == "sim-probes"]
    topics = report["topics"]
    assert report["serverInfo"]["capabilities"] == []  # live: no playback
    for cam in cams:
        got = topics[f"/{cam.name}/thermal"]
        assert got["encoding"] == "32FC1"
        assert got["size"] == [cam.options["width"], cam.options["height"]]
        assert _contiguous(got["seqs"]), got["seqs"]
        # exact °C: the float32 the camera sent, bit for bit, at a known pixel of every frame
        want = [truth[(f"/{cam.name}/thermal", seq)] for seq in got["seqs"]]
        assert np.array_equal(np.float32(got["pixels"]), np.float32(want))
        assert report["channels"][f"/{cam.name}/thermal"]["schemaName"] == "foxglove.RawImage"
    for mic in mics:
        got = topics[f"/{mic.name}/audio"]
        assert got["format"] == ["pcm-s16", 16000, 4] and _contiguous(got["seqs"])
        assert got["bytes"] == len(got["seqs"]) * 512 * 4 * 2  # every block whole
        assert report["channels"][f"/{mic.name}/audio"]["schemaName"] == "foxglove.RawAudio"
    for probe in probes:
        for k in range(probe.options["channels"]):
            topic = f"/{probe.name}/t{k}"
            got = topics[topic]
            assert _contiguous(got["seqs"]), (topic, got["seqs"])
            assert got["values"] == [truth[(topic, seq)] for seq in got["seqs"]]  # plottable
            assert report["channels"][topic]["encoding"] == "json"
    logs = topics["/sensorlink/log"]["logs"]
    assert {f"{s.name}: connected" for s in sensors} <= {entry["message"] for entry in logs}
    assert {"level": 4, "name": "alarm/bearing-hot",
            "message": "alarm raised: bearing-hot on probes-a/t0: t0 above 80 °C"} in logs
    (export,) = [e for e in status["exports"] if e["kind"] == "foxglove"]
    jsonschema.validate(export, STATUS_SCHEMA["properties"]["exports"]["items"])
    assert export["connects"] == 1 and export["sent"] > sum(t["count"] for t in topics.values())
    assert export["dropped"] == 0  # a client that keeps up loses nothing


async def test_a_wrong_or_missing_token_is_refused_before_the_websocket_opens():
    service = _service(SENSORS[:1])
    await service.start()
    try:
        bridge = _bridge(service)
        for query in ("", "?token=wrong", f"?token={TOKEN}x"):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with websockets.connect(bridge.url + query,
                                              subprotocols=["foxglove.sdk.v1"]):
                    pass
            assert info.value.response.status_code == 401
        # No subprotocol the server knows: refused too (the protocol requires one).
        with pytest.raises(websockets.InvalidHandshake):
            async with websockets.connect(f"{bridge.url}?token={TOKEN}",
                                          subprotocols=["foxglove.websocket.v9"]):
                pass
        assert bridge.status()["rejected"] == 3
    finally:
        await service.stop()


@pytest.mark.timeout(300)
async def test_a_slow_client_drops_its_oldest_and_nobody_else_waits():
    service = _service([SensorConfig("cam-a", "sim-thermal", {"width": 64, "height": 48}),
                        SensorConfig("mic-a", "sim-microphone", {})])
    await service.start()
    bridge = _bridge(service)
    bridge.queue = 64  # per client: ~1.5 s of this feed
    try:
        # The slow one: a tiny receive window, and it never reads.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(bridge.bound)
        slow = await websockets.connect(f"{bridge.url}?token={TOKEN}", sock=raw,
                                        subprotocols=["foxglove.websocket.v1"], max_queue=1)
        fast = await websockets.connect(f"{bridge.url}?token={TOKEN}",
                                        subprotocols=["foxglove.sdk.v1"])
        channels: dict[int, str] = {}
        while not {"/cam-a/thermal", "/mic-a/audio"} <= set(channels.values()):
            message = json.loads(await asyncio.wait_for(fast.recv(), 30))
            channels.update({c["id"]: c["topic"] for c in message.get("channels", [])})
        subscribe = json.dumps({"op": "subscribe", "subscriptions": [
            {"id": cid, "channelId": cid} for cid in channels]})
        await slow.send(subscribe)
        await fast.send(subscribe)
        seqs: list[int] = []
        warnings: list[dict[str, Any]] = []

        async def read_fast() -> None:
            async for message in fast:
                if isinstance(message, str):
                    warnings.append(json.loads(message))
                elif message[0] == 1 and \
                        channels[int.from_bytes(message[1:5], "little")] == "/cam-a/thermal":
                    RawImage.FromString(message[13:])  # Foxglove's own class reads it
                    seqs.append(pb.decode_frame(message[13:]).seq)

        reader = asyncio.create_task(read_fast())
        (slow_client,) = [c for c in bridge.clients if c.subprotocol == "foxglove.websocket.v1"]
        await _until(lambda: slow_client.dropped > 0 and len(seqs) >= 24,
                     "the slow client dropped while the fast one read 24 frames")
        export = service.status_message()["exports"][0]
        reader.cancel()
        # The fast client got every frame in order, and the hub never waited for the slow one.
        assert _contiguous(seqs), seqs
        assert warnings == [] or all(w.get("level") != 2 for w in warnings)
        jsonschema.validate(export, STATUS_SCHEMA["properties"]["exports"]["items"])
        slow_state, fast_state = sorted(export["connections"], key=lambda c: -c["dropped"])
        assert slow_state["subprotocol"] == "foxglove.websocket.v1" and slow_state["dropped"] > 0
        assert slow_state["queued"] <= 64 and fast_state["dropped"] == 0
        assert export["dropped"] >= slow_state["dropped"]
        assert bridge._sub.dropped == 0  # the bridge's own hub subscription kept up
        await fast.close()
        slow.transport.abort()
    finally:
        await service.stop()


async def _record(directory: Path, sensors: list[SensorConfig], frames: int) -> Path:
    """A recording of ``sensors`` holding ``frames`` frames of each camera."""
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN), sensors=sensors,
                      source="test")
    recorder = Recorder(service.hub, directory, session={"test": "foxglove"}, fsync=False)
    await recorder.start()
    sub = service.hub.subscribe("count", maxsize=1 << 20, accepts=lambda e: isinstance(
        e, ThermalFrame))
    for runner in service.runners:
        runner.hub.describe(runner.driver.info())
        runner.start()
    seen: dict[str, int] = {}
    while min(seen.get(s.name, 0) for s in sensors if s.driver == "sim-thermal") < frames:
        frame = await asyncio.wait_for(sub.get(), 30)
        seen[frame.sensor] = seen.get(frame.sensor, 0) + 1
    for runner in service.runners:
        await runner.stop()
    await recorder.stop()
    assert recorder.path is not None
    return recorder.path


@pytest.mark.timeout(300)
@pytest.mark.parametrize("subprotocol", ["foxglove.sdk.v1", "foxglove.websocket.v1"])
async def test_the_foxglove_timeline_pauses_seeks_and_speeds_a_replay(tmp_path, subprotocol):
    path = await _record(tmp_path, SENSORS, frames=40)  # 5 s at 8 frames/s
    with Recording(path) as rec:
        start_ns, end_ns = rec.start_ns, rec.end_ns
        seek_ns = start_ns + (end_ns - start_ns) // 2
        # the first frame of each camera at or after the seek point: what must come next
        after_seek: dict[str, int] = {}
        for log_time, event in rec.events(start_ns=seek_ns):
            if isinstance(event, ThermalFrame) and log_time >= seek_ns:
                after_seek.setdefault(f"/{event.sensor}/thermal", event.seq)
    # Paused at the start, so nothing plays before the client is there to see it.
    service = _service(replay_path=str(path), replay_options={"speed": 1.0, "paused": True})
    await service.start()
    try:
        report = await _foxglove_client(f"{_bridge(service).url}?token={TOKEN}", subprotocol, {
            "pixel": [0, 0], "frames": 2, "blocks": 2, "readings": 2, "logs": 0,
            "kick": "advertised", "afterLast": sorted(after_seek),
            "playback": [{"id": "start", "command": 0, "speed": 1.0},
                         {"id": "pause", "command": 1, "speed": 1.0},
                         {"id": "seek", "command": 1, "speed": 2.0, "seek": seek_ns},
                         {"id": "play", "command": 0, "speed": 2.0}]})
        replay = service.replay.status()
    finally:
        await service.stop()

    info = report["serverInfo"]
    assert set(info["capabilities"]) == {"playbackControl", "time"}
    assert info["dataStartTime"] == {"sec": start_ns // 10**9, "nsec": start_ns % 10**9}
    assert info["dataEndTime"] == {"sec": end_ns // 10**9, "nsec": end_ns % 10**9}
    states = {s["requestId"]: s for s in report["playback"]}
    assert states["start"]["status"] == 0 and states["start"]["speed"] == 1.0
    assert states["pause"]["status"] == 1 and states["seek"]["status"] == 1
    assert abs(int(states["seek"]["currentTime"]) - seek_ns) < 1000  # where it was asked to
    assert states["seek"]["speed"] == 2.0 and states["play"]["speed"] == 2.0
    assert states["play"]["status"] in (0, 3)  # playing (or already at the end)
    assert replay["speed"] == 2.0
    # After the seek, each camera continues with the recording's frame at that point.
    first = states["play"]["first"]
    for topic, seq in after_seek.items():
        assert first[topic]["seq"] == seq, (topic, first[topic], seq)
        assert int(first[topic]["logTime"]) >= seek_ns
    assert report["times"] > 0  # the timeline's clock ticks
    assert {t for t in report["channels"]} >= set(after_seek) | {"/mic-a/audio", "/mic-b/audio"}


async def test_only_the_operator_drives_playback_and_a_bad_request_is_named():
    fixture = Path(__file__).parent / "data" / "recordings" / "v2-complete.mcap"
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN,
                                    viewer_token="fox-viewer-token"),
                      source="test", replay_path=str(fixture), replay_options={"paused": True})
    attach_foxglove(service, argparse.Namespace(foxglove="127.0.0.1:0"))
    await service.start()
    try:
        url = _bridge(service).url
        play = struct.pack("<BBfBQI", 3, 0, 1.0, 0, 0, 2) + b"r1"
        async with websockets.connect(f"{url}?token=fox-viewer-token",
                                      subprotocols=["foxglove.websocket.v1"]) as viewer:
            await viewer.send(play)
            await viewer.send(b"\x03\x00\x00")  # cut short
            errors = await _errors(viewer, 2)
        assert errors == ["sensorlink: playback control needs the operator token",
                          "sensorlink: playback control request of 2 bytes, expected >= 14"]
        assert service.replay.paused  # the viewer's play did nothing
    finally:
        await service.stop()


async def _errors(ws: Any, n: int) -> list[str]:
    """The next ``n`` error statuses (level 2) the server sends."""
    out: list[str] = []
    while len(out) < n:
        message = await asyncio.wait_for(ws.recv(), 30)
        if isinstance(message, str) and json.loads(message).get("op") == "status" and \
                json.loads(message)["level"] == 2:
            out.append(json.loads(message)["message"])
    return out
