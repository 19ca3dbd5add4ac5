"""Region statistics and band levels on frames and audio whose answer is known.

Regions are checked against numpy on masks built here independently (slices for boxes, a
fraction-exact point-in-polygon for polygons, listed pixels for lines), for every kind, at the
picture's edges and on a mirrored picture. The emissivity correction is checked against values
worked out by hand from T_obj⁴ = (T_app⁴ − (1−ε)·T_refl⁴)/ε in kelvin. Band levels of a tone
plus noise are checked against the level computed from the tone's amplitude.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from sensorlink.analysis.bands import BandAnalyzer, band_set, standard_bands
from sensorlink.analysis.regions import RegionSet, corrected_celsius
from sensorlink.config_monitoring import BandsConfig, BandSpec, RegionConfig
from sensorlink.samples import AudioBlock, SensorInfo, ThermalFrame

W, H = 32, 24


def frame(celsius: np.ndarray, seq: int = 0, sensor: str = "cam") -> ThermalFrame:
    return ThermalFrame(sensor, celsius.astype(np.float32), seq, 1_000 + seq, 2_000 + seq)


def random_picture(seed: int = 7, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    # float32 as drivers give; distinct values so the hottest pixel is unique.
    rng = np.random.default_rng(seed)
    return (20.0 + 50.0 * rng.permutation(shape[0] * shape[1]).reshape(shape)
            / (shape[0] * shape[1])).astype(np.float32)


def readings_of(regions: list[RegionConfig], picture: np.ndarray) -> dict[str, float]:
    out = RegionSet("cam", regions).compute(frame(picture))
    return {r.channel: r.value for r in out}


def expected(picture: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, int, int]:
    values = picture[mask]
    ys, xs = np.nonzero(mask)
    k = int(np.argmax(values))
    return float(values.max()), float(values.min()), float(values.mean(dtype=np.float64)), \
        int(xs[k]), int(ys[k])


def assert_stats(got: dict[str, float], name: str, want: tuple[float, ...]) -> None:
    for stat, value in zip(("max", "min", "mean", "max_x", "max_y"), want):
        assert got[f"{name}/{stat}"] == pytest.approx(value, abs=1e-4), (name, stat)


def inside_polygon(points: list[tuple[int, int]], x: int, y: int) -> bool:
    """Even-odd with exact fractions, plus on-edge: an implementation of its own."""
    n, hit = len(points), False
    for i in range(n):
        (ax, ay), (bx, by) = points[i], points[(i + 1) % n]
        if (bx - ax) * (y - ay) == (by - ay) * (x - ax) and min(ax, bx) <= x <= max(ax, bx) \
                and min(ay, by) <= y <= max(ay, by):
            return True
        if (ay > y) != (by > y):
            cross_x = ax + Fraction(bx - ax) * Fraction(y - ay, by - ay)
            if cross_x > x:
                hit = not hit
    return hit


# -- emissivity ---------------------------------------------------------------------------------

@pytest.mark.parametrize("apparent, emissivity, reflected, obj", [
    # worked out by hand: (323.15⁴ − 0.1·293.15⁴)/0.9 = 1.12961e10 K⁴ → 326.009 K → 52.859 °C
    (50.0, 0.9, 20.0, 52.85904722451113),
    (100.0, 0.5, 25.0, 146.02784918033473),
    # a surface colder than what it reflects reads warmer than it is: the correction lowers it
    (30.0, 0.95, 40.0, 29.44554516226401),
    (80.0, 0.3, 20.0, 158.1832973617232),
])
def test_emissivity_correction_matches_hand_computed_values(apparent, emissivity, reflected,
                                                            obj) -> None:
    assert float(corrected_celsius(apparent, emissivity, reflected)) == pytest.approx(obj,
                                                                                      abs=1e-9)
    # and through a region, as the readings carry it
    region = RegionConfig("r", "spot", ((3, 2),), emissivity, reflected)
    picture = np.full((H, W), apparent, dtype=np.float32)
    got = readings_of([region], picture)
    assert got["r/max"] == pytest.approx(obj, abs=1e-3)  # float32 picture: 1 mK


def test_emissivity_one_changes_nothing_and_no_real_solution_is_flagged_bad() -> None:
    assert float(corrected_celsius(42.5, 1.0, 90.0)) == pytest.approx(42.5)
    # Apparent 0 °C with ε = 0.1 and a 100 °C reflection: less radiance than the reflection
    # alone gives, so there is no object temperature; the frame's readings say "bad".
    assert math.isnan(float(corrected_celsius(0.0, 0.1, 100.0)))
    region = RegionConfig("shiny", "box", ((0, 0), (3, 3)), 0.1, 100.0)
    out = RegionSet("cam", [region]).compute(frame(np.zeros((H, W))))
    assert {r.quality for r in out} == {"bad"} and len(out) == 5


# -- region kinds -------------------------------------------------------------------------------

def test_spot_and_box_equal_numpy_including_the_picture_edges() -> None:
    picture = random_picture()
    regions = [RegionConfig("spot", "spot", ((31, 23),)),
               RegionConfig("corner", "spot", ((0, 0),)),
               RegionConfig("box", "box", ((27, 19), (4, 4))),       # corners in either order
               RegionConfig("edge", "box", ((20, 0), (31, 23))),     # touches two edges
               RegionConfig("whole", "box", ((0, 0), (31, 23)))]
    got = readings_of(regions, picture)
    mask = np.zeros((H, W), dtype=bool)
    mask[23, 31] = True
    assert_stats(got, "spot", expected(picture, mask))
    mask[:] = False
    mask[0, 0] = True
    assert_stats(got, "corner", expected(picture, mask))
    mask[:] = False
    mask[4:20, 4:28] = True
    assert_stats(got, "box", expected(picture, mask))
    mask[:] = False
    mask[0:24, 20:32] = True
    assert_stats(got, "edge", expected(picture, mask))
    assert_stats(got, "whole", expected(picture, np.ones((H, W), dtype=bool)))


def test_line_covers_one_pixel_per_step() -> None:
    picture = random_picture(3)
    lines = {"row": (((2, 5), (9, 5)), [(x, 5) for x in range(2, 10)]),
             "column": (((31, 23), (31, 0)), [(31, y) for y in range(24)]),
             "diagonal": (((0, 0), (5, 5)), [(k, k) for k in range(6)]),
             # 2 across for 4 down: x = 0, 0.5, 1, 1.5, 2 → round half to even: 0 0 1 2 2
             "slope": (((0, 0), (2, 4)), [(0, 0), (0, 1), (1, 2), (2, 3), (2, 4)])}
    regions = [RegionConfig(n, "line", ends) for n, (ends, _) in lines.items()]
    got = readings_of(regions, picture)
    for name, (_, pixels) in lines.items():
        mask = np.zeros((H, W), dtype=bool)
        for x, y in pixels:
            mask[y, x] = True
        assert_stats(got, name, expected(picture, mask))


@pytest.mark.parametrize("points", [
    [(2, 2), (20, 3), (12, 18)],                                # triangle
    [(0, 0), (31, 0), (31, 23), (0, 23)],                       # the whole picture
    [(5, 1), (25, 1), (25, 20), (15, 8), (5, 20)],              # concave
    [(0, 10), (16, 0), (31, 10), (16, 23)],                     # diamond touching 3 edges
])
def test_polygon_equals_an_independent_point_in_polygon(points) -> None:
    picture = random_picture(11)
    got = readings_of([RegionConfig("p", "polygon", tuple(points))], picture)
    mask = np.array([[inside_polygon(points, x, y) for x in range(W)] for y in range(H)])
    assert mask.sum() > 3
    assert_stats(got, "p", expected(picture, mask))


def test_mirrored_sensor_same_region_mirrored_gives_the_same_statistics() -> None:
    # A sensor that mirrors its rows (GY-MCU90640) hands the hub an oriented picture; a region
    # drawn on the picture as shown, mirrored, must read the same pixels.
    picture = random_picture(5)
    flipped = picture[::-1, :].copy()
    box = RegionConfig("b", "box", ((3, 2), (12, 9)))
    mirrored = RegionConfig("b", "box", ((3, H - 1 - 2), (12, H - 1 - 9)))
    a, b = readings_of([box], picture), readings_of([mirrored], flipped)
    for stat in ("max", "min", "mean", "max_x"):
        assert a[f"b/{stat}"] == pytest.approx(b[f"b/{stat}"])
    assert b["b/max_y"] == H - 1 - a["b/max_y"]


def test_readings_have_contiguous_seq_and_the_frame_times_and_move_with_set() -> None:
    regions = RegionSet("cam", [RegionConfig("s", "spot", ((1, 1),))])
    picture = random_picture()
    first = regions.compute(frame(picture, 0))
    regions.set(RegionConfig("s", "spot", ((2, 1),)))       # moved by an operator
    second = regions.compute(frame(picture, 1))
    assert [r.seq for r in first + second if r.channel == "s/max"] == [0, 1]
    assert second[0].t_mono_ns == 1_001 and second[0].t_wall_ns == 2_001
    assert {r.channel: r.value for r in second}["s/max"] == pytest.approx(float(picture[1, 2]))
    regions.delete("s")
    assert regions.compute(frame(picture, 2)) == []


# -- band levels --------------------------------------------------------------------------------

def mic_info(channels: int = 4, rate: int = 16000) -> SensorInfo:
    return SensorInfo("mic", "microphone", "sim-microphone",
                      {"rate": rate, "channels": channels})


def test_third_octave_is_the_default_set_with_iec_edges() -> None:
    bands = standard_bands("third-octave", 100.0, 8000.0)
    names = [b.name for b in bands]
    assert names[0] == "100" and "1k" in names and "1.25k" in names and names[-1] == "6.3k"
    one_k = next(b for b in bands if b.name == "1k")
    assert one_k.low_hz == pytest.approx(1000 * 10 ** -0.05) and \
        one_k.high_hz == pytest.approx(1000 * 10 ** 0.05)
    assert BandsConfig().set == "third-octave"
    octaves = [b.name for b in standard_bands("octave", 100.0, 8000.0)]
    assert octaves == ["125", "250", "500", "1k", "2k", "4k"]


@pytest.mark.parametrize("hz, amplitude", [(1000.0, 8000.0), (2500.0, 2000.0), (400.0, 16000.0)])
def test_band_level_of_a_tone_plus_noise_is_within_1_db(hz, amplitude) -> None:
    rate, channels = 16000, 4
    config = BandsConfig(custom=(BandSpec("wide", 100.0, 7000.0),))
    analyzer = BandAnalyzer(mic_info(channels, rate), config)
    rng = np.random.default_rng(1)
    n = analyzer.window
    t = np.arange(n) / rate
    tone = amplitude * np.sin(2 * np.pi * hz * t)
    noise_rms = amplitude / 100  # 40 dB below the tone
    pcm = (tone[:, None] + rng.normal(0, noise_rms, (n, channels))).astype(np.int16)
    block = AudioBlock("mic", pcm, rate, 0, 5, 6)
    assert analyzer.feed(block)
    readings, _ = analyzer.analyse(block, spectrum=False)
    levels = {r.channel: r.value for r in readings}
    computed = 20 * math.log10(amplitude / math.sqrt(2) / 32768)
    band = next(b for b in band_set(config, rate, n) if b.low_hz <= hz < b.high_hz
                and b.name != "wide")
    assert levels[f"band/{band.name}"] == pytest.approx(computed, abs=1.0)
    assert levels["band/wide"] == pytest.approx(computed, abs=1.0)
    # a band two octaves away holds only the noise (and the window's leakage): far below
    far = next(b for b in band_set(config, rate, n) if b.low_hz > 4 * hz or b.high_hz < hz / 4)
    assert levels[f"band/{far.name}"] < computed - 25
    assert {r.unit for r in readings} == {"dBFS"}


def test_channels_option_gives_each_microphone_its_bands() -> None:
    config = BandsConfig(set="octave", channels=True)
    analyzer = BandAnalyzer(mic_info(2), config)
    n = analyzer.window
    pcm = np.zeros((n, 2), dtype=np.int16)
    pcm[:, 1] = (4000 * np.sin(2 * np.pi * 1000 * np.arange(n) / 16000)).astype(np.int16)
    block = AudioBlock("mic", pcm, 16000, 0, 0, 0)
    assert analyzer.feed(block)
    levels = {r.channel: r.value for r in analyzer.analyse(block, spectrum=False)[0]}
    assert levels["ch1/band/1k"] == pytest.approx(20 * math.log10(4000 / math.sqrt(2) / 32768),
                                                  abs=1.0)
    assert levels["ch0/band/1k"] < -150  # silence
    assert set(analyzer.stream_names()) == set(levels)
