"""sensorlink export FILE: readings to CSV, thermal frames to a PNG sequence or an MP4.

Frames are colour-mapped exactly as the live video is (:mod:`sensorlink.colormap`), but with
one range for the whole export (the clip's own min/max unless ``--range`` fixes it), so a
colour means the same temperature in every frame.
"""

from __future__ import annotations

import argparse
import csv
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from sensorlink import colormap
from sensorlink.errors import ConfigError, RecordingError
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.samples import Reading, ThermalFrame

HELP = "export a recording: readings to CSV, thermal frames to PNG images or an MP4 video"

CSV_COLUMNS = ("t_wall_ns", "time_utc", "sensor", "channel", "quantity", "value", "unit",
               "quality", "seq", "t_mono_ns")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an .mcap recording")
    parser.add_argument("--csv", metavar="OUT", help="write every reading, one row each")
    parser.add_argument("--frames", metavar="DIR", help="write thermal frames as PNG images")
    parser.add_argument("--mp4", metavar="OUT", help="write thermal frames as an H.264 video")
    parser.add_argument("--sensor", help="only this thermal camera (needed for --mp4 when "
                        "there are several)")
    parser.add_argument("--colormap", default=colormap.DEFAULT_COLORMAP,
                        choices=sorted(colormap.COLORMAPS))
    parser.add_argument("--range", metavar="LO:HI", help="fixed colour range in °C "
                        "(default: the clip's own min and max)")
    parser.add_argument("--scale", type=int, help="upscale factor (default: about 400 px)")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="seconds from the start of the recording")
    parser.add_argument("--end", type=float, metavar="S", help="seconds from the start")


