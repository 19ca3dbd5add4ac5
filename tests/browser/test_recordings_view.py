"""The Recordings view and the trends in headless Chromium, against `sensorlink run` over a
recordings directory that holds a generated week of probe segments (672 of 15 min, alarms in
some) and the service's own live recording, rolled every 1.2 s.

- the view lists the sessions by day, as the index has them, with their alarm marks;
- a viewer replays the live run in the page across segment boundaries with no gap in seq;
- the trend view draws a week of aggregates (the very numbers the index gives), and a zoom by
  dragging across the plot comes down to the raw samples;
- a live probe plot reaches back a week into the recorded trends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorlink.recording import messages as mm
from sensorlink.recording.library import Library
from sensorlink.recording.library_api import days
from sensorlink.recording.reader import Recording
from sensorlink.recording.synthetic import write_library
from sensorlink.recording.trends import trend
from sensorlink.samples import Reading

from dashboard_support import TOKEN, VIEWER_TOKEN, RunningService, start_command, wait_page

WEEK_NS = 7 * 86_400 * 1_000_000_000
STREAMS = [f"probes/t{i}" for i in range(4)]


def _library(folder: Path) -> Library:
    return Library(folder, recover_cut=False)


@pytest.fixture(scope="module")
def library_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    workdir = tmp_path_factory.mktemp("library-service")
    rec = workdir / "rec"
    # A week that ended ten minutes ago, then the service's own run.
    write_library(rec, days=7, probes=4, rate_hz=0.02, sensor="probes",
                  end_ns=time.time_ns() - 600 * 1_000_000_000)
    config = workdir / "sensors.toml"
    config.write_text(f"""
[service]
listen = "127.0.0.1:0"
token = "{TOKEN}"
viewer_token = "{VIEWER_TOKEN}"
record_dir = "rec"

[recording]
always = true
segment_minutes = 0.02
min_free_gb = 0

[[sensors]]
name = "probes"
driver = "sim-probes"
channels = 4
rate_hz = 10

