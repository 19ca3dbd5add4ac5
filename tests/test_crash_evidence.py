"""A native crash leaves evidence: every thread's Python stack on stderr.

Issue 10's segfault was diagnosed from such a dump (two executor threads inside one encode).
Both places it must come from are checked with a real SIGSEGV: the ``sensorlink`` command, and
the test run with the project's pytest configuration. Each crashing process has a second thread
parked in a function of a known name: its frame in the dump proves *every* thread was dumped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from support import REPO

CRASH = '''
import ctypes, threading

def parked_thread_waits(event):
    event.wait()

threading.Thread(target=parked_thread_waits, args=(threading.Event(),), daemon=True).start()
ctypes.string_at(0)  # a native crash: read address 0
'''


def clean_env() -> dict[str, str]:
    # Without PYTHONFAULTHANDLER (scripts/test.sh sets it): what is checked here must come
    # from the CLI and from pytest themselves.
    return {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}


def assert_all_threads_dumped(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == -signal.SIGSEGV, proc.stderr[-2000:]
    assert "Fatal Python error: Segmentation fault" in proc.stderr
    assert "Current thread 0x" in proc.stderr and "Thread 0x" in proc.stderr.replace(
        "Current thread 0x", "")
    assert "in parked_thread_waits" in proc.stderr  # the other thread's stack, not only ours


def test_the_cli_dumps_every_thread_on_a_native_crash() -> None:
    # The command runs to its end (it enabled the dump on entry), then the process crashes.
    script = "from sensorlink import cli\nassert cli.main(['drivers']) == 0\n" + CRASH
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=clean_env(), timeout=60, cwd=REPO)
    assert_all_threads_dumped(proc)


def test_the_test_run_dumps_every_thread_on_a_native_crash(tmp_path: Path) -> None:
    test_file = tmp_path / "test_crashes.py"
    body = "\n    ".join(CRASH.strip().splitlines())
    test_file.write_text(f"def test_crashes():\n    {body}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(test_file)],
        capture_output=True, text=True, env=clean_env(), timeout=120, cwd=tmp_path)
    assert_all_threads_dumped(proc)
