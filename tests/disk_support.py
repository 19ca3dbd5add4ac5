"""A small disk for the full-disk tests: a tmpfs of a few MB mounted for one test.

This machine runs the tests as root, so ``mount -t tmpfs`` works. Where it is not permitted,
the test runs again inside a user and mount namespace of its own (``unshare -rm``), where it is:
the outer run then only checks that the inner one passed (the fixture yields None).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

INSIDE = os.environ.get("SENSORLINK_TEST_MOUNTNS") == "1"


def _mount(where: Path, size: str) -> bool:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(where)], capture_output=True, text=True, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def small_disk(where: Path, size: str, nodeid: str) -> Iterator[Path | None]:
    where.mkdir(parents=True, exist_ok=True)
    if _mount(where, size):
        try:
            yield where
        finally:
            subprocess.run(["umount", "-l", str(where)], check=False)
        return
    assert not INSIDE, f"mount -t tmpfs failed inside a mount namespace of our own ({where})"
    assert shutil.which("unshare"), "needs unshare (util-linux) to mount a tmpfs without root"
    inner = subprocess.run(
        ["unshare", "--map-root-user", "--mount", "--", sys.executable, "-m", "pytest", "-q",
         "-p", "no:cacheprovider", nodeid],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600,
        env={**os.environ, "SENSORLINK_TEST_MOUNTNS": "1"}, check=False)
    assert inner.returncode == 0, f"inside a mount namespace:\n{inner.stdout[-6000:]}\n{inner.stderr[-3000:]}"
    yield None
