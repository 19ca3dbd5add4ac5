"""A steady tick on an absolute monotonic schedule, so simulated rates never drift."""

from __future__ import annotations

import asyncio
import time


class Ticker:
    def __init__(self, rate_hz: float) -> None:
        self.period_ns = int(1e9 / rate_hz)
        self._next = time.monotonic_ns()

    async def wait(self) -> None:
        delay = self._next - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        elif delay < -5 * self.period_ns:
            self._next = time.monotonic_ns()  # fell far behind (suspended): do not burst
        self._next += self.period_ns
