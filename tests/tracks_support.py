"""Two cameras and two microphones in one config, in several orders: every track must arrive.

aiortc (1.16) once lost the second track of a kind whenever that kind's first track was not the
first m-line of the BUNDLE group (see sensorlink.webrtc.ice.rtc_configuration), so which orders fail
depends on the kinds' order: each test runs more than one. The sensors differ so that a
receiver can tell them apart without trusting the mid → sensor map it was given: the cameras
by their picture size, the microphones by their level (mic-a 18 dB louder than mic-b).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sensorlink.config import SensorConfig

SENSORS: dict[str, tuple[str, dict[str, Any]]] = {
    "cam-a": ("sim-thermal", {"width": 32, "height": 24, "rate_hz": 8.0}),
    "cam-b": ("sim-thermal", {"width": 16, "height": 12, "rate_hz": 8.0, "seed": 5}),
    "mic-a": ("sim-microphone", {"source_dbfs": -18.0}),
    "mic-b": ("sim-microphone", {"source_dbfs": -36.0, "hum_hz": 60.0, "seed": 7}),
    "probes": ("sim-probes", {"channels": 2, "rate_hz": 10.0}),
}
CAMERAS = ("cam-a", "cam-b")
MICROPHONES = ("mic-a", "mic-b")
#: how much louder mic-a's source is than mic-b's
LOUDER_DB = SENSORS["mic-a"][1]["source_dbfs"] - SENSORS["mic-b"][1]["source_dbfs"]

ORDERS: dict[str, list[str]] = {
    "cameras-first": ["cam-a", "cam-b", "probes", "mic-a", "mic-b"],
    "microphones-first": ["mic-a", "mic-b", "probes", "cam-a", "cam-b"],
    # the order issue 10 found dead in Chromium: cam-b had no transport
    "interleaved": ["mic-a", "cam-a", "cam-b", "mic-b", "probes"],
    "alternating": ["probes", "cam-a", "mic-a", "cam-b", "mic-b"],
}


def sensor_configs(order: str) -> list[SensorConfig]:
    return [SensorConfig(name, SENSORS[name][0], dict(SENSORS[name][1])) for name in ORDERS[order]]


def sensors_toml(order: str) -> str:
    """The ``[[sensors]]`` tables of ``order`` for a config file."""
    def value(v: Any) -> str:
        return repr(v) if isinstance(v, (int, float)) else f'"{v}"'
    tables = []
    for name in ORDERS[order]:
        driver, options = SENSORS[name]
        lines = [f'name = "{name}"', f'driver = "{driver}"',
                 *(f"{key} = {value(v)}" for key, v in options.items())]
        tables.append("[[sensors]]\n" + "\n".join(lines) + "\n")
    return "\n".join(tables)


async def json_line_where(stream: asyncio.StreamReader, predicate: Callable[[dict[str, Any]], bool],
                          what: str) -> dict[str, Any]:
    """The first JSON line of a child's stdout that ``predicate`` accepts (fails if it ends)."""
    while line := await stream.readline():
        if line.startswith(b"{"):
            event = json.loads(line)
            if predicate(event):
                return event
    raise AssertionError(f"the process ended before {what}")
