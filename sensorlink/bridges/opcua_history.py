"""The OPC UA bridge's history: what HistoryRead reaches, bounded in time and in count.

Why in memory and not asyncua's SQLite backend: the bridge saves every reading of every
stream, and the SQLite store writes (and commits) each value through aiosqlite's thread, which
at a few kHz of readings is disk traffic and thread hand-offs on the live path for a feature
whose job is "the last N hours for a trend". A historian that needs more keeps its own archive
(that is what historians do); sensorlink's own archive is the MCAP recording. Here each
variable has a deque bounded by ``history_values`` and trimmed to ``history_hours``, so memory is
bounded whatever the rate, and a save is O(1) (asyncua's HistoryDict pops from the front of a
list, O(n) per save).
"""

from __future__ import annotations

import bisect
import collections
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua
from asyncua.server.history import HistoryStorageInterface


class _Series:
    __slots__ = ("values", "stamps", "period")

    def __init__(self, period: timedelta | None, count: int) -> None:
        self.values: collections.deque[ua.DataValue] = collections.deque(maxlen=count or None)
        # SourceTimestamps as floats, in step with values, for bisecting a time range
        self.stamps: collections.deque[float] = collections.deque(maxlen=count or None)
        self.period = period


class BoundedHistory(HistoryStorageInterface):
    """Per-node deques of DataValues in SourceTimestamp order (a stream's readings are)."""

    def __init__(self, max_history_data_response_size: int = 10_000) -> None:
        self.max_history_data_response_size = max_history_data_response_size
        self._series: dict[ua.NodeId, _Series] = {}

    async def init(self) -> None:
        pass

    async def new_historized_node(self, node_id: ua.NodeId, period: timedelta | None,
                                  count: int = 0) -> None:
        self._series[node_id] = _Series(period, count)

    def save(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        """Synchronous save: the bridge calls it for every value it writes."""
        series = self._series.get(node_id)
        if series is None or datavalue.SourceTimestamp is None:
            return
        stamp = datavalue.SourceTimestamp.timestamp()
        series.values.append(datavalue)
        series.stamps.append(stamp)
        if series.period is not None:
            oldest = stamp - series.period.total_seconds()
            while series.stamps and series.stamps[0] < oldest:
                series.stamps.popleft()
                series.values.popleft()

    async def save_node_value(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        self.save(node_id, datavalue)

    def __len__(self) -> int:
        return sum(len(s.values) for s in self._series.values())

    def count(self, node_id: ua.NodeId) -> int:
        series = self._series.get(node_id)
        return len(series.values) if series is not None else 0

    async def read_node_history(self, node_id: ua.NodeId, start: datetime | None,
                                end: datetime | None, nb_values: int
                                ) -> tuple[list[ua.DataValue], datetime | None]:
        series = self._series.get(node_id)
        if series is None:
            return [], None
        epoch = ua.get_win_epoch()
        start = start if start is not None and start != epoch else None
        end = end if end is not None and end != epoch else None
        # OPC UA Part 11: start after end (or only an end) means newest first.
        backwards = (start is not None and end is not None and start > end) or \
            (start is None and end is not None)
        low, high = (end, start) if backwards and start is not None else (start, end)
        stamps = list(series.stamps)
        first = bisect.bisect_left(stamps, _ts(low)) if low is not None else 0
        last = bisect.bisect_right(stamps, _ts(high)) if high is not None else len(stamps)
        values = list(series.values)[first:last]
        if backwards:
            values.reverse()
        if nb_values and len(values) > nb_values:
            values = values[:nb_values]
        cont = None
        if len(values) > self.max_history_data_response_size:
            cont = values[self.max_history_data_response_size].SourceTimestamp
            values = values[:self.max_history_data_response_size]
        return values, cont

    # Events are not historized here: alarms have their own record in the MCAP recording.
    async def new_historized_event(self, source_id: ua.NodeId, evtypes: list[ua.NodeId],
                                   period: timedelta | None, count: int = 0) -> None:
        pass

    async def save_event(self, event: Any) -> None:
        pass

    async def read_event_history(self, source_id: ua.NodeId, start: datetime | None,
                                 end: datetime | None, nb_values: int,
                                 evfilter: Any) -> tuple[list[Any], datetime | None]:
        return [], None

    async def stop(self) -> None:
        self._series.clear()


def wall_datetime(t_wall_ns: int) -> datetime:
    """A sample's t_wall_ns as an aware datetime, truncated to the microsecond exactly (a float
    division would round, and a reading 0.5 µs before a millisecond would move into the next)."""
    seconds, rest = divmod(t_wall_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def _ts(moment: datetime) -> float:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
