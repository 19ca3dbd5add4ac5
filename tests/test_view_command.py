"""``sensorlink view`` when the service is not simply there: TLS with a self-signed certificate
(trusted with --ca-file, or not checked with --insecure), a certificate that does not verify (a
stop, not a retry), and a service that does not answer (retries that keep to --duration).

The service is the real command, ``sensorlink demo --tls-cert --tls-key``, in its own process."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

from support import self_signed
from test_cli import _run_view

TOKEN = "view-token-1234"


async def tls_demo(service_process: Any, tmp_path: Path) -> tuple[str, Path]:
    cert, key = self_signed(tmp_path)
    proc = service_process("demo", "--listen", "127.0.0.1:0", "--token", TOKEN,
                           "--tls-cert", str(cert), "--tls-key", str(key))
    url = await proc.url()
    assert url.startswith("https://127.0.0.1:")
    return url, cert


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


async def test_view_trusts_a_self_signed_service_given_its_certificate(service_process,
                                                                        tmp_path) -> None:
    url, cert = await tls_demo(service_process, tmp_path)
    result = await _run_view(url, "--ca-file", str(cert), "--duration", "4", "--json",
                             "--quiet-readings")
    assert result.returncode == 0, result.stderr
    summary = events(result.stdout)[-1]
    assert summary["event"] == "summary" and summary["connections"] >= 1
    assert summary["readings"] > 0 and summary["seq_gaps"] == 0
    assert "warning" not in result.stderr


async def test_view_insecure_connects_and_says_that_nothing_was_verified(service_process,
                                                                          tmp_path) -> None:
    url, _ = await tls_demo(service_process, tmp_path)
    result = await _run_view(url, "--insecure", "--duration", "4", "--json", "--quiet-readings")
    assert result.returncode == 0, result.stderr
    assert events(result.stdout)[-1]["readings"] > 0
    assert "warning: --insecure: the service's TLS certificate is not verified" in result.stderr


async def test_a_certificate_that_does_not_verify_stops_view_at_once_saying_how_to_fix_it(
        service_process, tmp_path) -> None:
    url, _ = await tls_demo(service_process, tmp_path)
    port = re.search(r":(\d+)/", url).group(1)
    other = tmp_path / "other"
    other.mkdir()
    another_ca, _ = self_signed(other, "some other CA")
    # Without --duration a retried failure would run until the test's timeout: it must stop.
    for extra in ((), ("--ca-file", str(another_ca))):
        result = await _run_view(url, "--json", *extra)
        assert result.returncode == 5, (extra, result.stderr)
        assert (f"sensorlink view: TLS certificate verify failed for 127.0.0.1:{port}: "
                "self-signed certificate. Trust the service's certificate (or the CA that signed "
                "it) with --ca-file PEM, or skip the check with --insecure") in result.stderr
        assert not [e for e in events(result.stdout) if e["event"] == "disconnected"]  # no retry


async def test_view_retries_a_silent_service_within_its_duration(tmp_path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    duration = 3.0
    result = await _run_view(f"http://127.0.0.1:{port}/#token={TOKEN}", "--duration",
                             str(duration), "--json")
    assert result.returncode == 4, result.stderr  # never connected
    retries = [e for e in events(result.stdout) if e["event"] == "disconnected"]
    assert len(retries) >= 2 and all("Connect call failed" in e["reason"] for e in retries), retries
    # Every wait ends by the deadline: together they fit in --duration (0.5 + 1 + 2 s did not).
    assert sum(e["retry_s"] for e in retries) <= duration, retries
    assert events(result.stdout)[-1]["event"] == "summary"
