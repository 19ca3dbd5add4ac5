"""MQTT export against a real mosquitto broker on a free loopback port.

The broker runs with persistence so that a test subscriber's session (clean_session false, QoS 1)
survives a broker restart: what the exporter publishes after the restart waits in the broker for
the subscriber, so "nothing lost" is measured at the subscriber, not guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import jsonschema
import msgpack
import pytest

from sensorlink.config import Config, MqttConfig, SensorConfig, ServiceConfig, parse_config
from sensorlink.errors import ConfigError
from sensorlink.samples import Reading
from sensorlink.service import Service
from sensorlink.validation import schema_dir, validate
from sensorlink.webrtc.viewer import connected_viewer

from support import self_signed, wait_for, wait_until_listening

MOSQUITTO = "/usr/sbin/mosquitto"


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    # Not a skip: a missing server in CI is a failure to see, not a test to hide.
    assert Path(MOSQUITTO).exists(), f"{MOSQUITTO} is not installed: run scripts/setup.sh --browser"


TOKEN = "test-token-123"
PROBES = [SensorConfig("probes", "sim-probes", {"channels": 3, "rate_hz": 50.0,
                                                 "spike_probability": 0.0})]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def schema(name: str) -> dict[str, Any]:
    return json.loads(schema_dir().joinpath(name).read_text(encoding="utf-8"))


class Mosquitto:
    """One broker process; stop() and start() again keep its port and persistence file."""

    def __init__(self, directory: Path, *, password_file: Path | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [f"listener {self.port} 127.0.0.1",
                 "persistence true", f"persistence_location {directory}/",
                 # 0 = no limit on what waits for an offline persistent subscriber
                 "max_queued_messages 0", "max_inflight_messages 100",
                 f"log_dest file {directory}/mosquitto.log", "log_type all"]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to user "mosquitto", which cannot write its log
            # and persistence file into pytest's private tmp dirs.
            lines.append("user root")
        if tls is not None:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        if password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_until_listening(self.proc, "127.0.0.1", self.port, what="mosquitto", log=self.log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop(signal.SIGKILL)


class Subscriber:
    """A persistent QoS 1 session on ``sensorlink/#`` that reconnects until cancelled."""

    def __init__(self, port: int, *, encoding: str = "json") -> None:
        self.port = port
        self.encoding = encoding
        self.messages: list[tuple[str, Any, bool]] = []
        self.connected = asyncio.Event()
        self.sessions = 0

    def decode(self, payload: bytes) -> Any:
        if payload in (b"online", b"offline"):
            return payload.decode()
        return msgpack.unpackb(payload) if self.encoding == "msgpack" else json.loads(payload)

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier="test-subscriber",
                                          clean_session=False) as client:
                    await client.subscribe("sensorlink/#", qos=1)
                    self.sessions += 1
                    self.connected.set()
                    async for message in client.messages:
                        self.messages.append((str(message.topic), self.decode(message.payload),
                                              bool(message.retain)))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.1)

    def readings(self, topic_end: str = "/readings") -> list[tuple[str, int, float]]:
        out = []
        for topic, payload, _ in self.messages:
            if topic.endswith(topic_end):
                out += [(f"{payload['sensor']}/{r['channel']}", r["seq"], r["value"])
                        for r in payload["readings"]]
        return out

    def last(self, topic: str) -> Any:
        found = [payload for t, payload, _ in self.messages if t == topic]
        return found[-1] if found else None


@contextlib.asynccontextmanager
async def subscribed(port: int, **kwargs: Any) -> AsyncIterator[Subscriber]:
    sub = Subscriber(port, **kwargs)
    task = asyncio.create_task(sub.run())
    try:
        await asyncio.wait_for(sub.connected.wait(), 10)
        yield sub
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def mqtt_service(port: int, **mqtt: Any) -> Service:
    settings = MqttConfig(host="127.0.0.1", port=port, site="plant-a", machine="press-3", **mqtt)
    config = Config(service=ServiceConfig(host="127.0.0.1", port=0, token=TOKEN),
                    sensors=PROBES, source="test", mqtt=settings)
    return Service.from_config(config)


def truth_of(service: Service) -> Any:
    """Everything the hub publishes, seen through a deep subscription of our own."""
    return service.hub.subscribe("test-truth", maxsize=1_000_000,
                                 accepts=lambda e: isinstance(e, Reading))


def drain(sub: Any) -> list[tuple[str, int, float]]:
    return [(r.stream, r.seq, r.value) for r in sub.get_nowait(10**7)]


def exporter_status(service: Service) -> dict[str, Any]:
    message = service.status_message()
    validate("status", message)  # the dashboard's contract, exports included
    return message["exports"][0]


# -- tests ------------------------------------------------------------------------------------

