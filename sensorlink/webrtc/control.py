"""Control messages from a viewer: validated against schemas/control.schema.json, checked against
the viewer's role, and applied to the service. Every message gets a reply or an error naming the
field; nothing a viewer sends can stop the stream.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol

import msgpack

from sensorlink.errors import ControlError, MessageError
from sensorlink.webrtc.wire import MAX_CONTROL_BYTES, decode_control, encode_error, encode_reply

log = logging.getLogger(__name__)

#: What a viewer (a person looking) may do; operators may do everything.
VIEWER_ACTIONS = frozenset({"ping"})


class Controllable(Protocol):
    """What the control handler needs from the service."""

    async def apply_control(self, message: dict[str, Any], *, viewer: str) -> dict[str, Any]: ...


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._last = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class ControlHandler:
    """One viewer's control channel."""

    def __init__(self, target: Controllable, *, role: str, viewer: str,
                 rate: float = 20.0, burst: float = 40.0,
                 viewer_actions: frozenset[str] = VIEWER_ACTIONS) -> None:
        self.target = target
        self.role = role
        self.viewer_actions = viewer_actions
        self.viewer = viewer
        self.accepted = 0
        self.refused = 0
        self._last_id = -1
        self._bucket = TokenBucket(rate, burst)

    async def handle(self, data: bytes | str) -> bytes:
        """Bytes of one control message → bytes of the reply (or error) to send back."""
        msg_id: int | None = None
        try:
            if not self._bucket.take():
                # Still answer with the message's id, or the viewer waits for a reply in vain.
                raise MessageError("too many control messages; slow down", msg_id=_peek_id(data))
            message = decode_control(data)
            msg_id = message["id"]
            _refuse_non_finite(message, msg_id)
            if msg_id <= self._last_id:
                raise MessageError(f"id {msg_id} is not above the previous id {self._last_id} "
                                   "(replayed or out-of-order message)", field="id", msg_id=msg_id)
            self._last_id = msg_id
            action = message["type"]
            if self.role != "operator" and action not in self.viewer_actions:
                raise ControlError(f"a {self.role} may not {action!r}; an operator token is needed",
                                   field="type", msg_id=msg_id)
            if action == "ping":
                result = {"t_client_ms": message.get("t_client_ms"), "t_server_ns": time.time_ns()}
            else:
                result = await self.target.apply_control(message, viewer=self.viewer)
        except MessageError as exc:
            self.refused += 1
            log.info("viewer %s: control refused: %s", self.viewer, exc)
            return encode_error(str(exc), msg_id=exc.msg_id if exc.msg_id is not None else msg_id,
                                field=exc.field)
        self.accepted += 1
        return encode_reply(msg_id, result)


def _peek_id(data: bytes | str) -> int | None:
    """The ``id`` of a control message without validating it (for refusals that come first)."""
    try:
        message = msgpack.unpackb(data if isinstance(data, bytes) else data.encode(),
                                  raw=False) if len(data) <= MAX_CONTROL_BYTES else None
    except Exception:  # noqa: BLE001 (garbage has no id; msgpack raises many types)
        return None
    msg_id = message.get("id") if isinstance(message, dict) else None
    return msg_id if isinstance(msg_id, int) and not isinstance(msg_id, bool) else None


def _refuse_non_finite(value: Any, msg_id: int, path: str = "") -> None:
    """JSON Schema's minimum/maximum let NaN through (every comparison with it is false), and
    msgpack carries NaN and ±inf: refuse them here, naming the field (found by fuzzing:
    a NaN steering angle or colour range was accepted)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise MessageError(f"{value!r} is not a finite number", field=path or None,
                           msg_id=msg_id)
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _refuse_non_finite(item, msg_id, f"{path}.{key}" if path else str(key))
