"""The webhook sink: each alarm event as an HTTP POST of JSON to a URL someone watches.

The body is ``schemas/alarm-event.schema.json`` (the same JSON MQTT publishes), one event per
request, in the order they happened. A request that fails (no answer within ``timeout_s``, a
connection refused, an HTTP 5xx, 408 or 429) is tried again after a growing pause
(``retry_initial_s`` doubling up to ``retry_max_s``), ``max_attempts`` times in all; a 4xx
refusal is not retried (the receiver will not change its mind). Failures show in the service's
status (``exports``: state, the last error, queued, dropped, sent).

It never slows anything else: its own hub subscription is the queue, bounded to ``queue``
events (the oldest dropped, and counted, when the receiver stays away), and the requests run in
its own task with httpx's async client.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx

from sensorlink.alarm_event import AlarmEvent
from sensorlink.backoff import Backoff
from sensorlink.bridges.payloads import alarm_payload
from sensorlink.bridges.tasks import finish
from sensorlink.config_alarms import WebhookConfig
from sensorlink.hub import Hub, Subscription

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 429})


class WebhookSink:
    kind = "webhook"

    def __init__(self, hub: Hub, settings: WebhookConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.hub = hub
        self.settings = settings
        self.state = "stopped"
        self.detail = ""
        self.sent = 0
        self.given_up = 0
        self.attempts = 0
        self._transport = transport
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight = False
        self._backoff = Backoff(initial=settings.retry_initial_s, ceiling=settings.retry_max_s)

    async def start(self) -> None:
        wanted = frozenset(self.settings.transitions)
        self._sub = self.hub.subscribe(
            f"webhook:{self.settings.name}", maxsize=self.settings.queue,
            accepts=lambda e: e.__class__ is AlarmEvent and e.transition in wanted)
        self.state = "connecting"
        self._task = asyncio.create_task(self._run(), name=f"webhook:{self.settings.name}")

    async def stop(self, flush_timeout_s: float = 3.0) -> None:
        """Send what is queued for a moment, then give up on the rest."""
        if self._task is None:
            return
        assert self._sub is not None
        self._sub.close()  # the loop empties the queue, then ends
        await finish(self._task, flush_timeout_s)
        self._task = None
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        waiting = len(self._sub) if self._sub is not None else 0
        dropped = (self._sub.dropped if self._sub is not None else 0) + self.given_up
        return {"name": self.settings.name, "kind": self.kind, "target": self.settings.url,
                "state": self.state, "detail": self.detail,
                "queued": waiting + int(self._in_flight), "dropped": dropped, "sent": self.sent}

    def body(self, event: AlarmEvent) -> bytes:
        payload = alarm_payload(event, site=self.settings.site, machine=self.settings.machine,
                                replay=self.hub.replay)
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def _run(self) -> None:
        assert self._sub is not None
        headers = {"Content-Type": "application/json", "User-Agent": "sensorlink"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        async with httpx.AsyncClient(timeout=self.settings.timeout_s, headers=headers,
                                     transport=self._transport) as client:
            while True:
                try:
                    event = await self._sub.get()
                except EOFError:
                    return
                self._in_flight = True
                try:
                    await self._deliver(client, event)
                finally:
                    self._in_flight = False

    async def _deliver(self, client: httpx.AsyncClient, event: AlarmEvent) -> None:
        body = self.body(event)
        for attempt in range(1, self.settings.max_attempts + 1):
            self.attempts += 1
            try:
                response = await client.post(self.settings.url, content=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.is_success:
                    self.sent += 1
                    self.state, self.detail = "connected", ""
                    self._backoff.reset()
                    return
                problem = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                if response.status_code < 500 and response.status_code not in _RETRY_STATUS:
                    self._give_up(event, f"refused: {problem}")
                    return
            if attempt == self.settings.max_attempts:
                self._give_up(event, f"{problem} (gave up after {attempt} attempts)")
                return
            delay = self._backoff.next()
            self.state, self.detail = "disconnected", f"{problem}; retrying in {delay:g} s"
            log.warning("webhook %s: %s", self.settings.name, self.detail)
            await asyncio.sleep(delay)

    def _give_up(self, event: AlarmEvent, why: str) -> None:
        self.given_up += 1
        self.state, self.detail = "failed", f"event {event.rule}#{event.seq} not delivered: {why}"
        log.error("webhook %s: %s", self.settings.name, self.detail)
