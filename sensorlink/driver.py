"""The one abstract base every device driver implements (like python-can's ``BusABC``).

A driver is an async source with a lifecycle: :meth:`Driver.open`, then :meth:`Driver.read`
until the device goes away, then :meth:`Driver.close`. It never touches the hub and never
sleeps to retry: :class:`sensorlink.sources.runner.DriverRunner` owns state, backoff and publishing.
Protocol work belongs in a pure parser (bytes in, samples out) that the driver wraps.

Options are a frozen dataclass (``Driver.Options``); :func:`sensorlink.options.build_options`
checks a TOML table against it and names the field that is wrong.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from sensorlink.samples import Sample, SensorInfo, SensorKind, SeqCounter, now_ns


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """For drivers that take no options."""


class Driver(abc.ABC):
    """Base class of every sensor driver, built-in or third-party."""

    #: "thermal", "probe" or "microphone": which panel and which media track it feeds.
    kind: ClassVar[SensorKind]
    #: Importable module names the driver needs beyond sensorlink's own dependencies; listed by
    #: ``sensorlink drivers`` as missing without importing them.
    requires: ClassVar[tuple[str, ...]] = ()
    #: One line for ``sensorlink drivers``.
    description: ClassVar[str] = ""
    #: Options dataclass; each field's default is used when the config leaves it out.
    Options: ClassVar[type] = NoOptions
    #: Seconds without a sample after which the runner treats the device as gone and reopens it.
    silence_timeout_s: ClassVar[float | None] = None
    #: Bumped by a driver whose ``info()`` changed while open (a probe appeared on the bus);
    #: the runner then announces the new info to the hub.
    info_revision: int = 0

    def __init__(self, name: str, options: Any = None) -> None:
        self.name = name
        self.options = options if options is not None else self.Options()
        self.counters: collections.Counter[str] = collections.Counter()
        self._seq = SeqCounter()

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def info(self) -> SensorInfo:
        """What the dashboard needs to know before the first sample (size, channels, geometry)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the device. Raise DriverError (or OSError) if it is not there yet."""

    @abc.abstractmethod
    async def read(self) -> Sequence[Sample]:
        """Wait for and return the next samples (one or more). Raise DeviceDisconnected when the
        device goes away; the runner closes, backs off and opens again."""

    async def close(self) -> None:
        """Release the device. Must be safe to call after a failed open."""

    # -- helpers for subclasses ------------------------------------------------------------
    def next_seq(self, stream: str) -> int:
        return self._seq(stream)

    @staticmethod
    def stamp() -> tuple[int, int]:
        """(t_mono_ns, t_wall_ns) now: call it when the bytes arrive, not when parsed."""
        return now_ns()

    def describe_counters(self) -> dict[str, int]:
        return dict(self.counters)
