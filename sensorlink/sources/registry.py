"""Finds drivers through the ``sensorlink.drivers`` entry-point group.

Built-in drivers are registered in our own pyproject exactly as a third-party package registers
its own, so there is one way in. Listing loads each driver's module, which must stay cheap:
drivers import their heavy or optional packages (PyAV, pymodbus) inside ``open``, and name them
in ``Driver.requires`` so a missing one is reported without an import error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from sensorlink.config import SensorConfig
from sensorlink.driver import Driver
from sensorlink.errors import ConfigError, DriverUnavailable
from sensorlink.hub import Hub
from sensorlink.options import build_options
from sensorlink.sources.runner import DriverRunner

GROUP = "sensorlink.drivers"


def driver_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_driver(name: str) -> type[Driver]:
    """The driver class registered under ``name``; the error lists the ones that exist."""
    eps = driver_entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown driver {name!r} (installed drivers: {known})", field="driver")
    try:
        cls = eps[name].load()
    except ImportError as exc:
        raise DriverUnavailable(f"driver {name!r} cannot load: missing package {exc.name!r}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise ConfigError(f"entry point {name!r} ({eps[name].value}) is not a sensorlink Driver",
                          field="driver")
    return cls


def missing_modules(cls: type[Driver]) -> list[str]:
    return [mod for mod in cls.requires if importlib.util.find_spec(mod) is None]


@dataclass(frozen=True)
class DriverListing:
    name: str
    target: str
    kind: str
    description: str
    loadable: bool
    problem: str


def list_drivers() -> list[DriverListing]:
    out = []
    for name, ep in sorted(driver_entry_points().items()):
        try:
            cls = load_driver(name)
        except Exception as exc:
            out.append(DriverListing(name, ep.value, "?", "", False, str(exc)))
            continue
        missing = missing_modules(cls)
        problem = f"missing package(s): {', '.join(missing)}" if missing else ""
        out.append(DriverListing(name, ep.value, cls.kind, cls.description, not missing, problem))
    return out


def build_runners(sensors: Sequence[SensorConfig], hub: Hub, source: str) -> list[DriverRunner]:
    """A runner per configured sensor; a driver or option mistake names the sensor and field."""
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
