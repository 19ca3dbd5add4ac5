"""The OPC UA server: sensors and their reading streams for SCADA and historians (asyncua).

Address space (namespace ``[opcua] namespace``, NodeIds stable across restarts):

- ``Objects/<server_name>/<sensor>`` an object per sensor (``ns=N;s=<sensor>``) with the
  properties Kind and Driver and a String variable State (the driver's state);
- ``.../<sensor>/<channel>`` a Double variable per reading stream (``ns=N;s=<sensor>/<channel>``)
  with an EngineeringUnits property (EUInformation, UNECE codes where the unit has one). Each
  value's SourceTimestamp is the sample's ``t_wall_ns``; its StatusCode follows the quality flag
  (ok → Good, suspect → Uncertain, bad or not finite → Bad) and the sensor: a disconnected
  sensor's streams are BadNotConnected and a stream silent for ``stale_after_s`` is
  BadNoCommunication (with no value, as OPC UA wants for Bad), never its last value as Good;
- ``.../Alarms`` one object per alarm rule, the ConditionId of its A&C events
  (sensorlink.bridges.opcua_alarms). HistoryRead (raw) reaches ``history_hours`` back
  (sensorlink.bridges.opcua_history).

The live stream never waits for OPC UA: the bridge reads the hub through its own bounded
subscription (``queue`` events, dropping the oldest and counting them in ``status()``), and
however many clients subscribe, and however slowly they read, asyncua's per-client queues are
between them and this bridge, not between the hub and the viewers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Node, Server, ua

from sensorlink.alarm_event import AlarmEvent
from sensorlink.bridges.opcua_alarms import Acknowledge, OpcuaAlarms
from sensorlink.bridges.opcua_history import BoundedHistory
from sensorlink.bridges.opcua_security import APPLICATION_URI, SensorlinkUsers, secure
from sensorlink.config_plant import OpcuaConfig
from sensorlink.errors import ConfigError
from sensorlink.hub import Hub, Subscription
from sensorlink.samples import Reading, SensorInfo
from sensorlink.status import SensorStatus

log = logging.getLogger(__name__)

#: events taken from the hub per step before letting the loop run others
BATCH = 256
UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"
#: unit as drivers write it → UNECE common code (OPC UA Part 8, EUInformation)
UNIT_CODES = {"°C": "CEL", "C": "CEL", "K": "KEL", "°F": "FAH", "%": "P1", "%RH": "P1",
              "dB": "2N", "dBFS": "2N", "°": "DD", "deg": "DD", "Hz": "HTZ", "Pa": "PAL",
              "hPa": "A97", "bar": "BAR", "V": "VLT", "mV": "2Z", "A": "AMP", "mA": "4K",
              "m/s²": "MSK", "mm/s": "C16", "rpm": "RPM", "W": "WTT"}
QUALITY = {"ok": ua.StatusCodes.Good, "suspect": ua.StatusCodes.UncertainSensorNotAccurate,
           "bad": ua.StatusCodes.BadSensorFailure}


def engineering_units(unit: str, quantity: str) -> ua.EUInformation:
    code = UNIT_CODES.get(unit)
    unit_id = -1
    if code is not None:
        unit_id = 0
        for char in code:  # Part 8: the code's characters, big-endian, in an Int32
            unit_id = (unit_id << 8) | ord(char)
    return ua.EUInformation(NamespaceUri=UNECE, UnitId=unit_id,
                            DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(quantity))


def _when(t_wall_ns: int) -> datetime:
    return datetime.fromtimestamp(t_wall_ns / 1e9, UTC)


class _Stream:
    __slots__ = ("node", "last_mono_ns", "bad")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.last_mono_ns = time.monotonic_ns()
        self.bad: int | None = None  # the Bad code written, until the next good value


class OpcuaBridge:
    """A hub sink serving an OPC UA address space; start(), stop(), status() like MQTT's."""

    kind = "opcua"

    def __init__(self, hub: Hub, settings: OpcuaConfig, *,
                 acknowledge: Acknowledge | None = None) -> None:
        self.hub = hub
        self.settings = settings
        self.acknowledge = acknowledge
        self.state = "stopped"
        self.detail = ""
        self.sent = 0
        self.server: Server | None = None
        self.history = BoundedHistory()
        self.alarms: OpcuaAlarms | None = None
        self.users: SensorlinkUsers | None = None
        self.ns = 0
        self._root: Node | None = None
        self._sensors: dict[str, Node] = {}
        self._state_nodes: dict[str, Node] = {}
        self._streams: dict[str, _Stream] = {}
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        server = Server()
        server.iserver.history_manager.set_storage(self.history)
        await server.init()
        server.set_endpoint(s.endpoint)
        server.set_server_name(s.server_name)
        await server.set_application_uri(APPLICATION_URI)
        self.users = await secure(server, s)
        self.ns = await server.register_namespace(s.namespace)
        self._root = await server.nodes.objects.add_folder(ua.NodeId(s.server_name, self.ns),
                                                           ua.QualifiedName(s.server_name, self.ns))
        folder = await self._root.add_folder(ua.NodeId("Alarms", self.ns),
                                             ua.QualifiedName("Alarms", self.ns))
        self.server = server
        self.alarms = OpcuaAlarms(server, self.ns, folder, self._sensors.get,
                                  lambda: list(self.hub.alarms.values()), self.acknowledge)
        for info in list(self.hub.sensors.values()):
            await self._describe(info)
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {s.endpoint}: {exc.strerror or exc}",
                              field="opcua.endpoint") from exc
        await self.alarms.start()
        for status in list(self.hub.statuses.values()):
            await self._status(status)
        self._sub = self.hub.subscribe(
            "opcua", maxsize=s.queue,
            accepts=lambda e: e.__class__ in (Reading, SensorStatus, SensorInfo, AlarmEvent))
        self.state = "serving"
        self._tasks = [asyncio.create_task(self._pump(), name="opcua-pump"),
                       asyncio.create_task(self._watch_stale(), name="opcua-stale")]
        log.info("opcua: serving %s (%s)", s.endpoint, ", ".join(s.security))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        """As the dashboard's status shows exporters (schemas/status.schema.json exports)."""
        return {"name": "opcua", "kind": self.kind, "target": self.settings.endpoint,
                "state": self.state, "detail": self.detail,
                "queued": len(self._sub) if self._sub is not None else 0,
                "dropped": self._sub.dropped if self._sub is not None else 0,
                "sent": self.sent, "sessions": self.sessions()}

    def sessions(self) -> int:
        from asyncua.server.internal_session import InternalSession

        return int(InternalSession._current_connections)

    # -- the address space ------------------------------------------------------------------
    async def _describe(self, info: SensorInfo) -> Node:
        node = self._sensors.get(info.name)
        if node is None:
            assert self._root is not None
            node = await self._root.add_object(ua.NodeId(info.name, self.ns),
                                               ua.QualifiedName(info.name, self.ns))
            await node.add_property(ua.NodeId(f"{info.name}.Kind", self.ns),
                                    ua.QualifiedName("Kind", self.ns), info.kind)
            await node.add_property(ua.NodeId(f"{info.name}.Driver", self.ns),
                                    ua.QualifiedName("Driver", self.ns), info.driver)
            self._state_nodes[info.name] = await node.add_variable(
                ua.NodeId(f"{info.name}.State", self.ns), ua.QualifiedName("State", self.ns),
                "starting", varianttype=ua.VariantType.String)
            self._sensors[info.name] = node
        for channel, meta in (info.meta.get("streams") or {}).items():
            if isinstance(meta, dict):
                await self._stream(info.name, channel, str(meta.get("unit", "")),
                                   str(meta.get("quantity", "")))
        return node

    async def _stream(self, sensor: str, channel: str, unit: str, quantity: str) -> _Stream:
        key = f"{sensor}/{channel}"
        stream = self._streams.get(key)
        if stream is not None:
            return stream
        parent = self._sensors.get(sensor) or await self._describe(
            self.hub.sensors.get(sensor) or SensorInfo(sensor, "probe", "?"))
        node = await parent.add_variable(ua.NodeId(key, self.ns), ua.QualifiedName(channel, self.ns),
                                         ua.Variant(0.0, ua.VariantType.Double),
                                         datatype=ua.NodeId(ua.ObjectIds.Double))
        await node.add_property(ua.NodeId(f"{key}.EngineeringUnits", self.ns),
                                ua.QualifiedName("EngineeringUnits", 0),
                                engineering_units(unit, quantity),
                                datatype=ua.NodeId(ua.ObjectIds.EUInformation))
        # Historizing and the HistoryRead access bit, as asyncua's historize_node_data_change
        # sets them; the values are saved by this bridge, not by an internal subscription.
        await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(True))
        await node.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
        await node.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
        await self.history.new_historized_node(node.nodeid,
                                               timedelta(hours=self.settings.history_hours),
                                               self.settings.history_values)
        # No value yet: Bad until the first reading, not a made-up 0.0 that looks Good.
        await self._write(node, None, ua.StatusCodes.BadWaitingForInitialData, time.time_ns())
        stream = self._streams[key] = _Stream(node)
        stream.bad = ua.StatusCodes.BadWaitingForInitialData
        return stream

    async def _write(self, node: Node, value: float | None, code: int, t_wall_ns: int) -> None:
        assert self.server is not None
        dv = ua.DataValue(ua.Variant(value, ua.VariantType.Double) if value is not None
                          else ua.Variant(None, ua.VariantType.Null),
                          StatusCode=ua.StatusCode(code), SourceTimestamp=_when(t_wall_ns),
                          ServerTimestamp=datetime.now(UTC))
        await self.server.write_attribute_value(node.nodeid, dv)
        self.history.save(node.nodeid, dv)

    # -- from the hub -----------------------------------------------------------------------
    async def _pump(self) -> None:
        assert self._sub is not None
        while True:
            first = await self._sub.get()
            for event in [first, *self._sub.get_nowait(BATCH - 1)]:
                try:
                    await self._apply(event)
                except Exception:  # noqa: BLE001 (one bad event must not stop the bridge)
                    log.exception("opcua: could not apply %s", type(event).__name__)
            await asyncio.sleep(0)  # a long backlog still lets the loop run the live paths

    async def _apply(self, event: Any) -> None:
        if event.__class__ is Reading:
            await self._reading(event)
        elif event.__class__ is SensorStatus:
            await self._status(event)
        elif event.__class__ is SensorInfo:
            await self._describe(event)
        elif event.__class__ is AlarmEvent and self.alarms is not None:
            await self.alarms.publish(event)

    async def _reading(self, r: Reading) -> None:
        stream = self._streams.get(r.stream) or await self._stream(r.sensor, r.channel, r.unit,
                                                                  r.quantity)
        value = float(r.value)
        code = QUALITY.get(r.quality, ua.StatusCodes.Bad)
        status = self.hub.statuses.get(r.sensor)
        if status is not None and status.state not in ("connected", "starting") \
                and not self.hub.replay:
            code = ua.StatusCodes.BadNotConnected  # a reading that raced the disconnect
        if not math.isfinite(value):
            code = ua.StatusCodes.BadOutOfRange
        await self._write(stream.node, value, code, r.t_wall_ns)
        stream.last_mono_ns = time.monotonic_ns()
        stream.bad = None
        self.sent += 1

    async def _status(self, status: SensorStatus) -> None:
        node = self._state_nodes.get(status.sensor)
        if node is not None:
            await node.write_value(ua.Variant(status.state, ua.VariantType.String))
        if status.state in ("connected", "starting"):
            return
        for key, stream in self._streams.items():
            if key.startswith(f"{status.sensor}/") and stream.bad != ua.StatusCodes.BadNotConnected:
                await self._write(stream.node, None, ua.StatusCodes.BadNotConnected,
                                  status.t_wall_ns)
                stream.bad = ua.StatusCodes.BadNotConnected

    async def _watch_stale(self) -> None:
        period = min(1.0, self.settings.stale_after_s / 2)
        limit_ns = int(self.settings.stale_after_s * 1e9)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic_ns()
            for stream in self._streams.values():
                if stream.bad is None and now - stream.last_mono_ns > limit_ns:
                    await self._write(stream.node, None, ua.StatusCodes.BadNoCommunication,
                                      time.time_ns())
                    stream.bad = ua.StatusCodes.BadNoCommunication
