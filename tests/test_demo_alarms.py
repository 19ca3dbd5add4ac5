"""The demo shows monitoring by itself: within its first minute the hot spot's housing and the
bearing's band each cross a warning and then an alarm, once, with no config written.

The demo's own simulated drivers make the first minute of pictures and sound (the same
functions their read() uses, without the real-time pacing), the analysis parts compute the
region and band readings, and the demo's rules run over them in log time; so a minute is
checked in seconds. The last test runs the demo's service (what `sensorlink demo` starts)
and waits for its first warning.
"""

from __future__ import annotations

import numpy as np
from sensorlink_drivers.simulated.microphone import SimulatedMicrophoneArray
from sensorlink_drivers.simulated.thermal import SimulatedThermalCamera
from support import wait_for

from sensorlink.alarm_event import AlarmEvent
from sensorlink.analysis.alarms import AlarmEngine
from sensorlink.analysis.bands import BandAnalyzer
from sensorlink.analysis.regions import RegionSet
from sensorlink.commands.demo import DEMO_MONITORING, DEMO_SENSORS
from sensorlink.config import ServiceConfig
from sensorlink.samples import AudioBlock, ThermalFrame
from sensorlink.service import Service

S = 1_000_000_000
FIRST_MINUTE_S = 60.0


def demo(name: str) -> tuple[object, dict]:
    cfg = next(s for s in DEMO_SENSORS if s.name == name)
    return cfg, dict(cfg.options)


def raised(events: list[AlarmEvent], rule: str) -> list[tuple[str, str, float]]:
    return [(e.transition, e.level, e.t_mono_ns / S) for e in events if e.rule == rule]


async def test_the_demo_housing_warns_then_alarms_in_the_first_minute() -> None:
    cfg, options = demo("machine-cam")
    camera = SimulatedThermalCamera(cfg.name, SimulatedThermalCamera.Options(**options))
    await camera.open()
    regions = RegionSet(cfg.name, DEMO_MONITORING.regions[cfg.name])
    events: list[AlarmEvent] = []
    rules = [r for r in DEMO_MONITORING.alarms if r.sensor == cfg.name]
    engine = AlarmEngine(rules, events.append)
    engine.start(0)
    rng = np.random.default_rng(0)
    rate = camera.options.rate_hz
    for seq in range(int(FIRST_MINUTE_S * rate)):
        t = int(seq / rate * S)
        picture = camera.expected(seq) + rng.normal(0, camera.options.noise_c, (24, 32))
        for reading in regions.compute(ThermalFrame(cfg.name, picture.astype(np.float32), seq,
                                                    t, t)):
            engine.reading(reading)
        engine.tick(t, t)
    assert [(tr, lv) for tr, lv, _ in raised(events, "housing-hot")] == \
        [("raised", "warning"), ("escalated", "alarm")]


async def test_the_demo_bearing_band_warns_then_alarms_in_the_first_minute() -> None:
    cfg, options = demo("spindle-mic")
    mic = SimulatedMicrophoneArray(cfg.name, SimulatedMicrophoneArray.Options(**options))
    await mic.open()
    analyzer = BandAnalyzer(mic.info(), DEMO_MONITORING.bands[cfg.name])
    events: list[AlarmEvent] = []
    engine = AlarmEngine([r for r in DEMO_MONITORING.alarms if r.sensor == cfg.name],
                         events.append)
    engine.start(0)
    o = mic.options
    for k in range(int(FIRST_MINUTE_S * o.rate / o.block)):
        t = int(k * o.block / o.rate * S)
        analyzer.doa = mic.direction_at(t / S)  # the live stage steers to the DOA reading
        block = AudioBlock(cfg.name, mic.synthesize(k * o.block, o.block), o.rate, k, t, t)
        if analyzer.feed(block):
            for reading in analyzer.analyse(block, spectrum=False)[0]:
                engine.reading(reading)
        engine.tick(t, t)
    assert [(tr, lv) for tr, lv, _ in raised(events, "bearing-noise")] == \
        [("raised", "warning"), ("escalated", "alarm")]


async def test_the_demo_service_raises_its_first_warning_by_itself() -> None:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token="test-token-123"),
                      sensors=DEMO_SENSORS, source="demo", monitoring=DEMO_MONITORING)
    events: list[AlarmEvent] = []
    service.hub.on_alarm(events.append)
    await service.start()
    try:
        streams = service.hub.sensors["machine-cam"].meta["streams"]
        assert "housing/max" in streams
        assert "band/bearing" in service.hub.sensors["spindle-mic"].meta["streams"]
        await wait_for(lambda: any(e.transition == "raised" for e in events), 90,
                       "the demo's first warning")
        assert events[0].level == "warning"
        assert {e.rule for e in events} <= {"housing-hot", "bearing-noise"}
    finally:
        await service.stop()
