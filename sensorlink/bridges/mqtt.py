"""The MQTT exporter: a hub sink that hands readings and sensor status to the plant's broker.

Topics (``P`` = ``<topic_prefix>/<site>/<machine>``, prefix ``sensorlink`` by default):

- ``P/<sensor>/readings``: batches of that sensor's readings, oldest first
  (``schemas/mqtt-readings.schema.json``), at the configured QoS, not retained.
- ``P/<sensor>/status``: the sensor's state and counters, retained, on every state change and
  every ``status_interval_s`` (``schemas/mqtt-status.schema.json``).
- ``P/availability``: ``online`` (retained) while connected; ``offline`` (retained) on a clean
  stop, and as the broker-side last will when the service dies or loses the network.
- ``P/alarms/events``: every alarm state change (``schemas/alarm-event.schema.json``), not
  retained; ``P/alarms/active/<rule>``: the rule's latest event, retained, while its alarm is not
  over, then an empty retained payload (which deletes it). On each connect the exporter publishes
  every alarm not over and deletes the retained alarms a previous run left that are over now.

Payloads are JSON (UTF-8) or msgpack with the same structure. ``seq`` is contiguous per stream:
a consumer sees a gap when the exporter's bounded queue had to drop, and a repeat (same stream
and seq) when a batch was re-sent after a broker outage with QoS ≥ 1 (at-least-once).

During an outage the exporter's own hub subscription is the backlog: bounded to ``queue``
events, dropping the oldest and counting it. Nothing here can slow the hub, the viewers or the
recorder: they have their own subscriptions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
import time
from collections import deque
from typing import Any

import msgpack

from sensorlink.alarm_event import AlarmEvent
from sensorlink.backoff import Backoff
from sensorlink.bridges.payloads import alarm_payload
from sensorlink.bridges.tasks import finish
from sensorlink.config import MqttConfig
from sensorlink.hub import Event, Hub, Subscription
from sensorlink.samples import Reading
from sensorlink.status import SensorStatus

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 1


class ConnectionLost(Exception):
    """Internal: the broker connection went away while we waited on it."""


def tls_context(settings: MqttConfig) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


class MqttExporter:
    """Publishes what the hub carries to an MQTT broker, reconnecting with backoff."""

    kind = "mqtt"

    def __init__(self, hub: Hub, settings: MqttConfig, *, reconnect_ceiling_s: float = 10.0) -> None:
        self.hub = hub
        self.settings = settings
        self.base = f"{settings.topic_prefix}/{settings.site}/{settings.machine}"
        self.port = settings.port or (8883 if settings.tls else 1883)
        self.client_id = settings.client_id or f"sensorlink-{settings.site}-{settings.machine}"
        self.state = "stopped"
        self.detail = ""
        self.readings_sent = 0
        self.messages_sent = 0
        self.connects = 0
        self._backoff = Backoff(initial=0.25, ceiling=reconnect_ceiling_s)
        self._sub: Subscription | None = None
        # Messages taken from the subscription but not yet acknowledged: re-sent after an outage.
        self._pending: deque[tuple[str, bytes, bool, int]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Rules whose retained alarm the broker holds from before (seen on connect): deleted
        # unless the alarm stands now.
        self._retained: set[str] = set()
        self._retained_seen = asyncio.Event()

    # -- topics and payloads ----------------------------------------------------------------
    def topic(self, sensor: str, leaf: str) -> str:
        return f"{self.base}/{sensor}/{leaf}"

    @property
    def availability_topic(self) -> str:
        return f"{self.base}/availability"

    def encode(self, payload: dict[str, Any]) -> bytes:
        if self.settings.encoding == "msgpack":
            return msgpack.packb(payload)
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")

    def readings_payload(self, sensor: str, readings: list[Reading]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": PAYLOAD_VERSION, "site": self.settings.site, "machine": self.settings.machine,
            "sensor": sensor,
            "readings": [{"channel": r.channel, "quantity": r.quantity,
                          # JSON has no NaN/inf: a non-finite value travels as null.
                          "value": float(r.value) if math.isfinite(r.value) else None,
                          "unit": r.unit, "quality": r.quality, "seq": r.seq,
                          "t_wall_ns": r.t_wall_ns} for r in readings]}
        if self.hub.replay:
            payload["replay"] = True
        return payload

    def status_payload(self, status: SensorStatus) -> dict[str, Any]:
        info = self.hub.sensors.get(status.sensor)
        return {"v": PAYLOAD_VERSION, "site": self.settings.site,
                "machine": self.settings.machine, "sensor": status.sensor,
                "kind": info.kind if info else None, "driver": info.driver if info else None,
                "state": status.state, "detail": status.detail,
                "counters": dict(status.counters), "rate_hz": round(float(status.rate_hz), 3),
                "t_wall_ns": status.t_wall_ns}

    def _alarm_messages(self, event: AlarmEvent) -> list[tuple[str, bytes, bool, int]]:
        body = self.encode(alarm_payload(event, site=self.settings.site,
                                         machine=self.settings.machine, replay=self.hub.replay))
        return [(f"{self.base}/alarms/events", body, False, 0),
                (f"{self.base}/alarms/active/{event.rule}", b"" if event.over else body, True, 0)]

    def _messages(self, events: list[Event]) -> list[tuple[str, bytes, bool, int]]:
        """Events → (topic, payload, retain, readings count); per-sensor order is kept."""
        readings: dict[str, list[Reading]] = {}
        statuses: dict[str, SensorStatus] = {}
        out = []
        for event in events:
            if isinstance(event, Reading):
                readings.setdefault(event.sensor, []).append(event)
            elif isinstance(event, SensorStatus):
                statuses[event.sensor] = event
            elif isinstance(event, AlarmEvent):
                out += self._alarm_messages(event)
        size = self.settings.batch
        for sensor, rows in readings.items():
            for i in range(0, len(rows), size):
                chunk = rows[i:i + size]
                out.append((self.topic(sensor, "readings"),
                            self.encode(self.readings_payload(sensor, chunk)), False, len(chunk)))
        for status in statuses.values():
            out.append(self._status_message(status))
        return out

    def _status_message(self, status: SensorStatus) -> tuple[str, bytes, bool, int]:
        return (self.topic(status.sensor, "status"), self.encode(self.status_payload(status)),
                True, 0)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._sub = self.hub.subscribe(
            "mqtt", maxsize=self.settings.queue,
            accepts=lambda e: e.__class__ in (Reading, SensorStatus, AlarmEvent))
        self.state = "connecting"
        self._task = asyncio.create_task(self._run(), name="mqtt-export")

    async def stop(self, flush_timeout_s: float = 3.0) -> None:
        """Flush what is queued (for a moment, if connected), say "offline", disconnect."""
        if self._task is None:
            return
        self._stopping.set()
        await finish(self._task, flush_timeout_s)
        self._task = None
        if self._sub is not None:
            self._sub.close()
        self.state = "stopped"

    def queued(self) -> int:
        waiting = len(self._sub) if self._sub is not None else 0
        return waiting + sum(count or 1 for *_, count in self._pending)

    def status(self) -> dict[str, Any]:
        """The exporter as the dashboard's status shows it (schemas/status.schema.json exports)."""
        return {"name": "mqtt", "kind": self.kind, "target":
                f"mqtt{'s' if self.settings.tls else ''}://{self.settings.host}:{self.port}/{self.base}",
                "state": self.state, "detail": self.detail, "queued": self.queued(),
                "dropped": self._sub.dropped if self._sub is not None else 0,
                "sent": self.readings_sent, "connects": self.connects}

    # -- the connection loop ----------------------------------------------------------------
    def _client(self) -> Any:
        import aiomqtt

        s = self.settings
        will = aiomqtt.Will(self.availability_topic, b"offline", qos=max(s.qos, 1), retain=True)
        return aiomqtt.Client(s.host, self.port, username=s.username, password=s.password,
                              identifier=self.client_id, will=will, keepalive=s.keepalive_s,
                              tls_context=tls_context(s), timeout=10)

    async def _run(self) -> None:
        import aiomqtt

        while not self._stopping.is_set():
            try:
                async with self._client() as client:
                    self.connects += 1
                    self.state, self.detail = "connected", ""
                    self._backoff.reset()
                    log.info("mqtt: connected to %s:%s as %s", self.settings.host, self.port,
                             self.client_id)
                    await self._session(client)
                    return
            except (aiomqtt.MqttError, ConnectionLost, OSError, ssl.SSLError) as exc:
                detail = str(exc) or type(exc).__name__
                if self.state == "connected":
                    log.warning("mqtt: connection to %s lost: %s", self.settings.host, detail)
                self.state, self.detail = "disconnected", detail
            if self._stopping.is_set():
                return
            delay = self._backoff.next()
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
            self.state = "connecting"

    async def _session(self, client: Any) -> None:
        """One connection: announce, then pump the backlog and new events until stopped or lost."""
        # The client's message iterator ends with an error when the connection drops: the
        # public way to learn of a disconnect while waiting for something else.
        watcher = asyncio.create_task(self._watch(client))
        try:
            qos = self.settings.qos
            await self._publish(client, watcher, self.availability_topic, b"online", True,
                                max(qos, 1))
            await self._publish_all_statuses(client, watcher)
            for alarm in list(self.hub.alarms.values()):
                for topic, body, retain, _ in self._alarm_messages(alarm)[1:]:
                    await self._publish(client, watcher, topic, body, retain, qos)
            await client.subscribe(f"{self.base}/alarms/active/+", qos=1)
            next_status = time.monotonic() + self.settings.status_interval_s
            while True:
                self._clear_stale_alarms()
                while self._pending:
                    topic, payload, retain, count = self._pending[0]
                    await self._publish(client, watcher, topic, payload, retain, qos)
                    self._pending.popleft()
                    self.messages_sent += 1
                    self.readings_sent += count
                if time.monotonic() >= next_status:
                    await self._publish_all_statuses(client, watcher)
                    next_status = time.monotonic() + self.settings.status_interval_s
                assert self._sub is not None
                events = self._sub.get_nowait(self.settings.batch * 8)
                if events:
                    self._pending.extend(self._messages(events))
                    continue
                if self._stopping.is_set():
                    await self._publish(client, watcher, self.availability_topic, b"offline",
                                        True, max(qos, 1))
                    return
                await self._wait_for_events(watcher, next_status - time.monotonic())
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def _clear_stale_alarms(self) -> None:
        """Queue the deletion of retained alarms from before that do not stand now."""
        self._retained_seen.clear()
        for rule in sorted(self._retained - set(self.hub.alarms)):
            self._pending.append((f"{self.base}/alarms/active/{rule}", b"", True, 0))
        self._retained.clear()

    async def _watch(self, client: Any) -> None:
        # Only the retained alarms arrive here (we subscribe to nothing else); the loop also
        # ends, with an error, when the connection does.
        prefix = f"{self.base}/alarms/active/"
        async for message in client.messages:
            topic = str(message.topic)
            if message.retain and message.payload and topic.startswith(prefix):
                self._retained.add(topic[len(prefix):])
                self._retained_seen.set()

    async def _wait_for_events(self, watcher: asyncio.Task[None], timeout: float) -> None:
        assert self._sub is not None
        getter = asyncio.ensure_future(self._sub.get())
        stopping = asyncio.ensure_future(self._stopping.wait())
        retained = asyncio.ensure_future(self._retained_seen.wait())
        try:
            await asyncio.wait({getter, watcher, stopping, retained}, timeout=max(timeout, 0.0),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cancelling a get() that has not returned leaves its event in the queue.
            for waiter in (getter, stopping, retained):
                waiter.cancel()
            await asyncio.gather(getter, stopping, retained, return_exceptions=True)
        if not getter.cancelled() and getter.exception() is None:
            first = getter.result()
            self._pending.extend(self._messages(
                [first, *self._sub.get_nowait(self.settings.batch * 8 - 1)]))
        if watcher.done():
            raise ConnectionLost(_reason(watcher))

    async def _publish(self, client: Any, watcher: asyncio.Task[None], topic: str,
                       payload: bytes, retain: bool, qos: int) -> None:
        sending = asyncio.ensure_future(client.publish(topic, payload, qos=qos, retain=retain,
                                                       timeout=30))
        await asyncio.wait({sending, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if sending.done():
            sending.result()  # raises MqttError if the publish failed
            return
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        raise ConnectionLost(_reason(watcher))

    async def _publish_all_statuses(self, client: Any, watcher: asyncio.Task[None]) -> None:
        for status in list(self.hub.statuses.values()):
            topic, payload, retain, _ = self._status_message(status)
            await self._publish(client, watcher, topic, payload, retain, self.settings.qos)


def _reason(watcher: asyncio.Task[None]) -> str:
    if watcher.cancelled():
        return "connection closed"
    exc = watcher.exception()
    cause = exc.__cause__ if exc is not None else None
    return str(cause or exc or "connection closed")
