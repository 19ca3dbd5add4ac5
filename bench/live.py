"""Live-path benchmarks: a server process (bench.serve or ``sensorlink demo``) and receivers here.

The server runs in its own process so that its CPU is its own (read from /proc); the receivers run
in this process on the same loopback. Every run is bounded: connects, warm-ups and windows all
have timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import websockets

from sensorlink.webrtc.peer import enlarge_receive_buffers
from sensorlink.webrtc.viewer import Viewer, connected_viewer
from sensorlink.webrtc.wire import FrameAssembler

from bench.measure import CpuWindow, cpu_seconds, percentile, rss_bytes
from bench.serve import TOKEN

REPO = Path(__file__).resolve().parent.parent
_URL_RE = re.compile(r"Dashboard: (\S+)")


class ServerProc:
    """A server in a subprocess; ``url`` once it listens, SIGTERM on exit."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._err = tempfile.TemporaryFile()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> ServerProc:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, *self.argv], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=self._err,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self.url:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                await self.__aexit__(None, None, None)
                raise RuntimeError(f"server {self.argv} did not start: {self.errors()[-2000:]}")
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), remaining)
            text = line.decode(errors="replace").strip()
            if text.startswith("{"):
                self.url = json.loads(text)["url"]
            elif (match := _URL_RE.search(text)):
                self.url = match.group(1)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 15)
        except TimeoutError:
            self.proc.kill()
            self.proc.wait()

    def errors(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")


def bench_server(transport: str, *, sensors: list[Any] = (), blast: bool = False,
                 batch: int | None = None) -> ServerProc:
    argv = ["-m", "bench.serve", "--transport", transport, "--sensors", json.dumps(list(sensors))]
    if blast:
        argv.append("--blast")
    if batch is not None:
        argv += ["--batch", str(batch)]
    return ServerProc(argv)


def webrtc_url(server: ServerProc) -> str:
    return server.url if "#token=" in server.url else f"{server.url}#token={TOKEN}"


class Tally:
    """What a receiver saw: readings, seq gaps, frames, and (when asked) latencies in ms."""

    def __init__(self, latency: bool) -> None:
        self.latency = latency
        self.readings = 0
        self.seq_gaps = 0
        self.frames = 0
        self.reading_ms: list[float] = []
        self.frame_ms: list[float] = []
        self._last: dict[str, int] = {}

    def rows(self, rows: list[Any], received_ns: int) -> None:
        # The same per-row work as sensorlink.webrtc.viewer.Viewer, so both transports pay it.
        self.readings += len(rows)
        for stream, seq, *_ in rows:
            last = self._last.get(stream)
            if last is not None and seq != last + 1 and seq > last:
                self.seq_gaps += seq - last - 1
            self._last[stream] = seq
        if self.latency:
            self.reading_ms.extend((received_ns - row[2]) / 1e6 for row in rows)

    def frame(self, t_wall_ns: int, received_ns: int) -> None:
        self.frames += 1
        self.frame_ms.append((received_ns - t_wall_ns) / 1e6)

    def reset_latency(self) -> None:
        self.reading_ms.clear()
        self.frame_ms.clear()


@contextlib.asynccontextmanager
async def webrtc_receiver(server: ServerProc, *, latency: bool = False,
                          validate: bool = False, tune: bool = True) -> AsyncIterator[Tally]:
    """sensorlink's own Viewer as the remote peer. ``tune`` gives its UDP sockets the receive
    buffer the service asks for (sensorlink.webrtc.peer.enlarge_receive_buffers): a browser's native
    SCTP stack drains its socket far faster than a Python receiver, which otherwise loses
    datagrams at full rate and measures its own overflow instead of the service."""
    tally = Tally(latency)

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "readings":
            tally.rows(event["readings"], event["received_ns"])
        elif event["event"] == "frame":
            tally.frame(event["t_wall_ns"], event["received_ns"])

    async with connected_viewer(webrtc_url(server), on_event=on_event,
                                validate_messages=validate) as viewer:
        tally.viewer = viewer  # type: ignore[attr-defined]
        if tune and viewer._pc is not None:
            tally.tuned_sockets = enlarge_receive_buffers(viewer._pc)  # type: ignore[attr-defined]
        yield tally


@contextlib.asynccontextmanager
async def ws_receiver(server: ServerProc, *, latency: bool = False) -> AsyncIterator[Tally]:
    tally = Tally(latency)
    assembler = FrameAssembler()

    async def run() -> None:
        async with websockets.connect(server.url, max_size=2**22, compression=None) as ws:
            async for data in ws:
                message = msgpack.unpackb(data)
                now = time.time_ns()
                if message["type"] == "readings":
                    tally.rows(message["readings"], now)
                elif message["type"] == "frame" and (done := assembler.add(message)) is not None:
                    tally.frame(done[0]["t_wall_ns"], now)

    task = asyncio.create_task(run())
    try:
        yield tally
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def window(server: ServerProc, count: Callable[[], int], *, warmup: float,
                 duration: float, tallies: list[Tally] = ()) -> dict[str, float]:
    """Rate of ``count`` and CPU of the server and of this (receiving) process over a window."""
    await asyncio.sleep(warmup)
    for tally in tallies:
        tally.reset_latency()
    c0, t0 = count(), time.monotonic()
    server_cpu, here_cpu = CpuWindow(server.pid).start(), CpuWindow().start()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - t0
    return {"rate": (count() - c0) / elapsed, "server_cpu": server_cpu.core_fraction(),
            "receiver_cpu": here_cpu.core_fraction()}


def latency_summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99), "n": len(values)}


