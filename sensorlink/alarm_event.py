"""An alarm's change of state, as the hub carries it to every sink.

Alarm rules (``[[alarms]]``, :mod:`sensorlink.analysis.alarms`) watch streams and publish one
:class:`AlarmEvent` each time a rule's alarm changes: it is raised, it escalates from warning to
alarm (or falls back), its condition clears, or an operator acknowledges it. The model follows
SCADA and OPC UA Alarms & Conditions: an alarm is *active* while its condition holds (after the
on-delay, until it clears past the deadband and the off-delay), and *acknowledged* once an
operator has said they saw it; a latching rule stays in the list until both are over.

Sinks treat it like a SensorStatus: the recorder writes it on its own channel, MQTT retains the
active ones, the dashboard shows a banner; a replay publishes the recorded events again, so a
replay shows the alarms as they were raised live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

AlarmLevel = Literal["warning", "alarm"]
ALARM_LEVELS: tuple[str, ...] = ("warning", "alarm")
AlarmTransition = Literal["raised", "escalated", "deescalated", "cleared", "acknowledged",
                          "reset"]
ALARM_TRANSITIONS: tuple[str, ...] = ("raised", "escalated", "deescalated", "cleared",
                                      "acknowledged", "reset")


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One state change of one rule's alarm.

    ``rule`` is the rule's name (unique in the config); ``stream`` what it watches
    (``sensor/channel`` for a reading stream, the sensor name for a state rule). ``level`` is
    the level the alarm is at after this change (for "cleared", the level it had). ``active``
    and ``acknowledged`` are the state after this change; the alarm is over (drops from the
    list) when it is inactive and acknowledged, or inactive and the rule does not latch.
    ``value`` is the stream's value that caused the change and ``limit`` the limit it crossed
    (None for stale/disconnected conditions); ``since_wall_ns`` when this alarm was raised.
    ``seq`` counts events per rule, like a sample's seq.
    """

    rule: str
    stream: str
    transition: AlarmTransition
    level: AlarmLevel
    active: bool
    acknowledged: bool
    message: str
    seq: int
    t_mono_ns: int
    t_wall_ns: int
    since_wall_ns: int
    value: float | None = None
    limit: float | None = None
    #: who acknowledged (a viewer's name and role), when transition is "acknowledged"
    by: str = ""
    #: whether the rule latches: a latching alarm stays in the list once cleared until someone
    #: acknowledges it; a non-latching one is over as soon as it clears. (Added by the
    #: monitoring work: without it ``over`` could not tell a cleared non-latching alarm, which
    #: nobody has to acknowledge, from a latched one that waits for an operator.)
    latching: bool = True

    @property
    def over(self) -> bool:
        """True when this alarm no longer needs anyone: reset, or cleared and either
        acknowledged or not latching."""
        return self.transition == "reset" or (
            not self.active and (self.acknowledged or not self.latching))

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "stream": self.stream, "transition": self.transition,
                "level": self.level, "active": self.active, "acknowledged": self.acknowledged,
                "message": self.message, "seq": self.seq, "t_mono_ns": self.t_mono_ns,
                "t_wall_ns": self.t_wall_ns, "since_wall_ns": self.since_wall_ns,
                "value": self.value, "limit": self.limit, "by": self.by,
                "latching": self.latching}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlarmEvent:
        return cls(rule=d["rule"], stream=d["stream"], transition=d["transition"],
                   level=d["level"], active=bool(d["active"]),
                   acknowledged=bool(d["acknowledged"]), message=d.get("message", ""),
                   seq=int(d["seq"]), t_mono_ns=int(d["t_mono_ns"]),
                   t_wall_ns=int(d["t_wall_ns"]), since_wall_ns=int(d["since_wall_ns"]),
                   value=d.get("value"), limit=d.get("limit"), by=d.get("by", ""),
                   latching=bool(d.get("latching", True)))
