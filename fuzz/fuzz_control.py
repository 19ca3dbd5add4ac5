"""The control channel: arbitrary bytes through ControlHandler must give a reply or an error
message that is valid on the wire; nothing else may come out, and nothing invalid may reach
the service behind it (here a stand-in that checks what it is given)."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgpack
from _harness import run

from sensorlink.validation import validate
from sensorlink.webrtc.control import ControlHandler
from sensorlink.webrtc.wire import decode_control

LOOP = asyncio.new_event_loop()


class Target:
    async def apply_control(self, message: dict[str, Any], *, viewer: str) -> dict[str, Any]:
        decode_control(msgpack.packb(message))  # only valid messages get this far
        for value in message.values():
            assert not (isinstance(value, float) and not math.isfinite(value)), message
        return {}


def test_one_input(data: bytes) -> None:
    handler = ControlHandler(Target(), role="operator" if data[:1] != b"v" else "viewer",
                             viewer="fuzz", rate=1e9, burst=1e9)
    # Up to four messages split on a separator byte: ids, order and replays matter too.
    for part in data.split(b"\xff\xfe", 3):
        reply = msgpack.unpackb(LOOP.run_until_complete(handler.handle(part)), raw=False)
        validate("error" if reply["type"] == "error" else "reply", reply)


if __name__ == "__main__":
    run(test_one_input)
