"""Signaling messages as the server receives them: bytes or text → JSON → schema. Only
MessageError may come out (the server answers it with an error naming the field); the
end-to-end websocket path is fuzzed by tests/test_fuzz.py against a live service."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run

from sensorlink.errors import MessageError
from sensorlink.validation import validate


def test_one_input(data: bytes) -> None:
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return  # the server answers "not valid JSON"
    try:
        validate("signaling", message)
    except MessageError as exc:
        json.dumps({"type": "error", "id": None, "error": str(exc), "field": exc.field})


if __name__ == "__main__":
    run(test_one_input)
