"""Does the OPC UA bridge delay the live stream? Readings p99 hub→sink with 5 OPC UA
subscribers against none, in the same run.

    .venv/bin/python -m bench.bench_opcua [--seconds 15] [--rate 1000]

One service in this process: simulated probes publishing ``--rate`` readings/s, the OPC UA
bridge, and a live sink (a hub subscription drained by its own task, as a viewer's is) that
measures publish→receive on the monotonic clock for every reading. Phases, each ``--seconds``
long: no OPC UA client; 5 asyncua clients in their own processes, each subscribed to every
variable at a 100 ms publishing interval (one of them slow: it sleeps in every notification);
no client again (so drift shows). Prints the p50/p99 of each phase and the ratio p99(5 clients)
/ p99(none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

CLIENTS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client_main(url: str, slow: bool) -> None:
    """One OPC UA subscriber: every variable under the sensorlink folder, until stdin closes."""
    import logging

    from asyncua import Client, ua

    # its publish loop logs a traceback per retry once the session is closed at the end
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    received = 0

    class Handler:
        def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
            nonlocal received
            received += 1
            if slow:
                time.sleep(0.002)  # a client that cannot keep up with its notifications

    async with Client(url) as client:
        ns = await client.get_namespace_index("urn:sensorlink")
        root = await client.nodes.objects.get_child([f"{ns}:sensorlink"])
        nodes = []
        for sensor in await root.get_children():
            for child in await sensor.get_children():
                if await child.read_data_type() == ua.NodeId(ua.ObjectIds.Double):
                    nodes.append(child)
        subscription = await client.create_subscription(100, Handler())
        await subscription.subscribe_data_change(nodes, queuesize=1000)
        print(json.dumps({"ready": len(nodes)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(json.dumps({"received": received}), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(seconds: float, rate: float) -> dict[str, Any]:
    from sensorlink.config import parse_config
    from sensorlink.samples import Reading
    from sensorlink.service import Service

    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/sensorlink/"
    channels = 10
    config = parse_config({
        "service": {"listen": "127.0.0.1:0", "token": "bench-token-123"},
        "sensors": [{"name": "probes", "driver": "sim-probes", "channels": channels,
                     "rate_hz": rate / channels, "spike_probability": 0.0},
                    {"name": "probes-2", "driver": "sim-probes", "channels": 4, "rate_hz": 10.0}],
        "opcua": {"endpoint": url}}, source="<bench>")
    service = Service.from_config(config)
    await service.start()
    bridge = service.exporters[0]
    sink = service.hub.subscribe("live-sink", maxsize=100_000,
                                 accepts=lambda e: e.__class__ is Reading)
    phase: list[float] = []

    async def drain() -> None:
        while True:
            event = await sink.get()
            phase.append((time.monotonic_ns() - event.t_mono_ns) / 1e6)

    drainer = asyncio.create_task(drain())
    results: dict[str, Any] = {}

    async def run_phase(name: str) -> None:
        phase.clear()
        await asyncio.sleep(seconds)
        results[name] = {"n": len(phase), "p50_ms": statistics.median(phase),
                         "p99_ms": percentile(phase, 0.99)}

    try:
        await asyncio.sleep(2)  # warm up
        await run_phase("none")
        procs = [subprocess.Popen([sys.executable, "-m", "bench.bench_opcua", "--client", url]
                                  + (["--slow"] if i == 0 else []),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for i in range(CLIENTS)]
        ready = [json.loads(await asyncio.to_thread(p.stdout.readline)) for p in procs]  # type: ignore[union-attr]
        await run_phase("5 subscribers")
        received = []
        for p in procs:
            p.stdin.close()  # type: ignore[union-attr]
            received.append(json.loads(await asyncio.to_thread(p.stdout.readline))["received"])  # type: ignore[union-attr]
            p.wait(30)
        await run_phase("none again")
        results["clients"] = {"variables": ready[0]["ready"], "notifications": received}
        results["bridge"] = bridge.status()
        results["live_sink_dropped"] = sink.dropped
    finally:
        drainer.cancel()
        await service.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--client")
    parser.add_argument("--slow", action="store_true")
    parser.add_argument("--switch-ms", type=float, help="sys.setswitchinterval for the service")
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args.client, args.slow))
        return
    if args.switch_ms:
        sys.setswitchinterval(args.switch_ms / 1000)
    r = asyncio.run(measure(args.seconds, args.rate))
    for name in ("none", "5 subscribers", "none again"):
        p = r[name]
        print(f"{name:>14}: {p['n']:>7} readings  p50 {p['p50_ms']:.3f} ms  p99 {p['p99_ms']:.3f} ms")
    print(f"OPC UA clients: {r['clients']['variables']} variables each, notifications received "
          f"{r['clients']['notifications']} (client 0 is slow)")
    print(f"bridge: sent {r['bridge']['sent']}, dropped {r['bridge']['dropped']}; live sink "
          f"dropped {r['live_sink_dropped']}")
    ratio = r["5 subscribers"]["p99_ms"] / r["none"]["p99_ms"]
    print(f"readings p99 hub→sink, 5 OPC UA subscribers / none (same run): {ratio:.2f}×")


if __name__ == "__main__":
    main()
