"""The service: sources feed the hub; viewers, the recorder and the views read from it.

A :class:`Service` is built from a config (live drivers), for the demo (one simulated sensor of
each kind) or for a replay (a recording as the only source); nothing downstream can tell which.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sensorlink
from sensorlink import colormap
from sensorlink.config import Config, DashboardLink, SensorConfig, ServiceConfig, redact_secrets
from sensorlink.errors import ConfigError, ControlError
from sensorlink.hub import Hub
from sensorlink.options import build_options
from sensorlink.sources.registry import load_driver
from sensorlink.sources.runner import DriverRunner
from sensorlink.webrtc.fanout import ReadingsFanout
from sensorlink.webrtc.ice import (
    ice_servers_for_browser, is_loopback, restrict_host_candidates_to_loopback,
)
from sensorlink.webrtc.media import Beamformer, CameraView
from sensorlink.webrtc.peer import ViewerSession
from sensorlink.webrtc.signaling import SignalingServer, constant_time_equal
from sensorlink.webrtc.wire import CHANNELS

log = logging.getLogger(__name__)

DEMO_SENSORS = [
    SensorConfig("machine-cam", "sim-thermal", {}),
    SensorConfig("bearing-probes", "sim-probes", {}),
    SensorConfig("spindle-mic", "sim-microphone", {}),
]


def build_runners(sensors: Sequence[SensorConfig], hub: Hub, source: str) -> list[DriverRunner]:
    runners = []
    for sensor in sensors:
        try:
            cls = load_driver(sensor.driver)
        except ConfigError as exc:
            raise ConfigError(str(exc).split(": ", 1)[-1], source=source, sensor=sensor.name,
                              field="driver") from exc
        options = build_options(cls.Options, sensor.options, source=source, sensor=sensor.name)
        runners.append(DriverRunner(cls(sensor.name, options), hub))
    return runners


class Service:
    def __init__(self, settings: ServiceConfig, *, sensors: Sequence[SensorConfig] = (),
                 source: str = "<config>", record_dir: str | None = None,
                 replay_path: str | None = None, replay_options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.token = settings.token or secrets.token_urlsafe(18)
        self.hub = Hub(replay=replay_path is not None)
        self.runners = build_runners(sensors, self.hub, source)
        self.record_dir = record_dir or settings.record_dir
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
        self.url = ""
        self.bound: tuple[str, int] = (settings.host, settings.port)
        self._config_text = ""

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> Service:
        service = cls(config.service, sensors=config.sensors, source=config.source, **kwargs)
        service.links = list(config.links)
        try:
            # Recordings carry the config for provenance, never its tokens or credentials.
            service._config_text = redact_secrets(Path(config.source).read_text(encoding="utf-8"))
        except OSError:
            pass
        if config.mqtt is not None:
            from sensorlink.bridges.mqtt import MqttExporter

            service.exporters.append(MqttExporter(service.hub, config.mqtt))
        return service

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        if is_loopback(self.settings.host):
            # Nothing listens beyond loopback unless configured: ICE included.
            restrict_host_candidates_to_loopback()
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
        for part in (*self.cameras.values(), *self.beams.values()):
            part.start()
        if self.record_dir:
            await self.start_recording()
        for exporter in self.exporters:
            await exporter.start()
        for runner in self.runners:
            runner.start()
        context = None
        if self.settings.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load certificate/key: {exc}", field="tls_cert") from exc
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
        for viewer in list(self.viewers):
            await viewer.close()
        await self.readings.stop()
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
                "sensors": [info.to_dict() for info in self.hub.sensors.values()],
                "channels": dict(CHANNELS), "colormaps": list(colormap.COLORMAPS),
                "ice_servers": ice_servers_for_browser(self.settings.ice_servers),
                "links": [link.for_client(role) for link in self.links]}

    def new_viewer(self, *, role: str, remote: str) -> ViewerSession:
        session = ViewerSession(self, role=role, remote=remote)
        self.viewers.append(session)
        log.info("%s connected from %s as %s (%d viewers)", session.name, remote, role,
                 len(self.viewers))
        return session

    def viewer_closed(self, session: ViewerSession) -> None:
        if session in self.viewers:
            self.viewers.remove(session)
            log.info("%s left (%d viewers)", session.name, len(self.viewers))

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
                "exports": [exporter.status() for exporter in self.exporters]}

    # -- control ---------------------------------------------------------------------------
    async def apply_control(self, message: dict[str, Any], *, viewer: str) -> dict[str, Any]:
        action = message["type"]
        if self.recorder is not None and self.recorder.active:
            self.recorder.log_control(message, viewer=viewer)
        if action == "steer":
            beam = self._sensor(self.beams, message["sensor"], "microphone")
            beam.steer_to(message["angle_deg"])
            return {"sensor": beam.sensor, "angle_deg": beam.fixed_angle, "follows_doa":
                    beam.fixed_angle is None}
        if action == "colormap":
            view = self._sensor(self.cameras, message["sensor"], "thermal camera")
            view.set_view(map_name=message.get("map"), colour_range=message.get("range"))
            return {"sensor": view.sensor, "map": view.map,
                    "range": list(view.fixed_range) if view.fixed_range else "auto"}
        if action == "replay":
            if self.replay is None:
                raise ControlError("this service is not replaying a recording", field="type")
            return await self.replay.control(message["action"], message.get("value"))
        if action == "record":
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

    async def start_recording(self) -> None:
        if self.recorder is not None and self.recorder.active:
            return
        from sensorlink.recording.recorder import Recorder

        directory = self.record_dir or "recordings"
        session = {"version": sensorlink.__version__, "host": socket.gethostname(),
                   "config": self._config_text, "replay_of": self.replay_path or "",
                   "started_wall_ns": time.time_ns()}
        self.recorder = Recorder(self.hub, directory, session=session, recover_cut=True)
        await self.recorder.start()
        log.info("recording to %s", self.recorder.status().get("path"))

    async def stop_recording(self) -> None:
        if self.recorder is not None and self.recorder.active:
            await self.recorder.stop()


def announce(url: str, *, stream: Any = None) -> None:
    """Print the dashboard URL at once, whether stdout is a terminal, a file or a journal."""
    stream = stream or sys.stdout
    print(f"Dashboard: {url}", file=stream, flush=True)
    print("Open it in a browser (the token after # is the key); Ctrl-C stops.", file=stream,
          flush=True)


async def serve_until_stopped(service: Service) -> None:
    """Start, announce, and run until SIGINT or SIGTERM; then stop cleanly (recording closed)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    url = await service.start()
    announce(url)
    for exporter in service.exporters:
        if getattr(exporter, "kind", "") == "foxglove":  # the app's URL carries the token in its query
            print(f"Foxglove: {exporter.url}?token={service.token}", flush=True)
    try:
        await stop.wait()
    finally:
        print("sensorlink: stopping", file=sys.stderr, flush=True)
        await service.stop()


def run(service: Service) -> int:
    try:
        asyncio.run(serve_until_stopped(service))
    except KeyboardInterrupt:
        pass
    return 0


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
