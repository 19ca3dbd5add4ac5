"""The hub: one asyncio fan-out from sources to sinks through bounded queues.

A source calls :meth:`Hub.publish`, which never blocks and never awaits: each subscription is a
bounded deque. Live sinks (viewers) drop the oldest sample when full and count it; the recorder
subscribes with a deep queue and reports any drop. All calls happen on the event loop thread;
a driver reading in a thread hands samples over with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from typing import Union

from sensorlink.alarm_event import AlarmEvent
from sensorlink.samples import AudioBlock, Reading, Sample, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

Event = Union[Sample, SensorStatus, SensorInfo, AlarmEvent]
SampleFilter = Callable[[Event], bool]


class Subscription:
    """One sink's bounded view of the hub."""

    def __init__(self, hub: Hub, name: str, maxsize: int, accepts: SampleFilter | None) -> None:
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        self.delivered = 0
        self._hub = hub
        self._accepts = accepts
        self._queue: collections.deque[Event] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def _offer(self, event: Event) -> None:
        if self._closed or (self._accepts is not None and not self._accepts(event)):
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __len__(self) -> int:
        return len(self._queue)

    async def get(self) -> Event:
        """The next event; waits while the queue is empty. Raises EOFError once closed."""
        while not self._queue:
            if self._closed:
                raise EOFError(self.name)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.delivered += 1
        return self._queue.popleft()

    def get_nowait(self, limit: int) -> list[Event]:
        """Up to ``limit`` events that are already queued, without waiting."""
        out = []
        while self._queue and len(out) < limit:
            out.append(self._queue.popleft())
        self.delivered += len(out)
        return out

    def close(self) -> None:
        self._closed = True
        self._hub._unsubscribe(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except EOFError:
            raise StopAsyncIteration from None


def kinds(*types: type) -> SampleFilter:
    """A subscription filter accepting only the given event types."""
    return lambda event: isinstance(event, types)


def sensor_samples(sensor: str, *types: type) -> SampleFilter:
    allowed = types or (ThermalFrame, Reading, AudioBlock)
    return lambda event: isinstance(event, allowed) and event.sensor == sensor


class Hub:
    """Fan-out of samples, sensor descriptions and sensor status to every subscription."""

    def __init__(self, *, replay: bool = False) -> None:
        self.replay = replay
        self.sensors: dict[str, SensorInfo] = {}
        self.statuses: dict[str, SensorStatus] = {}
        #: each rule's latest alarm event while its alarm is not over (a late subscriber's list)
        self.alarms: dict[str, AlarmEvent] = {}
        self.published = 0
        self._subscriptions: list[Subscription] = []
        self._status_listeners: list[Callable[[SensorStatus], None]] = []
        self._alarm_listeners: list[Callable[[AlarmEvent], None]] = []

    def subscribe(self, name: str, *, maxsize: int = 256,
                  accepts: SampleFilter | None = None) -> Subscription:
        sub = Subscription(self, name, maxsize, accepts)
        self._subscriptions.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    @property
    def subscriptions(self) -> Iterable[Subscription]:
        return tuple(self._subscriptions)

    def publish(self, sample: Sample) -> None:
        self.published += 1
        for sub in self._subscriptions:
            sub._offer(sample)

    def describe(self, info: SensorInfo) -> None:
        """A source announces a sensor (before its first sample, and again if it changes)."""
        self.sensors[info.name] = info
        for sub in self._subscriptions:
            sub._offer(info)

    def set_status(self, status: SensorStatus) -> None:
        previous = self.statuses.get(status.sensor)
        self.statuses[status.sensor] = status
        if previous is None or previous.state != status.state or previous.detail != status.detail:
            # Only state changes are events; counters are read from hub.statuses when needed.
            for sub in self._subscriptions:
                sub._offer(status)
            for listener in tuple(self._status_listeners):
                listener(status)

    def alarm(self, event: AlarmEvent) -> None:
        """An alarm changed state: every subscription gets the event; ``alarms`` keeps the
        ones not yet over, so a sink that starts later knows what is active."""
        if event.over:
            self.alarms.pop(event.rule, None)
        else:
            self.alarms[event.rule] = event
        for sub in self._subscriptions:
            sub._offer(event)
        for listener in tuple(self._alarm_listeners):
            listener(event)

    def on_alarm(self, listener: Callable[[AlarmEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every alarm event as it is published (a viewer's banner must
        not wait for the next status tick); returns the function that stops it."""
        self._alarm_listeners.append(listener)
        return lambda: self._alarm_listeners.remove(listener)

    def on_status_change(self, listener: Callable[[SensorStatus], None]) -> Callable[[], None]:
        self._status_listeners.append(listener)
        return lambda: self._status_listeners.remove(listener)
