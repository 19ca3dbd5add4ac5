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
subscription and inbox (``queue`` events each, dropping the oldest and counting them in
``status()``), asyncua runs on its own event loop in a thread, and however many clients
subscribe, and however slowly they read, asyncua's per-client queues are between them and this
bridge, not between the hub and the viewers.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import logging
import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Node, Server, ua

from sensorlink.alarm_event import AlarmEvent
from sensorlink.bridges.opcua_alarms import Acknowledge, OpcuaAlarms
from sensorlink.bridges.opcua_history import BoundedHistory, wall_datetime
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
        self._inbox: collections.deque[Any] = collections.deque()
        self._inbox_dropped = 0
        self._main: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the server thread's
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._forwarder: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    # asyncua runs on an event loop of its own in a thread: encoding and sending notifications
    # to many clients then competes with the live stream for the GIL only, never for the
    # service's loop (the bench showed p99 ×37 with 5 subscribers on a shared loop). The hub
    # subscription (bounded, drop oldest) is forwarded to the thread's inbox (bounded, drop
    # oldest); everything asyncua is touched from its thread only.
    async def start(self) -> None:
        self._main = asyncio.get_running_loop()
        self._sub = self.hub.subscribe(
            "opcua", maxsize=self.settings.queue,
            accepts=lambda e: e.__class__ in (Reading, SensorStatus, SensorInfo, AlarmEvent))
        self._inbox = collections.deque(maxlen=self.settings.queue)
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._thread_main, args=(ready,),
                                        name="opcua-server", daemon=True)
        self._thread.start()
        try:
            await asyncio.wrap_future(ready)
        except BaseException:
            await asyncio.to_thread(self._thread.join)
            self._sub.close()
            self._sub = None
            raise
        self.state = "serving"
        self._forwarder = asyncio.create_task(self._forward(), name="opcua-forward")
        log.info("opcua: serving %s (%s)", self.settings.endpoint,
                 ", ".join(self.settings.security))

    async def stop(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
            await asyncio.gather(self._forwarder, return_exceptions=True)
            self._forwarder = None
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        self.state = "stopped"

    async def _forward(self) -> None:
        """On the service's loop: hub subscription → the server thread's inbox."""
        assert self._sub is not None and self._loop is not None
        while True:
            first = await self._sub.get()
            for event in [first, *self._sub.get_nowait(BATCH - 1)]:
                if len(self._inbox) == self._inbox.maxlen:
                    self._inbox_dropped += 1  # the append below pushes the oldest out
                self._inbox.append(event)
            self._loop.call_soon_threadsafe(self._wake.set)

    def _thread_main(self, ready: concurrent.futures.Future[None]) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stopping = asyncio.Event(), asyncio.Event()
        try:
            await self._setup()
        except BaseException as exc:
            if self.server is not None:
                with contextlib.suppress(Exception):
                    await self.server.stop()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._watch_stale())]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.server.stop()  # type: ignore[union-attr]
        self.server = None

    async def _setup(self) -> None:
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
                                  lambda: list(self.hub.alarms.values()),
                                  self._acknowledge if self.acknowledge is not None else None)
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

    async def _acknowledge(self, rule: str, by: str) -> Any:
        """On the server thread: the service's acknowledge, run on the service's loop."""
        assert self.acknowledge is not None
        acknowledge = self.acknowledge

        async def call() -> Any:
            result = acknowledge(rule, by)
            return (await result) if inspect.isawaitable(result) else result
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), self._main))

    def status(self) -> dict[str, Any]:
        """As the dashboard's status shows exporters (schemas/status.schema.json exports)."""
        return {"name": "opcua", "kind": self.kind, "target": self.settings.endpoint,
                "state": self.state, "detail": self.detail,
                "queued": len(self._inbox) + (len(self._sub) if self._sub is not None else 0),
                "dropped": self._inbox_dropped + (self._sub.dropped
                                                  if self._sub is not None else 0),
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
                          StatusCode=ua.StatusCode(code),
                          SourceTimestamp=wall_datetime(t_wall_ns),
                          ServerTimestamp=datetime.now(UTC))
        await self.server.write_attribute_value(node.nodeid, dv)
        self.history.save(node.nodeid, dv)

    # -- from the hub -----------------------------------------------------------------------
    async def _pump(self) -> None:
        """On the server thread: apply what the inbox holds, oldest first."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._inbox:
                try:
                    event = self._inbox.popleft()
                    await self._apply(event)
                except IndexError:
                    break
                except Exception:  # noqa: BLE001 (one bad event must not stop the bridge)
                    log.exception("opcua: could not apply an event")

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
