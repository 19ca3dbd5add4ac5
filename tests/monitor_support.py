"""Helpers for the monitoring tests: a webhook receiver (the standard library's HTTP server, not
ours), mosquitto_sub as the MQTT client, @mcap/core as the MCAP reader, and a config whose
simulated machine heats up and cools down on a known curve."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mcap_readers import NODE_DIR


class WebhookReceiver:
    """An HTTP server on loopback that keeps every POST; the first ``failures`` requests are
    answered 503 (so the sender has to retry)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    status = 503 if receiver.failures > 0 else 200
                    receiver.failures -= 1
                    receiver.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sensorlink"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body, status in self.requests if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MosquittoSub:
    """``mosquitto_sub`` writing "topic<TAB>retained<TAB>payload" lines to a file."""

    def __init__(self, port: int, topic: str, out: Path, *extra: str) -> None:
        exe = shutil.which("mosquitto_sub")
        assert exe, "mosquitto_sub is not installed: run scripts/setup.sh --browser"
        self.out = out
        self.proc = subprocess.Popen(
            [exe, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic,
             "-F", "%t\t%r\t%p", *extra], stdout=out.open("wb"), stderr=subprocess.PIPE)

    def lines(self) -> list[tuple[str, bool, str]]:
        text = self.out.read_text(encoding="utf-8", errors="replace") if self.out.exists() else ""
        out = []
        for line in text.splitlines():
            topic, retained, payload = (line.split("\t", 2) + ["", ""])[:3]
            out.append((topic, retained == "1", payload))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def read_topics(path: Path, *topics: str) -> dict[str, list[dict[str, Any]]]:
    """Messages of ``topics`` as @mcap/core reads them (tests/node/read_topics.mjs)."""
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup.sh --browser needs Node.js 20+)"
    done = subprocess.run([node, str(NODE_DIR / "read_topics.mjs"), str(path), *topics],
                          cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and "error" not in report, (report, done.stderr)
    return report


def heating_camera(name: str, *, start_c: float, rise_c: float, tau_s: float = 3.0
                   ) -> dict[str, Any]:
    """A still hot spot whose peak goes from start_c toward start_c + rise_c (a fall if < 0),
    with noise, and a box region ``housing`` around it."""
    return {"name": name, "driver": "sim-thermal", "rate_hz": 10.0, "path_period_s": 0.0,
            "hot_spot_start_c": start_c, "heat_up_c": rise_c, "heat_up_tau_s": tau_s,
            "noise_c": 0.3, "hot_spot_xy": [0.5, 0.5],
            "regions": [{"name": "housing", "kind": "box", "points": [[10, 6], [21, 17]]},
                        {"name": "corner", "kind": "spot", "points": [[0, 0]]}]}


def probes(name: str) -> dict[str, Any]:
    return {"name": name, "driver": "sim-probes", "channels": 2, "rate_hz": 10.0,
            "spike_probability": 0.0}


def microphone(name: str) -> dict[str, Any]:
    return {"name": name, "driver": "sim-microphone", "rotation_deg_per_s": 0.0,
            "bands": {"set": "octave", "custom": [{"name": "bearing", "low_hz": 1400,
                                                   "high_hz": 3000}]}}


#: Heat-up of the "hot" camera: 40 → 70 °C (τ 3 s) crosses 50 (warning) then 60 (alarm) once
#: each. The "cool" camera falls 75 → 35 °C: raised as an alarm, stepping down and clearing, but
#: latched until someone acknowledges.
RULES = [
    {"name": "hot", "stream": "cam-hot/housing/max", "condition": "above", "warning": 50.0,
     "alarm": 60.0, "deadband": 2.0, "on_delay_s": 0.3, "latch": True, "message": "Housing"},
    {"name": "cool", "stream": "cam-cool/housing/max", "condition": "above", "warning": 50.0,
     "alarm": 60.0, "deadband": 2.0, "on_delay_s": 0.3, "latch": True},
    {"name": "probes-gone", "sensor": "probes-b", "condition": "disconnected", "alarm": 600},
]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"


def write_config(path: Path, *, sensors: list[dict[str, Any]], alarms: list[dict[str, Any]] = (),
                 service: dict[str, Any] | None = None, **tables: Any) -> Path:
    """A TOML config as a user writes it: [service], [[sensors]], [[alarms]], other tables."""
    lines = ["[service]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (service or {
        "listen": "127.0.0.1:0", "token": "test-token-123",
        "viewer_token": "viewer-token-456"}).items()]
    for name, entries in (("sensors", sensors), ("alarms", alarms),
                          ("webhooks", tables.pop("webhooks", []))):
        for entry in entries:
            lines += ["", f"[[{name}]]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
