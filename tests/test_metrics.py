"""Prometheus ``/metrics``: scraped over HTTP from a running service and read back with
prometheus_client's own text-format parser (the one Prometheus' Python tooling uses).

The faults are real: a serial bridge on a pty sends lines with bad checksums (the driver counts
them) and is then unplugged; the MQTT exporter points at a port where no broker listens, so its
bounded queue has to drop; a viewer connects over WebRTC; an alarm is published on the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sensorlink.alarm_event import AlarmEvent
from sensorlink.backoff import Backoff
from sensorlink.config import parse_config
from sensorlink.emulators import Faults
from sensorlink.emulators.ascii_bridge import AsciiBridgeEmulator
from sensorlink.service import Service
from sensorlink.webrtc.viewer import connected_viewer

from support import wait_for

TOKEN = "metrics-token-123"
SCRAPE = "scrape-token-456"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path: Path, **metrics: Any) -> dict[str, Any]:
    """Two of each kind, the kinds interleaved, plus a serial bridge with bad checksums."""
    return {
        "service": {"listen": "127.0.0.1:0", "token": TOKEN},
        "sensors": [
            {"name": "probes-a", "driver": "sim-probes", "channels": 2, "rate_hz": 20.0},
            {"name": "cam-a", "driver": "sim-thermal"},
            {"name": "mic-a", "driver": "sim-microphone"},
            {"name": "bridge", "driver": "ascii-bridge", "port": str(tmp_path / "bridge"),
             "silence_timeout_s": 1.0},
            {"name": "cam-b", "driver": "sim-thermal"},
            {"name": "probes-b", "driver": "sim-probes", "channels": 3, "rate_hz": 10.0},
            {"name": "mic-b", "driver": "sim-microphone"},
        ],
        # Nobody listens there: the exporter keeps reconnecting and its queue of 5 overflows.
        "mqtt": {"host": "127.0.0.1", "port": closed_port(), "queue": 5},
        "metrics": {"token": SCRAPE, **metrics},
    }


def scrape(service: Service, token: str | None) -> tuple[int, str, str]:
    host, port = service.bound
    request = urllib.request.Request(f"http://{host}:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def metrics(service: Service, token: str | None = SCRAPE) -> Samples:
    """One scrape, parsed: (sample name, sorted labels) → value."""
    status, content_type, body = await asyncio.to_thread(scrape, service, token)
    assert status == 200, body
    assert content_type.startswith("text/plain; version=")
    out: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **metrics_options: Any) -> AsyncIterator[
        tuple[Service, AsciiBridgeEmulator]]:
    bridge = AsciiBridgeEmulator(tmp_path / "bridge", rate_hz=20.0,
                                 faults=Faults(bad_checksum_every=3, seed=4))
    async with bridge:
        service = Service.from_config(parse_config(config(tmp_path, **metrics_options),
                                                   source=str(tmp_path / "absent.toml")),
                                      record_dir=str(tmp_path / "rec"))
        for runner in service.runners:
            runner.backoff = Backoff(initial=0.05, ceiling=0.5)
        await service.start()
        try:
            yield service, bridge
        finally:
            await service.stop()


def alarm(rule: str, stream: str, level: str = "alarm") -> AlarmEvent:
    now = time.time_ns()
    return AlarmEvent(rule=rule, stream=stream, transition="raised", level=level,  # type: ignore[arg-type]
                      active=True, acknowledged=False, message=f"{rule} over limit", seq=0,
                      t_mono_ns=time.monotonic_ns(), t_wall_ns=now, since_wall_ns=now,
                      value=91.5, limit=90.0)


async def test_metrics_cover_sensors_viewers_recorder_exports_and_alarms(tmp_path: Path) -> None:
    async with running(tmp_path) as (service, bridge):
        names = [s.name for s in service.runners]
        host, port = service.bound
        async with connected_viewer(f"http://{host}:{port}/#token={TOKEN}") as viewer:
            service.hub.alarm(alarm("bearing-hot", "probes-a/t0"))
            service.hub.alarm(alarm("mic-loud", "mic-b/level", "warning"))
            snapshot: dict[str, Samples] = {}

            async def settled() -> bool:
                snapshot["m"] = m = await metrics(service)
                return (all(value(m, "sensorlink_sensor_up", sensor=n) == 1.0 for n in names)
                        and all((value(m, "sensorlink_sensor_rate_hz", sensor=r.name,
                                       kind=r.driver.kind, driver=service.hub.sensors[r.name]
                                       .driver) or 0) > 0 for r in service.runners)
                        and (value(m, "sensorlink_sensor_dropped_total", sensor="bridge") or 0) > 0
                        and (value(m, "sensorlink_sink_dropped_total", sink="mqtt") or 0) > 0
                        and (value(m, "sensorlink_recorder_bytes_total") or 0) > 0
                        and value(m, "sensorlink_viewer_rtt_seconds", viewer=viewer_name(),
                                  role="operator") is not None)

            def viewer_name() -> str:
                return service.viewers[0].name if service.viewers else "?"

            await wait_async(settled, "every sensor up with a rate, drops counted, RTT measured")
            m = snapshot["m"]
            assert value(m, "sensorlink_viewers", role="operator") == 1.0
            assert value(m, "sensorlink_viewers", role="viewer") == 0.0
            assert 0 < value(m, "sensorlink_viewer_rtt_seconds", viewer=viewer_name(),
                             role="operator") < 10
            assert viewer.readings > 0
            assert value(m, "sensorlink_recorder_active") == 1.0
            assert value(m, "sensorlink_recorder_samples_total") > 0
            # the driver's own counter is what the metric sums (it only grows, so <= now)
            counters = next(r for r in service.runners if r.name == "bridge").driver.counters
            assert 0 < value(m, "sensorlink_sensor_events_total", sensor="bridge",
                             counter="checksum_errors") <= counters["checksum_errors"]
            assert value(m, "sensorlink_export_up", export="mqtt", kind="mqtt") == 0.0
            assert value(m, "sensorlink_export_dropped_total", export="mqtt") > 0
            assert value(m, "sensorlink_alarm_active", rule="bearing-hot", stream="probes-a/t0",
                         level="alarm", active="true", acknowledged="false") == 1.0
            assert value(m, "sensorlink_alarms", level="alarm") == 1.0
            assert value(m, "sensorlink_alarms", level="warning") == 1.0
            for n in names:
                assert value(m, "sensorlink_sensor_state", sensor=n, state="connected") == 1.0
                assert value(m, "sensorlink_sensor_state", sensor=n, state="failed") == 0.0

            # The bridge is unplugged: its state changes, the others stay up; the alarm clears.
            bridge.unplug()
            service.hub.alarm(_over("bearing-hot", "probes-a/t0"))

            async def unplugged() -> bool:
                snapshot["m"] = m = await metrics(service)
                return value(m, "sensorlink_sensor_state", sensor="bridge",
                             state="reconnecting") == 1.0
            await wait_async(unplugged, "the unplugged bridge shown as reconnecting")
            m = snapshot["m"]
            assert value(m, "sensorlink_sensor_up", sensor="bridge") == 0.0
            assert value(m, "sensorlink_sensor_state", sensor="bridge", state="connected") == 0.0
            assert value(m, "sensorlink_sensor_up", sensor="cam-b") == 1.0
            assert value(m, "sensorlink_alarms", level="alarm") == 0.0
            assert not any(k[0] == "sensorlink_alarm_active" and ("rule", "bearing-hot") in k[1]
                           for k in m)


def _over(rule: str, stream: str) -> AlarmEvent:
    return AlarmEvent.from_dict({**alarm(rule, stream).to_dict(), "transition": "reset",
                                 "active": False, "seq": 1})


async def wait_async(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_metrics_need_a_token_unless_loopback_is_allowed(tmp_path: Path) -> None:
    async with running(tmp_path) as (service, _):
        for token in (None, "wrong-token-1"):
            status, _, body = await asyncio.to_thread(scrape, service, token)
            assert status == 401 and "Bearer" in body
        # The service's own tokens work as well as the scrape token.
        assert await metrics(service, TOKEN)
        assert await metrics(service, SCRAPE)
        # Repeated wrong tokens lock the address out, as for viewers: the right one then too.
        for _ in range(5):
            await asyncio.to_thread(scrape, service, "wrong-token-2")
        status, _, _ = await asyncio.to_thread(scrape, service, SCRAPE)
        assert status == 429
    async with running(tmp_path, loopback_without_token=True) as (service, _):
        samples = await metrics(service, None)
        assert value(samples, "sensorlink_sensor_up", sensor="cam-a") is not None
    async with running(tmp_path, enabled=False) as (service, _):
        status, _, _ = await asyncio.to_thread(scrape, service, SCRAPE)
        assert status == 404
