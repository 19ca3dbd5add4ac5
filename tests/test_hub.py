"""The hub never blocks a source: a full live subscription drops its oldest and counts it."""

from __future__ import annotations

import asyncio

from sensorlink.alarm_event import AlarmEvent
from sensorlink.hub import Hub, kinds
from sensorlink.samples import Reading, SensorInfo
from sensorlink.status import SensorStatus


def reading(seq: int, sensor: str = "p") -> Reading:
    return Reading(sensor, "t0", "temperature", float(seq), "°C", seq, seq, seq)


async def test_full_subscription_drops_oldest_and_counts() -> None:
    hub = Hub()
    slow = hub.subscribe("slow", maxsize=10)
    for i in range(25):
        hub.publish(reading(i))
    assert slow.dropped == 15
    got = [(await slow.get()).seq for _ in range(10)]
    assert got == list(range(15, 25))


async def test_every_subscriber_gets_every_sample_and_filters_apply() -> None:
    hub = Hub()
    a = hub.subscribe("a", maxsize=100)
    only_status = hub.subscribe("b", maxsize=100, accepts=kinds(SensorStatus))
    hub.describe(SensorInfo("p", "probe", "sim-probes"))
    for i in range(5):
        hub.publish(reading(i))
    hub.set_status(SensorStatus("p", "connected"))
    hub.set_status(SensorStatus("p", "connected", counters={"samples": 5}))  # no change of state
    assert len(a) == 7
    assert len(only_status) == 1
    assert hub.statuses["p"].counters == {"samples": 5}


async def test_get_waits_for_a_sample_and_close_ends_iteration() -> None:
    hub = Hub()
    sub = hub.subscribe("x")
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    hub.publish(reading(1))
    assert (await waiter).seq == 1
    hub.publish(reading(2))
    sub.close()
    hub.publish(reading(3))
    assert [r.seq async for r in sub] == [2]
    assert sub not in hub.subscriptions


def alarm(transition: str, *, active: bool, acknowledged: bool, seq: int) -> AlarmEvent:
    return AlarmEvent("hot-bearing", "cam/bearing/max", transition, "alarm", active,  # type: ignore[arg-type]
                      acknowledged, "bearing above 70 °C", seq, seq, seq, 0, 71.0, 70.0)


async def test_alarm_events_reach_subscribers_and_the_list_keeps_what_is_not_over() -> None:
    hub = Hub()
    sub = hub.subscribe("alarms", accepts=kinds(AlarmEvent))
    hub.alarm(alarm("raised", active=True, acknowledged=False, seq=0))
    assert set(hub.alarms) == {"hot-bearing"}
    hub.alarm(alarm("cleared", active=False, acknowledged=False, seq=1))
    assert hub.alarms["hot-bearing"].transition == "cleared"  # latched until acknowledged
    hub.alarm(alarm("acknowledged", active=False, acknowledged=True, seq=2))
    assert hub.alarms == {}
    assert [e.transition for e in sub.get_nowait(10)] == ["raised", "cleared", "acknowledged"]
    round_trip = AlarmEvent.from_dict(alarm("raised", active=True, acknowledged=False,
                                            seq=3).to_dict())
    assert round_trip == alarm("raised", active=True, acknowledged=False, seq=3)
