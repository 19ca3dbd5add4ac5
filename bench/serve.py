"""The serving side of a benchmark, run as its own process so its CPU can be read from /proc.

``python -m bench.serve --transport webrtc|ws [--sensors JSON] [--blast] [--batch N]`` prints one
JSON line ``{"url": ...}`` once it listens, then serves until SIGTERM.

- ``webrtc``: the real :class:`sensorlink.service.Service` (viewers connect as the dashboard does).
- ``ws``: the baseline: the same hub, the same subscriptions and the same msgpack messages
  (``encode_readings`` / ``encode_frame``) sent over a plain websocket on the same loopback.
- ``--blast``: a closed-loop source that publishes readings as fast as the slowest viewer's queue
  drains (it keeps that queue a few batches deep), so the rate delivered is the pipeline's
  capacity and not the source's schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import websockets

from sensorlink import colormap
from sensorlink.config import SensorConfig, ServiceConfig
from sensorlink.hub import Hub
from sensorlink.samples import Reading, SensorInfo, ThermalFrame
from sensorlink.service import Service
from sensorlink.sources.registry import build_runners
from sensorlink.webrtc import fanout, peer
from sensorlink.webrtc.wire import encode_frame, encode_readings

TOKEN = "bench-token"
BLAST_STREAMS = 10
BLAST_CHUNK = 100


def _ws_backlog(hub: Hub) -> int | None:
    subs = [s for s in hub.subscriptions if s.name.endswith(":readings")]
    return max(len(s) for s in subs) if subs else None


async def blast(hub: Hub, depth: int, backlog: Callable[[], int | None]) -> None:
    """Publish readings while every viewer's queue is shallower than ``depth`` (``backlog`` is
    None while no viewer is connected)."""
    hub.describe(SensorInfo("blast", "probe", "bench", {"streams": {
        f"t{i}": {"quantity": "temperature", "unit": "°C"} for i in range(BLAST_STREAMS)}}))
    base = 0
    per_stream = BLAST_CHUNK // BLAST_STREAMS
    while True:
        pending = backlog()
        if pending is None or pending >= depth:
            await asyncio.sleep(0.0005)
            continue
        t_mono, t_wall = time.monotonic_ns(), time.time_ns()
        for k in range(BLAST_CHUNK):
            hub.publish(Reading("blast", f"t{k % BLAST_STREAMS}", "temperature", 25.0 + k * 0.01,
                                "°C", base + k // BLAST_STREAMS, t_mono, t_wall))
        base += per_stream
        await asyncio.sleep(0)


async def _ws_session(hub: Hub, ws: Any, batch: int) -> None:
    """The baseline sender: peer._send_readings' loop with ws.send in place of channel.send."""
    readings = hub.subscribe("ws:readings", maxsize=peer.READINGS_QUEUE,
                             accepts=lambda e: e.__class__ is Reading)
    frames = hub.subscribe("ws:frames", maxsize=2, accepts=lambda e: isinstance(e, ThermalFrame))

    async def send_readings() -> None:
        while True:
            first = await readings.get()
            rows = [first, *readings.get_nowait(batch - 1)]
            await ws.send(encode_readings(rows))

    async def send_frames() -> None:
        while True:
            frame = await frames.get()
            assert isinstance(frame, ThermalFrame)
            for message in encode_frame(frame, colormap.auto_range(frame.celsius)):
                await ws.send(message)

    tasks = [asyncio.create_task(send_readings()), asyncio.create_task(send_frames())]
    try:
        await ws.wait_closed()
    finally:
        readings.close()
        frames.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def main_async(args: argparse.Namespace) -> None:
    sensors = [SensorConfig(name, driver, options) for name, driver, options in json.loads(args.sensors)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    extra: list[asyncio.Task[Any]] = []
    depth = args.depth or max(4 * args.batch, 2 * BLAST_CHUNK)
    if args.transport == "webrtc":
        # The naive baseline is the same service sending one reading per message.
        fanout.BATCH = args.batch
        if args.batch == 1:
            fanout.LINGER_S = 0.0  # naive means naive: one reading, one message, no waiting
        service = Service(ServiceConfig(host="127.0.0.1", port=0, token=TOKEN), sensors=sensors,
                          source="bench")
        url = await service.start()
        if args.blast:
            readings = service.readings
            extra.append(asyncio.create_task(blast(
                service.hub, depth, lambda: readings.backlog if service.viewers else None)))
        print(json.dumps({"url": url}), flush=True)
        try:
            await stop.wait()
        finally:
            for task in extra:
                task.cancel()
            await service.stop()
        return
    hub = Hub()
    runners = build_runners(sensors, hub, "bench")
    for runner in runners:
        hub.describe(runner.driver.info())
        runner.start()
    if args.blast:
        extra.append(asyncio.create_task(blast(hub, depth, lambda: _ws_backlog(hub))))
    async with websockets.serve(lambda ws: _ws_session(hub, ws, args.batch), "127.0.0.1", 0,
                                max_size=2**22, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"url": f"ws://127.0.0.1:{port}/"}), flush=True)
        await stop.wait()
    for task in extra:
        task.cancel()
    for runner in runners:
        await runner.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("webrtc", "ws"), default="webrtc")
    parser.add_argument("--sensors", default="[]", help="JSON list of [name, driver, options]")
    parser.add_argument("--blast", action="store_true")
    parser.add_argument("--batch", type=int, default=fanout.BATCH)
    parser.add_argument("--depth", type=int, default=0, help="blast queue depth (default 4 batches)")
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
