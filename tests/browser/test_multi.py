"""One dashboard, several machines: the selector of other services and Janus rooms listed in
``[[dashboard.links]]``, the path the page is on, and the exports (MQTT) in its status panel.

Two `sensorlink run` services on loopback with different sensors; service A lists B (with a
token, and once more without one) and exports to a real mosquitto. The Janus half runs in a
network namespace of its own (Janus never offers loopback candidates; see tests/test_janus.py):
Janus, one publishing service and headless Chromium all inside it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorlink.config import parse_config
from sensorlink.errors import ConfigError
from sensorlink.service import Service
from sensorlink.validation import validate

from dashboard_support import RunningService, element_text, wait_page
from multi_support import (
    SENSORS_A, SENSORS_B, TOKEN_A, TOKEN_B, VIEWER_A, VIEWER_B, Broker, JanusServer, service_config,
    start_run,
)

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
INSIDE = os.environ.get("SENSORLINK_TEST_NETNS") == "1"
SERVICE_IP, JANUS_IP = "10.77.0.1", "10.77.0.2"
ROOM = 4343


def hook(page: Any, expr: str) -> Any:
    return page.evaluate(f"() => window.sensorlink.{expr}")


def sensor_names(page: Any) -> set[str]:
    return {s["name"] for s in hook(page, "sensors")}


def wait_live_with(page: Any, sensors: set[str]) -> None:
    """Live, showing exactly ``sensors``, with readings of the probes among them arriving."""
    probes = next(name for name in sensors if name.endswith("probes"))
    wait_page(page, "s.state === 'live' && s.sensors.map((x) => x.name).sort().join() === arg[0]"
                    " && (s.probes[arg[1]]?.points ?? 0) > 5",
              [",".join(sorted(sensors)), probes], timeout=WAIT_MS)


# -- the hello: what each role learns about the links -------------------------------------

LINKS_TOML = """
[[dashboard.links]]
name = "press-2"
url = "https://press-2.plant:8765/"
token = "press-2-viewer-token"

[[dashboard.links]]
name = "hall A"
url = "wss://janus.plant/janus"
room = 1234
pin = "room-pin-1234"
"""


def test_hello_hands_link_secrets_to_operators_only(tmp_path: Path) -> None:
    import tomllib

    config = tmp_path / "c.toml"
    config.write_text(service_config(listen="127.0.0.1:0", token=TOKEN_A, viewer_token=VIEWER_A,
                                     sensors=SENSORS_A, extra=LINKS_TOML))
    service = Service.from_config(parse_config(tomllib.loads(config.read_text()), str(config)))
    operator, viewer = service.hello("operator"), service.hello("viewer")
    for hello in (operator, viewer):
        validate("signaling", hello)
    assert operator["links"] == [
        {"name": "press-2", "kind": "service", "url": "https://press-2.plant:8765/",
         "token": "press-2-viewer-token"},
        {"name": "hall A", "kind": "janus", "url": "wss://janus.plant/janus", "room": 1234,
         "display": "sensorlink", "pin": "room-pin-1234"}]
    assert viewer["links"] == [{k: v for k, v in link.items() if k not in ("token", "pin")}
                               for link in operator["links"]]
    assert "press-2-viewer-token" not in str(viewer) and "room-pin" not in str(viewer)
    # The config copied into recordings keeps neither the link token nor the pin.
    assert "press-2-viewer-token" not in service._config_text
    assert "room-pin-1234" not in service._config_text


@pytest.mark.parametrize("link,field", [
    ('name = "x"\nurl = "ftp://host/"', "url"),
    ('name = "x"\nurl = "http://host/"\nroom = 3', "url"),        # a room needs Janus' ws URL
    ('name = "x"\nurl = "ws://host/"\nroom = 0', "room"),
    ('name = "x"\nurl = "http://host/"\npin = "1234"', "pin"),
    ('url = "http://host/"', "name"),
    ('name = "x"\nurl = "http://host/"\ncolour = "red"', "colour"),
])
def test_bad_links_name_their_field(link: str, field: str) -> None:
    import tomllib

    text = f'[[sensors]]\nname = "p"\ndriver = "sim-probes"\n[[dashboard.links]]\n{link}\n'
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text), "c.toml")
    assert info.value.field == f"dashboard.links[0].{field}"


# -- two services, one dashboard ----------------------------------------------------------

@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    assert shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists(), \
        "mosquitto is not installed (scripts/setup.sh --browser installs it)"
    running = Broker(tmp_path_factory.mktemp("broker"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory,
             broker: Broker) -> Iterator[tuple[RunningService, RunningService]]:
    b = start_run(tmp_path_factory.mktemp("service-b"),
                  service_config(listen="127.0.0.1:0", token=TOKEN_B, viewer_token=VIEWER_B,
                                 sensors=SENSORS_B))
    links = f"""
