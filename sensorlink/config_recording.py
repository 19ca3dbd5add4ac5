"""``[recording]``: how a service records for months on a small disk.

```toml
[service]
record_dir = "/var/lib/sensorlink/recordings"

[recording]
always = true            # record from start-up (default: when record_dir or --record is given)
segment_minutes = 15     # a new file (segment) every 15 minutes ...
segment_mb = 256         # ... or every 256 MB, whichever comes first (default: no size bound)
keep_days = 7            # segments older than this are deleted ...
keep_alarm_days = 60     # ... unless they hold an alarm (default: kept until max_total_gb says)
max_total_gb = 20        # the oldest complete segments go first when the recordings pass this
min_free_gb = 0.5        # below this much free space recording pauses (and says so), 0 = off
audio = "flac"           # microphone channels: "pcm" (Foxglove plays it) or "flac" (lossless, ~half)
```

The same settings come from the command line (``--segment-minutes``, ``--keep-days``, ...,
sensorlink.commands._serving); every error names the field (``recording.keep_days``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from sensorlink.options import parse_table

GB = 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class RecordingConfig:
    """``[recording]``; sizes in GB/MB (decimal, as disks are sold), times in minutes/days."""

    always: bool | None = None
    segment_minutes: float = 15.0
    segment_mb: float | None = None
    keep_days: float | None = None
    keep_alarm_days: float | None = None
    max_total_gb: float | None = None
    min_free_gb: float = 0.25
    audio: Literal["pcm", "flac"] = "pcm"
    #: width of the trend buckets written when a segment closes (min/max/mean per bucket)
    trend_bucket_s: float = 10.0
    #: events held for the recorder while it waits (paused for disk space, a slow card);
    #: beyond this the oldest are dropped and counted
    queue: int = 200_000

    def __post_init__(self) -> None:
        def positive(name: str, value: float | None, allow_zero: bool = False) -> None:
            if value is None:
                return
            if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
                raise ValueError(f"{name}: must be a {'' if allow_zero else 'positive '}number"
                                 f"{' (0 turns it off)' if allow_zero else ''}, got {value!r}")

        for name in ("segment_minutes", "segment_mb", "keep_days", "keep_alarm_days",
                     "max_total_gb", "trend_bucket_s"):
            positive(name, getattr(self, name))
        positive("min_free_gb", self.min_free_gb, allow_zero=True)
        if self.segment_minutes * 60 < 1:
            raise ValueError("segment_minutes: at least one second (1/60)")
        if self.keep_days is not None and self.keep_alarm_days is not None \
                and self.keep_alarm_days < self.keep_days:
            raise ValueError(f"keep_alarm_days: segments with an alarm are kept longer, not "
                             f"shorter: {self.keep_alarm_days:g} < keep_days {self.keep_days:g}")
        if self.segment_mb is not None and self.segment_mb < 0.01:
            raise ValueError("segment_mb: at least 0.01 (10 kB)")
        if self.trend_bucket_s < 0.1:
            raise ValueError("trend_bucket_s: at least 0.1")
        if self.queue < 1000:
            raise ValueError(f"queue: at least 1000 events, got {self.queue}")

    # -- in the units the recorder works in ------------------------------------------------
    @property
    def roll_seconds(self) -> float:
        return self.segment_minutes * 60.0

    @property
    def roll_bytes(self) -> int | None:
        return None if self.segment_mb is None else int(self.segment_mb * 1_000_000)

    @property
    def min_free_bytes(self) -> int | None:
        return int(self.min_free_gb * GB) if self.min_free_gb > 0 else None

    @property
    def max_total_bytes(self) -> int | None:
        return None if self.max_total_gb is None else int(self.max_total_gb * GB)

    @property
    def prunes(self) -> bool:
        """True when retention may delete anything at all."""
        return any(v is not None for v in (self.keep_days, self.keep_alarm_days,
                                           self.max_total_gb))

    def records_at_start(self, has_directory: bool) -> bool:
        return has_directory if self.always is None else self.always


def parse_recording(raw: Any, source: str) -> RecordingConfig:
    return parse_table(RecordingConfig, raw, "recording", source)
