"""The alarm engine on scripted time: every condition, both levels, hysteresis, delays, latching
and acknowledgement; and config mistakes that name the rule and the field.

The engine reads no clock, so an hour of a machine is scripted here in a millisecond: each
reading carries its own time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sensorlink.alarm_event import AlarmEvent
from sensorlink.analysis.alarms import AlarmEngine
from sensorlink.config import parse_config
from sensorlink.config_alarms import parse_rule
from sensorlink.errors import ConfigError, ControlError
from sensorlink.samples import Reading

S = 1_000_000_000


def rule(**raw: Any):
    return parse_rule({"name": "r", "stream": "probes/t0", **raw}, "test.toml")


class Script:
    """One engine, the events it publishes, and a clock the test moves."""

    def __init__(self, *rules) -> None:
        self.events: list[AlarmEvent] = []
        self.engine = AlarmEngine(rules, self.events.append)
        self.t = 0
        self.seq = 0
        self.engine.start(0)

    def value(self, v: float, *, dt: float = 1.0, stream: str = "probes/t0",
              quality: str = "ok") -> None:
        self.t += int(dt * S)
        sensor, channel = stream.split("/", 1)
        self.engine.reading(Reading(sensor, channel, "temperature", v, "°C", self.seq, self.t,
                                    self.t, quality))  # type: ignore[arg-type]
        self.seq += 1

    def wait(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(int(round(seconds / step))):
            self.t += int(step * S)
            self.engine.tick(self.t, self.t)

    def changes(self) -> list[tuple[str, str]]:
        return [(e.transition, e.level) for e in self.events]


def test_above_warning_then_alarm_then_clear_with_both_levels() -> None:
    s = Script(rule(condition="above", warning=60, alarm=70))
    for v in (50, 61, 65, 71, 75, 65, 55):
        s.value(v)
    assert s.changes() == [("raised", "warning"), ("escalated", "alarm"),
                           ("deescalated", "warning"), ("cleared", "warning")]
    raised = s.events[0]
    assert raised.value == 61 and raised.limit == 60 and raised.active and not raised.acknowledged
    assert s.events[1].limit == 70 and s.events[1].value == 71
    assert s.events[-1].over  # not latching: nobody has to acknowledge a cleared alarm
    assert [e.seq for e in s.events] == [0, 1, 2, 3]


def test_below_mirrors_above() -> None:
    s = Script(rule(condition="below", warning=10, alarm=5, deadband=1))
    for v in (12, 9, 4, 5.5, 6.5, 10.5, 11.5):
        s.value(v)
    # 5.5 is inside the alarm's deadband (5 + 1): still alarm; 6.5 steps back to warning;
    # 10.5 is inside the warning's (10 + 1): still warning; 11.5 clears.
    assert s.changes() == [("raised", "warning"), ("escalated", "alarm"),
                           ("deescalated", "warning"), ("cleared", "warning")]
    assert [e.value for e in s.events] == [9, 4, 6.5, 11.5]


def test_hysteresis_a_noisy_value_at_the_limit_does_not_chatter() -> None:
    rng = np.random.default_rng(4)
    s = Script(rule(condition="above", alarm=55, deadband=3))
    # Heat up through 55 with ±1 °C of noise, hover at the limit, then cool down.
    ramp = [50 + 0.1 * k for k in range(100)] + [55.0] * 200 + [55 - 0.1 * k for k in range(100)]
    for v in ramp:
        s.value(v + rng.uniform(-1, 1), dt=0.1)
    assert s.changes() == [("raised", "alarm"), ("cleared", "alarm")]
    assert s.events[1].value <= 52.0  # clears only at or below limit − deadband
    # Without the deadband the same values chatter: the test could fail.
    t = Script(rule(condition="above", alarm=55))
    rng = np.random.default_rng(4)
    for v in ramp:
        t.value(v + rng.uniform(-1, 1), dt=0.1)
    assert len(t.events) > 10


def test_on_delay_ignores_a_short_spike_and_raises_a_long_one() -> None:
    s = Script(rule(condition="above", alarm=70, on_delay_s=3))
    s.value(80)
    s.value(80, dt=1)
    s.value(60, dt=1)                  # 2 s above: not yet
    assert s.events == []
    s.value(80, dt=1)
    s.wait(2.9)
    assert s.events == []
    s.wait(0.2)                        # 3 s above, with no new sample: the tick raises it
    assert s.changes() == [("raised", "alarm")]


def test_off_delay_keeps_it_raised_until_the_value_has_been_normal_long_enough() -> None:
    s = Script(rule(condition="above", alarm=70, off_delay_s=5))
    s.value(80)
    s.value(60)
    s.wait(4.8)
    assert s.changes() == [("raised", "alarm")]
    s.value(75)                         # back above: the off-delay starts again
    s.value(60)
    s.wait(4.9)
    assert s.changes() == [("raised", "alarm")]
    s.wait(0.2)
    assert s.changes() == [("raised", "alarm"), ("cleared", "alarm")]


def test_outside_a_band_both_sides_and_both_levels() -> None:
    s = Script(rule(condition="outside", warning=[20, 80], alarm=[10, 90], deadband=2))
    for v in (50, 85, 95, 89, 87, 79, 77, 15, 5):
        s.value(v)
    assert s.changes() == [("raised", "warning"), ("escalated", "alarm"),
                           ("deescalated", "warning"), ("cleared", "warning"),
                           ("raised", "warning"), ("escalated", "alarm")]
    assert [e.limit for e in s.events] == [80, 90, 80, 80, 20, 10]


def test_rate_of_change_per_minute() -> None:
    s = Script(rule(condition="rate", warning=5, alarm=10, window_s=60))
    for _ in range(60):                 # 3 °C per minute: normal
        s.value(20 + 3 * s.t / S / 60)
    assert s.events == []
    start_t, start_v = s.t, 20 + 3 * s.t / S / 60
    for _ in range(60):                 # then 12 °C per minute
        s.value(start_v + 12 * (s.t + S - start_t) / S / 60)
    assert s.changes() == [("raised", "warning"), ("escalated", "alarm")]
    assert s.events[-1].value > 10 and s.events[-1].limit == 10
    falling = Script(rule(condition="rate", alarm=10, direction="falling"))
    for k in range(90):
        falling.value(100 - 20 * k / 60)
    assert falling.changes() == [("raised", "alarm")]


def test_stale_when_no_sample_for_n_seconds() -> None:
    s = Script(rule(condition="stale", warning=5, alarm=30))
    s.value(1)
    s.wait(4.9)
    assert s.events == []
    s.wait(0.3)
    assert s.changes() == [("raised", "warning")]
    s.wait(25)
    assert s.changes() == [("raised", "warning"), ("escalated", "alarm")]
    s.value(2)                          # a sample: fresh again
    assert s.changes()[-1] == ("cleared", "alarm")


def test_disconnected_for_n_seconds() -> None:
    r = parse_rule({"name": "gone", "sensor": "probes", "condition": "disconnected",
                    "alarm": 10}, "t.toml")
    s = Script(r)
    s.engine.status("probes", "connected", 0, 0)
    s.wait(20)
    assert s.events == []
    s.engine.status("probes", "reconnecting", s.t, s.t)
    s.wait(9.9)
    assert s.events == []
    s.wait(0.2)
    assert s.changes() == [("raised", "alarm")]
    assert "not connected for 10 s" in s.events[0].message
    s.engine.status("probes", "connected", s.t, s.t)
    assert s.changes()[-1] == ("cleared", "alarm")


def test_latching_stays_listed_until_acknowledged_and_records_by_whom() -> None:
    s = Script(rule(condition="above", warning=60, alarm=70, latch=True))
    s.value(75)
    s.value(50)
    cleared = s.events[-1]
    assert cleared.transition == "cleared" and not cleared.over  # waits for an operator
    ack = s.engine.acknowledge("r", "alice (operator)", s.t, s.t)
    assert ack.transition == "acknowledged" and ack.by == "alice (operator)" and ack.over
    assert s.events[-1] is ack
    with pytest.raises(ControlError) as err:
        s.engine.acknowledge("r", "bob", s.t, s.t)
    assert err.value.field == "rule" and "no alarm to acknowledge" in str(err.value)


def test_acknowledging_an_active_alarm_keeps_it_until_it_clears_and_escalation_unacks() -> None:
    s = Script(rule(condition="above", warning=60, alarm=70, latch=True))
    s.value(65)
    ack = s.engine.acknowledge("r", "alice", s.t, s.t)
    assert ack.active and ack.acknowledged and not ack.over
    s.value(75)
    assert s.events[-1].transition == "escalated" and not s.events[-1].acknowledged
    s.engine.acknowledge("r", "alice", s.t, s.t)
    s.value(50)
    assert s.events[-1].transition == "cleared" and s.events[-1].over
    with pytest.raises(ControlError, match="no alarm rule named 'nope'"):
        s.engine.acknowledge("nope", "alice", s.t, s.t)


def test_suspect_and_bad_readings_are_ignored_unless_asked_for() -> None:
    s = Script(rule(condition="above", alarm=70))
    s.value(90, quality="suspect")
    s.value(90, quality="bad")
    assert s.events == []
    t = Script(rule(condition="above", alarm=70, include_suspect=True))
    t.value(90, quality="suspect")
    assert t.changes() == [("raised", "alarm")]


def test_several_rules_on_several_streams_in_any_order() -> None:
    rules = [parse_rule({"name": f"r{i}", "stream": f"p{i % 2}/t{i}", "condition": "above",
                         "alarm": 10 * i + 5}, "t.toml") for i in range(4)]
    for order in (rules, rules[::-1]):
        s = Script(*order)
        for i in range(4):
            s.value(10 * i + 6, stream=f"p{i % 2}/t{i}")
            s.value(10 * i + 4, stream=f"p{(i + 1) % 2}/t{i}")   # another sensor's stream
        assert sorted(e.rule for e in s.events) == ["r0", "r1", "r2", "r3"]


# -- config mistakes ----------------------------------------------------------------------------

def config(alarms: list[dict[str, Any]], **extra: Any) -> Any:
    return parse_config({"sensors": [{"name": "probes", "driver": "sim-probes"}],
                         "alarms": alarms, **extra}, "plant.toml")


@pytest.mark.parametrize("raw, field, words", [
    ({"stream": "probes/t0", "condition": "hotter", "alarm": 1}, "alarms.hot.condition",
     "expected one of"),
    ({"stream": "probes", "condition": "above", "alarm": 1}, "alarms.hot.stream", "SENSOR/CHANNEL"),
    ({"stream": "probes/t0", "condition": "above"}, "alarms.hot.alarm", "needs a warning"),
    ({"stream": "probes/t0", "condition": "above", "warning": 70, "alarm": 60},
     "alarms.hot.alarm", "must be above warning"),
    ({"stream": "probes/t0", "condition": "below", "warning": 5, "alarm": 10},
     "alarms.hot.alarm", "must be below warning"),
    ({"stream": "probes/t0", "condition": "outside", "alarm": 5}, "alarms.hot.alarm",
     "band [low, high]"),
    ({"stream": "probes/t0", "condition": "above", "alarm": 1, "deadband": -1},
     "alarms.hot.deadband", ">= 0"),
    ({"stream": "probes/t0", "condition": "above", "alarm": 1, "on_delay_s": "3"},
     "alarms.hot.on_delay_s", "seconds"),
    ({"stream": "probes/t0", "condition": "above", "alarm": 1, "latch": "yes"},
     "alarms.hot.latch", "true or false"),
    ({"stream": "probes/t0", "condition": "stale", "alarm": 0}, "alarms.hot.alarm", "above 0"),
    ({"stream": "probes/t0", "condition": "disconnected", "alarm": 5}, "alarms.hot.sensor",
     "watches a sensor"),
    ({"stream": "probes/t0", "condition": "above", "alarm": 1, "colour": "red"},
     "alarms.hot.colour", "unknown key"),
])
def test_a_config_mistake_names_the_rule_and_the_field(raw, field, words) -> None:
    with pytest.raises(ConfigError) as err:
        config([{"name": "hot", **raw}])
    text = str(err.value)
    assert "plant.toml" in text and f"'{field}'" in text and words in text, text


def test_rule_names_are_required_and_unique() -> None:
    with pytest.raises(ConfigError, match=r"alarms\[1\]\.name"):
        config([{"name": "a", "stream": "probes/t0", "condition": "above", "alarm": 1},
                {"stream": "probes/t0", "condition": "above", "alarm": 1}])
    with pytest.raises(ConfigError, match="two rules have this name"):
        config([{"name": "a", "stream": "probes/t0", "condition": "above", "alarm": 1}] * 2)


def test_a_region_or_band_mistake_names_the_sensor_region_and_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"sensors": [{"name": "cam", "driver": "sim-thermal", "regions": [
            {"name": "bearing", "kind": "box", "points": [[1, 1]]}]}]}, "plant.toml")
    assert "regions.bearing.points" in str(err.value) and "cam" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config({"sensors": [{"name": "mic", "driver": "sim-microphone", "bands": {
            "custom": [{"name": "b", "low_hz": 3000, "high_hz": 1000}]}}]}, "plant.toml")
    assert "bands.custom[0].high_hz" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config({"sensors": [{"name": "cam", "driver": "sim-thermal", "regions": [
            {"name": "r", "kind": "spot", "points": [[1, 1]], "emissivity": 0}]}]}, "p.toml")
    assert "regions.r.emissivity" in str(err.value)


def test_webhook_mistakes_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"webhooks\[0\]\.url"):
        config([], webhooks=[{"url": "ftp://x"}])
    with pytest.raises(ConfigError, match=r"webhooks\[0\]\.queue"):
        config([], webhooks=[{"url": "http://127.0.0.1:9/h", "queue": 0}])
