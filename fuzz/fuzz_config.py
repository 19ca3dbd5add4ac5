"""Config files: arbitrary bytes through load_config (and every sensor's options through
build_options) must give a Config or a ConfigError, never another exception."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run

from sensorlink.config import load_config
from sensorlink.errors import ConfigError
from sensorlink.options import build_options
from sensorlink.sources.registry import load_driver

FD, PATH = tempfile.mkstemp(suffix=".toml", prefix="fuzz-config-")
os.close(FD)


def test_one_input(data: bytes) -> None:
    Path(PATH).write_bytes(data)
    try:
        config = load_config(PATH)
        for sensor in config.sensors:
            cls = load_driver(sensor.driver)
            build_options(cls.Options, sensor.options, source=PATH, sensor=sensor.name)
    except ConfigError:
        pass


if __name__ == "__main__":
    run(test_one_input)
