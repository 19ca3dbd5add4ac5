"""The monitoring parts of the dashboard in headless Chromium: the alarm banner and list, an
operator's acknowledgement (a viewer's refused), alarm markers on the plots, regions drawn,
moved and deleted with the mouse (kept in the state file beside the config, never in the
TOML), the isotherm, and the beam's spectrogram with its band bars."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard_support import (TOKEN, VIEWER_TOKEN, RunningService, element_text, start_command,
                               wait_page)

pytestmark = pytest.mark.browser

W, H = 32, 24
CONFIG = f"""
[service]
listen = "127.0.0.1:0"
token = "{TOKEN}"
viewer_token = "{VIEWER_TOKEN}"

[[sensors]]
name = "mic"
driver = "sim-microphone"
rotation_deg_per_s = 0
[sensors.bands]
set = "octave"
custom = [{{ name = "bearing", low_hz = 1400, high_hz = 3000 }}]

[[sensors]]
name = "cam-hot"
driver = "sim-thermal"
width = {W}
height = {H}
path_period_s = 0
hot_spot_start_c = 40.0
heat_up_c = 30.0
heat_up_tau_s = 3.0
[[sensors.regions]]
name = "housing"
kind = "box"
points = [[10, 6], [21, 17]]

[[sensors]]
name = "probes"
driver = "sim-probes"
channels = 3
rate_hz = 10
spike_probability = 0.0

[[alarms]]
name = "hot"
stream = "cam-hot/housing/max"
condition = "above"
warning = 50.0
alarm = 60.0
deadband = 2.0
on_delay_s = 0.3
latch = true

