"""Test helpers: wait on conditions (never on the clock), simulated sensors with known truth,
and the service as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sensorlink.config import SensorConfig

REPO = Path(__file__).resolve().parent.parent
URL_RE = re.compile(r"Dashboard: (https?://\S+)")

#: Simulated sensors whose truth is easy to compute: a still hot spot, a still sound source.
STILL_SENSORS = [
    SensorConfig("cam", "sim-thermal", {"path_period_s": 0.0, "hot_spot_xy": [0.75, 0.25],
                                        "heat_up_c": 0.0, "noise_c": 0.0}),
    SensorConfig("probes", "sim-probes", {"channels": 3, "rate_hz": 50.0}),
    SensorConfig("mic", "sim-microphone", {"direction_deg": 120.0, "rotation_deg_per_s": 0.0}),
]


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "",
                   interval: float = 0.02) -> Any:
    """Poll ``predicate`` every ``interval`` seconds until it is truthy; fail (not hang) after
    ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(interval)


class ServiceProcess:
    """``sensorlink ARGS`` in a subprocess whose stdout goes to a file, as under a service manager."""

    def __init__(self, args: list[str], tmp_path: Path) -> None:
        self.out_path = tmp_path / "service.out"
        self.err_path = tmp_path / "service.err"
        env = {**os.environ, "PYTHONUNBUFFERED": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sensorlink.cli", *args], cwd=tmp_path, env=env,
            stdout=self.out_path.open("wb"), stderr=self.err_path.open("wb"),
            stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.err_path.read_text(errors="replace")

    async def url(self, timeout: float = 30.0) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}: {self.errors()}")
            match = URL_RE.search(self.output())
            return match.group(1) if match else None
        return await wait_for(found, timeout, "the dashboard URL on stdout")

    def stop(self, sig: int = 15, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"service did not stop on signal {sig}: {self.errors()[-2000:]}")




def self_signed(directory: Path, common_name: str = "sensorlink test") -> tuple[Path, Path]:
    """A certificate for localhost/127.0.0.1 that is its own CA, and its key (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def wait_until_listening(proc: subprocess.Popen[bytes], host: str, port: int, *, what: str,
                         timeout: float = 15.0, log: Callable[[], str] = lambda: "") -> None:
    """Block until ``proc`` accepts TCP connections on host:port; fail, saying why, if it exits
    or does not listen within ``timeout`` seconds (and then kill it)."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}: {log()[-2000:]}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"{what} did not listen within {timeout:g} s") from None
            time.sleep(0.05)


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
