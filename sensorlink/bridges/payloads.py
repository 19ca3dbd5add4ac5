"""JSON bodies that more than one bridge sends: an alarm event as MQTT publishes it and a
webhook POSTs it (``schemas/alarm-event.schema.json``)."""

from __future__ import annotations

import math
from typing import Any

from sensorlink.alarm_event import AlarmEvent

PAYLOAD_VERSION = 1


def alarm_payload(event: AlarmEvent, *, site: str, machine: str, replay: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"v": PAYLOAD_VERSION, "site": site, "machine": machine,
                               **event.to_dict()}
    for key in ("value", "limit"):  # JSON has no NaN or infinity
        if payload[key] is not None and not math.isfinite(payload[key]):
            payload[key] = None
    if replay:
        payload["replay"] = True
    return payload
