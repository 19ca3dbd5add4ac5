"""The dashboard in headless Chromium, against a real `sensorlink run` with simulated sensors:
what a person sees must match what the simulation did."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from dashboard_support import (
    ARTIFACTS, CAM_H, CAM_W, HOT_PEAK_C, HOT_PX, HOT_PY, SOURCE_DEG, TOKEN, VIEWER_TOKEN, WIDE_H,
    WIDE_PEAK_C, WIDE_PX, WIDE_PY, WIDE_W, RunningService, element_text, start_command,
    start_service, wait_page,
)

pytestmark = pytest.mark.browser

WAIT_MS = 30_000


def hook(page: Any, expr: str) -> Any:
    return page.evaluate(f"() => window.sensorlink.{expr}")


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def number_in(text: str) -> float:
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    assert match, f"no number in {text!r}"
    return float(match.group())


def click_compass(page: Any, angle_deg: float) -> None:
    box = page.get_by_test_id("compass-mic").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    r = 0.3 * box["width"]
    a = math.radians(angle_deg)
    # 0° is +x (right), counter-clockwise: screen y grows downward.
    page.mouse.click(cx + r * math.cos(a), cy - r * math.sin(a))


def test_dashboard_opens_with_the_token(dashboard: Any) -> None:
    assert hook(dashboard, "state") == "live"
    assert hook(dashboard, "role") == "operator"
    assert {s["name"]: s["kind"] for s in hook(dashboard, "sensors")} == \
        {"cam": "thermal", "wide": "thermal", "probes": "probe", "mic": "microphone"}
    pill = dashboard.get_by_test_id("conn-state")
    assert pill.inner_text() == "Live"
    assert pill.is_visible()
    # Every message so far passed the schemas, which the page did load.
    assert hook(dashboard, "schemas_missing") == []
    wait_page(dashboard, f"s.counts.status > 0 && /ms$/.test({element_text('link-rtt')})")
    assert hook(dashboard, "counts.invalid") == 0
    assert dashboard.get_by_test_id("state-cam").inner_text() == "connected"
    assert number_in(dashboard.get_by_test_id("link-rtt").inner_text()) >= 0
    assert dashboard.console_errors == []


def test_thermal_video_plays(dashboard: Any) -> None:
    wait_page(dashboard, "s.cameras.cam?.video.current_time > 0")
    t0 = hook(dashboard, "cameras.cam.video.current_time")
    frames0 = hook(dashboard, "counts.video_frames")
    wait_page(dashboard, "s.cameras.cam.video.current_time > arg + 0.5"
                         " && s.cameras.cam.video.width > 0 && s.cameras.cam.video.height > 0", t0)
    video = hook(dashboard, "cameras.cam.video")
    assert video["width"] > 0 and video["height"] > 0
    # The video keeps the sensor's aspect (it is upscaled, never stretched).
    assert video["width"] * CAM_H == video["height"] * CAM_W
    assert hook(dashboard, "counts.video_frames") > frames0
    assert not video["paused"]


BRIGHTEST_IN_VIDEO = """(sensor) => {
    // The test's own probe of the pixels the browser decoded (not the page's code): the centroid
    // of the brightest pixels of the video, in sensor pixels. Inferno maps hot to bright.
    const v = document.querySelector(`.panel.thermal[data-sensor="${sensor}"] video`);
    const c = document.createElement("canvas");
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let max = 0;
    for (let i = 0; i < d.length; i += 4) max = Math.max(max, d[i] + d[i + 1] + d[i + 2]);
    let sx = 0, sy = 0, n = 0;
    for (let i = 0; i < d.length; i += 4) {
        if (d[i] + d[i + 1] + d[i + 2] >= 0.95 * max) {
            const p = i / 4; sx += p % c.width; sy += Math.floor(p / c.width); n++;
        }
    }
    return {x: sx / n / c.width, y: sy / n / c.height, max};
}"""


@pytest.mark.parametrize("sensor,px,py,w,h", [("cam", HOT_PX, HOT_PY, CAM_W, CAM_H),
                                              ("wide", WIDE_PX, WIDE_PY, WIDE_W, WIDE_H)])
def test_each_video_shows_its_own_camera(dashboard: Any, sensor: str, px: int, py: int,
                                         w: int, h: int) -> None:
    wait_page(dashboard, "s.cameras[arg]?.video.frames > 3", sensor)
    spot = dashboard.evaluate(BRIGHTEST_IN_VIDEO, sensor)
    assert spot["max"] > 300, spot
    # Within two sensor pixels of where the simulation put the hot spot (the codec is lossy).
    assert abs(spot["x"] * w - (px + 0.5)) <= 2 and abs(spot["y"] * h - (py + 0.5)) <= 2, spot


def test_probe_plots_update(dashboard: Any) -> None:
    wait_page(dashboard, "(s.probes.probes?.rows ?? 0) >= 3")
    before = hook(dashboard, "probes.probes")
    assert before["streams"] == ["t0", "t1", "t2"]
    wait_page(dashboard, "s.probes.probes.rows > arg.rows + 5 && s.probes.probes.updates > arg.updates",
              before)
    after = hook(dashboard, "probes.probes")
    # The chart holds one series per stream and draws lines, and every stream shows its value.
    series = dashboard.locator("[data-testid='plot-probes'] .uplot canvas")
    assert series.count() >= 1
    for stream in ("t0", "t1", "t2"):
        shown = dashboard.get_by_test_id(f"probe-probes/{stream}").inner_text()
        assert "°C" in shown
        # simulated probes start at 30 °C and heat toward 55 °C
        assert 25.0 < number_in(shown) < 65.0, shown
        assert 25.0 < after["last"][stream] < 65.0


def test_cursor_shows_exact_celsius_at_the_hot_spot(dashboard: Any) -> None:
    wait_page(dashboard, "s.cameras.cam?.frames > 2")
    overlay = dashboard.get_by_test_id("thermal-overlay-cam")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    x = box["x"] + (HOT_PX + 0.5) / CAM_W * box["width"]
    y = box["y"] + (HOT_PY + 0.5) / CAM_H * box["height"]
    dashboard.mouse.move(x, y)
    readout = dashboard.get_by_test_id("thermal-cursor-cam")
    wait_page(dashboard, f"/°C/.test({element_text('thermal-cursor-cam')})")
    text = readout.inner_text()
    assert f"({HOT_PX}, {HOT_PY})" in text, text
    assert abs(number_in(text) - HOT_PEAK_C) <= 0.5, text
    camera = hook(dashboard, "cameras.cam")
    assert camera["max_at"] == {"px": HOT_PX, "py": HOT_PY}
    assert abs(camera["max"] - HOT_PEAK_C) <= 0.5
    # the colour scale is labelled with the range the video's colours were mapped over
    # (frames carry centi-degrees, the range full floats: compare to within a hundredth)
    assert camera["range"][0] <= camera["min"] + 0.01 and camera["range"][1] >= camera["max"] - 0.01
    ARTIFACTS.mkdir(exist_ok=True)
    wait_page(dashboard, "(s.microphones.mic?.doa ?? null) !== null")
    dashboard.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_compass_shows_the_source_direction(dashboard: Any) -> None:
    wait_page(dashboard, "(s.microphones.mic?.doa ?? null) !== null")
    shown = dashboard.get_by_test_id("doa-mic").inner_text()
    assert shown.endswith("°")
    assert angle_diff(number_in(shown), SOURCE_DEG) <= 15.0, shown
    level = dashboard.get_by_test_id("level-mic").inner_text()
    assert "dBFS" in level and -60.0 < number_in(level) < 0.0, level


def test_steering_from_the_page_changes_the_beam(dashboard: Any) -> None:
    target = 250.0
    wait_page(dashboard, "(s.microphones.mic?.doa ?? null) !== null")
    click_compass(dashboard, target)
    wait_page(dashboard, "typeof s.beams.mic === 'number' && Math.abs(s.beams.mic - arg) < 1.5",
              target)
    # the service's reply to the page's steer request
    result = hook(dashboard, "microphones.mic.steer_result")
    assert result["sensor"] == "mic"
    assert abs(result["angle_deg"] - target) < 1.5
    assert result["follows_doa"] is False
    assert re.match(r"^25[0-1]° · fixed$", dashboard.get_by_test_id("beam-mic").inner_text())

    # "Follow DOA" hands the beam back to the direction of arrival.
    dashboard.get_by_role("button", name="Follow DOA").click()
    wait_page(dashboard, "s.microphones.mic.follow === true"
              " && Math.abs(((s.beams.mic ?? s.microphones.mic.doa) - arg + 540) % 360 - 180) <= 15",
              SOURCE_DEG)
    assert "follows DOA" in dashboard.get_by_test_id("beam-mic").inner_text()
    assert hook(dashboard, "control_errors") == []


def test_large_frames_are_joined_from_their_row_bands(dashboard: Any) -> None:
    # 160x120 centi-degrees do not fit one message: the hot spot's rows come in the last band.
    wait_page(dashboard, "s.cameras.wide?.frames >= 2")
    wide = hook(dashboard, "cameras.wide")
    assert (wide["width"], wide["height"]) == (WIDE_W, WIDE_H)
    assert wide["max_at"] == {"px": WIDE_PX, "py": WIDE_PY}
    assert abs(wide["max"] - WIDE_PEAK_C) <= 0.5
    assert hook(dashboard, "counts.frame_messages") > hook(dashboard, "counts.frames")
    overlay = dashboard.get_by_test_id("thermal-overlay-wide")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    dashboard.mouse.move(box["x"] + (WIDE_PX + 0.5) / WIDE_W * box["width"],
                         box["y"] + (WIDE_PY + 0.5) / WIDE_H * box["height"])
    wait_page(dashboard, f"/°C/.test({element_text('thermal-cursor-wide')})")
    text = dashboard.get_by_test_id("thermal-cursor-wide").inner_text()
    assert f"({WIDE_PX}, {WIDE_PY})" in text and abs(number_in(text) - WIDE_PEAK_C) <= 0.5, text


def test_colour_map_and_fixed_range_from_the_page(dashboard: Any) -> None:
    panel = dashboard.locator(".panel.thermal[data-sensor=cam]")
    panel.locator("select.map").select_option("turbo")
    wait_page(dashboard, "s.cameras.cam?.map === 'turbo'")
    panel.locator("input.auto").uncheck()
    panel.locator("input.lo").fill("20")
    panel.locator("input.hi").fill("60")
    panel.get_by_role("button", name="Set").click()
    # The frames say which range the video's colours now use, and the scale is labelled with it.
    wait_page(dashboard, "s.cameras.cam.auto === false && s.cameras.cam.range?.[0] === 20"
                         " && s.cameras.cam.range?.[1] === 60")
    labels = panel.locator(".scale-labels span").all_inner_texts()
    assert labels[0] == "60.0" and labels[-1] == "20.0", labels
    panel.locator("input.auto").check()
    wait_page(dashboard, "s.cameras.cam.auto === true && s.cameras.cam.range?.[1] !== 60")
    assert hook(dashboard, "control_errors") == []


def test_record_from_the_page_then_replay_it(dashboard: Any, new_page: Any,
                                            service: RunningService) -> None:
    button = dashboard.get_by_test_id("record")
    assert button.inner_text() == "● Record"
    button.click()
    wait_page(dashboard, "s.status?.recording?.active === true")
    assert button.inner_text() == "■ Stop recording"
    wait_page(dashboard, "s.status?.recording?.samples > 300")
    button.click()
    wait_page(dashboard, "s.status?.recording?.active === false")
    assert button.inner_text() == "● Record"
    path = service.workdir / hook(dashboard, "status.recording.path")
    assert path.is_file() and path.stat().st_size > 0

    replay = start_command(["replay", str(path), "--loop", "--listen", "127.0.0.1:0",
                            "--token", TOKEN], service.workdir / "replay")
    try:
        page = new_page(replay.url)
        wait_page(page, "s.state === 'live' && s.cameras.cam?.frames > 0")
        assert hook(page, "replay") is True
        assert page.get_by_test_id("replay-bar").is_visible()
        assert not page.get_by_test_id("record").is_visible()
        # The recording holds what was live: the same hot spot at the same pixel.
        assert hook(page, "cameras.cam.max_at") == {"px": HOT_PX, "py": HOT_PY}
        play = page.get_by_test_id("replay-play")
        wait_page(page, "s.status?.replay?.paused === false")
        play.click()
        wait_page(page, "s.status?.replay?.paused === true")
        assert play.inner_text() == "▶ Play"
        # Seek while paused: the position lands where the timeline was dropped.
        page.get_by_test_id("replay-timeline").evaluate(
            "(el) => { el.value = '1'; el.dispatchEvent(new Event('input')); "
            "el.dispatchEvent(new Event('change')); }")
        wait_page(page, "Math.abs(s.status?.replay?.position_s - 1) < 0.15")
        assert page.locator(".replay-bar input.loop").is_checked()
        page.locator(".replay-bar input.loop").uncheck()
        wait_page(page, "s.status?.replay?.loop === false")
        page.locator(".replay-bar select.speed").select_option("2")
        wait_page(page, "s.status?.replay?.speed === 2")
        play.click()
        wait_page(page, "s.status?.replay?.paused === false")
        assert hook(page, "control_errors") == []
        page.screenshot(path=str(ARTIFACTS / "dashboard-replay.png"), full_page=True)
    finally:
        replay.stop()


def test_the_page_checks_messages_against_the_served_schemas(dashboard: Any) -> None:
    problems = dashboard.evaluate("""async () => {
        const { Schemas } = await import("/schema.js");
        const s = await new Schemas().load();
        return {
            missing: s.missing,
            good: s.check("readings", {type: "readings", readings: [["p/t0", 1, 2, 3.5, "°C", "ok"]]}),
            short_row: s.check("readings", {type: "readings", readings: [["p/t0", 1]]}),
            bad_quality: s.check("readings", {type: "readings", readings: [["p/t0", 1, 2, 3.5, "°C", "meh"]]}),
            extra_field: s.check("status", {type: "status", t_wall_ns: 1, sensors: [], surprise: 1}),
            bad_scale: s.check("frame", {type: "frame", sensor: "c", seq: 0, t_wall_ns: 0, width: 1,
                                         height: 1, y0: 0, rows: 1, scale: 7, data: new Uint8Array(2),
                                         range: [0, 1]}),
        };
    }""")
    assert problems["missing"] == []
    assert problems["good"] is None
    for case in ("short_row", "bad_quality", "extra_field", "bad_scale"):
        assert isinstance(problems[case], str) and problems[case], (case, problems)


def test_a_viewer_token_may_look_but_not_steer(new_page: Any, service: RunningService) -> None:
    page = new_page(service.url_with(VIEWER_TOKEN))
    wait_page(page, "s.state === 'live' && s.counts.readings > 0")
    assert hook(page, "role") == "viewer"
    assert page.get_by_test_id("role").inner_text().lower() == "viewer"
    assert page.get_by_role("button", name="Follow DOA").is_disabled()
    assert page.locator(".panel.thermal[data-sensor=cam] select.map").is_disabled()
    assert not page.get_by_test_id("record").is_visible()


def test_a_wrong_token_is_refused_visibly(new_page: Any, service: RunningService) -> None:
    sockets: list[Any] = []
    # Only one wrong token per service: repeated failures lock the address out.
    page = new_page("about:blank")
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(service.url_with("not-the-token"))
    banner = page.get_by_test_id("refused")
    banner.wait_for(state="visible", timeout=WAIT_MS)
    assert "wrong token" in page.get_by_test_id("refused-reason").inner_text()
    assert page.get_by_test_id("conn-state").inner_text() == "Refused"
    assert hook(page, "state") == "refused"
    assert hook(page, "counts.readings") == 0
    # A refused token is not retried: after longer than the first reconnect delay, still one try.
    page.wait_for_timeout(2000)
    assert len(sockets) == 1
    assert hook(page, "state") == "refused"
    # The banner takes the right token and connects with it.
    page.locator("#token-input").fill(TOKEN)
    page.get_by_role("button", name="Connect").click()
    wait_page(page, "s.state === 'live'")
    assert not banner.is_visible()
    assert page.evaluate("() => location.hash") == f"#token={TOKEN}"


def test_reconnects_by_itself_when_the_service_restarts(new_page: Any, tmp_path: Any) -> None:
    first = start_service(tmp_path / "first")
    second = None
    try:
        page = new_page(first.url)
        wait_page(page, "s.state === 'live'")
        seen_live = len(hook(page, "states"))
        first.stop()
        # What the pill showed, from the page's own record: the pill itself moves on from
        # "Reconnecting" to "Connecting…" when the retry timer fires, whenever that is.
        wait_page(page, "s.states.slice(arg).some((e) => e.state === 'reconnecting')", seen_live)
        second = start_service(tmp_path / "second", port=first.port)
        readings = hook(page, "counts.readings")
        wait_page(page, "s.state === 'live' && s.counts.readings > arg", readings)
        wait_page(page, "s.cameras.cam?.video.width > 0")
        shown = [e["label"] for e in hook(page, "states")[seen_live:]]
        assert "Reconnecting" in shown and shown[-1] == "Live", shown
        assert "Live" not in shown[:shown.index("Reconnecting")], shown  # no "Live" while down
    finally:
        first.stop()
        if second is not None:
            second.stop()
