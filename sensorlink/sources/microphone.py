"""Base for microphone-array drivers: turns captured PCM into audio blocks plus the
direction-of-arrival and sound-level readings the dashboard's compass and meter show.
The level is the RMS over every raw microphone channel (dBFS), not the beam's.

A subclass only captures: :meth:`MicrophoneArrayDriver.capture` returns int16 PCM shaped
(samples, channels). Which channels are the raw microphones and where they sit is in
:attr:`geometry` (a profile, or the config for a generic array).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sensorlink.analysis.directional import DirectionFinder, dbfs
from sensorlink.driver import Driver
from sensorlink.samples import AudioBlock, Reading, Sample, SensorInfo


@dataclass(frozen=True)
class ArrayGeometry:
    rate: int
    channels: int
    #: capture channel index of each raw microphone, in the order of ``positions``
    mic_channels: tuple[int, ...]
    #: x, y in metres of each raw microphone
    positions: tuple[tuple[float, float], ...]
    #: capture channel to play when no beam is steered (e.g. the firmware's processed channel)
    listen_channel: int | None = None


class MicrophoneArrayDriver(Driver):
    kind = "microphone"
    #: how often (seconds of audio) a direction and a level reading are produced
    analysis_interval_s = 0.1
    #: how much audio (seconds) each direction estimate looks at
    analysis_window_s = 0.128

    @property
    @abc.abstractmethod
    def geometry(self) -> ArrayGeometry: ...

    @abc.abstractmethod
    async def capture(self) -> np.ndarray:
        """Next block of int16 PCM, (samples, channels). Raise DeviceDisconnected if gone."""

    def info(self) -> SensorInfo:
        g = self.geometry
        return SensorInfo(self.name, "microphone", self.driver_name(), {
            "rate": g.rate, "channels": g.channels, "mic_channels": list(g.mic_channels),
            "positions": [list(p) for p in g.positions], "listen_channel": g.listen_channel,
            "streams": {"doa": {"quantity": "direction", "unit": "deg"},
                        "level": {"quantity": "sound_level", "unit": "dBFS"}},
        })

    @classmethod
    def driver_name(cls) -> str:
        return getattr(cls, "entry_point_name", cls.__name__)

    async def open(self) -> None:
        g = self.geometry
        self._finder = DirectionFinder(g.positions, g.rate)
        self._window = np.zeros((int(self.analysis_window_s * g.rate), len(g.mic_channels)))
        self._since_analysis = 0

    async def read(self) -> Sequence[Sample]:
        pcm = await self.capture()
        t_mono, t_wall = self.stamp()
        g = self.geometry
        out: list[Sample] = [AudioBlock(self.name, pcm, g.rate, self.next_seq("audio"), t_mono, t_wall)]
        mics = pcm[:, list(g.mic_channels)].astype(np.float64)
        n = min(len(mics), len(self._window))
        self._window = np.concatenate((self._window[n:], mics[-n:]))
        self._since_analysis += len(pcm)
        if self._since_analysis >= self.analysis_interval_s * g.rate:
            self._since_analysis = 0
            # The channels' RMS (power averaged over the microphones): what one microphone
            # hears. The plain mean of the channels would partly cancel an off-centre source
            # (its arrival differs by up to ~3 samples per microphone) and read ~5 dB low.
            level = dbfs(self._window)
            # Below -70 dBFS there is no source to point at: flag the direction, keep it.
            quality = "ok" if level > -70.0 else "suspect"
            # A few ms of FFTs: off the event loop (numpy releases the GIL), so frames and
            # readings of other sensors are not held behind it. A read cancelled here (stop,
            # the silence timeout) leaves the thread running, harmlessly: estimate() only reads
            # the finder and this window, which nothing changes in place (open() makes new ones).
            angle = await asyncio.to_thread(self._finder.estimate, self._window)
            out.append(Reading(self.name, "doa", "direction", round(angle, 2), "deg",
                               self.next_seq("doa"), t_mono, t_wall, quality))
            out.append(Reading(self.name, "level", "sound_level", round(level, 2), "dBFS",
                               self.next_seq("level"), t_mono, t_wall))
        return out
