"""Helpers for the browser tests: the service as a subprocess (`sensorlink run CONFIG.toml`)
with simulated sensors whose truth is known, and how headless Chromium is launched.

(Not in conftest.py: tests/conftest.py exists too, and `import conftest` would be ambiguous.)"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--disable-dev-shm-usage",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
URL_RE = re.compile(r"Dashboard: (https?://\S+)")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

TOKEN = "browser-operator-token"
VIEWER_TOKEN = "browser-viewer-token"

# The truth the page is checked against: a still hot spot centred on one pixel (so the pixel
# under the cursor holds the peak itself), and a still sound source.
CAM_W, CAM_H = 32, 24
HOT_PX, HOT_PY = 10, 8
HOT_PEAK_C = 52.5
SOURCE_DEG = 120.0
WIDE_W, WIDE_H = 160, 120
WIDE_PX, WIDE_PY = 120, 100
WIDE_PEAK_C = 70.0

CONFIG = f"""
[service]
listen = "127.0.0.1:{{port}}"
token = "{TOKEN}"
viewer_token = "{VIEWER_TOKEN}"

[[sensors]]
name = "cam"
driver = "sim-thermal"
width = {CAM_W}
height = {CAM_H}
path_period_s = 0
hot_spot_xy = [{HOT_PX / (CAM_W - 1)!r}, {HOT_PY / (CAM_H - 1)!r}]
hot_spot_start_c = {HOT_PEAK_C}
heat_up_c = 0

# Large enough that each frame travels as several row bands (its hot spot is in the last one).
[[sensors]]
name = "wide"
driver = "sim-thermal"
width = {WIDE_W}
height = {WIDE_H}
rate_hz = 4
path_period_s = 0
hot_spot_xy = [{WIDE_PX / (WIDE_W - 1)!r}, {WIDE_PY / (WIDE_H - 1)!r}]
hot_spot_start_c = {WIDE_PEAK_C}
hot_spot_sigma = 0.02
heat_up_c = 0
noise_c = 0

[[sensors]]
name = "probes"
driver = "sim-probes"
channels = 3
rate_hz = 10

[[sensors]]
name = "mic"
driver = "sim-microphone"
direction_deg = {SOURCE_DEG}
rotation_deg_per_s = 0
"""


def wait_page(page: Any, condition: str, arg: Any = None, timeout: float = 30_000) -> Any:
    """Wait until ``condition`` holds on ``page``: a JavaScript expression over ``s`` (the test
    hook, ``window.sensorlink``), ``arg`` and the document.

    A predicate that throws makes Playwright's ``wait_for_function`` fail at once instead of
    waiting, and ``window.sensorlink`` is undefined until app.js has run (issue 10: "Cannot
    read properties of undefined (reading 'state')"). Here a page without the hook is "not yet".
    What appears later still (a sensor's panel after the hello, the first status, an element
    the page has not built yet) the condition reads with ``?.``, so that it is false until then.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        return page.wait_for_function(
            f"(arg) => {{ const s = window.sensorlink; return s !== undefined && !!({condition}); }}",
            arg=arg, timeout=timeout)
    except PlaywrightTimeout as exc:
        raise AssertionError(f"waited {timeout / 1000:g} s for {condition!r} (arg {arg!r}); "
                             f"the page: {page_state(page)}") from exc


def page_state(page: Any) -> dict[str, Any]:
    """What the page shows, for a failure message: its load state, the connection states the
    dashboard went through, its sensors, and its console errors."""
    shown = page.evaluate("""() => {
        const s = window.sensorlink;
        return { url: location.href.split("#")[0], ready: document.readyState,
                 hook: s !== undefined, state: s?.state, detail: s?.detail,
                 states: s?.states?.map((e) => e.state), sensors: s?.sensors?.map((x) => x.name) };
    }""")
    return {**shown, "console_errors": getattr(page, "console_errors", None)}


def element_text(name: str) -> str:
    """JavaScript for the text of the element ``data-testid=name``, or undefined (not built yet)."""
    return f"document.querySelector(\"[data-testid='{name}']\")?.textContent"


@dataclass
class RunningService:
    proc: subprocess.Popen[bytes]
    workdir: Path
    url: str
    port: int
    config: Path
    log: Path

    def base(self) -> str:
        return self.url.split("#", 1)[0]

    def url_with(self, token: str) -> str:
        return f"{self.base()}#token={token}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sensorlink_command() -> list[str]:
    script = Path(sys.executable).with_name("sensorlink")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sensorlink.cli"]


def start_service(workdir: Path, port: int = 0) -> RunningService:
    """Start `sensorlink run` on a fresh config and return once it printed its dashboard URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sensors.toml"
    config.write_text(CONFIG.format(port=port), encoding="utf-8")
    return start_command(["run", str(config)], workdir)


def start_command(args: list[str], workdir: Path, timeout: float = 40.0) -> RunningService:
    """Start `sensorlink ARGS` in ``workdir``; return once it printed its dashboard URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{args[0]}.err"
    config = workdir / "sensors.toml"
    proc = subprocess.Popen([*sensorlink_command(), *args], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=log.open("wb"),
                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        # Keep reading so the service never blocks on a full pipe.
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            proc.kill()
            proc.wait()
            raise AssertionError(f"sensorlink {args[0]} printed no dashboard URL; stdout {seen!r}; "
                                 f"stderr:\n{log.read_text(errors='replace')[-3000:]}")
        seen.append(line)
        match = URL_RE.search(line)
        if match:
            url = match.group(1)
            bound = int(re.search(r":(\d+)/", url).group(1))
            return RunningService(proc, workdir, url, bound, config, log)
