"""The OPC UA server seen through asyncua's own client: status codes that follow the sensor
(a serial bridge on a pty unplugged, another gone silent), source timestamps that are the
samples', bounded history, security (users, certificates, SignAndEncrypt), and a bridge that
drops its own oldest events instead of holding anything up."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from sensorlink.config import parse_config
from sensorlink.emulators.ascii_bridge import AsciiBridgeEmulator
from sensorlink.errors import ConfigError
from sensorlink.samples import Reading
from sensorlink.validation import validate

from opcua_support import PASSWORD, USER, alarm, endpoint, free_port, opcua_service
from support import wait_for


def url(bridge: object) -> str:
    return bridge.settings.endpoint  # type: ignore[attr-defined]


async def read(client: Client, ns: int, stream: str) -> ua.DataValue:
    return await client.get_node(ua.NodeId(stream, ns)).read_data_value(raise_on_bad_status=False)


async def wait_status(client: Client, ns: int, stream: str, code: int, what: str,
                      timeout: float = 30.0) -> ua.DataValue:
    deadline = time.monotonic() + timeout
    while True:
        dv = await read(client, ns, stream)
        if dv.StatusCode.value == code:
            return dv
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {stream} is {dv.StatusCode}")
        await asyncio.sleep(0.1)


async def test_status_follows_unplug_and_silence_and_timestamps_are_the_samples(
        tmp_path: Path) -> None:
    sensors = [
        {"name": "probes", "driver": "sim-probes", "channels": 2, "rate_hz": 20.0},
        {"name": "bridge-a", "driver": "ascii-bridge", "port": str(tmp_path / "a"),
         "silence_timeout_s": 1.0},
        {"name": "cam", "driver": "sim-thermal"},
        # a long silence timeout: the driver stays "connected" while the stream goes stale
        {"name": "bridge-b", "driver": "ascii-bridge", "port": str(tmp_path / "b"),
         "silence_timeout_s": 600.0},
        {"name": "mic", "driver": "sim-microphone"},
    ]
    async with AsciiBridgeEmulator(tmp_path / "a", rate_hz=10.0) as a, \
            AsciiBridgeEmulator(tmp_path / "b", rate_hz=10.0) as b, \
            opcua_service({"stale_after_s": 1.0}, sensors) as (service, bridge, _):
        truth = service.hub.subscribe("truth", maxsize=10**6,
                                      accepts=lambda e: isinstance(e, Reading))
        async with Client(url(bridge)) as client:
            ns = bridge.ns
            for stream in ("bridge-a/t1", "bridge-b/t1", "probes/t0"):
                await wait_status(client, ns, stream, ua.StatusCodes.Good, f"{stream} Good")
            # The value's SourceTimestamp is the sample's t_wall_ns (to the microsecond), and
            # the value is that sample's. (truth subscribed after the start: wait for a value
            # published since.)
            published: dict[int, float] = {}
            deadline = time.monotonic() + 30
            while True:
                dv = await read(client, ns, "probes/t1")
                published.update((r.t_wall_ns // 1000, r.value) for r in truth.get_nowait(10**6)
                                 if r.stream == "probes/t1")
                source_us = round(dv.SourceTimestamp.replace(tzinfo=UTC).timestamp() * 1e6)
                if source_us in published or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert published.get(source_us) == dv.Value.Value
            eu = await client.get_node(ua.NodeId("bridge-a/t1", ns)).get_child(
                ["0:EngineeringUnits"])
            units = await eu.read_value()
            assert (units.DisplayName.Text, units.UnitId) == ("°C", 4408652)  # UNECE "CEL"

            a.unplug()
            dv = await wait_status(client, ns, "bridge-a/t1", ua.StatusCodes.BadNotConnected,
                                   "the unplugged bridge's stream Bad")
            assert dv.Value.Value is None  # Bad carries no value, not the last one
            state = client.get_node(ua.NodeId("bridge-a.State", ns))
            assert await state.read_value() == "reconnecting"

            b.faults.silent = True
            dv = await wait_status(client, ns, "bridge-b/t1", ua.StatusCodes.BadNoCommunication,
                                   "the silent bridge's stream stale")
            assert await client.get_node(ua.NodeId("bridge-b.State", ns)).read_value() == \
                "connected"
            assert (await read(client, ns, "probes/t0")).StatusCode.is_good()

            a.replug()
            b.faults.silent = False
            for stream in ("bridge-a/t1", "bridge-b/t1"):
                await wait_status(client, ns, stream, ua.StatusCodes.Good, f"{stream} Good again")

            # History keeps the gap: Bad entries between the Good ones.
            history = await client.get_node(ua.NodeId("bridge-a/t1", ns)).read_raw_history()
            codes = [h.StatusCode.value for h in history]
            assert ua.StatusCodes.BadNotConnected in codes and codes[-1] == ua.StatusCodes.Good


async def test_history_is_bounded_and_answers_time_ranges() -> None:
    async with opcua_service({"history_values": 30}) as (service, bridge, _):
        node_id = ua.NodeId("probes-a/t0", bridge.ns)
        await wait_for(lambda: bridge.history.count(node_id) == 30, 30, "a full history")
        async with Client(url(bridge)) as client:
            node = client.get_node(node_id)
            history = await node.read_raw_history()
            assert len(history) == 30
            stamps = [h.SourceTimestamp for h in history]
            assert stamps == sorted(stamps)
            # A window in the middle, and a count limit.
            middle = await node.read_raw_history(stamps[10], stamps[19])
            assert [h.SourceTimestamp for h in middle] == stamps[10:20]
            assert len(await node.read_raw_history(stamps[0], datetime.now(UTC),
                                                   numvalues=5)) == 5


async def test_users_and_certificates_and_sign_and_encrypt(tmp_path: Path) -> None:
    from asyncua.crypto import cert_gen
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    def client_cert(name: str) -> tuple[Path, Path]:
        key = cert_gen.generate_private_key()
        uri = "urn:example.org:FreeOpcUa:opcua-asyncio"  # asyncua Client's application_uri
        cert = cert_gen.generate_self_signed_app_certificate(
            key, uri, {"commonName": name},
            [cert_gen.x509.UniformResourceIdentifier(uri),
             cert_gen.x509.DNSName(socket.gethostname())],
            extended=[ExtendedKeyUsageOID.CLIENT_AUTH], days=1)
        cert_path, key_path = tmp_path / f"{name}.der", tmp_path / f"{name}.pem"
        cert_path.write_bytes(cert.public_bytes(Encoding.DER))
        key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
        return cert_path, key_path

    trusted, stranger = client_cert("trusted"), client_cert("stranger")
    opcua = {"security": ["Basic256Sha256_SignAndEncrypt"],
             "users": [{"name": USER, "password": PASSWORD}],
             "trusted_certs": [str(trusted[0])]}
    async with opcua_service(opcua) as (service, bridge, _):
        ns = bridge.ns

        async def attempt(cert: tuple[Path, Path], user: str | None = None,
                          password: str | None = None, identity: bool = False) -> float:
            client = Client(url(bridge))
            await client.set_security(SecurityPolicyBasic256Sha256, str(cert[0]), str(cert[1]),
                                      mode=ua.MessageSecurityMode.SignAndEncrypt)
            if user is not None:
                client.set_user(user)
                client.set_password(password or "")
            if identity:
                await client.load_client_certificate(str(cert[0]))
                await client.load_private_key(cert[1])
            async with client:
                dv = await wait_status(client, ns, "probes-a/t0", ua.StatusCodes.Good, "a value")
                return float(dv.Value.Value)

        assert await attempt(stranger, USER, PASSWORD) > 0          # the password is enough
        assert await attempt(trusted, identity=True) > 0            # so is a trusted certificate
        with pytest.raises(ua.UaStatusCodeError):
            await attempt(stranger, USER, "wrong-password")
        with pytest.raises(ua.UaStatusCodeError):
            await attempt(stranger, identity=True)                   # not in trusted_certs
        with pytest.raises(ua.UaError):
            async with Client(url(bridge)) as client:                # no SignAndEncrypt: no endpoint
                await read(client, ns, "probes-a/t0")
        assert bridge.users is not None and bridge.users.refused >= 2


async def test_the_bridge_drops_its_own_oldest_and_never_holds_up_the_hub() -> None:
    async with opcua_service({"queue": 100}) as (service, bridge, _):
        other = service.hub.subscribe("other", maxsize=10**6)
        dropped = bridge.status()["dropped"]
        # Published in one go, the bridge cannot run in between: its queue must overflow.
        for i in range(5000):
            service.hub.publish(Reading("probes-a", "t0", "temperature", 50.0 + i % 10, "°C",
                                        10**6 + i, time.monotonic_ns(), time.time_ns()))
        assert bridge.status()["dropped"] - dropped >= 4900
        assert sum(1 for e in other.get_nowait(10**6) if isinstance(e, Reading)
                   and e.seq >= 10**6) == 5000
        service.hub.alarm(alarm("late", "probes-a/t0"))
        await wait_for(lambda: bridge.alarms is not None and bridge.alarms.sent >= 1, 30,
                       "the bridge catching up")
        status = service.status_message()
        assert status["exports"][0]["dropped"] >= 4900
        validate("status", status)  # what every viewer is sent, the OPC UA export included
        assert status["exports"][0]["state"] == "serving"


def test_bad_opcua_config_names_the_field() -> None:
    base = {"sensors": [{"name": "p", "driver": "sim-probes"}]}
    for table, field in (({"endpoint": "http://x:1/"}, "opcua.endpoint"),
                         ({"security": ["Basic128"]}, "opcua.security"),
                         ({"users": [{"name": "x", "password": "short"}]}, "opcua.users"),
                         ({"history_hours": 0}, "opcua.history_hours"),
                         ({"security": ["None"], "users": [{"name": "x", "password": "12345678"}]},
                          "opcua.security"),
                         ({"bogus": 1}, "opcua.bogus")):
        with pytest.raises(ConfigError) as info:
            parse_config({**base, "opcua": table})
        assert info.value.field == field, (table, info.value)


async def test_a_taken_port_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            async with opcua_service({"endpoint": endpoint(port)}):
                pass
        assert info.value.field == "opcua.endpoint"
    assert free_port() > 0


def test_opcua_passwords_never_reach_a_recording() -> None:
    from sensorlink.config import redact_secrets

    text = 'users = [{ name = "scada", password = "secret-pass-123" }]\n'
    assert "secret-pass-123" not in redact_secrets(text) and "scada" in redact_secrets(text)