class Progress:
    """A one-line progress report on stderr, at most a few times a second."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self._last = what, max(total, 1), time.monotonic()
        self.tty = sys.stderr.isatty()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self.tty else 2.0) and done < self.total:
            return
        self._last = now
        line = f"{self.what}: {done}/{self.total} ({100 * done // self.total}%)"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def done(self, summary: str) -> None:
        print(("\r\033[K" if self.tty else "") + summary, file=sys.stderr, flush=True)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB uint8 (H×W×3) picture as a PNG file (8-bit truecolour, no filtering)."""
    h, w = rgb.shape[:2]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = np.concatenate([np.zeros((h, 1), np.uint8),  # filter byte 0 before every row
                           np.ascontiguousarray(rgb, np.uint8).reshape(h, w * 3)], axis=1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def _window(rec: Recording, args: argparse.Namespace) -> tuple[int, int | None]:
    if args.start < 0 or (args.end is not None and args.end <= args.start):
        raise ConfigError("need 0 <= --start < --end", field="start")
    start = rec.start_ns + int(args.start * 1e9)
    end = None if args.end is None else rec.start_ns + int(args.end * 1e9)
    return start, end


def export_csv(rec: Recording, out: Path, start: int, end: int | None) -> int:
    total = sum(rec.message_counts.get(s.channel_id, 0) for s in rec.streams_with({mm.READING}))
    progress = Progress(f"csv {out}", total)
    n = 0
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for _, r in rec.events(start_ns=start, end_ns=end, schemas={mm.READING}):
            assert isinstance(r, Reading)
            when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r.t_wall_ns // 1_000_000_000))
            writer.writerow((r.t_wall_ns, f"{when}.{r.t_wall_ns % 1_000_000_000:09d}Z",
                             r.sensor, r.channel, r.quantity, repr(float(r.value)), r.unit,
                             r.quality, r.seq, r.t_mono_ns))
            n += 1
            progress.update(n)
    progress.done(f"csv: {n} readings -> {out}")
    return n


def _frames(rec: Recording, sensor: str | None, start: int,
            end: int | None) -> Iterator[ThermalFrame]:
    for _, frame in rec.events(start_ns=start, end_ns=end, schemas={mm.RAW_IMAGE}):
        assert isinstance(frame, ThermalFrame)
        if sensor is None or frame.sensor == sensor:
            yield frame


def _colour_range(rec: Recording, args: argparse.Namespace, start: int,
                  end: int | None) -> tuple[float, float]:
    if args.range:
        try:
            lo, hi = (float(v) for v in args.range.split(":"))
        except ValueError as exc:
            raise ConfigError(f"expected LO:HI in °C, got {args.range!r}", field="range") from exc
        if not hi > lo:
            raise ConfigError("HI must be above LO", field="range")
        return lo, hi
    lo, hi = np.inf, -np.inf
    for frame in _frames(rec, args.sensor, start, end):  # first pass: the clip's own range
        lo, hi = min(lo, float(np.nanmin(frame.celsius))), max(hi, float(np.nanmax(frame.celsius)))
    return colormap.auto_range(np.array([lo, hi])) if np.isfinite(lo) else (0.0, 1.0)


def _thermal_total(rec: Recording, sensor: str | None) -> int:
    return sum(rec.message_counts.get(s.channel_id, 0) for s in rec.streams_with({mm.RAW_IMAGE})
               if sensor is None or s.metadata.get("sensor") == sensor)


def export_frames(rec: Recording, out_dir: Path, args: argparse.Namespace, start: int,
                  end: int | None) -> int:
    lo_hi = _colour_range(rec, args, start, end)
    progress = Progress(f"frames {out_dir}", _thermal_total(rec, args.sensor))
    n = 0
    for frame in _frames(rec, args.sensor, start, end):
        scale = args.scale or colormap.upscale_factor(frame.width, frame.height)
        rgb = colormap.render(frame.celsius, args.colormap, lo_hi, scale)
        folder = out_dir / frame.sensor
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{frame.seq:06d}.png").write_bytes(png_bytes(rgb))
        n += 1
        progress.update(n)
    progress.done(f"frames: {n} PNG images in {out_dir} (range {lo_hi[0]:.2f}..{lo_hi[1]:.2f} °C)")
    return n


def export_mp4(rec: Recording, out: Path, args: argparse.Namespace, start: int,
               end: int | None) -> int:
    import av

    cameras = sorted({s.metadata.get("sensor", "?") for s in rec.streams_with({mm.RAW_IMAGE})})
    if args.sensor is None and len(cameras) > 1:
        raise ConfigError(f"several cameras ({', '.join(cameras)}): choose one with --sensor",
                          field="sensor")
    lo_hi = _colour_range(rec, args, start, end)
    progress = Progress(f"mp4 {out}", _thermal_total(rec, args.sensor))
    time_base = Fraction(1, 1000)  # pts in ms from the recorded times: frame timing survives
    n, last_pts = 0, -1
    with av.open(str(out), "w") as container:
        stream = None
        for frame in _frames(rec, args.sensor, start, end):
            scale = args.scale or colormap.upscale_factor(frame.width, frame.height)
            rgb = colormap.render(frame.celsius, args.colormap, lo_hi, scale)
            if stream is None:
                stream = container.add_stream("libx264", rate=30)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.time_base = time_base
                stream.codec_context.time_base = time_base
                t0 = frame.t_wall_ns
            video = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            video.pts = max((frame.t_wall_ns - t0) // 1_000_000, last_pts + 1)
            video.time_base = time_base
            last_pts = video.pts
            container.mux(stream.encode(video))
            n += 1
            progress.update(n)
        if stream is None:
            raise RecordingError(f"{rec.path}: no thermal frames to export")
        container.mux(stream.encode(None))
    progress.done(f"mp4: {n} frames -> {out}")
    return n


def main(args: argparse.Namespace) -> int:
    if not (args.csv or args.frames or args.mp4):
        raise ConfigError("nothing to do: give --csv OUT, --frames DIR and/or --mp4 OUT")
    with Recording(args.file) as rec:
        if rec.cut_short:
            print(f"note: {rec.path} was cut short ({rec.problem}); exporting what it holds",
                  file=sys.stderr)
        start, end = _window(rec, args)
        if args.csv:
            export_csv(rec, Path(args.csv), start, end)
        if args.frames:
            export_frames(rec, Path(args.frames), args, start, end)
        if args.mp4:
            export_mp4(rec, Path(args.mp4), args, start, end)
    return 0
