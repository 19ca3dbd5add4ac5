"""The OPC UA server against node-opcua (a client we did not write), under node, over a
SignAndEncrypt channel with a username and password: browse, read, history, subscribe (values
at the sensor rate), an alarm event, and its Acknowledge mapped onto the service's."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

from asyncua import ua

from opcua_support import PASSWORD, USER, alarm, endpoint, opcua_service
from support import REPO, wait_for

NODE_DIR = REPO / "tests" / "node"


async def test_node_opcua_browses_reads_history_subscribes_and_acknowledges(tmp_path: Path) -> None:
    assert shutil.which("node"), "node is not installed: run scripts/setup.sh --browser"
    assert (NODE_DIR / "node_modules" / "node-opcua-client").is_dir(), \
        "tests/node is not installed: run scripts/setup.sh --browser"
    opcua = {"security": ["Basic256Sha256_SignAndEncrypt"],
             "users": [{"name": USER, "password": PASSWORD}]}
    async with opcua_service(opcua) as (service, bridge, acknowledger):
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
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_DIR / "opcua_client.mjs"), json.dumps(cfg), cwd=tmp_path,
            # node-opcua keeps its client certificate (PKI) under HOME: one per test run
            env={**os.environ, "HOME": str(tmp_path)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        lines: dict[str, dict[str, Any]] = {}
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(120):
                async for raw in proc.stdout:
                    if not raw.startswith(b"@@ "):
                        continue
                    line = json.loads(raw[3:])
                    lines[line["type"]] = line
                    assert line["type"] != "error", line["error"]
                    if line["type"] == "ready":
                        service.hub.alarm(alarm("bearing-hot", "probes-a/t0"))
            code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        assert code == 0, stderr[-3000:]

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

    # Values arrive at the sensor rate: the source timestamps of consecutive notifications.
    for node_id, rate in ((f"ns={ns};s=probes-a/t0", 20.0), (f"ns={ns};s=probes-b/t2", 10.0)):
        stamps = lines["values"]["seen"][node_id]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        measured = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000)
        assert 0.7 * rate < measured < 1.3 * rate, (node_id, measured)