async def test_every_reading_arrives_in_order_with_the_documented_payload(broker) -> None:
    readings_schema, status_schema = schema("mqtt-readings.schema.json"), schema("mqtt-status.schema.json")
    async with subscribed(broker.port) as sub:
        service = mqtt_service(broker.port)
        truth = truth_of(service)
        await service.start()
        try:
            await wait_for(lambda: len(sub.readings()) >= 300, 30, "300 readings over MQTT")
            assert exporter_status(service)["state"] == "connected"
        finally:
            await service.stop()
        expected = drain(truth)
        await wait_for(lambda: len(sub.readings()) >= len(expected), 15, "the flushed tail")
        assert sub.readings() == expected  # every one, in order, no repeats
        base = "sensorlink/plant-a/press-3"
        for topic, payload, _ in sub.messages:
            if topic == f"{base}/probes/readings":
                jsonschema.validate(payload, readings_schema)
                assert payload["sensor"] == "probes" and payload["readings"][0]["unit"] == "°C"
            elif topic == f"{base}/probes/status":
                jsonschema.validate(payload, status_schema)
        status = sub.last(f"{base}/probes/status")
        assert status["kind"] == "probe" and status["driver"] == "sim-probes"
        assert sub.last(f"{base}/availability") == "offline"  # clean stop says so


async def test_retained_status_and_availability_greet_a_late_subscriber(broker) -> None:
    service = mqtt_service(broker.port, status_interval_s=0.2)
    await service.start()
    try:
        await wait_for(lambda: exporter_status(service)["sent"] >= 50, 20, "readings sent")
        async with subscribed(broker.port) as late:
            base = "sensorlink/plant-a/press-3"
            await wait_for(lambda: late.last(f"{base}/probes/status"), 10, "retained status")
            retained = {t: p for t, p, r in late.messages if r}
            assert retained[f"{base}/availability"] == "online"
            assert retained[f"{base}/probes/status"]["state"] in ("starting", "connected")
    finally:
        await service.stop()


async def test_broker_restart_mid_run_drains_the_backlog_and_loses_nothing(broker) -> None:
    service = mqtt_service(broker.port)
    truth = truth_of(service)
    async with subscribed(broker.port) as sub:
        await service.start()
        host, port = service.bound
        try:
            async with connected_viewer(f"http://{host}:{port}/#token={TOKEN}") as viewer:
                await wait_for(lambda: len(sub.readings()) >= 150, 30, "readings before the outage")
                broker.stop(signal.SIGTERM)
                await wait_for(lambda: exporter_status(service)["state"] != "connected", 15,
                               "the exporter to notice the outage")
                queued = exporter_status(service)["queued"]
                await wait_for(lambda: exporter_status(service)["queued"] >= queued + 150, 15,
                               "a backlog to build up")
                # The live stream does not notice: the viewer keeps getting every reading.
                seen = viewer.readings
                await wait_for(lambda: viewer.readings >= seen + 150, 15, "viewer readings")
                outage = exporter_status(service)
                assert outage["state"] in ("disconnected", "connecting") and outage["detail"]
                broker.start()
                await wait_for(lambda: exporter_status(service)["state"] == "connected", 20,
                               "reconnect")
                await wait_for(lambda: exporter_status(service)["queued"] < 50, 20, "drain")
                assert viewer.seq_gaps == 0
        finally:
            await service.stop()
        expected = drain(truth)
        assert exporter_status(service)["dropped"] == 0 and exporter_status(service)["connects"] == 2

        def caught_up() -> bool:
            return set(expected) <= set(sub.readings())
        await wait_for(caught_up, 20, "every reading at the subscriber")
        # At-least-once: a batch in flight when the broker went may come twice; after dropping
        # repeats, every stream is complete and in order.
        unique: dict[str, list[int]] = {}
        for stream, seq, _ in sub.readings():
            if not unique.get(stream) or seq > unique[stream][-1]:
                unique.setdefault(stream, []).append(seq)
        for stream, seqs in unique.items():
            assert seqs == list(range(len(seqs))), stream
        assert sum(map(len, unique.values())) == len(expected)
        assert sub.sessions >= 2


async def test_backlog_beyond_the_bound_drops_the_oldest_and_counts_them(broker) -> None:
    service = mqtt_service(broker.port, queue=60)
    truth = truth_of(service)
    async with subscribed(broker.port) as sub:
        await service.start()
        try:
            await wait_for(lambda: len(sub.readings()) >= 30, 30, "readings before the outage")
            broker.stop(signal.SIGTERM)
            await wait_for(lambda: exporter_status(service)["dropped"] >= 100, 20, "drops counted")
            assert exporter_status(service)["queued"] <= 60 + service.exporters[0].settings.batch
            broker.start()
            await wait_for(lambda: exporter_status(service)["state"] == "connected", 20, "reconnect")
        finally:
            await service.stop()
        dropped = exporter_status(service)["dropped"]
        expected = drain(truth)
        await wait_for(lambda: len(set(sub.readings()) & set(expected)) >= len(expected) - dropped,
                       20, "what was kept")
        missing = set(expected) - set(sub.readings())
        assert len(missing) == dropped  # exactly the counted drops, nothing else


