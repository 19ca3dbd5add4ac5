"""Prometheus metrics: ``/metrics`` on the dashboard's HTTP server, in the text exposition format.

Nothing is counted twice: a custom :class:`prometheus_client.registry.Collector` reads the
service's own state at scrape time (the hub's sensors and statuses, the viewers, the recorder's
status, the exporters, the hub's active alarms), so the numbers a scraper sees are the ones the
dashboard shows, and a service nobody scrapes does no work for it.

Who may scrape: a ``Authorization: Bearer TOKEN`` header with ``[metrics] token`` or one of the
service's tokens, or, only when ``[metrics] loopback_without_token = true``, any scraper on this
machine. The signaling server counts refusals per address and locks an address out after
repeated wrong tokens, as it does for viewers.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from sensorlink.config_plant import MetricsConfig
from sensorlink.hub import Hub
from sensorlink.status import DRIVER_STATES

#: driver counters that mean data was lost on the way in (summed into sensor_dropped_total)
LOSS_COUNTERS = ("checksum_errors", "truncated_frames", "truncated_lines", "bad_frames")


class MetricsSource(Protocol):
    """What the collector reads: the service satisfies it by shape."""

    @property
    def hub(self) -> Hub: ...

    def status_message(self) -> dict[str, Any]:
        """The status every viewer gets: sensors, recording, exports."""

    def viewer_stats(self) -> list[dict[str, Any]]:
        """One entry per viewer: viewer, role, rtt_s (None before the first measurement),
        readings_sent, readings_dropped."""


def _dropped(counters: Mapping[str, int]) -> int:
    return sum(v for k, v in counters.items() if k.startswith("dropped") or k in LOSS_COUNTERS)


class ServiceCollector(Collector):
    """Every metric, built from the service's state when scraped."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        status = self.source.status_message()
        yield from self._sensors(status["sensors"])
        yield from self._sinks()
        yield from self._viewers(self.source.viewer_stats())
        yield from self._recorder(status.get("recording"))
        yield from self._exports(status.get("exports") or [])
        yield from self._alarms()

    def _sensors(self, sensors: list[dict[str, Any]]) -> Iterable[Metric]:
        rate = GaugeMetricFamily("sensorlink_sensor_rate_hz", "Samples per second over the last "
                                 "few seconds (frames, audio blocks or readings)",
                                 labels=["sensor", "kind", "driver"])
        state = GaugeMetricFamily("sensorlink_sensor_state", "1 for the state the sensor is in",
                                  labels=["sensor", "state"])
        up = GaugeMetricFamily("sensorlink_sensor_up", "1 while the sensor is connected",
                               labels=["sensor"])
        samples = CounterMetricFamily("sensorlink_sensor_samples", "Samples published",
                                      labels=["sensor"])
        dropped = CounterMetricFamily("sensorlink_sensor_dropped", "Samples lost at the device "
                                      "or in the driver (dropped, bad checksum, truncated)",
                                      labels=["sensor"])
        events = CounterMetricFamily("sensorlink_sensor_events", "Every driver counter",
                                     labels=["sensor", "counter"])
        for entry in sensors:
            name, counters = entry["sensor"], entry["counters"]
            rate.add_metric([name, entry["kind"], entry["driver"]], float(entry["rate_hz"]))
            for candidate in DRIVER_STATES:
                state.add_metric([name, candidate], 1.0 if entry["state"] == candidate else 0.0)
            up.add_metric([name], 1.0 if entry["state"] == "connected" else 0.0)
            samples.add_metric([name], float(counters.get("samples", 0)))
            dropped.add_metric([name], float(_dropped(counters)))
            for counter, value in sorted(counters.items()):
                events.add_metric([name, counter], float(value))
        yield from (rate, state, up, samples, dropped, events)

    def _sinks(self) -> Iterable[Metric]:
        queued = GaugeMetricFamily("sensorlink_sink_queued", "Hub events waiting for a sink",
                                   labels=["sink"])
        dropped = CounterMetricFamily("sensorlink_sink_dropped", "Hub events a sink lost "
                                      "because it fell behind (oldest first)", labels=["sink"])
        totals: dict[str, list[int]] = {}
        for sub in self.source.hub.subscriptions:
            entry = totals.setdefault(sub.name, [0, 0])
            entry[0] += len(sub)
            entry[1] += sub.dropped
        for name, (waiting, lost) in sorted(totals.items()):
            queued.add_metric([name], float(waiting))
            dropped.add_metric([name], float(lost))
        yield from (queued, dropped)

    def _viewers(self, viewers: list[dict[str, Any]]) -> Iterable[Metric]:
        count = GaugeMetricFamily("sensorlink_viewers", "Connected viewers", labels=["role"])
        rtt = GaugeMetricFamily("sensorlink_viewer_rtt_seconds", "Round-trip time of the "
                                "viewer's peer connection (SCTP smoothed RTT)",
                                labels=["viewer", "role"])
        sent = CounterMetricFamily("sensorlink_viewer_readings_sent", "Readings sent",
                                   labels=["viewer"])
        lost = CounterMetricFamily("sensorlink_viewer_readings_dropped", "Readings this viewer "
                                   "lost because it fell behind", labels=["viewer"])
        roles: dict[str, int] = {"operator": 0, "viewer": 0}
        for viewer in viewers:
            roles[viewer["role"]] = roles.get(viewer["role"], 0) + 1
            if viewer.get("rtt_s") is not None:
                rtt.add_metric([viewer["viewer"], viewer["role"]], float(viewer["rtt_s"]))
            sent.add_metric([viewer["viewer"]], float(viewer["readings_sent"]))
            lost.add_metric([viewer["viewer"]], float(viewer["readings_dropped"]))
        for role, n in sorted(roles.items()):
            count.add_metric([role], float(n))
        yield from (count, rtt, sent, lost)

    def _recorder(self, recording: dict[str, Any] | None) -> Iterable[Metric]:
        recording = recording or {}
        active = GaugeMetricFamily("sensorlink_recorder_active", "1 while recording")
        active.add_metric([], 1.0 if recording.get("active") else 0.0)
        queue = GaugeMetricFamily("sensorlink_recorder_queue", "Hub events waiting to be "
                                  "written")
        queue.add_metric([], float(sum(len(s) for s in self.source.hub.subscriptions
                                       if s.name == "recorder")))
        written = CounterMetricFamily("sensorlink_recorder_bytes", "Bytes written to MCAP files")
        written.add_metric([], float(recording.get("bytes", 0)))
        samples = CounterMetricFamily("sensorlink_recorder_samples", "Samples recorded")
        samples.add_metric([], float(recording.get("samples", 0)))
        dropped = CounterMetricFamily("sensorlink_recorder_dropped", "Samples the recorder "
                                      "lost")
        dropped.add_metric([], float(recording.get("dropped", 0)))
        yield from (active, queue, written, samples, dropped)

    def _exports(self, exports: list[dict[str, Any]]) -> Iterable[Metric]:
        up = GaugeMetricFamily("sensorlink_export_up", "1 while the exporter is connected or "
                               "serving", labels=["export", "kind"])
        queued = GaugeMetricFamily("sensorlink_export_queued", "Readings waiting to go out",
                                   labels=["export"])
        dropped = CounterMetricFamily("sensorlink_export_dropped", "Events the exporter lost "
                                      "because it fell behind", labels=["export"])
        sent = CounterMetricFamily("sensorlink_export_sent", "Readings handed over",
                                   labels=["export"])
        for export in exports:
            name = export["name"]
            up.add_metric([name, export["kind"]],
                          1.0 if export["state"] in ("connected", "serving") else 0.0)
            queued.add_metric([name], float(export.get("queued", 0)))
            dropped.add_metric([name], float(export.get("dropped", 0)))
            sent.add_metric([name], float(export.get("sent", 0)))
        yield from (up, queued, dropped, sent)

    def _alarms(self) -> Iterable[Metric]:
        active = GaugeMetricFamily("sensorlink_alarm_active", "1 per alarm not yet over: "
                                   "active (condition holds) or waiting for acknowledgement",
                                   labels=["rule", "stream", "level", "active", "acknowledged"])
        count = GaugeMetricFamily("sensorlink_alarms", "Alarms not yet over, by level",
                                  labels=["level"])
        levels = {"warning": 0, "alarm": 0}
        for event in sorted(self.source.hub.alarms.values(), key=lambda e: e.rule):
            active.add_metric([event.rule, event.stream, event.level,
                               str(event.active).lower(), str(event.acknowledged).lower()], 1.0)
            levels[event.level] = levels.get(event.level, 0) + 1
        for level, n in sorted(levels.items()):
            count.add_metric([level], float(n))
        yield from (active, count)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class MetricsEndpoint:
    """``GET /metrics``: decides who may scrape and renders the exposition."""

    path = "/metrics"

    def __init__(self, source: MetricsSource, settings: MetricsConfig,
                 role_for: Callable[[str], str | None]) -> None:
        self.settings = settings
        self.role_for = role_for
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServiceCollector(source))
        self.scrapes = 0

    def allowed(self, authorization: str | None, remote: str) -> bool:
        """The scrape token or a service token as Bearer, or loopback when allowed."""
        if self.settings.loopback_without_token and _is_loopback(remote):
            return True
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self.settings.token is not None and hmac.compare_digest(
                token.encode("utf-8"), self.settings.token.encode("utf-8")):
            return True
        return self.role_for(token) is not None

    def handle(self, headers: Mapping[str, str], remote: str) -> tuple[int, bytes, str,
                                                                        dict[str, str]]:
        """(HTTP status, body, content type, extra headers) for one scrape."""
        if not self.allowed(headers.get("Authorization"), remote):
            return (401, b"a Bearer token is required: Authorization: Bearer TOKEN\n",
                    "text/plain; charset=utf-8", {"WWW-Authenticate": 'Bearer realm="metrics"'})
        self.scrapes += 1
        # The format the scraper asks for (OpenMetrics, text 1.0.0 or 0.0.4), as
        # prometheus_client's own HTTP handler negotiates it.
        encoder, content_type = choose_encoder(headers.get("Accept", ""))
        return 200, encoder(self.registry), content_type, {}
