"""Readings are batched and encoded once for every receiver; a slow receiver only loses its own."""

from __future__ import annotations

import asyncio

from sensorlink.hub import Hub
from sensorlink.samples import Reading
from sensorlink.webrtc.fanout import ReadingsFanout
from sensorlink.webrtc.wire import decode_message

from support import wait_for


def reading(seq: int) -> Reading:
    return Reading("p", "t0", "temperature", float(seq), "°C", seq, seq, seq)


async def test_every_outlet_gets_the_same_encoded_batches_in_order() -> None:
    hub = Hub()
    fanout = ReadingsFanout(hub)
    outlets = [fanout.open() for _ in range(5)]
    for i in range(1000):
        hub.publish(reading(i))
    await wait_for(lambda: all(o.queued == 1000 for o in outlets), 10, "all readings fanned out")
    first = [await o.get() for o in outlets]
    assert all(data is first[0][0] for data, _ in first)  # encoded once, shared
    seqs = []
    while outlets[0].queued:
        data, count = await outlets[0].get()
        rows = decode_message(data)["readings"]
        assert len(rows) == count
        seqs.extend(r[1] for r in rows)
    rows0 = decode_message(first[0][0])["readings"]
    assert [r[1] for r in rows0] + seqs == list(range(1000))
    assert fanout.messages < 1000 / 2  # batched, not one message per reading


async def test_a_full_outlet_drops_its_oldest_batches_and_counts_the_readings() -> None:
    hub = Hub()
    fanout = ReadingsFanout(hub)
    slow, fast = fanout.open(max_readings=50), fanout.open()
    for i in range(500):
        hub.publish(reading(i))
        if i % 10 == 9:
            await asyncio.sleep(0.003)  # let batches form
    await wait_for(lambda: fast.queued == 500, 10)
    assert slow.queued <= 50 + 200 and slow.dropped == 500 - slow.queued
    assert fast.dropped == 0
    kept = []
    while slow.queued:
        data, _ = await slow.get()
        kept.extend(r[1] for r in decode_message(data)["readings"])
    assert kept == list(range(500 - len(kept), 500))  # the newest survive, in order


async def test_the_last_outlet_closing_unsubscribes_from_the_hub() -> None:
    hub = Hub()
    fanout = ReadingsFanout(hub)
    a, b = fanout.open(), fanout.open()
    assert any(s.name == "readings-fanout" for s in hub.subscriptions)
    a.close()
    assert any(s.name == "readings-fanout" for s in hub.subscriptions)
    b.close()
    await asyncio.sleep(0)
    assert not any(s.name == "readings-fanout" for s in hub.subscriptions)