[mqtt]
host = "127.0.0.1"
port = {broker.port}
site = "test"
machine = "a"

[[dashboard.links]]
name = "press-2"
url = "{b.base()}"
token = "{VIEWER_B}"

[[dashboard.links]]
name = "press-2 (ask)"
url = "{b.base()}"
"""
    try:
        a = start_run(tmp_path_factory.mktemp("service-a"),
                      service_config(listen="127.0.0.1:0", token=TOKEN_A, viewer_token=VIEWER_A,
                                     sensors=SENSORS_A, extra=links))
    except BaseException:
        b.stop()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


A_SENSORS, B_SENSORS = {"a-cam", "a-probes"}, {"b-cam", "b-probes"}


def test_switching_to_another_service_shows_its_sensors(new_page: Any, services: Any) -> None:
    a, _ = services
    page = new_page(a.url_with(TOKEN_A))
    wait_live_with(page, A_SENSORS)
    assert hook(page, "path") == {"kind": "direct", "link": None, "room": None,
                                  "url": a.base().split("//")[1].rstrip("/"),
                                  "text": "direct · this service"}
    selector = page.get_by_test_id("link-select")
    assert selector.is_visible()
    assert page.locator("#link-select option").all_inner_texts() == \
        ["This service", "press-2", "press-2 (ask)"]
    assert [link["has_token"] for link in hook(page, "links")] == [True, False]

    selector.select_option("press-2")
    wait_live_with(page, B_SENSORS)
    # B's panels, not A's: its camera's video plays at B's size, its probes have B's channels.
    wait_page(page, "s.cameras['b-cam']?.video?.width > 0")
    assert page.locator(".panel.thermal").evaluate_all("ps => ps.map((p) => p.dataset.sensor)") \
        == ["b-cam"]
    wait_page(page, "s.probes['b-probes']?.streams.length === 3")
    assert hook(page, "role") == "viewer"   # the link carries B's viewer token
    assert hook(page, "path")["text"] == "direct · press-2"
    assert page.get_by_test_id("path").inner_text() == "direct · press-2"
    assert page.get_by_test_id("link-path").inner_text() == "direct · press-2"
    # The selector is still this service's (A's) list, and the address remembers the choice.
    assert page.locator("#link-select option").count() == 3
    assert "link=press-2" in page.evaluate("() => location.hash")
    assert VIEWER_B not in page.evaluate("() => location.hash")

    selector.select_option("")
    wait_live_with(page, A_SENSORS)
    assert hook(page, "role") == "operator"
    assert page.get_by_test_id("path").inner_text() == "direct · this service"
    assert "link=" not in page.evaluate("() => location.hash")
    assert hook(page, "counts.invalid") == 0
    assert page.console_errors == []


def test_reload_keeps_the_chosen_service(new_page: Any, services: Any) -> None:
    a, _ = services
    page = new_page(f"{a.base()}#token={TOKEN_A}&link=press-2")
    wait_live_with(page, B_SENSORS)
    assert page.get_by_test_id("link-select").input_value() == "press-2"


def test_a_viewer_gets_no_tokens_and_is_asked_for_one(new_page: Any, services: Any) -> None:
    a, _ = services
    sockets: list[str] = []
    page = new_page("about:blank")
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(a.url_with(VIEWER_A))
    wait_live_with(page, A_SENSORS)
    assert hook(page, "role") == "viewer"
    # A viewer of A is handed no token for B: switching asks for one instead of trying.
    assert [link["has_token"] for link in hook(page, "links")] == [False, False]
    page.get_by_test_id("link-select").select_option("press-2")
    page.get_by_test_id("refused").wait_for(state="visible", timeout=WAIT_MS)
    assert "press-2" in page.get_by_test_id("refused-reason").inner_text()
    assert hook(page, "state") == "refused"
    assert len(sockets) == 1   # only A's: no attempt on B without a token
    page.locator("#token-input").fill(VIEWER_B)
    page.get_by_role("button", name="Connect").click()
    wait_live_with(page, B_SENSORS)
    assert len(sockets) == 2
    # The typed token stays in memory: the address keeps A's token only.
    assert VIEWER_B not in page.evaluate("() => location.hash")
    assert VIEWER_A in page.evaluate("() => location.hash")


def test_exports_show_the_mqtt_broker_state(new_page: Any, services: Any,
                                            broker: Broker) -> None:
    a, _ = services
    page = new_page(a.url_with(TOKEN_A))
    wait_live_with(page, A_SENSORS)
    state = page.get_by_test_id("export-state-mqtt")
    wait_page(page, "s.status?.exports?.[0]?.state === 'connected' && s.status.exports[0].sent > 0")
    state.wait_for(state="visible", timeout=WAIT_MS)
    wait_page(page, f"{element_text('export-state-mqtt')} === 'connected'")
    assert f"127.0.0.1:{broker.port}" in page.locator("tr[data-export=mqtt]").inner_text()
    broker.stop()
    try:
        # Readings pile up in the exporter's queue while the broker is away, on the page too.
        wait_page(page, f"{element_text('export-state-mqtt')} !== 'connected'"
                        f" && Number({element_text('export-queued-mqtt')}?.replace(/\\D/g, '')) > 0")
        assert state.inner_text() in ("connecting", "disconnected")
        assert page.get_by_test_id("export-dropped-mqtt").inner_text() == "0"
    finally:
        broker.start()
    wait_page(page, f"{element_text('export-state-mqtt')} === 'connected'")
    # Readings keep flowing to the page all along: the broker never touches the live stream.
    assert hook(page, "state") == "live"


# -- a Janus room, joined from the page ---------------------------------------------------

@pytest.mark.timeout(260)
def test_the_dashboard_joins_a_janus_room() -> None:
    """Runs the scenario below in a fresh network namespace and reports its result."""
    from janus_support import run_inner_test_in_namespace

    here = Path(__file__)
    run_inner_test_in_namespace(f"{here}::test_janus_room_in_the_browser",
                                cwd=here.parent.parent.parent, timeout=240)


@pytest.mark.netns_inner  # collected only inside the namespace (see tests/conftest.py)
@pytest.mark.timeout(220)
def test_janus_room_in_the_browser(tmp_path: Path, new_page: Any) -> None:
    from janus_support import setup_namespace_network

    assert INSIDE, "only inside the test's own network namespace"
    setup_namespace_network()
    janus = JanusServer(tmp_path / "janus", JANUS_IP)
    room_link = f'[[dashboard.links]]\nname = "hall A"\nurl = "{janus.ws_url}"\nroom = {ROOM}\n'
    service = None
    try:
        service = start_run(
            tmp_path / "service",
            service_config(listen=f"{SERVICE_IP}:0", token=TOKEN_A, viewer_token=VIEWER_A,
                           sensors=SENSORS_A, extra=room_link),
            "--publish", f"janus://{JANUS_IP}:{janus.port}/{ROOM}")
        page = new_page(service.url_with(TOKEN_A))
        wait_live_with(page, A_SENSORS)
        page.get_by_test_id("link-select").select_option("hall A")
        # The room has no hello: the page learns the sensors from the first relayed status.
        wait_live_with(page, A_SENSORS)
        assert hook(page, "path") == {"kind": "janus", "link": "hall A", "room": ROOM,
                                      "url": janus.ws_url, "text": f"via Janus room {ROOM} · hall A"}
        assert page.get_by_test_id("link-path").inner_text() == f"via Janus room {ROOM} · hall A"
        # Video through Janus' RTP relay; exact °C frames, readings and status through its one
        # relayed data channel.
        wait_page(page, "s.cameras['a-cam']?.video.width > 0 && s.counts.video_frames > 5"
                        " && s.counts.frames > 2", timeout=WAIT_MS * 2)
        # The status panel shows the service's own export: the publisher feeding this room.
        wait_page(page, f"{element_text('export-state-janus')} === 'connected'")
        assert f"/{ROOM}" in page.locator("tr[data-export=janus]").inner_text()
        assert hook(page, "role") == "viewer"   # a room is one-way: no controls
        assert not page.get_by_test_id("record").is_visible()
        assert hook(page, "counts.invalid") == 0, hook(page, "invalid")
        # And back to the service directly.
        page.get_by_test_id("link-select").select_option("")
        wait_live_with(page, A_SENSORS)
        assert hook(page, "path")["kind"] == "direct" and hook(page, "role") == "operator"
        assert page.console_errors == []
    finally:
        if service is not None:
            service.stop()
        janus.stop()
