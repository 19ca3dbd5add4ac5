"""A bad config is refused with a message naming the file, the sensor and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorlink.config import load_config
from sensorlink.errors import ConfigError
from sensorlink.service import Service

GOOD = """
[service]
listen = "127.0.0.1:0"
token = "a-long-token"
ice_servers = [{ urls = "turn:turn.example:3478", username = "u", credential = "p" }]

[[sensors]]
name = "cam"
driver = "sim-thermal"
width = 16
height = 12

[[sensors]]
name = "probes"
driver = "sim-probes"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plant.toml"
    path.write_text(text)
    return path


def test_good_config_builds_a_service(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.service.port == 0 and config.service.ice_servers[0].username == "u"
    service = Service.from_config(config)
    assert [r.driver.options.width for r in service.runners[:1]] == [16]


@pytest.mark.parametrize(("change", "sensor", "field", "words"), [
    (("width = 16", 'width = "wide"'), "cam", "width", "integer"),
    (("width = 16", "colour = 3"), "cam", "colour", "unknown option"),
    (("width = 16", "width = 99999"), "cam", "width", "1-1024"),
    (('driver = "sim-probes"', 'driver = "no-such"'), "probes", "driver", "sim-thermal"),
    (('name = "probes"', 'name = "cam"'), "cam", "name", "two sensors"),
    (('name = "probes"', 'name = "bad name!"'), "bad name!", "name", "letters"),
])
def test_bad_sensor_fields_are_named(tmp_path: Path, change: tuple[str, str], sensor: str,
                                     field: str, words: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        Service.from_config(load_config(path))
    message = str(info.value)
    assert str(path) in message and f"sensor {sensor!r}" in message
    assert f"field {field!r}" in message and words in message, message


@pytest.mark.parametrize(("change", "field"), [
    (('listen = "127.0.0.1:0"', 'listen = "nowhere"'), "listen"),
    (('token = "a-long-token"', 'token = "short"'), "service.token"),
    (('token = "a-long-token"', 'tokn = "a-long-token"'), "service.tokn"),
    (('urls = "turn:', 'urls = "http:'), "ice_servers[0].urls"),
])
def test_bad_service_fields_are_named(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"field {field!r}" in str(info.value) and str(path) in str(info.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[service\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml")
