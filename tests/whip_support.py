"""Peers we did not write, for the WHIP and WHEP tests, as child processes on werift: a WHIP
endpoint (tests/node/whip_endpoint.mjs) and a WHEP player (tests/node/whep_client.mjs); what their
WebM files hold, decoded by FFmpeg (PyAV); and a scripted HTTP server for broken endpoints."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

NODE_DIR = Path(__file__).with_name("node")


class NodePeer:
    """A node script of tests/node as a child process: its JSON events as they come, and ways
    to make it go away."""

    script = ""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def spawn(self, *args: str) -> None:
        node = shutil.which("node")
        assert node, "node (Node.js 20+) is required: scripts/setup.sh --browser"
        assert (NODE_DIR / "node_modules" / "werift").is_dir(), "run scripts/setup.sh --browser"
        self.proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / self.script), *args, cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read(self.proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode("utf-8", "replace").strip()
            self.events.append(json.loads(text) if text.startswith("{") else
                               {"event": "output", "text": text})
            self._changed.set()
        self.events.append({"event": "ended", "code": await proc.wait()})
        self._changed.set()

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in self.events if predicate(e)]

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str,
                       count: int = 1, timeout: float = 45.0) -> dict[str, Any]:
        """The ``count``-th event ``predicate`` accepts; fails naming ``what`` and the events."""
        async def wait() -> dict[str, Any]:
            while len(found := self.matching(predicate)) < count:
                self._changed.clear()
                await self._changed.wait()
            return found[count - 1]
        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.script}: no {what} within {timeout:g} s; "
                                 f"events: {self.events[-20:]}") from None

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            await self.proc.stdin.wait_closed()  # BrokenPipe is possible; the pipe closes anyway


class WhipEndpoint(NodePeer):
    """``node whip_endpoint.mjs``; SIGTERM closes its peer connections first, as a restarting
    server does."""

    script = "whip_endpoint.mjs"

    def __init__(self, out_dir: Path, token: str | None = None) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.token = token
        self.port = 0

    async def start(self, port: int = 0) -> int:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        await self.spawn(str(port), str(self.out_dir), *([self.token] if self.token else []))
        listening = await self.wait_for(lambda e: e["event"] == "listening", "listening")
        self.port = listening["port"]
        return self.port


class WhepPlayer(NodePeer):
    """``node whep_client.mjs``: a werift player of one WHEP URL, recording what it receives."""

    script = "whep_client.mjs"

    async def play(self, url: str, token: str, file: Path, kinds: str = "video,audio") -> int:
        """POST the offer; the status of the reply."""
        await self.spawn(url, token, str(file), kinds)
        return (await self.wait_for(lambda e: e["event"] == "answered", "answer"))["status"]

    async def delete(self) -> dict[str, Any]:
        """DELETE the session's Location; the ``deleted`` event (status, file, RTP counts)."""
        self.send("delete")
        deleted = await self.wait_for(lambda e: e["event"] == "deleted", "deleted")
        await self.wait_for(lambda e: e["event"] == "ended", "exit")
        await self.stop()
        return deleted


@dataclass
class Received:
    """What one WebM file holds, decoded."""

    video_sizes: list[tuple[int, int]] = field(default_factory=list)
    audio_samples: int = 0
    audio_dbfs: float = -math.inf
    video_packets: int = 0
    undecodable: int = 0

    @property
    def frames(self) -> int:
        return len(self.video_sizes)


def decode_tracks(base: str | Path) -> Received:
    """What the node peers recorded as ``<base>.video.webm`` and ``<base>.audio.webm``, together
    (a file that is not there, for a kind not received, counts as nothing)."""
    video, audio = (decode_webm(f"{base}.{kind}.webm") if Path(f"{base}.{kind}.webm").exists()
                    else Received() for kind in ("video", "audio"))
    return Received(video_sizes=video.video_sizes, audio_samples=audio.audio_samples,
                    audio_dbfs=audio.audio_dbfs, video_packets=video.video_packets,
                    undecodable=video.undecodable + audio.undecodable)


def decode_webm(path: str | Path) -> Received:
    """Every frame FFmpeg decodes from ``path`` (VP8 and Opus), and the audio's level."""
    out = Received()
    squares, count = 0.0, 0
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.stream.type == "video" and packet.size:
                out.video_packets += 1
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                out.undecodable += 1
                continue  # a frame cut short (the recording starts mid-stream): not decodable
            for frame in frames:
                if isinstance(frame, av.VideoFrame):
                    out.video_sizes.append((frame.width, frame.height))
                elif isinstance(frame, av.AudioFrame):
                    pcm = frame.to_ndarray().astype(np.float64)
                    if frame.format.name.startswith(("flt", "dbl")):
                        pcm = pcm * 32768.0
                    squares += float(np.sum(pcm * pcm))
                    count += pcm.size
                    out.audio_samples += frame.samples
    if count:
        rms = math.sqrt(squares / count) / 32768.0
        out.audio_dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    return out


class ScriptedEndpoint:
    """An HTTP server (the standard library's) that answers every POST with one fixed reply,
    bytes as given: how a misconfigured or broken WHIP endpoint looks to the publisher."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        import http.server
        import threading

        self.posts: list[dict[str, str]] = []
        reply, posts = (status, headers, body), self.posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                self.send_response(reply[0])
                for name, value in reply[1].items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply[2])))
                self.end_headers()
                self.wfile.write(reply[2])

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
