"""Shared fixtures: a real service on loopback with simulated sensors."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sensorlink.config import ServiceConfig
from sensorlink.service import Service

from support import STILL_SENSORS, ServiceProcess


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns_inner: the half of a test that runs inside a network "
                                       "namespace its outer half creates")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Inner halves run only where their outer half starts them (SENSORLINK_TEST_NETNS=1);
    # elsewhere they are deselected, not skipped.
    if os.environ.get("SENSORLINK_TEST_NETNS") == "1":
        return
    inner = [item for item in items if item.get_closest_marker("netns_inner")]
    if inner:
        config.hook.pytest_deselected(items=inner)
        items[:] = [item for item in items if item not in inner]


@pytest.fixture
async def still_service() -> AsyncIterator[Service]:
    service = Service(ServiceConfig(host="127.0.0.1", port=0, token="test-token-123",
                                    viewer_token="viewer-token-456"),
                      sensors=STILL_SENSORS, source="test")
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def service_process(tmp_path: Path) -> Any:
    started: list[ServiceProcess] = []

    def start(*args: str) -> ServiceProcess:
        proc = ServiceProcess(list(args), tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()
