"""Service CPU for 1 vs 10 viewers, direct and through a Janus VideoRoom (issue 7).

Janus never offers loopback candidates, so this runs inside a private network namespace it
creates (``unshare -n``, one veth pair 10.77.0.1 <-> 10.77.0.2; nothing leaves it), like
tests/test_janus.py. The service is ``sensorlink run`` with the demo's simulated sensors in a
subprocess, so /proc gives its CPU alone; the viewers run here.

    .venv/bin/python -m bench.janus_cpu          # prints a table and writes bench/janus_cpu.json
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

CONFIG = """
[service]
listen = "{host}:0"
token = "bench-token-123"

[[sensors]]
name = "machine-cam"
driver = "sim-thermal"

[[sensors]]
name = "bearing-probes"
driver = "sim-probes"

[[sensors]]
name = "spindle-mic"
driver = "sim-microphone"
"""


async def measure(pid: int, seconds: float) -> float:
    from bench.measure import cpu_seconds

    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


async def run_service(tmp: Path, publish: str | None) -> tuple[subprocess.Popen[bytes], str]:
    from janus_support import SERVICE_IP

    config = tmp / "bench.toml"
    config.write_text(CONFIG.format(host=SERVICE_IP))
    out = tmp / f"service-{publish is not None}.out"
    args = [sys.executable, "-m", "sensorlink.cli", "run", str(config)]
    if publish:
        args += ["--publish", publish]
    proc = subprocess.Popen(args, stdout=out.open("wb"), stderr=subprocess.DEVNULL)
    for _ in range(300):
        match = re.search(r"Dashboard: (\S+)", out.read_text(errors="replace"))
        if match:
            return proc, match.group(1)
        await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("service did not start")


async def viewers_cpu(proc: subprocess.Popen[bytes], make_viewer: Callable[[], Any],
                      counts: tuple[int, ...], warmup: float, seconds: float) -> dict[int, float]:
    """The service's CPU with nobody watching, then with each count of viewers."""
    results = {0: await measure(proc.pid, seconds)}
    for n in counts:
        viewers = [make_viewer() for _ in range(n)]
        tasks = [asyncio.create_task(v.run()) for v in viewers]
        await asyncio.sleep(warmup)
        results[n] = await measure(proc.pid, seconds)
        assert all(v.readings > 0 for v in viewers), "a viewer got nothing"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2)
    return results


async def path_cpu(tmp: Path, janus_url: str | None, counts: tuple[int, ...], warmup: float,
                   seconds: float) -> dict[int, float]:
    """Direct viewers (janus_url None) or subscribers in the Janus room the service publishes to."""
    from sensorlink.webrtc.janus_viewer import JanusViewer
    from sensorlink.webrtc.viewer import Viewer

    proc, url = await run_service(tmp, janus_url)
    try:
        await asyncio.sleep(warmup)
        make = (lambda: Viewer(url)) if janus_url is None else (lambda: JanusViewer(janus_url))
        return await viewers_cpu(proc, make, counts, warmup, seconds)
    finally:
        proc.terminate()
        proc.wait(20)


async def inside(warmup: float, seconds: float) -> dict[str, dict[int, float]]:
    from janus_support import JANUS, JANUS_IP, setup_namespace_network, write_janus_config
    from support import terminate, wait_until_listening

    setup_namespace_network()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        port = 8188
        config = write_janus_config(tmp, port)
        janus = subprocess.Popen([JANUS, "-C", str(config), "-F", str(tmp), "-o", "-N", "-L",
                                  str(tmp / "janus.log")], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_listening(janus, JANUS_IP, port, what="janus")
            counts = (1, 10)
            return {"direct": await path_cpu(tmp, None, counts, warmup, seconds),
                    "janus": await path_cpu(tmp, f"janus://{JANUS_IP}:{port}/4242", counts,
                                            warmup, seconds)}
        finally:
            terminate(janus)


def main() -> int:
    if os.environ.get("SENSORLINK_BENCH_NETNS") == "1":
        results = asyncio.run(inside(warmup=6.0, seconds=10.0))
        print(json.dumps(results))
        return 0
    done = subprocess.run(["unshare", "-n", "--", sys.executable, "-m", "bench.janus_cpu"],
                          cwd=REPO, env={**os.environ, "SENSORLINK_BENCH_NETNS": "1"},
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    results = json.loads(done.stdout.strip().splitlines()[-1])
    (REPO / "bench" / "janus_cpu.json").write_text(json.dumps(results, indent=2) + "\n")
    print("service CPU (% of one core), demo sensors:")
    print("| path | no viewer | 1 viewer | 10 viewers | 10 / 1 |")
    print("|---|---|---|---|---|")
    for path, row in results.items():
        one, ten = row["1"], row["10"]
        print(f"| {path} | {row['0'] * 100:.1f} | {one * 100:.1f} | {ten * 100:.1f} | "
              f"{ten / one:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