[[alarms]]
name = "probe-warm"
stream = "probes/t0"
condition = "above"
alarm = 31.0
deadband = 0.5
latch = true
"""


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    workdir = tmp_path_factory.mktemp("monitoring")
    (workdir / "sensors.toml").write_text(CONFIG, encoding="utf-8")
    running = start_command(["run", str(workdir / "sensors.toml")], workdir)
    try:
        yield running
    finally:
        running.stop()


def pixel(page: Any, sensor: str, x: int, y: int) -> tuple[float, float]:
    box = page.locator(f"[data-testid='thermal-overlay-{sensor}']").bounding_box()
    return box["x"] + (x + 0.5) * box["width"] / W, box["y"] + (y + 0.5) * box["height"] / H


def drag(page: Any, sensor: str, start: tuple[int, int], end: tuple[int, int]) -> None:
    page.mouse.move(*pixel(page, sensor, *start))
    page.mouse.down()
    page.mouse.move(*pixel(page, sensor, *end), steps=4)
    page.mouse.up()


def test_banner_list_and_plot_markers_then_only_the_operator_may_acknowledge(
        new_page: Any, monitored: RunningService) -> None:
    page = new_page(monitored.url)
    wait_page(page, "s.state === 'live'")
    wait_page(page, "s.alarms.active.some((e) => e.rule === 'hot' && e.level === 'alarm')",
              timeout=90_000)
    wait_page(page, "s.alarms.active.some((e) => e.rule === 'probe-warm')", timeout=90_000)
    banner = page.locator("[data-testid='alarm-banner']")
    assert banner.is_visible()
    assert page.locator("[data-testid='alarm-count']").text_content() == "2"
    assert "2 unacknowledged" in banner.text_content()
    row = page.locator("tr[data-rule='hot']")
    assert "alarm" in page.locator("[data-testid='alarm-state-hot']").text_content()
    value, limit = (float(v) for v in row.locator("td.num").text_content().split(" · "))
    assert value > 60.0 and limit == 60.0
    # The page marks the probe's alarm on its plot (events that arrive while it is open).
    wait_page(page, "s.probes.probes?.marks.some((m) => m.rule === 'probe-warm')")
    # The region of the alarming rule is drawn in the alarm's colour.
    wait_page(page, "s.cameras['cam-hot']?.regions.alarmed.housing === 'alarm'")

    viewer = new_page(monitored.url_with(VIEWER_TOKEN))
    wait_page(viewer, "s.state === 'live' && s.alarms.active.length === 2")
    viewer.click("[data-testid='ack-hot']")
    wait_page(viewer, "s.alarms.acks.length === 1")
    refused = viewer.evaluate("window.sensorlink.alarms.acks[0]")
    assert refused["ok"] is False and "operator" in refused["error"], refused

    page.click("[data-testid='ack-hot']")
    wait_page(page, f"({element_text('acked-hot')} ?? '').includes('(operator)')")
    # Every viewer sees who acknowledged it, and the banner counts one fewer unacknowledged.
    wait_page(viewer, f"({element_text('acked-hot')} ?? '').includes('(operator)')")
    assert "1 unacknowledged" in banner.text_content()
    assert page.console_errors == [], page.console_errors


def test_regions_drawn_moved_and_deleted_with_the_mouse_persist_beside_the_config(
        new_page: Any, monitored: RunningService) -> None:
    toml_before = monitored.config.read_bytes()
    page = new_page(monitored.url)
    wait_page(page, "s.state === 'live' && s.cameras['cam-hot']?.frames > 0")
    page.fill("[data-testid='region-name-cam-hot']", "drawn")
    page.click("[data-testid='region-tool-box-cam-hot']")
    drag(page, "cam-hot", (2, 2), (6, 5))
    wait_page(page, "s.cameras['cam-hot'].regions.stats.drawn?.max !== undefined")
    region = page.evaluate(
        "window.sensorlink.cameras['cam-hot'].regions.regions.find((r) => r.name === 'drawn')")
    assert region["kind"] == "box" and region["points"] == [[2, 2], [6, 5]]
    state_file = monitored.workdir / "sensors.state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    assert state["set"]["cam-hot"]["drawn"]["points"] == [[2, 2], [6, 5]]

    page.click("[data-testid='region-tool-move-cam-hot']")
    drag(page, "cam-hot", (4, 3), (8, 4))
    wait_page(page, "s.cameras['cam-hot'].regions.regions.find((r) => r.name === 'drawn')"
                    "?.points[0][0] === 6")
    moved = json.loads(state_file.read_text(encoding="utf-8"))["set"]["cam-hot"]["drawn"]
    assert moved["points"] == [[6, 3], [10, 6]]

    page.click("[data-testid='region-tool-move-cam-hot']")  # tool off
    page.click("[data-testid='region-delete-cam-hot-drawn']")
    wait_page(page, "!s.cameras['cam-hot'].regions.regions.some((r) => r.name === 'drawn')")
    final = json.loads(state_file.read_text(encoding="utf-8"))
    assert "drawn" not in final.get("set", {}).get("cam-hot", {})
    assert monitored.config.read_bytes() == toml_before  # the user's TOML is never rewritten
    assert page.console_errors == [], page.console_errors


def test_isotherm_highlights_the_pixels_at_or_above_a_temperature(
        new_page: Any, monitored: RunningService) -> None:
    page = new_page(monitored.url)
    wait_page(page, "s.state === 'live' && s.cameras['cam-hot']?.frames > 0")
    page.check("[data-testid='isotherm-on-cam-hot']")
    page.fill("[data-testid='isotherm-c-cam-hot']", "-50")
    wait_page(page, f"s.cameras['cam-hot'].regions.isotherm === -50 && "
                    f"s.cameras['cam-hot'].regions.isotherm_pixels === {W * H}")
    page.fill("[data-testid='isotherm-c-cam-hot']", "500")
    wait_page(page, "s.cameras['cam-hot'].regions.isotherm === 500 && "
                    "s.cameras['cam-hot'].regions.isotherm_pixels === 0")
    # Between the two: the hot spot and nothing of the ~24-27 °C housing around it.
    page.fill("[data-testid='isotherm-c-cam-hot']", "35")
    wait_page(page, "s.cameras['cam-hot'].regions.isotherm === 35 && "
                    f"s.cameras['cam-hot'].regions.isotherm_pixels > 0 && "
                    f"s.cameras['cam-hot'].regions.isotherm_pixels < {W * H // 4}")


def test_spectrogram_of_the_beam_and_band_bars(new_page: Any, monitored: RunningService) -> None:
    page = new_page(monitored.url)
    wait_page(page, "s.state === 'live' && s.microphones.mic?.spectrum.rows > 5")
    wait_page(page, "Object.keys(s.microphones.mic.spectrum.levels).length === "
                    "s.microphones.mic.spectrum.bands.length && "
                    "s.microphones.mic.spectrum.bands.length > 3")
    spectrum = page.evaluate("window.sensorlink.microphones.mic.spectrum")
    assert "bearing" in spectrum["bands"] and "1k" in spectrum["bands"]
    # The simulated bearing noise lies in 1.4-3 kHz: its band stands well above the 500 Hz one.
    assert spectrum["levels"]["bearing"] > spectrum["levels"]["500"]
    assert page.console_errors == [], page.console_errors


def test_replay_timeline_marks_the_alarms_and_next_alarm_seeks_to_them(
        new_page: Any, tmp_path: Path) -> None:
    (tmp_path / "sensors.toml").write_text(CONFIG, encoding="utf-8")
    live = start_command(["run", str(tmp_path / "sensors.toml"), "--record",
                          str(tmp_path / "rec")], tmp_path)
    try:
        page = new_page(live.url)
        wait_page(page, "s.alarms.active.some((e) => e.rule === 'hot' && e.level === 'alarm')",
                  timeout=90_000)
    finally:
        live.stop()  # the recorder closes the file
    path = next((tmp_path / "rec").glob("*.mcap"))
    replay = start_command(["replay", str(path), "--paused", "--listen", "127.0.0.1:0",
                            "--token", TOKEN], tmp_path / "replay")
    try:
        page = new_page(replay.url)
        wait_page(page, "s.state === 'live' && s.status?.replay?.alarms?.length >= 2")
        marks = page.evaluate("window.sensorlink.status.replay.alarms")
        hot = [(m["rule"], m["level"]) for m in marks if m["rule"] == "hot"]
        assert hot == [("hot", "warning"), ("hot", "alarm")]
        shown = page.locator("[data-testid='replay-alarm-marks'] i")
        assert shown.count() == len(marks)
        times = sorted(m["t_s"] for m in marks)
        # "Next alarm" lands 0.5 s before a mark and then looks for one beyond 1 s from there.
        first = next(t for t in times if t > 1.0)
        second = next(t for t in times if t > max(0.0, first - 0.5) + 1.0)
        page.click("[data-testid='replay-next-alarm']")
        wait_page(page, "Math.abs(s.status?.replay?.position_s - arg) < 0.2",
                  max(0.0, first - 0.5))
        page.click("[data-testid='replay-next-alarm']")
        wait_page(page, "Math.abs(s.status?.replay?.position_s - arg) < 0.2", second - 0.5)
        # At the seek the replay shows the alarms that stood then, as raised live.
        page.click("[data-testid='replay-play']")
        wait_page(page, "s.alarms.active.some((e) => e.rule === 'hot' && e.level === 'alarm')",
                  timeout=60_000)
        assert page.console_errors == [], page.console_errors
    finally:
        replay.stop()
