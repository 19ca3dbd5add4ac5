"""The service: sources feed the hub; viewers, the recorder and the views read from it.

A :class:`Service` is built from a config (live drivers), for the demo (one simulated sensor of
each kind) or for a replay (a recording as the only source); nothing downstream can tell which.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sensorlink
from sensorlink import colormap
from sensorlink.alarm_event import AlarmEvent
from sensorlink.analysis.region_store import RegionStore, state_path_for
from sensorlink.analysis.stage import AnalysisStage
from sensorlink.bridges.prometheus import MetricsEndpoint
from sensorlink.config import Config, DashboardLink, SensorConfig, ServiceConfig, redact_secrets
from sensorlink.config_monitoring import MonitorConfig
from sensorlink.config_plant import MetricsConfig, OpcuaConfig
from sensorlink.config_recording import RecordingConfig
from sensorlink.errors import ConfigError, ControlError
from sensorlink.hub import Hub
from sensorlink.sources.registry import build_runners
from sensorlink.webrtc.control import VIEWER_ACTIONS
from sensorlink.webrtc.fanout import ReadingsFanout
from sensorlink.webrtc.http11 import tls_context
from sensorlink.webrtc.ice import (
    ice_servers_for_browser, is_loopback, restrict_host_candidates_to_loopback,
)
from sensorlink.webrtc.media import Beamformer, CameraView
from sensorlink.webrtc.peer import ViewerSession
from sensorlink.webrtc.signaling import SignalingServer, constant_time_equal
from sensorlink.webrtc.wire import CHANNELS

log = logging.getLogger(__name__)
MAX_REPLAYS = 4  # viewers' replays of the recordings open at once

class Service:
    def __init__(self, settings: ServiceConfig, *, sensors: Sequence[SensorConfig] = (),
                 source: str = "<config>", record_dir: str | None = None,
                 replay_path: str | list[Path] | None = None,
                 replay_options: dict[str, Any] | None = None,
                 monitoring: MonitorConfig | None = None, state_path: str | None = None,
                 recording: RecordingConfig | None = None) -> None:
        self.settings = settings
        self.token = settings.token or secrets.token_urlsafe(18)
        self.hub = Hub(replay=replay_path is not None)
        self.runners = build_runners(sensors, self.hub, source)
        self._source = source
        self.record_dir = record_dir or settings.record_dir
        self.recording = recording or RecordingConfig()
        #: the index of record_dir (sensorlink.recording.library), once there is a directory
        self.library: Any = None
        self.replays: list[Service] = []  # viewers' replays of the library, one hub each
        self.viewer_actions = VIEWER_ACTIONS
        self.may_record = True
        self.play_on_first_viewer = False
        self._resuming: asyncio.Task[Any] | None = None
        self.replay_path = replay_path
        self.replay_options = replay_options or {}
        self.replay: Any = None
        self.recorder: Any = None
        self.cameras: dict[str, CameraView] = {}
        self.beams: dict[str, Beamformer] = {}
        self.viewers: list[ViewerSession] = []
        self.readings = ReadingsFanout(self.hub)
        # Sinks that hand the hub to other systems (MQTT, an SFU): start(), stop(), status().
        self.exporters: list[Any] = []
        # Other services and Janus rooms the dashboard offers to switch to ([[dashboard.links]]).
        self.links: list[DashboardLink] = []
        self.signaling = SignalingServer(self)
        if settings.whep is not None:  # WHEP players, on a port of its own (sensorlink.webrtc.whep)
            from sensorlink.webrtc.whep import WhepServer

            self.exporters.append(WhepServer(self, settings.whep, self.signaling.throttle))
        self.metrics = self.serve_metrics(MetricsConfig())
        self.url = ""
        self.bound: tuple[str, int] = (settings.host, settings.port)
        self._config_text = ""
        # Regions, bands and alarms (sensorlink.analysis.stage); the region changes an operator
        # makes on the dashboard are kept in state_path (beside the config), never in the TOML.
        self.monitoring = monitoring or MonitorConfig()
        self.state_path = state_path
        self.stage: AnalysisStage | None = None

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> Service:
        path = Path(config.source)
        kwargs.setdefault("state_path", str(state_path_for(path)) if path.is_file() else None)
        kwargs.setdefault("recording", config.recording)
        service = cls(config.service, sensors=config.sensors, source=config.source,
                      monitoring=config.monitoring, **kwargs)
        service.links = list(config.links)
        service.metrics = service.serve_metrics(config.metrics)
        try:
            # Recordings carry the config for provenance, never its tokens or credentials.
            service._config_text = redact_secrets(Path(config.source).read_text(encoding="utf-8"))
        except OSError:
            pass
        if config.mqtt is not None:
            from sensorlink.bridges.mqtt import MqttExporter

            service.exporters.append(MqttExporter(service.hub, config.mqtt))
        if config.monitoring.webhooks:
            from sensorlink.bridges.webhook import WebhookSink

            service.exporters += [WebhookSink(service.hub, hook)
                                  for hook in config.monitoring.webhooks]
        if config.opcua is not None:
            service.serve_opcua(config.opcua)
        return service

    def serve_opcua(self, settings: OpcuaConfig) -> None:
        """The OPC UA server (sensorlink.bridges.opcua), started and stopped as an exporter."""
        from sensorlink.bridges.opcua import OpcuaBridge

        self.exporters.append(OpcuaBridge(self.hub, settings, acknowledge=self.acknowledge_alarm))

    def serve_metrics(self, settings: MetricsConfig) -> MetricsEndpoint | None:
        """``/metrics`` on the dashboard's server (sensorlink.bridges.prometheus), or none."""
        self.signaling.endpoints.pop(MetricsEndpoint.path, None)
        if not settings.enabled:
            return None
        endpoint = MetricsEndpoint(self, settings, self.role_for)
        self.signaling.endpoints[MetricsEndpoint.path] = endpoint.handle
        return endpoint

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        if is_loopback(self.settings.host):
            # Nothing listens beyond loopback unless configured: ICE included.
            restrict_host_candidates_to_loopback()
        await self.start_pipeline()
        return await self._listen()

    async def start_pipeline(self) -> None:
        """Sources, views, recording and exporters: everything but the signaling server."""
        if self.replay_path is not None:
            from sensorlink.recording.replay import ReplaySource

            self.replay = ReplaySource(self.hub, self.replay_path, **self.replay_options)
            await self.replay.start()
        for runner in self.runners:
            runner.hub.describe(runner.driver.info())
        for info in list(self.hub.sensors.values()):
            if info.kind == "thermal":
                self.cameras[info.name] = CameraView(self.hub, info)
            elif info.kind == "microphone":
                self.beams[info.name] = Beamformer(self.hub, info)
        # Before the sources start and the recorder opens: both then know the derived streams.
        self.stage = AnalysisStage(self.hub, self.monitoring, store=RegionStore(self.state_path),
                                   source=self._source, derive=self.replay is None)
        self.stage.prepare()
        self.stage.start()
        for part in (*self.cameras.values(), *self.beams.values()):
            part.start()
        if self.record_dir or self.recording.always:
            self._open_library()
        if self.recording.records_at_start(bool(self.record_dir)):
            await self.start_recording()
        for exporter in self.exporters:
            await exporter.start()
        for runner in self.runners:
            runner.start()

    async def _listen(self) -> str:
        context = tls_context(self.settings.tls_cert, self.settings.tls_key)
        try:
            host, port = await self.signaling.start(self.settings.host, self.settings.port, ssl=context)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.settings.host}:{self.settings.port}: "
                              f"{exc.strerror or exc}", field="listen") from exc
        self.bound = (host, port)
        shown = host if host not in ("0.0.0.0", "::") else socket.gethostname()
        if ":" in shown:
            shown = f"[{shown}]"
        scheme = "https" if context else "http"
        self.url = f"{scheme}://{shown}:{port}/#token={self.token}"
        return self.url

    async def stop(self) -> None:
        await self.signaling.stop()
        for replay in list(self.replays):
            await self.close_replay(replay)
        for viewer in list(self.viewers):
            await viewer.close()
        await self.readings.stop()
        if self.stage is not None:
            await self.stage.stop()
        for runner in self.runners:
            await runner.stop()
        if self.replay is not None:
            await self.replay.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        for exporter in self.exporters:
            await exporter.stop()
        for part in (*self.cameras.values(), *self.beams.values()):
            await part.stop()

    # -- viewers ---------------------------------------------------------------------------
    def role_for(self, token: str) -> str | None:
        if constant_time_equal(token, self.token):
            return "operator"
        viewer = self.settings.viewer_token
        if viewer is not None and constant_time_equal(token, viewer):
            return "viewer"
        return None

    def hello(self, role: str) -> dict[str, Any]:
        return {"type": "hello", "version": sensorlink.__version__, "role": role,
                "replay": self.hub.replay,
                "replay_controls": role == "operator" or "replay" in self.viewer_actions,
                "library": self.library is not None,
                "sensors": [info.to_dict() for info in self.hub.sensors.values()],
                "channels": dict(CHANNELS), "colormaps": list(colormap.COLORMAPS),
                "ice_servers": ice_servers_for_browser(self.settings.ice_servers),
                "links": [link.for_client(role) for link in self.links]}

    def new_viewer(self, *, role: str, remote: str) -> ViewerSession:
        session = ViewerSession(self, role=role, remote=remote)
        self.viewers.append(session)
        if self.play_on_first_viewer and self.replay is not None:
            # A library replay starts once its viewer subscribes, so no reading is missed.
            self.play_on_first_viewer = False
            self._resuming = asyncio.get_running_loop().create_task(self.replay.control("resume"))
        log.info("%s connected from %s as %s (%d viewers)", session.name, remote, role,
                 len(self.viewers))
        return session

    def viewer_closed(self, session: ViewerSession) -> None:
        if session in self.viewers:
            self.viewers.remove(session)
            log.info("%s left (%d viewers)", session.name, len(self.viewers))

    def viewer_stats(self) -> list[dict[str, Any]]:
        return [{"viewer": v.name, "role": v.role, "rtt_s": v.round_trip_s(),
                 "readings_sent": v.readings_sent, "readings_dropped": v.readings_sub.dropped}
                for v in self.viewers]

    def status_message(self) -> dict[str, Any]:
        sensors = []
        for name, info in self.hub.sensors.items():
            status = self.hub.statuses.get(name)
            entry = {"sensor": name, "kind": info.kind, "driver": info.driver,
                     "state": status.state if status else "starting",
                     "detail": status.detail if status else "",
                     "counters": dict(status.counters) if status else {},
                     "rate_hz": round(status.rate_hz, 3) if status else 0.0}
            sensors.append(entry)
        return {"type": "status", "t_wall_ns": time.time_ns(), "sensors": sensors,
                "beams": {name: beam.fixed_angle for name, beam in self.beams.items()},
                "recording": self.recorder.status() if self.recorder is not None else None,
                "replay": self.replay.status() if self.replay is not None else None,
                "exports": [exporter.status() for exporter in self.exporters],
                "regions": {name: list(info.meta.get("regions") or [])
                            for name, info in self.hub.sensors.items() if info.kind == "thermal"}}

    # -- monitoring ------------------------------------------------------------------------
    def acknowledge_alarm(self, rule: str, by: str) -> AlarmEvent:
        """An operator saw ``rule``'s alarm; ControlError (field "rule") when it is unknown or
        has nothing to acknowledge. Other sinks (OPC UA ...) are handed this as a callable."""
        if self.stage is None:
            raise ControlError("the service has not started its alarm rules", field="rule")
        return self.stage.acknowledge(rule, by)

    def alarm_rules(self) -> list[dict[str, Any]]:
        return self.stage.engine.rules() if self.stage is not None else []

    def on_spectrum(self, listener: Any) -> Any:
        """Each new spectrogram row of every microphone's beam, for the viewers."""
        if self.stage is None:
            return lambda: None
        return self.stage.on_spectrum(listener)

    # -- control ---------------------------------------------------------------------------
    async def apply_control(self, message: dict[str, Any], *, viewer: str) -> dict[str, Any]:
        action = message["type"]
        if self.recorder is not None and self.recorder.active:
            self.recorder.log_control(message, viewer=viewer)
        if action == "steer":
            beam = self._sensor(self.beams, message["sensor"], "microphone")
            beam.steer_to(message["angle_deg"])
            if self.stage is not None:
                self.stage.steer(beam.sensor, beam.fixed_angle)
            return {"sensor": beam.sensor, "angle_deg": beam.fixed_angle, "follows_doa":
                    beam.fixed_angle is None}
        if action == "colormap":
            view = self._sensor(self.cameras, message["sensor"], "thermal camera")
            view.set_view(map_name=message.get("map"), colour_range=message.get("range"))
            return {"sensor": view.sensor, "map": view.map,
                    "range": list(view.fixed_range) if view.fixed_range else "auto"}
        if action == "ack_alarm":
            event = self.acknowledge_alarm(message["rule"], by=f"{viewer} (operator)")
            return {"rule": event.rule, "acknowledged": event.acknowledged, "by": event.by}
        if action == "region":
            if self.stage is None:
                raise ControlError("the service has not started its analysis", field="type")
            if message["action"] == "delete":
                return await self.stage.delete_region(message["sensor"], message.get("name", ""))
            return await self.stage.set_region(message["sensor"], message.get("region"))
        if action == "replay":
            if self.replay is None:
                raise ControlError("this service is not replaying a recording", field="type")
            return await self.replay.control(message["action"], message.get("value"))
        if action == "recordings":
            if self.library is None:
                raise ControlError("this service has no recordings directory", field="type")
            from sensorlink.recording.keeping import delete_window

            return await asyncio.to_thread(delete_window, self.library, message, by=viewer)
        if action == "record":
            if not self.may_record:
                raise ControlError("a replay of the recordings is not recorded again",
                                   field="type")
            if message["action"] == "start":
                await self.start_recording()
            else:
                await self.stop_recording()
            return self.recorder.status() if self.recorder is not None else {"active": False}
        raise ControlError(f"unsupported control {action!r}", field="type")

    @staticmethod
    def _sensor(table: dict[str, Any], name: str, what: str) -> Any:
        if name not in table:
            raise ControlError(f"no {what} named {name!r}; available: {sorted(table)}",
                               field="sensor")
        return table[name]

    def _open_library(self) -> None:
        from sensorlink.recording.library import Library
        from sensorlink.recording.library_api import routes

        self.library = Library(self.record_dir or "recordings")
        self.signaling.routes.update(routes(self.library))

    async def start_recording(self) -> None:
        if self.recorder is not None and self.recorder.active:
            return
        from sensorlink.recording.keeping import build_recorder

        if self.library is None:
            self._open_library()
        session = {"version": sensorlink.__version__, "host": socket.gethostname(),
                   "config": self._config_text, "replay_of": str(self.replay_path or ""),
                   "started_wall_ns": time.time_ns()}
        self.recorder = build_recorder(self.hub, self.library, self.recording, session)
        await self.recorder.start()
        log.info("recording to %s", self.recorder.status().get("path"))

    async def stop_recording(self) -> None:
        if self.recorder is not None and self.recorder.active:
            await self.recorder.stop()

    # -- replays of the library, one per viewer that asks (sensorlink.webrtc.signaling) ----
    async def open_replay(self, window: dict[str, Any], role: str) -> Service:
        if self.library is None:
            raise ControlError("this service has no recordings directory", field="replay")
        if len(self.replays) >= MAX_REPLAYS:
            raise ControlError(f"{MAX_REPLAYS} replays are open already; close one",
                               field="replay")
        from sensorlink.recording.keeping import replay_paths

        paths, start_s = await asyncio.to_thread(replay_paths, self.library, window)
        # A service of its own: its hub, camera views, beams and readings fan-out, fed by the
        # segments as one timeline; never recording, never listening (this one's signaling
        # server carries its websocket). The viewer may pause and seek its own replay.
        # Paused until the viewer's session exists (new_viewer): what it publishes before then
        # would reach no one, and the page would miss the window's first readings.
        replay = Service(self.settings, replay_path=paths,
                         replay_options={"start_s": start_s, "paused": True},
                         recording=RecordingConfig(always=False))
        replay.play_on_first_viewer = True
        replay.token = self.token
        replay.viewer_actions = VIEWER_ACTIONS | {"replay"}
        replay.may_record = False
        await replay.start_pipeline()
        self.replays.append(replay)
        log.info("replay of %d segment(s) from %s opened for a %s", len(paths), paths[0].name,
                 role)
        return replay

    async def close_replay(self, replay: Any) -> None:
        if replay in self.replays:
            self.replays.remove(replay)
            await replay.stop()