async def test_msgpack_encoding_and_qos_0(broker) -> None:
    async with subscribed(broker.port, encoding="msgpack") as sub:
        service = mqtt_service(broker.port, encoding="msgpack", qos=0)
        await service.start()
        try:
            await wait_for(lambda: len(sub.readings()) >= 60, 30, "msgpack readings")
        finally:
            await service.stop()
        payload = next(p for t, p, _ in sub.messages if t.endswith("/readings"))
        jsonschema.validate(payload, schema("mqtt-readings.schema.json"))


async def test_last_will_says_offline_when_the_service_is_killed(broker, service_process,
                                                                 tmp_path) -> None:
    config = tmp_path / "mqtt.toml"
    config.write_text(f"""
[service]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
site = "plant-a"
machine = "press-9"

[[sensors]]
name = "probes"
driver = "sim-probes"
rate_hz = 20
""")
    async with subscribed(broker.port) as sub:
        proc = service_process("run", str(config))
        await proc.url()
        base = "sensorlink/plant-a/press-9"
        await wait_for(lambda: sub.last(f"{base}/availability") == "online", 20, "online")
        await wait_for(lambda: len(sub.readings()) >= 20, 20, "readings from the process")
        proc.stop(signal.SIGKILL)
        await wait_for(lambda: sub.last(f"{base}/availability") == "offline", 20, "the last will")


async def test_username_and_password(tmp_path) -> None:
    passwd = shutil.which("mosquitto_passwd")
    assert passwd is not None, "mosquitto_passwd not installed (it ships in the mosquitto package)"
    password_file = tmp_path / "passwd"
    await asyncio.to_thread(subprocess.run, [passwd, "-c", "-b", str(password_file), "exporter",
                                             "s3cret-pw"], check=True, capture_output=True)
    b = Mosquitto(tmp_path, password_file=password_file)
    b.start()
    try:
        wrong = mqtt_service(b.port, username="exporter", password="wrong")
        await wrong.start()
        try:
            await wait_for(lambda: exporter_status(wrong)["detail"], 15, "a refusal")
            assert exporter_status(wrong)["state"] != "connected"
            assert "authori" in exporter_status(wrong)["detail"].lower()
        finally:
            await wrong.stop()
        right = mqtt_service(b.port, username="exporter", password="s3cret-pw")
        await right.start()
        try:
            await wait_for(lambda: exporter_status(right)["sent"] > 0, 15, "readings accepted")
        finally:
            await right.stop()
    finally:
        b.stop(signal.SIGKILL)


async def test_tls_with_the_brokers_certificate_and_refusal_without_it(tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    b = Mosquitto(tmp_path, tls=(cert, key))
    b.start()
    try:
        trusting = mqtt_service(b.port, tls=True, ca_file=str(cert))
        await trusting.start()
        try:
            await wait_for(lambda: exporter_status(trusting)["sent"] > 0, 15, "readings over TLS")
            assert exporter_status(trusting)["target"].startswith("mqtts://")
        finally:
            await trusting.stop()
        # Without the CA the system trust store cannot verify the broker: refused, and said so.
        doubting = mqtt_service(b.port, tls=True)
        await doubting.start()
        try:
            await wait_for(lambda: "certificate" in exporter_status(doubting)["detail"].lower(), 15,
                           "a certificate error")
            assert exporter_status(doubting)["sent"] == 0
        finally:
            await doubting.stop()
    finally:
        b.stop(signal.SIGKILL)


def test_mqtt_table_is_checked_and_names_the_field() -> None:
    base = {"sensors": [{"name": "p", "driver": "sim-probes"}]}
    config = parse_config({**base, "mqtt": {"host": "broker", "qos": 2, "tls": True}})
    assert config.mqtt is not None and config.mqtt.qos == 2
    for bad, field in [({"host": "b", "retain_all": True}, "mqtt.retain_all"),
                       ({"host": "b", "qos": 3}, "mqtt.qos"),
                       ({"qos": 1}, "mqtt.host"),
                       ({"host": "b", "machine": "a/b"}, "mqtt.machine"),
                       ({"host": "b", "cert_file": "c.pem"}, "mqtt.key_file"),
                       ({"host": "b", "encoding": "xml"}, "mqtt.encoding")]:
        with pytest.raises(ConfigError) as info:
            parse_config({**base, "mqtt": bad}, source="plant.toml")
        assert info.value.field == field and "plant.toml" in str(info.value)
