"""Readings for many receivers, batched and encoded once.

Every viewer (and the Janus publisher) used to batch and msgpack the same readings again. Here
one task drains the hub, waits a moment when messages are going out back to back (so a steady
1 kHz probe does not become 1,000 messages a second per viewer), encodes the batch once and
hands the same bytes to every receiver's outlet. An outlet is bounded: a receiver that cannot
keep up loses its oldest batches, and the readings in them are counted as its drops.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from sensorlink.hub import Hub, Subscription
from sensorlink.samples import Reading
from sensorlink.webrtc.wire import encode_frame, encode_readings

BATCH = 200            # readings per message at most (~8 KB)
LINGER_S = 0.002       # when the last message left less than this ago, wait to fill the next
QUEUE = 100_000        # readings the fan-out itself may fall behind before the oldest drop


class ReadingsOutlet:
    """One receiver's queue of encoded batches, bounded in readings."""

    def __init__(self, fanout: ReadingsFanout, max_readings: int) -> None:
        self.max_readings = max_readings
        self.dropped = 0
        self.queued = 0
        self._fanout = fanout
        self._batches: collections.deque[tuple[bytes, int]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, data: bytes, count: int) -> None:
        self._batches.append((data, count))
        self.queued += count
        while self.queued > self.max_readings and len(self._batches) > 1:
            _, lost = self._batches.popleft()
            self.queued -= lost
            self.dropped += lost
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> tuple[bytes, int]:
        """The next encoded batch and how many readings it holds; EOFError once closed."""
        while not self._batches:
            if self.closed:
                raise EOFError("outlet closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data, count = self._batches.popleft()
        self.queued -= count
        return data, count

    def close(self) -> None:
        self.closed = True
        self._fanout._remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class ReadingsFanout:
    """Subscribes to the hub while at least one outlet is open."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.messages = 0
        self._outlets: list[ReadingsOutlet] = []
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        return self._sub.dropped if self._sub is not None else 0

    @property
    def backlog(self) -> int:
        """Readings waiting for the slowest receiver (queued here plus in its outlet)."""
        pending = len(self._sub) if self._sub is not None else 0
        return pending + max((outlet.queued for outlet in self._outlets), default=0)

    def open(self, max_readings: int = QUEUE) -> ReadingsOutlet:
        outlet = ReadingsOutlet(self, max_readings)
        self._outlets.append(outlet)
        if self._task is None:
            self._sub = self.hub.subscribe("readings-fanout", maxsize=QUEUE,
                                           accepts=lambda e: e.__class__ is Reading)
            self._task = asyncio.create_task(self._run(self._sub), name="readings-fanout")
        return outlet

    def _remove(self, outlet: ReadingsOutlet) -> None:
        if outlet in self._outlets:
            self._outlets.remove(outlet)
        if not self._outlets and self._task is not None:
            self._task.cancel()
            self._task = None
            if self._sub is not None:
                self._sub.close()

    async def stop(self) -> None:
        for outlet in list(self._outlets):
            outlet.close()

    async def _run(self, sub: Subscription) -> None:
        last_sent = 0.0
        while True:
            first = await sub.get()
            since = time.monotonic() - last_sent
            if since < LINGER_S and len(sub) < BATCH - 1:
                await asyncio.sleep(LINGER_S - since)
            batch: list[Any] = [first, *sub.get_nowait(BATCH - 1)]
            data = encode_readings(batch, replay=self.hub.replay)
            last_sent = time.monotonic()
            self.messages += 1
            for outlet in tuple(self._outlets):
                outlet.put(data, len(batch))


async def wait_open(channel: Any) -> None:
    if channel.readyState != "open":
        opened = asyncio.Event()
        channel.once("open", opened.set)
        await opened.wait()


async def drain(channel: Any, high_water: int) -> None:
    """Wait while more than ``high_water`` bytes sit in the channel's buffer (the channels share
    one SCTP association: a full one would delay the others)."""
    if channel.bufferedAmount > high_water:
        low = asyncio.Event()
        channel.once("bufferedamountlow", low.set)
        await low.wait()


async def pump(channel: Any, outlet: ReadingsOutlet, high_water: int,
               on_sent: Callable[[int], None] = lambda count: None) -> None:
    """Send an outlet's batches on a data channel until either closes."""
    await wait_open(channel)
    try:
        while channel.readyState == "open":
            data, count = await outlet.get()
            channel.send(data)
            on_sent(count)
            await drain(channel, high_water)
    except EOFError:
        pass


def frame_sender(channel: Any, view: Any, *, max_hz: float, high_water: int, replay: bool,
                 counts: collections.Counter[str] | None = None) -> Callable[[Any], None]:
    """A CameraView listener that sends each new exact-°C frame on an unreliable channel, at most
    ``max_hz`` a second, and skips (never queues) a frame while the channel is backed up: an old
    frame is worth less than the next one. ``counts`` gets "sent" and "skipped"."""
    counts = counts if counts is not None else collections.Counter()
    min_interval_ns = int(0.9e9 / max_hz)
    last_sent = [-min_interval_ns]

    def send(frame: Any) -> None:
        if channel.readyState != "open":
            return
        now = time.monotonic_ns()  # not the frame's own time: a replay may seek backwards
        if now - last_sent[0] < min_interval_ns or channel.bufferedAmount > high_water:
            counts["skipped"] += 1
            return
        last_sent[0] = now
        for message in encode_frame(frame, view.colour_range, replay=replay):
            channel.send(message)
        counts["sent"] += 1
    return send
