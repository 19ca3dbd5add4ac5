"""Helpers for the OPC UA tests: a running service with the bridge, an acknowledge like the
monitoring work's Service.acknowledge_alarm, and alarm events to publish."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from sensorlink.alarm_event import AlarmEvent
from sensorlink.backoff import Backoff
from sensorlink.bridges.opcua import OpcuaBridge
from sensorlink.config import parse_config
from sensorlink.errors import ControlError
from sensorlink.hub import Hub
from sensorlink.service import Service

TOKEN = "opcua-token-123"
USER, PASSWORD = "scada", "scada-password-1"
#: two of each kind, the kinds interleaved; probes-a at 20 Hz and probes-b at 10 Hz
SENSORS: list[dict[str, Any]] = [
    {"name": "probes-a", "driver": "sim-probes", "channels": 2, "rate_hz": 20.0},
    {"name": "cam-a", "driver": "sim-thermal"},
    {"name": "mic-a", "driver": "sim-microphone"},
    {"name": "probes-b", "driver": "sim-probes", "channels": 3, "rate_hz": 10.0},
    {"name": "cam-b", "driver": "sim-thermal"},
    {"name": "mic-b", "driver": "sim-microphone"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alarm(rule: str, stream: str, *, transition: str = "raised", active: bool = True,
          acknowledged: bool = False, seq: int = 0, by: str = "") -> AlarmEvent:
    now = time.time_ns()
    return AlarmEvent(rule=rule, stream=stream, transition=transition,  # type: ignore[arg-type]
                      level="alarm", active=active, acknowledged=acknowledged,
                      message=f"{rule}: {stream} above 90 °C", seq=seq,
                      t_mono_ns=time.monotonic_ns(), t_wall_ns=now, since_wall_ns=now,
                      value=91.5, limit=90.0, by=by)


class Acknowledger:
    """Does what Service.acknowledge_alarm does: acknowledge the rule's alarm on the hub, or
    refuse with a ControlError naming the field."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.calls: list[tuple[str, str]] = []

    def __call__(self, rule: str, by: str) -> AlarmEvent:
        current = self.hub.alarms.get(rule)
        if current is None or current.acknowledged:
            raise ControlError(f"nothing to acknowledge for {rule!r}", field="rule")
        self.calls.append((rule, by))
        event = AlarmEvent.from_dict({**current.to_dict(), "transition": "acknowledged",
                                      "acknowledged": True, "seq": current.seq + 1, "by": by})
        self.hub.alarm(event)
        return event


def endpoint(port: int) -> str:
    return f"opc.tcp://127.0.0.1:{port}/sensorlink/"


@contextlib.asynccontextmanager
async def opcua_service(opcua: dict[str, Any], sensors: list[dict[str, Any]] | None = None,
                        ) -> AsyncIterator[tuple[Service, OpcuaBridge, Acknowledger]]:
    port = free_port()
    config = parse_config({"service": {"listen": "127.0.0.1:0", "token": TOKEN},
                           "sensors": sensors or SENSORS,
                           "opcua": {"endpoint": endpoint(port), **opcua}}, source="<test>")
    service = Service.from_config(config)
    for runner in service.runners:
        runner.backoff = Backoff(initial=0.05, ceiling=0.5)
    bridge = next(e for e in service.exporters if isinstance(e, OpcuaBridge))
    acknowledger = Acknowledger(service.hub)
    # What the service hands the bridge once the monitoring work lands (acknowledge_alarm).
    bridge.acknowledge = acknowledger
    await service.start()
    try:
        yield service, bridge, acknowledger
    finally:
        await service.stop()
