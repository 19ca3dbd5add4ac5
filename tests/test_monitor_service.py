"""Alarms end to end: a simulated machine heats one housing up and cools another down; the
service raises exactly the alarms the curves cross, an operator acknowledges them, and the
same events reach a webhook (a standard-library HTTP server), MQTT (mosquitto_sub), the MCAP
recording (@mcap/core under node) and a replay of it; ``sensorlink alarms test`` re-evaluates
the recording with new rules.

The live session runs once per module (it takes ~10 s of simulated heat-up); each test then
asserts one thing a user would see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sensorlink.alarm_event import AlarmEvent
from sensorlink.config import ServiceConfig, load_config
from sensorlink.errors import ConfigError, ControlError
from sensorlink.service import Service
from sensorlink.validation import validate

from monitor_support import (RULES, MosquittoSub, WebhookReceiver, heating_camera, microphone,
                             probes, read_topics, write_config)
from support import REPO, wait_for
from test_mqtt import Mosquitto

SITE = "plant-a/press-3"
WEBHOOK_TOKEN = "hook-secret-42"


def sensors_in(order: list[str]) -> list[dict[str, Any]]:
    make = {"cam-hot": lambda: heating_camera("cam-hot", start_c=40.0, rise_c=30.0),
            "cam-cool": lambda: heating_camera("cam-cool", start_c=75.0, rise_c=-40.0),
            "probes-a": lambda: probes("probes-a"), "probes-b": lambda: probes("probes-b"),
            "mic": lambda: microphone("mic")}
    return [make[name]() for name in order]


def sequence(events: list[AlarmEvent], rule: str) -> list[tuple[str, str]]:
    return [(e.transition, e.level) for e in events if e.rule == rule]


@dataclass
class Live:
    events: list[AlarmEvent]
    ack_error: ControlError
    status: dict[str, Any]
    webhook: list[tuple[dict[str, str], bytes, int]]
    mqtt: list[tuple[str, bool, str]]
    retained: list[tuple[str, bool, str]]
    recording: Path
    hub_alarms: dict[str, AlarmEvent] = field(default_factory=dict)


async def run_live(directory: Path) -> Live:
    broker = Mosquitto(directory)
    broker.start()
    receiver = WebhookReceiver(failures=2)
    sub = MosquittoSub(broker.port, "sensorlink/#", directory / "mqtt.txt", "-i", "monitor-sub")
    path = write_config(
        directory / "plant.toml",
        sensors=sensors_in(["cam-hot", "probes-a", "mic", "cam-cool", "probes-b"]),
        alarms=RULES, mqtt={"host": "127.0.0.1", "port": broker.port, "site": "plant-a",
                            "machine": "press-3"},
        webhooks=[{"url": receiver.url, "token": WEBHOOK_TOKEN, "site": "plant-a",
                   "machine": "press-3", "retry_initial_s": 0.05,
                   "retry_max_s": 0.2}])
    service = Service.from_config(load_config(path), record_dir=str(directory / "rec"))
    events: list[AlarmEvent] = []
    service.hub.on_alarm(events.append)
    try:
        # Subscribed before the service starts: it must see the very first event.
        await wait_for(lambda: "Received SUBSCRIBE from monitor-sub" in broker.log(), 30,
                       "mosquitto_sub's subscription")
        await service.start()
        await wait_for(lambda: ("escalated", "alarm") in sequence(events, "hot")
                       and ("cleared", "warning") in sequence(events, "cool"), 90,
                       "the hot housing's alarm and the cool one's clearing")
        await asyncio.sleep(1.0)  # a moment more of readings: nothing else may be raised
        service.acknowledge_alarm("hot", "alice (operator)")
        service.acknowledge_alarm("cool", "alice (operator)")
        try:
            service.acknowledge_alarm("cool", "bob (operator)")
        except ControlError as exc:
            ack_error = exc
        await wait_for(lambda: len(receiver.delivered()) == len(events), 30, "the webhook")

        def webhook_sent() -> int:
            return next(e["sent"] for e in service.status_message()["exports"]
                        if e["kind"] == "webhook")

        # The receiver counts a POST when it answers; the sink, once it has read the answer.
        await wait_for(lambda: webhook_sent() == len(events), 30, "the webhook's answers")
        await wait_for(lambda: sum(t.endswith("/alarms/events") for t, _, _ in sub.lines())
                       == len(events), 30, "the MQTT events")
        status = service.status_message()
        hub_alarms = dict(service.hub.alarms)
    finally:
        await service.stop()
        sub.stop()
    late = MosquittoSub(broker.port, "sensorlink/+/+/alarms/active/+", directory / "late.txt",
                        "--retained-only", "-W", "8")  # 8 s: then it has all
    late.proc.wait(30)
    broker.stop()
    receiver.close()
    recordings = sorted((directory / "rec").glob("*.mcap"))
    assert len(recordings) == 1, recordings
    return Live(events, ack_error, status, receiver.requests, sub.lines(), late.lines(),
                recordings[0], hub_alarms)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Live:
    return asyncio.run(run_live(tmp_path_factory.mktemp("live")))


# -- what the service decides -------------------------------------------------------------------

def test_heat_up_raises_one_warning_and_one_alarm_and_ack_ends_the_latch(live: Live) -> None:
    assert sequence(live.events, "hot") == [("raised", "warning"), ("escalated", "alarm"),
                                            ("acknowledged", "alarm")]
    assert sequence(live.events, "cool") == [("raised", "alarm"), ("deescalated", "warning"),
                                             ("cleared", "warning"), ("acknowledged", "warning")]
    assert sequence(live.events, "probes-gone") == []
    hot = [e for e in live.events if e.rule == "hot"]
    assert hot[0].limit == 50.0 and hot[0].value > 50.0 and hot[1].limit == 60.0
    assert hot[2].by == "alice (operator)" and hot[2].active and not hot[2].over
    cool = [e for e in live.events if e.rule == "cool"]
    assert not cool[2].over and cool[3].over  # latched until acknowledged
    # The hub's list: the hot alarm stands (acknowledged), the cool one is over.
    assert set(live.hub_alarms) == {"hot"} and live.hub_alarms["hot"].acknowledged
    assert live.ack_error.field == "rule" and "no alarm to acknowledge" in str(live.ack_error)


def test_status_lists_the_regions_and_the_webhook(live: Live) -> None:
    validate("status", live.status)
    assert [r["name"] for r in live.status["regions"]["cam-hot"]] == ["housing", "corner"]
    hook = next(e for e in live.status["exports"] if e["kind"] == "webhook")
    assert hook["sent"] == len(live.events) and hook["state"] == "connected"
    assert hook["dropped"] == 0


# -- where the events go ------------------------------------------------------------------------

def test_webhook_receives_every_event_in_order_after_retrying(live: Live) -> None:
    refused = [r for r in live.webhook if r[2] == 503]
    delivered = [(h, json.loads(b)) for h, b, s in live.webhook if s == 200]
    assert len(refused) == 2  # the first event was tried three times
    assert json.loads(refused[0][1]) == json.loads(refused[1][1]) == delivered[0][1]
    for headers, body in delivered:
        validate("alarm-event", body)
        assert headers["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
        assert headers["Content-Type"] == "application/json"
        assert body["site"] == "plant-a" and body["machine"] == "press-3"
    assert [(b["rule"], b["seq"], b["transition"]) for _, b in delivered] == \
        [(e.rule, e.seq, e.transition) for e in live.events]


def test_mqtt_event_topic_and_retained_active_alarms(live: Live) -> None:
    base = "sensorlink/plant-a/press-3/alarms"
    events = [json.loads(p) for t, _, p in live.mqtt if t == f"{base}/events"]
    for payload in events:
        validate("alarm-event", payload)
    assert [(p["rule"], p["transition"]) for p in events] == \
        [(e.rule, e.transition) for e in live.events]
    # A subscriber that comes later sees the standing alarm only: "cool" is over (deleted).
    assert [(t, r) for t, r, _ in live.retained] == [(f"{base}/active/hot", True)]
    standing = json.loads(live.retained[0][2])
    validate("alarm-event", standing)
    assert standing["transition"] == "acknowledged" and standing["by"] == "alice (operator)"
    deletions = [t for t, _, p in live.mqtt if t == f"{base}/active/cool" and p == ""]
    assert deletions, "the retained 'cool' alarm was never deleted"


def test_recording_holds_the_alarms_on_their_own_channel_and_as_foxglove_log(live: Live) -> None:
    topics = read_topics(live.recording, "/_sensorlink/alarms", "/_sensorlink/alarm_log",
                         "/cam-hot/housing/max", "/cam-cool/corner/mean", "/mic/band/bearing")
    alarms = topics["/_sensorlink/alarms"]
    assert {m["schema"] for m in alarms} == {"sensorlink.AlarmEvent"}
    assert [(m["message"]["rule"], m["message"]["transition"], m["message"]["level"])
            for m in alarms] == [(e.rule, e.transition, e.level) for e in live.events]
    log = topics["/_sensorlink/alarm_log"]
    assert {m["schema"] for m in log} == {"foxglove.Log"}
    levels = {(m["message"]["name"], m["message"]["message"].split("]")[0]): m["message"]["level"]
              for m in log}
    assert levels[("alarm/hot", "[warning raised")] == 3      # WARNING
    assert levels[("alarm/hot", "[alarm escalated")] == 4     # ERROR
    assert levels[("alarm/hot", "[alarm acknowledged")] == 2  # INFO
    # The derived readings are recorded like any other: the housing's max heats up.
    maxima = [m["message"]["value"] for m in topics["/cam-hot/housing/max"]]
    assert len(maxima) > 20 and maxima[0] < 50 < 60 < max(maxima)
    assert topics["/cam-cool/corner/mean"] and topics["/mic/band/bearing"]


async def test_replay_shows_the_alarms_as_they_were_raised_live(live: Live) -> None:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token="test-token-123"),
                      replay_path=str(live.recording), replay_options={"speed": 4.0})
    seen: list[AlarmEvent] = []
    service.hub.on_alarm(seen.append)
    await service.start()
    try:
        await wait_for(lambda: ("acknowledged", "alarm") in sequence(seen, "hot")
                       and ("acknowledged", "warning") in sequence(seen, "cool"), 120,
                       "the replayed acknowledgements")
        marks = service.status_message()["replay"]["alarms"]
        with pytest.raises(ControlError, match="replay shows the alarms as recorded"):
            service.acknowledge_alarm("hot", "alice")
    finally:
        await service.stop()
    replayed = [dataclasses.replace(e) for e in seen if e.transition != "reset"]
    assert [(e.rule, e.seq, e.transition, e.level, e.by) for e in replayed] == \
        [(e.rule, e.seq, e.transition, e.level, e.by) for e in live.events]
    assert [(m["rule"], m["level"]) for m in marks] == \
        [(e.rule, e.level) for e in live.events if e.transition in ("raised", "escalated")]


def test_alarms_test_prints_what_new_rules_would_have_raised(live: Live, tmp_path: Path) -> None:
    rules = tmp_path / "tuned.toml"
    rules.write_text('[[alarms]]\nname = "hot-early"\nstream = "cam-hot/housing/max"\n'
                     'condition = "above"\nwarning = 45.0\nalarm = 55.0\ndeadband = 2.0\n\n'
                     '[[alarms]]\nname = "too-cold"\nstream = "cam-cool/housing/max"\n'
                     'condition = "below"\nalarm = 45.0\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "sensorlink.cli", "alarms", "test", str(rules),
                           str(live.recording)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # date, time, "+", offset, "s", rule, transition, level, value ...
    raised = [line.split()[5:8] for line in lines[:-1]]
    assert raised == [["hot-early", "raised", "warning"], ["hot-early", "escalated", "alarm"],
                      ["too-cold", "raised", "alarm"]], done.stdout
    assert lines[-1].startswith("3 alarm events from 2 rules")
    as_json = subprocess.run([sys.executable, "-m", "sensorlink.cli", "alarms", "test",
                              str(rules), str(live.recording), "--json"], capture_output=True,
                             text=True, timeout=120, cwd=REPO)
    for line in as_json.stdout.splitlines():
        event = json.loads(line)
        assert event["rule"] in ("hot-early", "too-cold") and event["value"] is not None
    rules.write_text('[[alarms]]\nname = "typo"\nstream = "cam-hot/housng/max"\n'
                     'condition = "above"\nalarm = 1\n', encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "sensorlink.cli", "alarms", "test", str(rules),
                          str(live.recording)], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert bad.returncode != 0 and "alarms.typo.stream" in bad.stderr, bad.stderr
    assert "cam-hot/housing/max" in bad.stderr  # it says what the recording does hold


# -- start-up checks and operators' regions -----------------------------------------------------

@pytest.mark.parametrize("order", [["cam-hot", "probes-a", "mic", "cam-cool"],
                                   ["mic", "cam-cool", "probes-a", "cam-hot"]])
async def test_an_unknown_stream_or_sensor_is_refused_at_start(tmp_path: Path, order) -> None:
    for rule, field_name in (
            ({"name": "typo", "stream": "cam-cool/housing/maxx", "condition": "above",
              "alarm": 1.0}, "alarms.typo.stream"),
            ({"name": "ghost", "sensor": "probes-z", "condition": "disconnected", "alarm": 5},
             "alarms.ghost.sensor")):
        path = write_config(tmp_path / "plant.toml", sensors=sensors_in(order), alarms=[rule])
        service = Service.from_config(load_config(path))
        with pytest.raises(ConfigError) as err:
            await service.start()
        await service.stop()
        assert f"'{field_name}'" in str(err.value), str(err.value)


@pytest.mark.parametrize("order", [["cam-hot", "cam-cool", "probes-a"],
                                   ["probes-a", "cam-cool", "cam-hot"]])
async def test_every_camera_yields_its_region_readings(tmp_path: Path, order) -> None:
    path = write_config(tmp_path / "plant.toml", sensors=sensors_in(order))
    service = Service.from_config(load_config(path))
    sub = service.hub.subscribe("test", maxsize=100_000,
                                accepts=lambda e: getattr(e, "channel", "").startswith(
                                    ("housing/", "corner/")))
    await service.start()
    seen: set[str] = set()

    def all_seen() -> bool:
        seen.update(f"{r.sensor}/{r.channel}" for r in sub.get_nowait(100_000))
        return len(seen) == 20
    try:
        await wait_for(all_seen, 30, "every region's five readings on both cameras")
        streams = service.hub.sensors["cam-hot"].meta["streams"]
        assert streams["housing/max"] == {"quantity": "temperature", "unit": "°C"}
        assert streams["housing/max_x"]["unit"] == "px"
    finally:
        await service.stop()


async def test_a_region_an_operator_draws_persists_beside_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path / "plant.toml", sensors=sensors_in(["probes-a", "cam-hot"]),
                        alarms=[{"name": "hot", "stream": "cam-hot/housing/max",
                                 "condition": "above", "alarm": 99.0}])
    toml_before = path.read_bytes()
    service = Service.from_config(load_config(path))
    await service.start()
    try:
        reply = await service.apply_control(
            {"type": "region", "action": "set", "sensor": "cam-hot",
             "region": {"name": "drawn", "kind": "polygon", "points": [[1, 1], [8, 1], [4, 7]],
                        "emissivity": 0.9, "reflected_c": 25.0}}, viewer="alice")
        assert [r["name"] for r in reply["regions"]] == ["housing", "corner", "drawn"]
        sub = service.hub.subscribe("t", accepts=lambda e: getattr(e, "channel", "") ==
                                    "drawn/mean")
        first = await asyncio.wait_for(sub.get(), 30)
        assert first.unit == "°C" and first.quality == "ok"
        await service.apply_control({"type": "region", "action": "delete", "sensor": "cam-hot",
                                     "name": "corner"}, viewer="alice")
        with pytest.raises(ControlError) as err:  # a rule watches it
            await service.apply_control({"type": "region", "action": "delete",
                                         "sensor": "cam-hot", "name": "housing"}, viewer="a")
        assert err.value.field == "name" and "hot" in str(err.value)
        with pytest.raises(ControlError) as err:
            await service.apply_control({"type": "region", "action": "set", "sensor": "cam-hot",
                                         "region": {"name": "off", "kind": "spot",
                                                    "points": [[40, 1]]}}, viewer="a")
        assert err.value.field == "region.points"
    finally:
        await service.stop()
    assert path.read_bytes() == toml_before  # the user's TOML is never rewritten
    state = json.loads((tmp_path / "plant.state.json").read_text(encoding="utf-8"))
    assert "drawn" in state["set"]["cam-hot"] and state["deleted"]["cam-hot"] == ["corner"]
    again = Service.from_config(load_config(path))
    await again.start()
    try:
        regions = again.hub.sensors["cam-hot"].meta["regions"]
        assert [r["name"] for r in regions] == ["housing", "drawn"]
        assert regions[1]["emissivity"] == 0.9
    finally:
        await again.stop()


async def test_a_webhook_that_fails_shows_in_status_and_never_blocks_streaming(
        tmp_path: Path) -> None:
    closed = WebhookReceiver()
    url = closed.url
    closed.close()  # nothing listens there now: every POST is refused
    # "slow" keeps retrying for minutes; "quick" gives up after two tries.
    path = write_config(tmp_path / "plant.toml", sensors=sensors_in(["probes-a"]),
                        webhooks=[{"name": "slow", "url": url, "queue": 3, "max_attempts": 100,
                                   "retry_initial_s": 1.0, "retry_max_s": 2.0, "timeout_s": 1.0},
                                  {"name": "quick", "url": url, "queue": 3, "max_attempts": 2,
                                   "retry_initial_s": 0.05, "retry_max_s": 0.1,
                                   "timeout_s": 1.0}])
    service = Service.from_config(load_config(path))
    sub = service.hub.subscribe("t", maxsize=100_000,
                                accepts=lambda e: getattr(e, "channel", "") == "t0")
    await service.start()
    readings: list[Any] = []

    def hook(name: str) -> dict[str, Any]:
        return next(e for e in service.status_message()["exports"] if e.get("name") == name)
    try:
        for seq in range(20):  # a storm of alarm events while the receiver is away
            service.hub.alarm(AlarmEvent(rule=f"r{seq}", stream="probes-a/t0",
                                         transition="raised", level="alarm", active=True,
                                         acknowledged=False, message="storm", seq=0,
                                         t_mono_ns=seq, t_wall_ns=seq, since_wall_ns=seq))
        # The bounded queue kept the newest 3 and counted the 17 it dropped, at once.
        assert hook("slow")["dropped"] == 17 and hook("slow")["queued"] == 3
        await wait_for(lambda: readings.extend(sub.get_nowait(100_000)) or len(readings) >= 30,
                       60, "30 probe readings while the webhook retries")
        slow = hook("slow")
        assert slow["state"] == "disconnected" and "retrying in" in slow["detail"]
        assert slow["sent"] == 0 and slow["queued"] >= 1
        # Readings flowed all along, none lost: contiguous seq.
        assert [r.seq for r in readings] == list(range(readings[0].seq,
                                                       readings[0].seq + len(readings)))
        await wait_for(lambda: hook("quick")["state"] == "failed" and hook("quick")["queued"] == 0,
                       60, "the quick webhook to give up on what it holds")
        quick = hook("quick")
        assert quick["sent"] == 0 and quick["dropped"] == 20
        assert "not delivered" in quick["detail"] and "ConnectError" in quick["detail"]
        validate("status", service.status_message())
    finally:
        await service.stop()
