"""In-process benchmarks of the per-sensor work: thermal render + encode, steering + Opus, DOA.

Each figure is timed with CPU time (time.process_time, this process only) beside a baseline
timed the same way in the same run.
"""

from __future__ import annotations

import fractions
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from sensorlink import colormap
from sensorlink.analysis.directional import RESPEAKER_4MIC, DirectionFinder, gcc_phat_delay
from sensorlink.hub import Hub
from sensorlink.samples import AudioBlock, SensorInfo, ThermalFrame
from sensorlink.webrtc.media import VIDEO_CLOCK, Beamformer, CameraView
from sensorlink.webrtc.wire import encode_frame

#: (width, height, camera rate): MLX90640 at 8 Hz, Lepton 3.x at ~9 Hz, P2 Pro / TC001 at 25 fps
CAMERAS = ((32, 24, 8.0), (160, 120, 9.0), (256, 192, 25.0))


def cpu_time_per_call(fn: Callable[[int], Any], *, min_calls: int, min_seconds: float) -> float:
    """CPU seconds per call of ``fn(i)``, after one warm-up call."""
    fn(0)
    calls, t0, w0 = 0, time.process_time(), time.monotonic()
    while calls < min_calls or time.monotonic() - w0 < min_seconds:
        calls += 1
        fn(calls)
    return (time.process_time() - t0) / calls


def _scene(width: int, height: int, count: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for k in range(count):
        cx, cy = width * (0.3 + 0.4 * k / count), height * 0.5
        spot = 40.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.07 * width) ** 2))
        out.append((25.0 + spot + rng.normal(0, 0.05, spot.shape)).astype(np.float32))
    return out


def thermal_pipeline(width: int, height: int, rate_hz: float, *, seconds: float) -> dict[str, Any]:
    """Per frame: colour-map + upscale (once per camera frame) and conversion + encode (per viewer,
    at the view's steady output rate), for our yuv420p path vs the RGB path it replaced (render
    RGB, let the encoder convert), both timed here on the same frames."""
    from sensorlink.webrtc.media import render_yuv420
    from sensorlink.webrtc.peer import FRAMES_MAX_HZ

    info = SensorInfo("cam", "thermal", "bench", {"width": width, "height": height, "rate_hz": rate_hz})
    view = CameraView(Hub(), info)  # not started: only its sizes and output rate are used
    scenes = _scene(width, height)
    ranges = [colormap.auto_range(c) for c in scenes]
    yuv = [render_yuv420(c, view.map, r, view.scale) for c, r in zip(scenes, ranges)]
    rgb = [colormap.render(c, view.map, r, view.scale) for c, r in zip(scenes, ranges)]
    base = fractions.Fraction(1, VIDEO_CLOCK)
    encoders = {"yuv": Vp8Encoder(), "rgb": Vp8Encoder()}

    def track(kind: str, pictures: list[np.ndarray], fmt: str) -> Callable[[int], None]:
        def send(i: int) -> None:
            frame = av.VideoFrame.from_ndarray(pictures[i % len(pictures)], format=fmt)
            frame.pts, frame.time_base = i * 6000, base
            encoders[kind].encode(frame)
        return send

    def timed(fn: Callable[[int], Any], share: float = 1.0) -> float:
        return cpu_time_per_call(fn, min_calls=20, min_seconds=seconds * share)

    render_yuv = timed(lambda i: render_yuv420(scenes[i % 16], view.map, ranges[i % 16], view.scale), 0.3)
    render_rgb = timed(lambda i: colormap.render(scenes[i % 16], view.map, ranges[i % 16], view.scale), 0.3)
    track_yuv = timed(track("yuv", yuv, "yuv420p"))
    track_rgb = timed(track("rgb", rgb, "rgb24"))
    exact = timed(lambda i: encode_frame(ThermalFrame("cam", scenes[i % 16], i, 0, 0), ranges[i % 16]), 0.2)
    fps, exact_hz = view.output_fps, min(rate_hz, FRAMES_MAX_HZ)
    vw, vh = view.video_size
    return {"size": f"{width}x{height}", "rate_hz": rate_hz, "video": f"{vw}x{vh}",
            "output_fps": fps, "render_ms": render_yuv * 1e3, "rgb_render_ms": render_rgb * 1e3,
            "encode_ms": track_yuv * 1e3, "rgb_encode_ms": track_rgb * 1e3,
            "exact_ms": exact * 1e3,
            "ms_per_frame": (render_yuv + track_yuv) * 1e3,
            "rgb_ms_per_frame": (render_rgb + track_rgb) * 1e3,
            "frames_per_s": 1.0 / (render_yuv + track_yuv),
            "cpu_per_camera": render_yuv * rate_hz + track_yuv * fps + exact * exact_hz,
            "rgb_cpu_per_camera": render_rgb * rate_hz + track_rgb * fps + exact * exact_hz}


def audio(*, seconds: float) -> dict[str, Any]:
    """Per second of audio from a 4-mic array at 16 kHz: steering + Opus vs plain channel + Opus,
    and SRP-PHAT direction finding vs one opposite pair's GCC-PHAT."""
    rate, block = 16_000, 320  # 20 ms, the track's frame
    info = SensorInfo("mic", "microphone", "bench", {"rate": rate, "channels": 4,
                                                      "mic_channels": [0, 1, 2, 3],
                                                      "positions": [list(p) for p in RESPEAKER_4MIC]})
    beam = Beamformer(Hub(), info)
    beam.steer_to(120.0)
    rng = np.random.default_rng(1)
    pcm = rng.normal(0, 3000, (rate, 4)).astype(np.int16)
    blocks = [AudioBlock("mic", pcm[i:i + block], rate, k, 0, 0)
              for k, i in enumerate(range(0, rate - block + 1, block))]
    steered_enc, plain_enc = OpusEncoder(), OpusEncoder()

    def opus(encoder: OpusEncoder, mono: np.ndarray, i: int) -> None:
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, i * block, fractions.Fraction(1, rate)
        encoder.encode(frame)

    def steered(i: int) -> None:
        opus(steered_enc, beam.beam(blocks[i % len(blocks)]), i)

    def plain(i: int) -> None:
        opus(plain_enc, blocks[i % len(blocks)].pcm[:, 0].copy(), i)

    per_steered = cpu_time_per_call(steered, min_calls=100, min_seconds=seconds)
    per_plain = cpu_time_per_call(plain, min_calls=100, min_seconds=seconds)
    blocks_per_s = rate / block
    finder = DirectionFinder(RESPEAKER_4MIC, rate)
    window = pcm[:int(0.128 * rate)].astype(np.float64)
    per_doa = cpu_time_per_call(lambda i: finder.estimate(window), min_calls=10,
                                min_seconds=seconds / 2)
    max_tau = 0.064 / 343.0
    per_pair = cpu_time_per_call(lambda i: gcc_phat_delay(window[:, 0], window[:, 2], rate, max_tau),
                                 min_calls=20, min_seconds=seconds / 2)
    estimates_per_s = 10  # MicrophoneArrayDriver.analysis_interval_s = 0.1
    return {"steer_opus_cpu": per_steered * blocks_per_s, "plain_opus_cpu": per_plain * blocks_per_s,
            "doa_cpu": per_doa * estimates_per_s, "one_pair_cpu": per_pair * estimates_per_s,
            "doa_ms_per_estimate": per_doa * 1e3}
