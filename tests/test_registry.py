"""Drivers are found through the entry-point group, the same way for a third-party package."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from sensorlink.sources.registry import list_drivers, load_driver


def test_builtin_simulated_drivers_are_registered() -> None:
    listed = {d.name: d for d in list_drivers()}
    assert {"sim-thermal", "sim-probes", "sim-microphone"} <= set(listed)
    assert listed["sim-thermal"].kind == "thermal" and listed["sim-thermal"].loadable


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking distribution (dist-info with entry points) on sys.path."""
    (tmp_path / "acme_sensors.py").write_text(textwrap.dedent("""
        from sensorlink.driver import Driver
        from sensorlink.samples import SensorInfo

        class AcmeProbe(Driver):
            kind = "probe"
            description = "ACME probe"
            def info(self): return SensorInfo(self.name, "probe", "acme-probe")
            async def open(self): pass
            async def read(self): return []

        class NeedsMissing(AcmeProbe):
            requires = ("acme_vendor_sdk_that_is_not_installed",)
    """))
    dist = tmp_path / "acme_sensors-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-sensors\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sensorlink.drivers]\nacme-probe = acme_sensors:AcmeProbe\n"
        "acme-sdk = acme_sensors:NeedsMissing\nacme-broken = acme_missing_module:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_sensors", None)


def test_a_third_party_driver_is_found_and_loads(third_party: Path) -> None:
    cls = load_driver("acme-probe")
    assert cls.__name__ == "AcmeProbe"
    listed = {d.name: d for d in list_drivers()}
    assert listed["acme-probe"].loadable and listed["acme-probe"].kind == "probe"


def test_missing_packages_are_named_not_raised(third_party: Path) -> None:
    listed = {d.name: d for d in list_drivers()}
    assert not listed["acme-sdk"].loadable
    assert "acme_vendor_sdk_that_is_not_installed" in listed["acme-sdk"].problem
    assert not listed["acme-broken"].loadable
    assert "acme_missing_module" in listed["acme-broken"].problem
