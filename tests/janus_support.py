"""Janus for tests: its config, and the private network namespace it must run in.

Janus never offers loopback candidates (it skips loopback interfaces on purpose), so the tests
that need it run their scenario inside a network namespace they create (``unshare -n``), with
one veth pair: nothing there can reach beyond the namespace. The outer test runs the inner one
with :func:`run_inner_test_in_namespace`; inner tests carry ``@pytest.mark.netns_inner``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

JANUS = shutil.which("janus") or "/usr/bin/janus"
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
INSIDE = os.environ.get("SENSORLINK_TEST_NETNS") == "1"
SERVICE_IP, JANUS_IP = "10.77.0.1", "10.77.0.2"


def janus_lib() -> Path:
    found = sorted(Path("/usr/lib").glob("*/janus/plugins/libjanus_videoroom.so"))
    return found[0].parent.parent if found else JANUS_LIB


def write_janus_config(directory: Path, ws_port: int) -> Path:
    lib = janus_lib()
    plugins = sorted(p.name for p in (lib / "plugins").glob("libjanus_*.so")
                     if p.name != "libjanus_videoroom.so")
    transports = sorted(p.name for p in (lib / "transports").glob("libjanus_*.so")
                        if p.name != "libjanus_websockets.so")
    (directory / "janus.jcfg").write_text(f"""
general: {{
    configs_folder = "{directory}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 4
    session_timeout = 60
}}
media: {{
    rtp_port_range = "31000-31999"
}}
nat: {{
    ice_enforce_list = "sl0"
    ignore_mdns = true
}}
plugins: {{
    disable = "{','.join(plugins)}"
}}
transports: {{
    disable = "{','.join(transports)}"
}}
events: {{
    broadcast = false
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
""")
    (directory / "janus.transport.websockets.jcfg").write_text(f"""
general: {{
    json = "compact"
    ws = true
    ws_port = {ws_port}
    ws_ip = "{JANUS_IP}"
    wss = false
}}
admin: {{
    admin_ws = false
}}
""")
    (directory / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return directory / "janus.jcfg"


def setup_namespace_network() -> None:
    """The namespace's veth pair and addresses; once (run_inner_test_in_namespace already did)."""
    if "sl0:" in Path("/proc/self/net/dev").read_text():  # this namespace's (not /sys: the host's)
        return
    for command in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "sl0", "type", "veth", "peer", "name", "sl1"],
                    ["ip", "addr", "add", f"{JANUS_IP}/30", "dev", "sl0"],
                    ["ip", "addr", "add", f"{SERVICE_IP}/30", "dev", "sl1"],
                    ["ip", "link", "set", "sl1", "up"], ["ip", "link", "set", "sl0", "up"]):
        subprocess.run(command, check=True, capture_output=True)
    for conf in ("all", "sl0", "sl1"):
        Path(f"/proc/sys/net/ipv4/conf/{conf}/accept_local").write_text("1")


def run_inner_test_in_namespace(test_id: str, *, cwd: Path, timeout: float = 220) -> None:
    """Run one ``netns_inner`` test under ``unshare -n`` and fail with its output if it fails."""
    assert shutil.which("unshare") and shutil.which("ip"), \
        "needs unshare and ip (util-linux, iproute2) for a private network namespace"
    assert subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0, \
        "cannot create a network namespace here (needs root or user namespaces)"
    # The network is set up before pytest starts, so before Chromium does: a browser that sees
    # its interfaces change fails the page's requests with net::ERR_NETWORK_CHANGED (the
    # dashboard's scripts then never run, and the page never defines its test hook).
    launcher = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import janus_support; "
                "janus_support.setup_namespace_network(); import pytest; "
                "sys.exit(pytest.main(sys.argv[1:]))")
    result = subprocess.run(
        ["unshare", "-n", "--", sys.executable, "-c", launcher, str(Path(__file__).parent),
         "-x", "-q", "-p", "no:cacheprovider", test_id],
        cwd=cwd, env={**os.environ, "SENSORLINK_TEST_NETNS": "1"},
        capture_output=True, text=True, timeout=timeout, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "1 passed" in output, output[-6000:]
