"""Runs one driver: open, read, publish, and reopen with backoff when the device goes away."""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from sensorlink.backoff import Backoff
from sensorlink.driver import Driver
from sensorlink.errors import DriverUnavailable
from sensorlink.hub import Hub
from sensorlink.samples import AudioBlock, Reading, ThermalFrame
from sensorlink.status import DriverState, SensorStatus

log = logging.getLogger(__name__)

_PRIMARY_SAMPLE: dict[str, type] = {"thermal": ThermalFrame, "microphone": AudioBlock,
                                    "probe": Reading}


class RateMeter:
    """Samples per second over a sliding window of a few seconds."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self._marks: collections.deque[tuple[int, int]] = collections.deque()

    def mark(self, count: int, t_ns: int | None = None) -> None:
        t_ns = time.monotonic_ns() if t_ns is None else t_ns
        self._marks.append((t_ns, count))
        while self._marks and t_ns - self._marks[0][0] > self.window_ns:
            self._marks.popleft()

    def rate(self, t_ns: int | None = None) -> float:
        t_ns = time.monotonic_ns() if t_ns is None else t_ns
        while self._marks and t_ns - self._marks[0][0] > self.window_ns:
            self._marks.popleft()
        if not self._marks:
            return 0.0
        span = max(t_ns - self._marks[0][0], 1_000_000_000 // 4)
        return sum(c for _, c in self._marks) * 1e9 / span


class DriverRunner:
    """Owns a driver's state machine; the only place that publishes its samples."""

    def __init__(self, driver: Driver, hub: Hub, *, backoff: Backoff | None = None,
                 status_interval_s: float = 1.0) -> None:
        self.driver = driver
        self.hub = hub
        self.backoff = backoff or Backoff()
        self.status_interval_s = status_interval_s
        self.state: DriverState = "starting"
        self.detail = ""
        self.rate = RateMeter()
        self._task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._primary = _PRIMARY_SAMPLE[driver.kind]

    @property
    def name(self) -> str:
        return self.driver.name

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"driver:{self.name}")
        self._status_task = asyncio.create_task(self._report(), name=f"status:{self.name}")

    async def stop(self) -> None:
        for task in (self._task, self._status_task):
            if task is not None:
                task.cancel()
        for task in (self._task, self._status_task):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._set_state("stopped", "")

    def status(self) -> SensorStatus:
        return SensorStatus(sensor=self.name, state=self.state, detail=self.detail,
                            counters=self.driver.describe_counters(), rate_hz=self.rate.rate())

    def _set_state(self, state: DriverState, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            log.info("sensor %s: %s%s", self.name, state, f" ({detail})" if detail else "")
        self.state, self.detail = state, detail
        self.hub.set_status(self.status())

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval_s)
            self.hub.set_status(self.status())

    async def _run(self) -> None:
        driver = self.driver
        self.hub.describe(driver.info())
        self._set_state("starting", "")
        while True:
            try:
                await driver.open()
            except DriverUnavailable as exc:
                self._set_state("failed", str(exc))
                return
            except Exception as exc:  # any open failure is retried: the device may come back
                await driver.close()
                delay = self.backoff.next()
                driver.counters["open_failures"] += 1
                self._set_state("reconnecting", f"{_describe(exc)}; retrying in {delay:g} s")
                await asyncio.sleep(delay)
                continue
            self.hub.describe(driver.info())  # open may have learned the real size or rate
            self._set_state("connected", "")
            self.backoff.reset()
            try:
                await self._pump()
            except asyncio.CancelledError:
                await driver.close()
                raise
            except Exception as exc:
                driver.counters["disconnects"] += 1
                await driver.close()
                delay = self.backoff.next()
                self._set_state("reconnecting", f"{_describe(exc)}; retrying in {delay:g} s")
                await asyncio.sleep(delay)

    async def _pump(self) -> None:
        driver, hub, timeout = self.driver, self.hub, self.driver.silence_timeout_s
        revision = driver.info_revision
        while True:
            if timeout is None:
                samples = await driver.read()
            else:
                try:
                    # Not wait_for: on Python 3.11 it swallows a cancel (stop()) that lands just
                    # as the read completes, and the runner then outlives stop().
                    async with asyncio.timeout(timeout):
                        samples = await driver.read()
                except TimeoutError:
                    driver.counters["silent_timeouts"] += 1
                    raise TimeoutError(f"no data for {timeout:g} s") from None
            if driver.info_revision != revision:
                revision = driver.info_revision
                hub.describe(driver.info())
            primary = 0
            for sample in samples:
                hub.publish(sample)
                primary += type(sample) is self._primary
            driver.counters["samples"] += len(samples)
            # The rate people expect: frames/s of a camera, blocks/s of a microphone, readings/s
            # of probes (not the ambient or direction readings that ride along).
            self.rate.mark(primary)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (OSError, TimeoutError)) or str(exc) else type(exc).__name__
