"""The analysis stage: subscribes to the hub, publishes derived Readings and alarm events back.

Two subscriptions, two jobs. The first takes thermal frames of cameras with regions and audio
of microphones (and their direction of arrival), and publishes region and band readings with
contiguous seq per stream; it may drop the oldest frame when it falls behind (counted), never a
reading. The second takes every reading and sensor state some alarm rule watches, through a
deep queue, so rules see each value in order, including the derived ones this stage has just
published; a ticker moves the clock on for stale/disconnected rules and pending delays.

The stage also describes what it derives: each camera's and microphone's SensorInfo gets the
new streams (quantity and unit) and its regions or bands in ``meta``, so the dashboard, MQTT
and the recorder know them with no code of their own. A source that describes the sensor again
(a reconnect) has the additions laid over its new description at once.

In a replay the recording already holds the derived readings and the alarms as they were
raised: the stage then only makes the beam's spectrogram for viewers (``derive=False``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sensorlink.alarm_event import AlarmEvent
from sensorlink.analysis.alarms import AlarmEngine
from sensorlink.analysis.bands import BandAnalyzer, Spectrum
from sensorlink.analysis.region_store import RegionStore
from sensorlink.analysis.regions import RegionSet
from sensorlink.config_monitoring import FieldError, MonitorConfig, check_fits, check_region
from sensorlink.errors import ConfigError, ControlError
from sensorlink.hub import Event, Hub, Subscription
from sensorlink.offload import SerialOffload
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

log = logging.getLogger(__name__)

TICK_S = 0.1
FRAMES_QUEUE = 64
ALARM_QUEUE = 200_000
_REV = "monitor_rev"


class AnalysisStage:
    def __init__(self, hub: Hub, monitoring: MonitorConfig, *, store: RegionStore | None = None,
                 source: str = "<config>", derive: bool = True) -> None:
        self.hub = hub
        self.monitoring = monitoring
        self.store = store or RegionStore(None)
        self.source = source
        self.derive = derive
        self.regions: dict[str, RegionSet] = {}
        self.bands: dict[str, BandAnalyzer] = {}
        self.engine = AlarmEngine(monitoring.alarms if derive else (), self._publish_alarm)
        self.published = 0
        self._spectrum_listeners: list[Callable[[Spectrum], None]] = []
        self._base_meta: dict[str, dict[str, Any]] = {}
        self._rev: dict[str, int] = {}
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._saving = SerialOffload()

    # -- start: check the config against the sensors the sources described -----------------
    def prepare(self) -> None:
        """Build regions, bands and rules for the sensors in the hub; ConfigError names what
        is wrong (the sensor, the region or band, the rule and the field)."""
        sensors = self.hub.sensors
        m = self.monitoring
        for table, kind, key in ((m.regions, "thermal", "regions"), (m.bands, "microphone",
                                                                     "bands")):
            for name in table:
                info = sensors.get(name)
                if info is None or info.kind != kind:
                    raise ConfigError(f"{key} belong to a {kind} sensor, this one is "
                                      f"{info.kind if info else 'unknown'}", source=self.source,
                                      sensor=name, field=key)
        if not self.derive:
            self.bands = {n: BandAnalyzer(i, None) for n, i in sensors.items()
                          if i.kind == "microphone"}
            return
        self.store.load()
        for name, info in sensors.items():
            if info.kind == "thermal":
                regions = self.store.apply(name, m.regions.get(name, ()))
                width, height = int(info.meta.get("width", 0)), int(info.meta.get("height", 0))
                for region in regions:
                    try:
                        if width and height:
                            check_fits(region, width, height)
                    except FieldError as exc:
                        raise ConfigError(str(exc), source=self.source, sensor=name,
                                          field=f"regions.{region.name}.{exc.key}") from exc
                self.regions[name] = RegionSet(name, regions)
            elif info.kind == "microphone":
                try:
                    self.bands[name] = BandAnalyzer(info, m.bands.get(name))
                except FieldError as exc:
                    raise ConfigError(str(exc), source=self.source, sensor=name,
                                      field=f"bands.{exc.key}") from exc
        for name in (*self.regions, *self.bands):
            self._describe(name, sensors[name])
        self._check_rules()

    def _check_rules(self) -> None:
        sensors = self.hub.sensors
        known = {f"{name}/{stream}" for name, info in sensors.items()
                 for stream in info.meta.get("streams") or {}}
        for rule in self.monitoring.alarms:
            if rule.watches_state:
                if rule.stream not in sensors:
                    raise ConfigError(f"unknown sensor {rule.stream!r}; sensors: "
                                      f"{sorted(sensors)}", source=self.source,
                                      field=f"alarms.{rule.name}.sensor")
            elif rule.stream not in known:
                near = sorted(s for s in known if s.startswith(rule.sensor + "/"))
                raise ConfigError(f"unknown stream {rule.stream!r}; {rule.sensor!r} has "
                                  f"{near or 'no such sensor'}", source=self.source,
                                  field=f"alarms.{rule.name}.stream")

    def _derived(self, name: str) -> dict[str, Any]:
        if name in self.regions:
            rs = self.regions[name]
            return {"streams": rs.streams(), "regions": [r.to_dict() for r in rs.regions.values()]}
        analyzer = self.bands[name]
        return {"streams": analyzer.streams(),
                "bands": [{"name": b.name, "low_hz": round(b.low_hz, 3),
                           "high_hz": round(b.high_hz, 3)} for b in analyzer.bands]}

    def _describe(self, name: str, base: SensorInfo | None = None) -> None:
        """Describe ``name`` again: its source's meta with what this stage derives on top."""
        if base is not None:
            self._base_meta[name] = dict(base.meta)
        meta = dict(self._base_meta.get(name, {}))
        extra = self._derived(name)
        meta["streams"] = {**(meta.get("streams") or {}), **extra.pop("streams")}
        meta.update(extra)
        self._rev[name] = self._rev.get(name, 0) + 1
        meta[_REV] = self._rev[name]
        info = self.hub.sensors.get(name) or base
        assert info is not None
        self.hub.describe(SensorInfo(name, info.kind, info.driver, meta))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        work = self.hub.subscribe("analysis", maxsize=FRAMES_QUEUE, accepts=self._wants)
        self._subs.append(work)
        self._tasks.append(asyncio.create_task(self._analyse(work), name="analysis"))
        if self.engine.states:
            watched = self.engine.sensors
            alarms = self.hub.subscribe(
                "alarms", maxsize=ALARM_QUEUE,
                accepts=lambda e: (e.__class__ is Reading or e.__class__ is SensorStatus)
                and e.sensor in watched)
            self._subs.append(alarms)
            now = time.monotonic_ns()
            for status in self.hub.statuses.values():
                self.engine.status(status.sensor, status.state, now, status.t_wall_ns)
            self.engine.start(now)
            self._tasks.append(asyncio.create_task(self._watch(alarms), name="alarm-rules"))
            self._tasks.append(asyncio.create_task(self._tick(), name="alarm-ticker"))

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._saving.idle()
        self._tasks.clear()
        self._subs.clear()

    @property
    def dropped(self) -> int:
        return sum(sub.dropped for sub in self._subs)

    def _wants(self, e: Event) -> bool:
        cls = e.__class__
        if cls is ThermalFrame:
            rs = self.regions.get(e.sensor)  # type: ignore[union-attr]
            return rs is not None and bool(rs.regions)
        if cls is AudioBlock:
            analyzer = self.bands.get(e.sensor)  # type: ignore[union-attr]
            return analyzer is not None and (analyzer.measure or bool(self._spectrum_listeners))
        if cls is Reading:
            return e.channel == "doa" and e.sensor in self.bands  # type: ignore[union-attr]
        return cls is SensorInfo and self.derive

    async def _analyse(self, sub: Subscription) -> None:
        publish = self.hub.publish
        async for event in sub:
            try:
                if isinstance(event, ThermalFrame):
                    readings = self.regions[event.sensor].compute(event)
                elif isinstance(event, AudioBlock):
                    readings = self._audio(event)
                elif isinstance(event, Reading):
                    if event.quality == "ok":
                        self.bands[event.sensor].doa = float(event.value)
                    continue
                else:
                    assert isinstance(event, SensorInfo)
                    # Ours carry _REV; one without is its source describing it again.
                    if event.name in (*self.regions, *self.bands) and _REV not in event.meta:
                        self._describe(event.name, event)
                    continue
            except Exception:  # a bug here must not stop the stage, nor the stream
                log.exception("analysis of %s failed", getattr(event, "sensor", event))
                continue
            for reading in readings:
                publish(reading)
            self.published += len(readings)

    def _audio(self, block: AudioBlock) -> list[Reading]:
        analyzer = self.bands[block.sensor]
        if not analyzer.feed(block):
            return []
        # ~0.2 ms for a 4-mic array at 16 kHz (bench/): cheap enough for the event loop.
        readings, row = analyzer.analyse(block, spectrum=bool(self._spectrum_listeners))
        if row is not None:
            for listener in tuple(self._spectrum_listeners):
                listener(row)
        return readings if self.derive else []

    async def _watch(self, sub: Subscription) -> None:
        engine = self.engine
        async for event in sub:
            if event.__class__ is Reading:
                engine.reading(event)  # type: ignore[arg-type]
            elif isinstance(event, SensorStatus):
                engine.status(event.sensor, event.state, time.monotonic_ns(), event.t_wall_ns)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.engine.tick(time.monotonic_ns(), time.time_ns())

    def _publish_alarm(self, event: AlarmEvent) -> None:
        log.info("alarm %s: %s", event.rule, event.message)
        self.hub.alarm(event)

    # -- what viewers and operators do ---------------------------------------------------------
    def on_spectrum(self, listener: Callable[[Spectrum], None]) -> Callable[[], None]:
        self._spectrum_listeners.append(listener)
        return lambda: self._spectrum_listeners.remove(listener)

    def steer(self, sensor: str, angle_deg: float | None) -> None:
        if sensor in self.bands:
            self.bands[sensor].steer_to(angle_deg)

    def acknowledge(self, rule: str, by: str) -> AlarmEvent:
        if not self.derive:
            raise ControlError("a replay shows the alarms as recorded: there is nothing to "
                               "acknowledge", field="rule")
        return self.engine.acknowledge(rule, by, time.monotonic_ns(), time.time_ns())

    def _camera(self, sensor: str) -> tuple[RegionSet, SensorInfo]:
        if not self.derive:
            raise ControlError("a replay shows the regions as recorded", field="sensor")
        if sensor not in self.regions:
            raise ControlError(f"no thermal camera named {sensor!r}; available: "
                               f"{sorted(self.regions)}", field="sensor")
        return self.regions[sensor], self.hub.sensors[sensor]

    def _regions_reply(self, sensor: str) -> dict[str, Any]:
        return {"sensor": sensor,
                "regions": [r.to_dict() for r in self.regions[sensor].regions.values()]}

    async def set_region(self, sensor: str, raw: Any) -> dict[str, Any]:
        """Add a region, or replace (move, edit) the one of its name; kept in the state file."""
        regions, info = self._camera(sensor)
        try:
            region = check_region(raw)
            width, height = int(info.meta.get("width", 0)), int(info.meta.get("height", 0))
            if width and height:
                check_fits(region, width, height)
        except FieldError as exc:
            raise ControlError(str(exc), field=f"region.{exc.key}" if exc.key else "region") \
                from exc
        await self._keep(self.store.record_set, sensor, region)
        regions.set(region)
        self._describe(sensor)
        return self._regions_reply(sensor)

    async def delete_region(self, sensor: str, name: str) -> dict[str, Any]:
        regions, _ = self._camera(sensor)
        if name not in regions.regions:
            raise ControlError(f"camera {sensor!r} has no region {name!r}; it has "
                               f"{sorted(regions.regions)}", field="name")
        watching = [r.name for r in self.monitoring.alarms
                    if r.stream.startswith(f"{sensor}/{name}/")]
        if watching:
            raise ControlError(f"alarm rule(s) {watching} watch region {name!r}: change the "
                               "config's [[alarms]] first", field="name")
        await self._keep(self.store.record_delete, sensor, name)
        regions.delete(name)
        self._describe(sensor)
        return self._regions_reply(sensor)

    async def _keep(self, change: Callable[..., None], *args: Any) -> None:
        # The state file is fsynced: off the event loop (an SD card may take a while).
        try:
            await self._saving.run(change, *args)
        except OSError as exc:
            raise ControlError(f"not changed: the state file cannot be written ({exc})",
                               field="region") from exc