# -- readings ----------------------------------------------------------------------------------

async def readings_throughput(transport: str, *, batch: int | None, warmup: float,
                              duration: float) -> dict[str, Any]:
    async with bench_server(transport, blast=True, batch=batch) as server:
        receiver = webrtc_receiver(server) if transport == "webrtc" else ws_receiver(server)
        async with receiver as tally:
            result = await window(server, lambda: tally.readings, warmup=warmup, duration=duration)
            result["seq_gaps"] = tally.seq_gaps
            return result


PROBES_1K = [["probes", "sim-probes", {"channels": 1, "rate_hz": 1000.0, "per_tick": 1,
                                       "noise_c": 0.0, "spike_probability": 0.0}]]


async def readings_latency(transport: str, *, warmup: float, duration: float) -> dict[str, Any]:
    async with bench_server(transport, sensors=PROBES_1K) as server:
        receiver = (webrtc_receiver(server, latency=True) if transport == "webrtc"
                    else ws_receiver(server, latency=True))
        async with receiver as tally:
            result = await window(server, lambda: tally.readings, warmup=warmup,
                                  duration=duration, tallies=[tally])
            result.update(latency_summary(tally.reading_ms))
            return result


async def viewers_cpu(counts: tuple[int, ...], *, warmup: float, duration: float) -> dict[int, Any]:
    """Server CPU for the readings path with 0, 1, ... viewers (10 probe streams, 2,000 readings/s)."""
    sensors = [["probes", "sim-probes", {"channels": 10, "rate_hz": 100.0, "per_tick": 2}]]
    out: dict[int, Any] = {}
    async with bench_server("webrtc", sensors=sensors) as server:
        async with contextlib.AsyncExitStack() as stack:
            tallies: list[Tally] = []
            for n in counts:
                while len(tallies) < n:
                    tallies.append(await stack.enter_async_context(webrtc_receiver(server)))
                result = await window(server, lambda: sum(t.readings for t in tallies),
                                      warmup=warmup, duration=duration)
                result["per_viewer_rate"] = result["rate"] / max(n, 1)
                result["seq_gaps"] = sum(t.seq_gaps for t in tallies)
                out[n] = result
    return out


# -- thermal -----------------------------------------------------------------------------------

async def thermal_live(width: int, height: int, rate_hz: float, *, warmup: float,
                       duration: float) -> dict[str, Any]:
    """Server CPU for one camera without and with a viewer, and exact-frame latency over the
    frames channel vs the same frame messages over a websocket."""
    sensors = [["cam", "sim-thermal", {"width": width, "height": height, "rate_hz": rate_hz}]]
    out: dict[str, Any] = {}
    async with bench_server("webrtc", sensors=sensors) as server:
        out["idle"] = await window(server, lambda: 0, warmup=warmup, duration=duration)
        async with webrtc_receiver(server, latency=True) as tally:
            viewer: Viewer = tally.viewer  # type: ignore[attr-defined]
            result = await window(server, lambda: viewer.video_frames["cam"], warmup=warmup,
                                  duration=duration, tallies=[tally])
            result.update(latency_summary(tally.frame_ms))
            out["viewed"] = result
    async with bench_server("ws", sensors=sensors) as server:
        async with ws_receiver(server, latency=True) as tally:
            result = await window(server, lambda: tally.frames, warmup=warmup,
                                  duration=duration, tallies=[tally])
            result.update(latency_summary(tally.frame_ms))
            out["ws"] = result
    return out


# -- soak --------------------------------------------------------------------------------------

async def soak(minutes: float, *, sample_s: float = 5.0) -> dict[str, Any]:
    """``sensorlink demo`` in a subprocess with one viewer for ``minutes``: RSS and CPU over time."""
    argv = ["-m", "sensorlink.cli", "demo", "--listen", "127.0.0.1:0", "--token", TOKEN]
    samples: list[tuple[float, int, float]] = []
    async with ServerProc(argv) as server:
        async with webrtc_receiver(server, validate=True) as tally:
            t0, cpu0 = time.monotonic(), cpu_seconds(server.pid)
            end = t0 + minutes * 60
            last_t, last_cpu = t0, cpu0
            while time.monotonic() < end:
                await asyncio.sleep(min(sample_s, max(0.0, end - time.monotonic())))
                now, cpu = time.monotonic(), cpu_seconds(server.pid)
                samples.append((now - t0, rss_bytes(server.pid), (cpu - last_cpu) / (now - last_t)))
                last_t, last_cpu = now, cpu
            readings, gaps = tally.readings, tally.seq_gaps
    quarter = max(1, len(samples) // 4)
    early, late = samples[:quarter], samples[-quarter:]
    # Skip the first sample (imports, first encoder allocations) for the baseline when we can.
    baseline = early[1:] or early
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"minutes": minutes, "samples": [[round(t, 1), r, round(c, 4)] for t, r, c in samples],
            "rss_early_mb": mean([r for _, r, _ in baseline]) / 2**20,
            "rss_late_mb": mean([r for _, r, _ in late]) / 2**20,
            "cpu_early": mean([c for _, _, c in baseline]), "cpu_late": mean([c for _, _, c in late]),
            "readings": readings, "seq_gaps": gaps}
