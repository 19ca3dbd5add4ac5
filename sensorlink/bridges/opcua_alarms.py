"""Hub alarms as OPC UA Alarms & Conditions events, and their Acknowledge.

Each :class:`~sensorlink.alarm_event.AlarmEvent` becomes one AlarmConditionType event emitted by
the Server object (where A&C clients subscribe): ConditionName is the rule, SourceNode/SourceName
the watched sensor, ActiveState/AckedState/Retain follow the event, Severity is 800 for an alarm
and 500 for a warning. Each rule has a condition object under ``Alarms`` whose NodeId is the
events' ConditionId, so a client acknowledges the standard way: the Acknowledge method
(AcknowledgeableConditionType, i=9111) called on that ConditionId with the EventId. That call is
handed to the service's acknowledge (``Service.acknowledge_alarm(rule, by)``); when the service
has none, the call answers BadNotSupported. ConditionRefresh (i=3875) re-sends the alarms that
are not over, so a client that subscribes late learns them.

What asyncua does not give, and so this does not either: condition *instances* with live state
variables (the events carry the state), branches, shelving, confirm, and per-condition
enable/disable.
"""

from __future__ import annotations

import collections
import inspect
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asyncua import Node, Server, ua

from sensorlink.alarm_event import AlarmEvent
from sensorlink.bridges.opcua_history import wall_datetime
from sensorlink.errors import ControlError

log = logging.getLogger(__name__)

SEVERITY = {"warning": 500, "alarm": 800}
#: EventIds remembered for Acknowledge (a client acknowledges a recent event)
EVENT_IDS = 4096

Acknowledge = Callable[[str, str], Any]


class OpcuaAlarms:
    def __init__(self, server: Server, ns: int, folder: Node,
                 source_of: Callable[[str], Node | None],
                 current: Callable[[], list[AlarmEvent]],
                 acknowledge: Acknowledge | None) -> None:
        self.server = server
        self.ns = ns
        self.folder = folder
        self.source_of = source_of
        self.current = current
        self.acknowledge = acknowledge
        self.sent = 0
        self.acknowledged = 0
        self._conditions: dict[str, Node] = {}
        self._rules: dict[ua.NodeId, str] = {}
        self._event_ids: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self._generator: Any = None

    async def start(self) -> None:
        self._generator = await self.server.get_event_generator(ua.ObjectIds.AlarmConditionType,
                                                                ua.ObjectIds.Server)
        self.server.link_method(
            self.server.get_node(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge),
            self._on_acknowledge)
        self.server.link_method(self.server.get_node(ua.ObjectIds.ConditionType_ConditionRefresh),
                                self._on_refresh)
        for event in self.current():
            await self.publish(event)

    async def _condition(self, rule: str) -> Node:
        node = self._conditions.get(rule)
        if node is None:
            node = await self.folder.add_object(ua.NodeId(f"alarm:{rule}", self.ns),
                                                ua.QualifiedName(rule, self.ns))
            self._conditions[rule] = node
            self._rules[node.nodeid] = rule
        return node

    async def publish(self, event: AlarmEvent) -> None:
        condition = await self._condition(event.rule)
        sensor = event.stream.split("/", 1)[0]
        source = self.source_of(sensor)
        e = self._generator.event
        e.NodeId = condition.nodeid            # the ConditionId
        e.ConditionName = event.rule
        e.SourceNode = source.nodeid if source is not None else ua.NodeId(ua.ObjectIds.Server)
        e.SourceName = event.stream
        e.Message = ua.LocalizedText(event.message or f"{event.rule}: {event.transition}")
        e.Severity = SEVERITY[event.level]
        e.Retain = not event.over
        e.ActiveState = ua.LocalizedText("Active" if event.active else "Inactive")
        setattr(e, "ActiveState/Id", event.active)
        e.AckedState = ua.LocalizedText("Acknowledged" if event.acknowledged else "Unacknowledged")
        setattr(e, "AckedState/Id", event.acknowledged)
        e.Comment = ua.LocalizedText(event.by if event.transition == "acknowledged" else "")
        e.ClientUserId = event.by
        e.ReceiveTime = datetime.now(UTC)
        e.Quality = ua.StatusCode(ua.StatusCodes.Good)
        await self._generator.trigger(time_attr=wall_datetime(event.t_wall_ns))
        event_id = bytes(e.EventId.Value if isinstance(e.EventId, ua.Variant) else e.EventId)
        self._event_ids[event_id] = event.rule
        while len(self._event_ids) > EVENT_IDS:
            self._event_ids.popitem(last=False)
        self.sent += 1

    async def _on_acknowledge(self, parent: ua.NodeId, event_id: ua.Variant,
                              comment: ua.Variant) -> ua.StatusCode:
        ident = event_id.Value if isinstance(event_id, ua.Variant) else event_id
        rule = self._rules.get(parent) or self._event_ids.get(bytes(ident or b""))
        if rule is None:
            return ua.StatusCode(ua.StatusCodes.BadEventIdUnknown)
        if self.acknowledge is None:
            return ua.StatusCode(ua.StatusCodes.BadNotSupported)
        text = comment.Value if isinstance(comment, ua.Variant) else comment
        note = getattr(text, "Text", None) or ""
        try:
            result = self.acknowledge(rule, f"opcua{': ' + note if note else ''}")
            if inspect.isawaitable(result):
                await result
        except ControlError as exc:
            log.info("opcua: acknowledge %s refused: %s", rule, exc)
            return ua.StatusCode(ua.StatusCodes.BadConditionAlreadyAcked)
        self.acknowledged += 1
        return ua.StatusCode(ua.StatusCodes.Good)

    async def _on_refresh(self, parent: ua.NodeId, *args: Any) -> ua.StatusCode:
        for event in self.current():
            await self.publish(event)
        return ua.StatusCode(ua.StatusCodes.Good)
