"""Helpers for the serial driver tests: run a driver through DriverRunner + Hub against an
emulator on a pty, and wait on hub events (never sleep-and-assert)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from sensorlink.backoff import Backoff
from sensorlink.driver import Driver
from sensorlink.hub import Hub, Subscription
from sensorlink.options import build_options
from sensorlink.sources.registry import load_driver
from sensorlink.sources.runner import DriverRunner
from sensorlink.status import SensorStatus

DATA = Path(__file__).resolve().parent / "data" / "serial"


def make_driver(driver: str, name: str, options: dict[str, Any]) -> Driver:
    """Through the registry and the config checker, as ``sensorlink run`` builds it."""
    cls = load_driver(driver)
    return cls(name, build_options(cls.Options, options, sensor=name))


class Rig:
    """A driver under DriverRunner, publishing into a hub we subscribe to."""

    def __init__(self, driver: Driver) -> None:
        self.hub = Hub()
        self.sub: Subscription = self.hub.subscribe("test", maxsize=100_000)
        self.driver = driver
        self.runner = DriverRunner(driver, self.hub, backoff=Backoff(0.05, 0.2),
                                   status_interval_s=0.2)

    async def __aenter__(self) -> Self:
        self.runner.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.stop()

    async def next_matching(self, predicate: Callable[[Any], bool], timeout: float = 20.0,
                            what: str = "event") -> Any:
        """The next hub event satisfying ``predicate``; fails (not hangs) after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await self.sub.get()
                    if predicate(event):
                        return event
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout} s; state {self.runner.state} "
                                 f"({self.runner.detail}); counters {dict(self.driver.counters)}")

    async def state(self, state: str, timeout: float = 20.0) -> SensorStatus:
        status: SensorStatus = await self.next_matching(
            lambda e: isinstance(e, SensorStatus) and e.state == state, timeout,
            f"status {state!r}")
        return status

    async def samples(self, kind: type, count: int, timeout: float = 20.0,
                      where: Callable[[Any], bool] = lambda s: True) -> list[Any]:
        out = []
        while len(out) < count:
            out.append(await self.next_matching(lambda e: isinstance(e, kind) and where(e),
                                                timeout, f"{kind.__name__} #{len(out) + 1}"))
        return out