[[sensors]]
name = "oven"
driver = "sim-probes"
channels = 2
rate_hz = 5
""", encoding="utf-8")
    running = start_command(["run", str(config)], workdir, timeout=120)
    try:
        yield running
    finally:
        running.stop()


def _closed_live_segments(folder: Path) -> list[Any]:
    library = _library(folder)
    try:
        return [s for s in library.segments() if "probes" in s.sensors and "oven" in s.sensors
                and s.replayable]
    finally:
        library.close()


def _wait_closed(folder: Path, n: int, timeout: float = 90.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        closed = _closed_live_segments(folder)
        if len(closed) >= n:
            return closed
        time.sleep(0.2)
    raise AssertionError(f"the service closed fewer than {n} segments in {timeout:g} s")


def _open_view(page: Any) -> None:
    wait_page(page, "s.state === 'live'", timeout=60_000)
    wait_page(page, "!document.querySelector(\"[data-testid='recordings-open']\")"
                    "?.classList.contains('hidden')")
    page.click("[data-testid='recordings-open']")
    wait_page(page, "s.library.loads > 0 && s.library.days.length > 0", timeout=60_000)


def test_the_view_lists_sessions_by_day_and_a_viewer_replays_across_boundaries(
        library_service: RunningService, new_page: Any) -> None:
    folder = library_service.workdir / "rec"
    _wait_closed(folder, 4)
    page = new_page(library_service.url_with(VIEWER_TOKEN))
    _open_view(page)
    shown = page.evaluate("window.sensorlink.library")
    assert page.evaluate("window.sensorlink.role") == "viewer"
    # By day, as the index has them (the browser's time zone is the test's).
    offset = -page.evaluate("new Date().getTimezoneOffset()")
    library = _library(folder)
    try:
        expected = days(library, offset)
        synthetic = [s for s in library.segments() if s.session.startswith("synthetic")]
    finally:
        library.close()
    assert [d["day"] for d in shown["days"]] == [d["day"] for d in expected["days"]]
    assert len(shown["days"]) >= 7
    # The whole days of the generated week (not its first and last, nor the live run's today,
    # which may be the same day): every quarter hour of the day is listed.
    day_of = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t / 1e9 + offset * 60))  # noqa: E731
    whole = {day_of(s.start_ns) for s in synthetic} - {day_of(synthetic[0].start_ns),
                                                       day_of(synthetic[-1].start_ns)}
    assert len(whole) >= 5
    for got in shown["days"]:
        if got["day"] in whole:
            assert got["segments"] == 96, got
    assert sum(r["alarms"] for d in shown["days"] for r in d["runs"]) >= 6
    assert page.locator("[data-testid='alarm-mark']").count() >= 6
    assert page.locator("[data-testid='delete-run']:visible").count() == 0  # viewer: no delete

    # Replay the service's own run (the newest): several segments of 1.2 s, one timeline.
    live_runs = [r for d in shown["days"] for r in d["runs"] if r["segments"] >= 4]
    run = max(live_runs, key=lambda r: r["start_ns"])
    closed = [s for s in _closed_live_segments(folder) if s.start_ns >= run["start_ns"]]
    assert len(closed) >= 3
    first_seqs, boundary = [], None
    with Recording(folder / closed[0].name) as rec:
        first_seqs = [r.seq for _, r in rec.events(schemas={mm.READING})
                      if isinstance(r, Reading) and r.sensor == "probes" and r.channel == "t0"]
    assert first_seqs
    boundary = first_seqs[-1]
    page.click(f"[data-testid='run'][data-start-ns='{run['start_ns']}'] "
               "[data-testid='replay-run']")
    wait_page(page, "s.replaying !== null && s.replay === true && s.state === 'live'",
              timeout=60_000)
    # Past the end of the first segment and on into the third.
    wait_page(page, "(s.seqs['probes/t0']?.last ?? -1) > arg", boundary + 2 * len(first_seqs),
              timeout=90_000)
    seqs = page.evaluate("window.sensorlink.seqs")
    for stream in [*STREAMS, "oven/t0", "oven/t1"]:
        assert seqs[stream]["gaps"] == 0 and seqs[stream]["back"] == 0, (stream, seqs[stream])
    t0 = seqs["probes/t0"]
    assert t0["first"] <= first_seqs[0] + 1  # from the run's start
    assert t0["count"] == t0["last"] - t0["first"] + 1  # every seq once, across the boundaries
    assert page.console_errors == []


def _week(page: Any) -> dict[str, Any]:
    """The four probes of the generated week (not the oven's), over the last week."""
    for stream in page.evaluate("window.sensorlink.library.streams"):
        box = f"[data-testid='trend-streams'] input[data-stream='{stream}']"
        page.set_checked(box, stream in STREAMS)
    page.click("[data-testid='trend-range-1week']")
    wait_page(page, "s.library.trend.last && s.library.trend.last.to_ns - s.library.trend.last"
                    ".from_ns > 6.9 * 86400e9 && s.library.trend.last.streams.join() === arg",
              ",".join(STREAMS), timeout=60_000)
    return page.evaluate("window.sensorlink.library.trend")


def test_the_trend_view_draws_a_week_and_zooms_down_to_raw_samples(
        library_service: RunningService, new_page: Any) -> None:
    folder = library_service.workdir / "rec"
    page = new_page(library_service.url_with(TOKEN))
    _open_view(page)
    wait_page(page, "s.library.streams.includes('probes/t3')")
    week = _week(page)
    last = week["last"]
    assert last["resolution"] == "aggregate" and last["streams"] == STREAMS
    assert all(n >= 300 for n in last["points"])
    assert last["t0"] <= (last["from_ns"] + 3_600_000_000_000) / 1e9  # the week's first hour
    # The very min/max the index gives for that window: nothing decoded, nothing lost.
    library = _library(folder)
    try:
        same = trend(library, STREAMS, int(last["from_ns"]), int(last["to_ns"]), points=600)
    finally:
        library.close()
    for i, stream in enumerate(STREAMS):
        assert last["min"][i] == pytest.approx(min(same["streams"][stream]["min"]))
        assert last["max"][i] == pytest.approx(max(same["streams"][stream]["max"]))
    box = page.locator("[data-testid='trend-plot'] .u-over").bounding_box()
    assert box and box["width"] > 300
    drawn = week["draws"]
    # Zoom: drag across 6 px near the start of the week (~30 min of 15-min segments).
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 30, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 33, y, steps=3)
    page.mouse.move(box["x"] + 36, y, steps=3)
    page.mouse.up()
    wait_page(page, "s.library.trend.draws > arg && s.library.trend.last.resolution === 'raw'",
              drawn, timeout=60_000)
    zoomed = page.evaluate("window.sensorlink.library.trend.last")
    span_s = (zoomed["to_ns"] - zoomed["from_ns"]) / 1e9
    assert 60 < span_s < 6 * 3600
    # Raw: one point per recorded sample (0.02 Hz) in the window, per stream.
    assert all(abs(n - span_s * 0.02) <= 2 for n in zoomed["points"])
    assert page.console_errors == []


def test_a_live_plot_reaches_back_a_week_into_the_recordings(
        library_service: RunningService, new_page: Any) -> None:
    page = new_page(library_service.url_with(TOKEN))
    wait_page(page, "s.state === 'live' && s.probes?.probes?.rows > 5", timeout=60_000)
    assert page.evaluate("window.sensorlink.probes.probes.history_rows") == 0
    page.select_option("[data-testid='history-probes']", str(7 * 86400))
    wait_page(page, "s.probes.probes.history_rows > 100", timeout=60_000)
    shown = page.evaluate("window.sensorlink.probes.probes")
    now_s = time.time()
    assert now_s - 7.1 * 86400 < shown["history_from"] < now_s - 6.5 * 86400
    assert shown["rows"] > 5  # the live rows go on after the history
    page.select_option("[data-testid='history-probes']", "0")
    wait_page(page, "s.probes.probes.history_rows === 0")
    assert page.console_errors == []
