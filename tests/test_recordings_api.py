"""The recordings library through a running service: GET /api/... with a token (both roles read,
a wrong token is refused and counted), trends from aggregates down to raw samples, and a replay
of a window across segment boundaries on a hub of its own, which a viewer may steer and only an
operator may delete. The remote end is sensorlink's own aiortc viewer, over real WebRTC."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sensorlink.config import SensorConfig, ServiceConfig
from sensorlink.config_recording import RecordingConfig
from sensorlink.errors import SignalingError
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.service import Service
from sensorlink.webrtc.viewer import connected_viewer

from support import wait_for

OPERATOR, VIEWER = "operator-token-api", "viewer-token-api"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    svc = Service(ServiceConfig(host="127.0.0.1", port=0, token=OPERATOR, viewer_token=VIEWER),
                  sensors=[SensorConfig("probes", "sim-probes", {"channels": 2, "rate_hz": 40.0})],
                  source="test", record_dir=str(tmp_path / "rec"),
                  recording=RecordingConfig(segment_minutes=1.5 / 60, min_free_gb=0))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


def base(service: Service) -> str:
    return service.url.split("#", 1)[0]


def url(service: Service, token: str) -> str:
    return f"{base(service)}#token={token}"


async def get(service: Service, path: str, token: str | None = VIEWER) -> tuple[int, Any]:
    def fetch() -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(base(service) + path.lstrip("/"), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
    return await asyncio.to_thread(fetch)


def closed_segments(service: Service) -> list[Any]:
    return [s for s in service.library.segments() if s.state == "complete"]


async def test_the_api_wants_a_token_and_names_bad_fields(service: Service) -> None:
    await wait_for(lambda: closed_segments(service), 30, "a closed segment")
    status, body = await get(service, "/api/recordings", token=None)
    assert status == 401 and "Bearer" in body["error"]
    assert (await get(service, "/api/recordings", token="not-the-token"))[0] == 401
    status, listing = await get(service, "/api/recordings?tz_offset_min=60")
    assert status == 200 and listing["days"] and listing["streams"] == ["probes/t0", "probes/t1"]
    for path, field in (("/api/trend?from_ns=0&to_ns=1", "stream"),
                        ("/api/trend?stream=probes/t0&from_ns=x&to_ns=1", "from_ns"),
                        ("/api/trend?stream=probes/t0&from_ns=5&to_ns=1", "to_ns"),
                        ("/api/recordings?tz_offset_min=9999", "tz_offset_min"),
                        ("/api/recordings/segments?from_ns=1", "to_ns")):
        status, body = await get(service, path, token=OPERATOR)
        assert (status, body["field"]) == (400, field), (path, body)
    assert (await get(service, "/api/nothing-here"))[0] == 404
    # Wrong tokens count like wrong signaling tokens: the address is locked out for a while.
    for _ in range(4):
        await get(service, "/api/recordings", token="wrong-again")
    assert (await get(service, "/api/recordings"))[0] == 429


async def test_trends_go_from_aggregates_down_to_the_raw_samples(service: Service) -> None:
    await wait_for(lambda: len(closed_segments(service)) >= 2, 30, "two closed segments")
    first, second = closed_segments(service)[:2]
    status, wide = await get(service, f"/api/trend?stream=probes/t0&stream=probes/t1"
                                      f"&from_ns={first.start_ns - 10**12}&to_ns={second.end_ns}"
                                      f"&points=10")
    assert status == 200 and wide["resolution"] == "aggregate" and wide["bin_s"] >= 20
    status, raw = await get(service, f"/api/trend?stream=probes/t0&from_ns={first.start_ns}"
                                     f"&to_ns={second.end_ns + 1}")
    assert raw["resolution"] == "raw"
    truth = []
    for segment in (first, second):
        with Recording(service.library.path_of(segment)) as rec:
            truth += [(r.t_wall_ns / 1e9, r.value, r.seq) for _, r in rec.events(schemas={mm.READING})
                      if r.channel == "t0"]
    series = raw["streams"]["probes/t0"]
    assert list(zip(series["t"], series["value"], series["seq"], strict=True)) == truth
    # The aggregates count the same samples.
    agg = wide["streams"]["probes/t0"]
    assert agg["count"] >= len(truth) and min(v for v in agg["min"] if v is not None) <= \
        min(v for _, v, _ in truth)


async def test_a_viewer_replays_across_a_segment_boundary_and_only_an_operator_deletes(
        service: Service) -> None:
    await wait_for(lambda: len(closed_segments(service)) >= 2, 30, "two closed segments")
    first, second = closed_segments(service)[:2]
    with Recording(service.library.path_of(first)) as rec:
        boundary = max(r.seq for _, r in rec.events(schemas={mm.READING}) if r.channel == "t0")
    window = {"from_ns": first.start_ns, "to_ns": second.end_ns}
    async with connected_viewer(url(service, VIEWER), replay=window) as viewer:
        assert viewer.hello["replay"] and viewer.hello["replay_controls"]
        assert viewer.hello["role"] == "viewer" and len(service.replays) == 1
        await wait_for(lambda: viewer.last_seq.get("probes/t0", -1) > boundary + 10, 30,
                       "the replay past the first segment's end")
        assert viewer.seq_gaps == 0  # one timeline across the boundary: no seq missing
        assert "(+1 more segment)" in viewer.last_status["replay"]["file"]
        # The viewer's own replay: it may pause and seek it ...
        paused = await viewer.control({"type": "replay", "action": "pause"})
        assert paused["type"] == "reply" and paused["result"]["paused"] is True
        sought = await viewer.control({"type": "replay", "action": "seek", "value": 0.5})
        assert sought["type"] == "reply"
        # ... but neither delete recordings nor record the replay.
        refused = await viewer.control({"type": "recordings", "action": "delete", **window})
        assert refused["type"] == "error" and refused["field"] == "type"
    await wait_for(lambda: not service.replays, 10, "the replay closed with its websocket")
    assert {s.name for s in service.library.segments()} >= {first.name, second.name}
    async with connected_viewer(url(service, OPERATOR)) as operator:
        deleted = await operator.control({"type": "recordings", "action": "delete",
                                          "from_ns": first.start_ns - 1, "to_ns": second.end_ns + 1})
    assert deleted["result"]["deleted"] == [first.name, second.name]
    assert not service.library.path_of(first).exists()
    assert service.library.deletions()[0]["reason"].startswith("deleted by viewer")
    open_one = [s for s in service.library.segments() if s.state == "open"]
    assert open_one and service.library.path_of(open_one[0]).exists()


async def test_a_replay_of_nothing_is_refused_with_the_reason(service: Service) -> None:
    with pytest.raises(SignalingError, match="no recorded segment"):
        async with connected_viewer(url(service, VIEWER), replay={"from_ns": 1, "to_ns": 2}):
            pass
    assert not service.replays
