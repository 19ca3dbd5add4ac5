"""What a viewer receives, turned back into samples: so ``sensorlink view --record FILE`` can
record on the receiving side with the same recorder (and replay with the same source).

Readings and exact thermal frames come back with their sender's seq and wall time; audio is the
decoded beam as the viewer heard it (Opus, 48 kHz), numbered here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sensorlink.hub import Hub
from sensorlink.samples import AudioBlock, Reading, SensorInfo, SeqCounter, ThermalFrame
from sensorlink.status import SensorStatus


class ReceivedSamples:
    """Publishes what a Viewer receives into a Hub (e.g. one a Recorder subscribes to)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._streams: dict[str, dict[str, Any]] = {}
        self._audio_seq = SeqCounter()

    def on_hello(self, hello: dict[str, Any]) -> None:
        for sensor in hello["sensors"]:
            info = SensorInfo.from_dict(sensor)
            self.hub.describe(info)
            for channel, meta in (info.meta.get("streams") or {}).items():
                self._streams[f"{info.name}/{channel}"] = meta

    def on_readings(self, rows: list[list[Any]]) -> None:
        t_mono = time.monotonic_ns()
        for stream, seq, t_wall, value, unit, quality in rows:
            sensor, _, channel = stream.partition("/")
            quantity = self._streams.get(stream, {}).get("quantity", "value")
            self.hub.publish(Reading(sensor, channel, quantity, value, unit, seq, t_mono, t_wall,
                                     quality))

    def on_frame(self, meta: dict[str, Any], celsius: np.ndarray) -> None:
        self.hub.publish(ThermalFrame(meta["sensor"], celsius, meta["seq"], time.monotonic_ns(),
                                      meta["t_wall_ns"], meta.get("ambient_c")))

    def on_status(self, message: dict[str, Any]) -> None:
        for entry in message["sensors"]:
            self.hub.set_status(SensorStatus(entry["sensor"], entry["state"], entry["detail"],
                                             entry["counters"], entry["rate_hz"]))

    def on_audio(self, sensor: str, frame: Any) -> None:
        channels = len(frame.layout.channels)
        pcm = frame.to_ndarray().reshape(-1, channels).astype(np.int16)
        t_mono, t_wall = time.monotonic_ns(), time.time_ns()
        self.hub.publish(AudioBlock(f"{sensor}", pcm, frame.sample_rate, self._audio_seq(sensor),
                                    t_mono, t_wall))
