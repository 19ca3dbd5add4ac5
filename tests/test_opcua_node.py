"""The OPC UA server against node-opcua (a client we did not write), under node, over a
SignAndEncrypt channel with a username and password: browse, read, history, subscribe (values
at the sensor rate), an alarm event, and its Acknowledge mapped onto the service's."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asyncua import ua

from sensorlink.samples import Reading

from opcua_support import PASSWORD, USER, alarm, endpoint, free_port, opcua_service
from support import REPO, ServiceProcess, wait_for

NODE_DIR = REPO / "tests" / "node"


async def run_node_client(cfg: dict[str, Any], home: Path,
                          on_ready: Callable[[], None] = lambda: None) -> dict[str, dict[str, Any]]:
    """tests/node/opcua_client.mjs with ``cfg``: its output lines by type."""
    assert shutil.which("node"), "node is not installed: run scripts/setup.sh --browser"
    assert (NODE_DIR / "node_modules" / "node-opcua-client").is_dir(), \
        "tests/node is not installed: run scripts/setup.sh --browser"
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "opcua_client.mjs"), json.dumps(cfg), cwd=home,
        # node-opcua keeps its client certificate (PKI) under HOME: one per test
        env={**os.environ, "HOME": str(home)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: dict[str, dict[str, Any]] = {}
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(120):
            async for raw in proc.stdout:
                if not raw.startswith(b"@@ "):
                    continue  # node-opcua's own log lines
                line = json.loads(raw[3:])
                lines[line["type"]] = line
                assert line["type"] != "error", line["error"]
                if line["type"] == "ready":
                    on_ready()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode()
    assert code == 0, stderr[-3000:]
    return lines


async def test_node_opcua_browses_reads_history_subscribes_and_acknowledges(tmp_path: Path) -> None:
    opcua = {"security": ["Basic256Sha256_SignAndEncrypt"],
             "users": [{"name": USER, "password": PASSWORD}]}
    async with opcua_service(opcua) as (service, bridge, acknowledger):
        truth = service.hub.subscribe("truth", maxsize=10**6,
                                      accepts=lambda e: isinstance(e, Reading))
        ns = bridge.ns
        # History needs something in it before the client reads it.
        await wait_for(lambda: bridge.history.count(ua.NodeId("probes-a/t1", ns)) > 50, 30,
                       "some history of probes-a/t1")
        port = int(bridge.settings.endpoint.rsplit(":", 1)[1].split("/")[0])
        nodes = {f"ns={ns};s=probes-a/t0": 40, f"ns={ns};s=probes-b/t2": 20}
        cfg = {"endpoint": endpoint(port), "user": USER, "password": PASSWORD,
               "policy": "Basic256Sha256", "mode": "SignAndEncrypt",
               "namespace": "urn:sensorlink", "root": "sensorlink",
               "subscribe": list(nodes), "want": nodes, "history": f"ns={ns};s=probes-a/t1",
               "alarm_rule": "bearing-hot"}
        lines = await run_node_client(cfg, tmp_path, on_ready=lambda: service.hub.alarm(
            alarm("bearing-hot", "probes-a/t0")))
        published = collections.Counter((r.stream, r.t_wall_ns // 10**6)
                                        for r in truth.get_nowait(10**6))

    tree = lines["browse"]["tree"]
    assert set(tree) == {"Alarms", "probes-a", "probes-b", "cam-a", "cam-b", "mic-a", "mic-b"}
    assert {"t0", "t1", "State", "Kind", "Driver"} <= set(tree["probes-a"])
    assert {"t0", "t1", "t2"} <= set(tree["probes-b"])
    assert {"level", "doa"} <= set(tree["mic-b"])
    assert "ambient" in tree["cam-a"]

    read = lines["read"]
    assert read["status"] == "Good" and isinstance(read["value"], float)
    assert read["eu"] == {"unitId": 4408652, "display": "°C",  # UNECE "CEL"
                          "namespace": "http://www.opcfoundation.org/UA/units/un/cefact"}

    history = lines["history"]
    assert history["status"] == "Good" and history["count"] > 50
    assert history["first_ms"] < history["last_ms"]

    event = lines["event"]
    assert event["rule"] == "bearing-hot" and event["source"] == "probes-a/t0"
    assert event["severity"] == 800 and event["active"] is True and event["acked"] is False
    assert event["retain"] is True and "90 °C" in event["message"]
    assert event["condition"] == f"ns={ns};s=alarm:bearing-hot"
    assert lines["ack"]["status"] == "Good"
    assert acknowledger.calls == [("bearing-hot", "opcua: seen by node")]

    # Values arrive at the sensor rate: between its first and last notification, the client
    # got every reading the sensor produced, each once (source timestamps in ms, as the hub's).
    for stream, want in (("probes-a/t0", 40), ("probes-b/t2", 20)):
        stamps = lines["values"]["seen"][f"ns={ns};s={stream}"]
        assert len(stamps) >= want and stamps == sorted(stamps)
        expected = collections.Counter({ms: n for (s, ms), n in published.items()
                                        if s == stream and stamps[0] <= ms <= stamps[-1]})
        assert collections.Counter(stamps) == expected, stream


async def test_node_opcua_reads_a_running_demo(tmp_path: Path) -> None:
    port = free_port()
    demo = ServiceProcess(["demo", "--listen", "127.0.0.1:0", "--opcua", endpoint(port)],
                          tmp_path)
    try:
        await demo.url()
        cfg = {"endpoint": endpoint(port), "policy": "None", "mode": "None",
               "namespace": "urn:sensorlink", "root": "sensorlink",
               # the demo's namespace is the second one registered, as in any service
               "subscribe": ["ns=2;s=bearing-probes/t0"], "want": {"ns=2;s=bearing-probes/t0": 20},
               "history": "ns=2;s=bearing-probes/t1", "alarm_rule": None}
        lines = await run_node_client(cfg, tmp_path)
    finally:
        assert demo.stop() == 0
    assert lines["browse"]["ns"] == 2
    assert set(lines["browse"]["tree"]) == {"Alarms", "machine-cam", "bearing-probes",
                                            "spindle-mic"}
    assert lines["read"]["status"] == "Good"
    assert lines["history"]["status"] == "Good" and lines["history"]["count"] >= 1
    stamps = lines["values"]["seen"]["ns=2;s=bearing-probes/t0"]
    assert len(stamps) >= 20 and stamps == sorted(stamps) and len(set(stamps)) > 1
