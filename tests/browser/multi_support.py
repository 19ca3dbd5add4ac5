"""Helpers for tests/browser/test_multi.py: two services with different sensors (so a switch shows
on the page), a mosquitto broker for the exports panel, and the network namespace in which the
dashboard joins a real Janus room (Janus never offers loopback candidates: see tests/test_janus.py,
whose namespace and Janus config this reuses)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from dashboard_support import RunningService, start_command

MOSQUITTO = Path("/usr/sbin/mosquitto")

TOKEN_A = "service-a-operator"
VIEWER_A = "service-a-viewer"
TOKEN_B = "service-b-operator"
VIEWER_B = "service-b-viewer"

SENSORS_A = """
[[sensors]]
name = "a-cam"
driver = "sim-thermal"
rate_hz = 4

[[sensors]]
name = "a-probes"
driver = "sim-probes"
channels = 2
rate_hz = 10
"""

SENSORS_B = """
[[sensors]]
name = "b-cam"
driver = "sim-thermal"
width = 16
height = 12
rate_hz = 4

[[sensors]]
name = "b-probes"
driver = "sim-probes"
channels = 3
rate_hz = 10
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_config(*, listen: str, token: str, viewer_token: str, sensors: str,
                   extra: str = "") -> str:
    return (f'[service]\nlisten = "{listen}"\ntoken = "{token}"\nviewer_token = "{viewer_token}"\n'
            f"{sensors}\n{extra}")


def start_run(workdir: Path, config_text: str, *extra_args: str) -> RunningService:
    """``sensorlink run`` on ``config_text`` in ``workdir``; returns once it printed its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sensors.toml"
    config.write_text(config_text, encoding="utf-8")
    return start_command(["run", str(config), *extra_args], workdir)


class Broker:
    """mosquitto on a free loopback port; stop() and start() again keep the port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"log_dest file {directory}/mosquitto.log"]
        if os.geteuid() == 0:
            lines.append("user root")  # as root it would switch to a user that cannot write here
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, f"mosquitto exited {self.proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not listen within 10 s"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class JanusServer:
    """Janus inside the test's network namespace (config from tests/janus_support.py)."""

    def __init__(self, directory: Path, janus_ip: str, port: int = 8188) -> None:
        from janus_support import JANUS, write_janus_config

        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "janus.log"
        self.port = port
        self.janus_ip = janus_ip
        config = write_janus_config(directory, port)
        self.proc = subprocess.Popen([JANUS, "-C", str(config), "-F", str(directory), "-o", "-N",
                                      "-L", str(self.log)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"janus exited {self.proc.returncode}: "
                                     f"{self.log.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection((janus_ip, port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("janus did not listen within 15 s") from None
                time.sleep(0.1)

    @property
    def ws_url(self) -> str:
        return f"ws://{self.janus_ip}:{self.port}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
