"""Exponential backoff, shared by everything that reconnects: drivers to their devices, the
MQTT bridge to its broker, the Janus publisher to its room, the headless viewer to the service."""

from __future__ import annotations


class Backoff:
    """Exponential backoff with a ceiling: 0.5 s, 1 s, 2 s ... 10 s."""

    def __init__(self, initial: float = 0.5, ceiling: float = 10.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.ceiling = ceiling
        self.factor = factor
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.ceiling)
        return delay

    def reset(self) -> None:
        self._next = self.initial
