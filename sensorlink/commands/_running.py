"""Running a service from the command line: start it, print where it is, stop on a signal."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from sensorlink.service import Service


def announce(url: str, *, stream: Any = None) -> None:
    """Print the dashboard URL at once, whether stdout is a terminal, a file or a journal."""
    stream = stream or sys.stdout
    print(f"Dashboard: {url}", file=stream, flush=True)
    print("Open it in a browser (the token after # is the key); Ctrl-C stops.", file=stream,
          flush=True)


async def serve_until_stopped(service: Service) -> None:
    """Start, announce, and run until SIGINT or SIGTERM; then stop cleanly (recording closed)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    url = await service.start()
    announce(url)
    for exporter in service.exporters:
        if exporter.kind == "whep":
            print(f"WHEP: {exporter.url}<camera> (Authorization: Bearer <token>)", flush=True)
        elif exporter.kind == "foxglove":  # the app's URL carries the token in its query
            print(f"Foxglove: {exporter.url}?token={service.token}", flush=True)
    try:
        await stop.wait()
    finally:
        print("sensorlink: stopping", file=sys.stderr, flush=True)
        await service.stop()


def run(service: Service) -> int:
    try:
        asyncio.run(serve_until_stopped(service))
    except KeyboardInterrupt:
        pass
    return 0
