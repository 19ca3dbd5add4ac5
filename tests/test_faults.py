"""What factories do to the service, while viewers watch and the recorder records.

Each test injects the fault for real (a viewer process stopped with SIGSTOP, a peer connection
or websocket closed under the viewer, a serial device unplugged, silenced and babbling on a
pty, the service process SIGKILLed) and then waits on conditions, never on the clock. "Nothing
lost" is checked by identity: every (stream, seq) the hub carried is in the MCAP files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from sensorlink.backoff import Backoff
from sensorlink.config import SensorConfig, ServiceConfig
from sensorlink.errors import SensorlinkError
from sensorlink.hub import Subscription, kinds
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.samples import AudioBlock, Reading, ThermalFrame
from sensorlink.service import Service
from sensorlink.webrtc import peer
from sensorlink.webrtc.viewer import connected_viewer

from mcap_readers import default_reader, foxglove_decodes, node_indexed_reader
from support import wait_for

TOKEN = "faults-token-123"
SAMPLES = (Reading, ThermalFrame, AudioBlock)


def key(sample: Any) -> tuple[str, int]:
    """(stream, seq): what identifies one sample across hub, wire and file."""
    if isinstance(sample, Reading):
        return f"{sample.sensor}/{sample.channel}", sample.seq
    kind = "frame" if isinstance(sample, ThermalFrame) else "audio"
    return f"{sample.sensor}/{kind}", sample.seq


def recorded(files: Iterable[Path]) -> set[tuple[str, int]]:
    out: set[tuple[str, int]] = set()
    for path in files:
        with Recording(path) as recording:
            out |= {key(event) for _, event in recording.events(schemas=mm.SAMPLE_SCHEMAS)}
    return out


def published(truth: Subscription) -> set[tuple[str, int]]:
    return {key(e) for e in truth.get_nowait(10**8)}


def per_stream(keys: set[tuple[str, int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for stream, _ in keys:
        counts[stream] = counts.get(stream, 0) + 1
    return counts


def make_service(sensors: list[SensorConfig], record_dir: Path | None = None) -> tuple[Service,
                                                                                      Subscription]:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN), sensors=sensors,
                      source="faults", record_dir=str(record_dir) if record_dir else None)
    for runner in service.runners:
        runner.backoff = Backoff(initial=0.05, ceiling=0.5)  # reconnects within the test's time
    # Subscribed before start: the truth is every sample the hub ever carries.
    truth = service.hub.subscribe("truth", maxsize=10**8, accepts=kinds(*SAMPLES))
    return service, truth


def url(service: Service) -> str:
    host, port = service.bound
    return f"http://{host}:{port}/#token={TOKEN}"


async def more_readings(viewer: Any, count: int = 30, what: str = "readings") -> None:
    before = viewer.readings
    await wait_for(lambda: viewer.readings >= before + count, 30, what)


# -- the link between service and viewer ---------------------------------------------------

async def block_udp(viewer: Any) -> None:
    """Stop reading the viewer's ICE sockets, as a firewall dropping its UDP would (aiortc has
    no public handle on them: sctp → DTLS → ICE transport → aioice connection)."""
    ice = viewer._pc.sctp.transport.transport
    protocols = ice.iceGatherer._connection._protocols
    assert protocols
    for protocol in protocols:
        protocol.transport.pause_reading()

async def test_viewer_reconnects_after_each_kind_of_link_drop_and_the_recording_loses_nothing(
        tmp_path: Path) -> None:
    sensors = [SensorConfig("probes", "sim-probes", {"channels": 3, "rate_hz": 50.0}),
               SensorConfig("cam", "sim-thermal", {"rate_hz": 4.0})]
    service, truth = make_service(sensors, tmp_path / "rec")
    events: list[dict[str, Any]] = []
    await service.start()
    try:
        async with connected_viewer(url(service), on_event=events.append) as viewer:
            await more_readings(viewer, 50)

            async def drop(how: str, inject: Any) -> list[dict[str, Any]]:
                connections = viewer.connections
                await inject()
                await wait_for(lambda: viewer.connections > connections, 30,
                               f"reconnection after {how}")
                await more_readings(viewer, 30, f"readings after {how}")
                assert any(e["event"] == "disconnected" for e in events), how  # it showed it
                seen = list(events)
                events.clear()
                return seen

            # The viewer's own peer connection closes under it (a laptop's network goes away).
            await drop("the viewer's peer connection closed", lambda: viewer._pc.close())
            # The service's side of the peer connection closes.
            await drop("the service's peer connection closed",
                       lambda: service.viewers[-1].pc.close())

            # The viewer's UDP port is blocked: nothing arrives, nothing says goodbye. The
            # viewer notices the silence within seconds (ICE consent would take ~30 s).
            seen = await drop("the viewer's UDP port was blocked", lambda: block_udp(viewer))
            assert any(e["event"] == "stale" for e in seen)
            assert viewer.connections == 4

            # The signaling websocket's TCP connection is cut without a close handshake.
            async def cut_websockets() -> None:
                assert service.signaling._server is not None
                for connection in list(service.signaling._server.connections):
                    connection.transport.abort()
            await drop("the websocket was cut", cut_websockets)
            assert viewer.connections == 5
            await wait_for(lambda: len(service.viewers) == 1, 20, "old sessions closed")
    finally:
        await service.stop()
    hub_keys = published(truth)
    file_keys = recorded(service.recorder.files)
    assert hub_keys, "nothing was published"
    assert per_stream(file_keys) == per_stream(hub_keys)
    assert file_keys == hub_keys  # zero samples lost, by identity
    assert service.recorder.status()["dropped"] == 0


# -- a viewer that stops reading -----------------------------------------------------------

async def test_a_stalled_viewer_slows_neither_the_service_nor_another_viewer(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A short queue so the stalled viewer's drops show within seconds (100k in production).
    monkeypatch.setattr(peer, "READINGS_QUEUE", 2000)
    sensors = [SensorConfig("probes", "sim-probes", {"channels": 4, "rate_hz": 100.0,
                                                     "per_tick": 5})]
    service, truth = make_service(sensors)
    await service.start()
    stalled = None
    try:
        async with connected_viewer(url(service), validate_messages=False) as healthy:
            healthy_session = service.viewers[-1]
            # The stalled "browser tab" is a real viewer in its own process, then SIGSTOPped.
            stalled = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sensorlink.cli", "view", url(service), "--json",
                "--quiet-readings", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL, cwd=tmp_path)
            await wait_for(lambda: len(service.viewers) == 2
                           and service.viewers[-1].readings_sent > 100, 60,
                           "the second viewer streaming")
            stalled_session = service.viewers[-1]
            os.kill(stalled.pid, signal.SIGSTOP)
            await wait_for(lambda: stalled_session.status_message()["viewer"]["readings_dropped"]
                           > 0, 60, "the stalled viewer's drops counted")
            # The healthy viewer has everything the hub published so far and keeps up with it.
            for _ in range(2):
                newest = {}
                for event in truth.get_nowait(10**8):
                    stream, seq = key(event)
                    newest[stream] = max(newest.get(stream, -1), seq)
                await wait_for(lambda newest=newest: all(healthy.last_seq.get(s, -1) >= seq
                                                         for s, seq in newest.items()), 30,
                               "the healthy viewer caught up with the hub")
            assert healthy.seq_gaps == 0
            assert healthy_session.status_message()["viewer"]["readings_dropped"] == 0
            assert stalled_session.status_message()["viewer"]["readings_dropped"] > 0
            print(f"stalled viewer dropped {stalled_session.readings_sub.dropped}, healthy "
                  f"viewer got {healthy.readings} readings with {healthy.seq_gaps} gaps")
            assert service.runners[0].state == "connected"
    finally:
        if stalled is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stalled.pid, signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError):
                stalled.kill()
            await asyncio.wait_for(stalled.wait(), 20)
        await service.stop()


# -- ten viewers ---------------------------------------------------------------------------

async def test_ten_viewers_at_once_each_receive_every_reading() -> None:
    sensors = [SensorConfig("probes", "sim-probes", {"channels": 4, "rate_hz": 50.0})]
    service, truth = make_service(sensors)
    await service.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            viewers = [await stack.enter_async_context(
                connected_viewer(url(service), validate_messages=False)) for _ in range(10)]
            assert len(service.viewers) == 10
            # Everything the hub publishes from now on must reach all ten.
            truth.get_nowait(10**8)
            await wait_for(lambda: len(truth) >= 400, 30, "400 more readings published")
            newest: dict[str, int] = {}
            for event in truth.get_nowait(10**8):
                stream, seq = key(event)
                newest[stream] = max(newest.get(stream, -1), seq)
            await wait_for(lambda: all(v.last_seq.get(s, -1) >= seq for v in viewers
                                       for s, seq in newest.items()), 60,
                           "every viewer has every reading")
            for v in viewers:
                assert v.seq_gaps == 0 and v.connections == 1
            assert all(s.readings_sub.dropped == 0 for s in service.viewers)
    finally:
        await service.stop()


# -- serial devices misbehaving, all at once -----------------------------------------------

async def test_serial_unplug_silence_and_garbage_at_once_while_watched_and_recorded(
        tmp_path: Path) -> None:
    import sensorlink.emulators as emulators
    from sensorlink.emulators.ascii_bridge import AsciiBridgeEmulator
    from sensorlink.emulators.gy_mcu90640 import GyMcu90640Emulator
    from sensorlink.emulators.modbus import ModbusTransmitterEmulator

    gy = GyMcu90640Emulator(tmp_path / "gy", rate_hz=8.0,
                            faults=emulators.Faults(garbage_every=2, bad_checksum_every=5, seed=1))
    bridge = AsciiBridgeEmulator(tmp_path / "bridge", rate_hz=10.0,
                                 faults=emulators.Faults(garbage_every=3, truncate_every=7, seed=2))
    rtu = ModbusTransmitterEmulator(tmp_path / "rtu",
                                    faults=emulators.Faults(garbage_every=4, seed=3))
    sensors = [
        SensorConfig("gy", "gy-mcu90640", {"port": str(tmp_path / "gy"), "silence_timeout_s": 1.0}),
        SensorConfig("bridge", "ascii-bridge", {"port": str(tmp_path / "bridge"),
                                                "silence_timeout_s": 1.0}),
        SensorConfig("rtu", "modbus-rtu", {"port": str(tmp_path / "rtu"), "poll_hz": 10.0,
                                           "timeout_s": 0.1, "max_silent_polls": 3}),
    ]
    async with contextlib.AsyncExitStack() as stack:
        for emulator in (gy, bridge, rtu):
            await stack.enter_async_context(emulator)
        service, truth = make_service(sensors, tmp_path / "rec")
        await service.start()
        stack.push_async_callback(service.stop)
        viewer = await stack.enter_async_context(connected_viewer(url(service)))

        def state(sensor: str) -> str | None:
            for entry in (viewer.last_status.get("sensors") or []):
                if entry["sensor"] == sensor:
                    return entry["state"]
            return None

        def streams_seen(prefix: str) -> int:
            return sum(1 for s in viewer.last_seq if s.startswith(prefix))

        def counted(sensor: str, *names: str) -> int:
            runner = next(r for r in service.runners if r.name == sensor)
            return sum(runner.driver.describe_counters().get(n, 0) for n in names)

        await wait_for(lambda: all(streams_seen(f"{n}/") for n in ("gy", "bridge", "rtu")), 30,
                       "readings from all three devices")
        await wait_for(lambda: counted("gy", "checksum_errors", "truncated_frames")
                       and counted("bridge", "checksum_errors", "truncated_lines"), 30,
                       "the garbage being counted while readings flow")
        before = dict(viewer.last_seq)

        # All at once: the camera is unplugged, the bridge and the transmitter go silent, and
        # the garbage keeps coming from whatever still talks.
        gy.unplug()
        bridge.faults.silent = True
        rtu.faults.silent = True
        await wait_for(lambda: all(state(n) == "reconnecting" for n in ("gy", "bridge", "rtu")),
                       30, "all three shown as reconnecting")

        gy.replug()
        bridge.faults.silent = False
        rtu.faults.silent = False
        await wait_for(lambda: all(state(n) == "connected" for n in ("gy", "bridge", "rtu")), 30,
                       "all three connected again")
        await wait_for(lambda: all(viewer.last_seq.get(s, -1) > seq for s, seq in before.items()),
                       30, "new readings on every stream")
        counters = {r.name: r.driver.describe_counters() for r in service.runners}
        assert viewer.seq_gaps == 0 and viewer.invalid == 0
        await service.stop()

    assert counters["gy"]["resync_bytes"] > 0
    assert counters["gy"].get("checksum_errors", 0) + counters["gy"].get("truncated_frames", 0) > 0
    assert counters["gy"]["disconnects"] + counters["gy"].get("open_failures", 0) > 0
    assert counters["bridge"]["silent_timeouts"] > 0
    bridge = counters["bridge"]
    assert bridge.get("checksum_errors", 0) + bridge.get("truncated_lines", 0) > 0
    hub_keys = published(truth)
    file_keys = recorded(service.recorder.files)
    assert per_stream(file_keys) == per_stream(hub_keys)
    assert file_keys == hub_keys


# -- the process killed while recording ----------------------------------------------------

def sample_count(path: Path) -> int:
    try:
        with Recording(path) as recording:
            return sum(1 for _ in recording.events(schemas=mm.SAMPLE_SCHEMAS))
    except (SensorlinkError, OSError, ValueError, KeyError):  # not readable yet: just created
        return 0


async def test_a_killed_service_resumes_recording_into_a_new_file_on_restart(
        service_process: Any, tmp_path: Path) -> None:
    record_dir = tmp_path / "rec"
    args = ["demo", "--listen", "127.0.0.1:0", "--token", TOKEN, "--record", str(record_dir)]
    first = service_process(*args)
    await first.url()
    await wait_for(lambda: any(sample_count(p) > 20 for p in record_dir.glob("*.mcap")), 60,
                   "the first recording has samples on disk")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(20)
    (killed,) = record_dir.glob("*.mcap")
    on_disk = sample_count(killed)
    assert on_disk > 20

    # The same command again: no clean-up, no flag, no lock file to remove.
    second = service_process(*args)
    await second.url()
    await wait_for(lambda: any(p != killed and sample_count(p) > 20
                               for p in record_dir.glob("*.mcap")), 60,
                   "the restarted service records into a new file")
    # The cut file of the first run was recovered in place on start-up: complete and indexed,
    # with every sample it held, in the default readers too.
    assert f"recovered the cut recording {killed}" in second.errors()
    assert sample_count(killed) == on_disk
    with Recording(killed) as recording:
        assert recording.indexed and not recording.cut_short
        counted = dict(recording.message_counts)
    assert sum(default_reader(killed)["statistics"].values()) == sum(counted.values())
    node = node_indexed_reader(killed)
    assert node["statistics"] == node["read"] == default_reader(killed)["read"]
    assert foxglove_decodes(killed) == node["read"]
    assert second.stop() == 0
    files = sorted(record_dir.glob("*.mcap"))
    assert len(files) == 2
    (new,) = [p for p in files if p != killed]
    with Recording(new) as recording:
        assert recording.session.get("session", {}).get("version")
        assert recording.metadata_named("sensorlink.summary") is not None  # closed cleanly
