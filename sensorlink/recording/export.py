"""Exports of a recording or of a time window across segments: readings to CSV or Parquet, the
alarms to CSV, a microphone to WAV, thermal frames to PNG images or an MP4 clip.

Every exporter takes a :class:`~sensorlink.recording.reader.Recording` or a
:class:`~sensorlink.recording.recording_set.RecordingSet` (the segments of a window, read as one
timeline) and a window ``start_ns <= t < end_ns``. Frames are colour-mapped exactly as the live
video is (:mod:`sensorlink.colormap`), with one range for the whole clip (its own min/max unless
fixed), so a colour means the same temperature in every frame. Audio recorded as FLAC is
decoded bit-exact, so a WAV export holds the very samples the microphones gave.
"""

from __future__ import annotations

import csv
import struct
import sys
import time
import wave
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sensorlink import colormap
from sensorlink.errors import ConfigError, RecordingError
from sensorlink.recording import messages as mm
from sensorlink.recording.reader import Recording
from sensorlink.recording.recording_set import RecordingSet
from sensorlink.recording.segment_stats import AlarmMark, SegmentStats
from sensorlink.samples import AudioBlock, Reading, ThermalFrame

Source = Recording | RecordingSet
CSV_COLUMNS = ("t_wall_ns", "time_utc", "sensor", "channel", "quantity", "value", "unit",
               "quality", "seq", "t_mono_ns")
ALARM_COLUMNS = ("t_wall_ns", "time_utc", "rule", "level", "transition", "message", "segment")
PARQUET_ROWS = 65_536  # readings per row group


class Progress:
    """A progress bar on stderr, redrawn a few times a second; silent unless ``shown``."""

    def __init__(self, what: str, total: int, *, shown: bool | None = None) -> None:
        self.what, self.total, self._last = what, max(total, 1), 0.0
        self.tty = sys.stderr.isatty()
        self.shown = self.tty if shown is None else shown

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.shown or (now - self._last < (0.2 if self.tty else 2.0)
                              and done < self.total):
            return
        self._last = now
        part = min(done / self.total, 1.0)
        bar = "#" * int(part * 30)
        line = f"{self.what} [{bar:<30}] {100 * part:3.0f}% {done}/{self.total}"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def done(self, summary: str) -> None:
        print(("\r\033[K" if self.tty and self.shown else "") + summary, file=sys.stderr,
              flush=True)


@dataclass(frozen=True)
class ClipOptions:
    sensor: str | None = None
    colormap: str = colormap.DEFAULT_COLORMAP
    range: tuple[float, float] | None = None
    scale: int | None = None


def utc_text(t_ns: int) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ns // 1_000_000_000))
    return f"{when}.{t_ns % 1_000_000_000:09d}Z"


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


def _readings(rec: Source, start: int, end: int | None) -> Iterator[Reading]:
    for _, r in rec.events(start_ns=start, end_ns=end, schemas={mm.READING}):
        assert isinstance(r, Reading)
        yield r


def export_csv(rec: Source, out: Path, start: int, end: int | None, *,
               progress: bool | None = None) -> int:
    bar = Progress(f"csv {out}", rec.count({mm.READING}), shown=progress)
    n = 0
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in _readings(rec, start, end):
            writer.writerow((r.t_wall_ns, utc_text(r.t_wall_ns), r.sensor, r.channel,
                             r.quantity, repr(float(r.value)), r.unit, r.quality, r.seq,
                             r.t_mono_ns))
            n += 1
            bar.update(n)
    bar.done(f"csv: {n} readings -> {out}")
    return n


def export_parquet(rec: Source, out: Path, start: int, end: int | None, *,
                   progress: bool | None = None) -> int:
    """The CSV's columns as typed Parquet (time as a UTC timestamp in ns, values as doubles)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("Parquet needs pyarrow: pip install 'sensorlink[parquet]'",
                          field="parquet") from exc
    text = pa.dictionary(pa.int32(), pa.string())  # a few sensor names, repeated a million times
    schema = pa.schema([("t_wall_ns", pa.int64()), ("time_utc", pa.timestamp("ns", tz="UTC")),
                        ("sensor", text), ("channel", text), ("quantity", text),
                        ("value", pa.float64()), ("unit", text), ("quality", text),
                        ("seq", pa.int64()), ("t_mono_ns", pa.int64())])
    bar = Progress(f"parquet {out}", rec.count({mm.READING}), shown=progress)
    n = 0
    columns: list[list[Any]] = [[] for _ in schema]

    def flush(writer: Any) -> None:
        arrays = [pa.array(col, type=schema.field(i).type) for i, col in enumerate(columns)]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        for col in columns:
            col.clear()

    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for r in _readings(rec, start, end):
            for col, value in zip(columns, (r.t_wall_ns, r.t_wall_ns, r.sensor, r.channel,
                                            r.quantity, float(r.value), r.unit, r.quality,
                                            r.seq, r.t_mono_ns), strict=True):
                col.append(value)
            n += 1
            if n % PARQUET_ROWS == 0:
                flush(writer)
            bar.update(n)
        if columns[0] or n == 0:
            flush(writer)
    bar.done(f"parquet: {n} readings -> {out}")
    return n


def alarms_in(paths: list[Path], start: int, end: int | None) -> list[tuple[AlarmMark, str]]:
    """Every alarm state change the segments hold in the window, with its segment's name."""
    out = []
    for path in paths:
        with Recording(path) as rec:
            for mark in SegmentStats.from_recording(rec).alarms:
                if mark.t_wall_ns >= start and (end is None or mark.t_wall_ns < end):
                    out.append((mark, path.name))
    return sorted(out, key=lambda m: m[0].t_wall_ns)


def export_alarms(paths: list[Path], out: Path, start: int, end: int | None) -> int:
    marks = alarms_in(paths, start, end)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(ALARM_COLUMNS)
        for m, segment in marks:
            writer.writerow((m.t_wall_ns, utc_text(m.t_wall_ns), m.rule, m.level, m.transition,
                             m.message, segment))
    print(f"alarms: {len(marks)} alarm events -> {out}", file=sys.stderr, flush=True)
    return len(marks)


def export_wav(rec: Source, out: Path, start: int, end: int | None, sensor: str | None, *,
               progress: bool | None = None) -> int:
    """One microphone array's recorded channels as a multi-channel 16-bit WAV file."""
    audio = {mm.RAW_AUDIO, mm.COMPRESSED_AUDIO}
    bar = Progress(f"wav {out}", rec.count(audio), shown=progress)
    n, wav, chosen = 0, None, sensor
    try:
        for _, block in rec.events(start_ns=start, end_ns=end, schemas=audio):
            assert isinstance(block, AudioBlock)
            chosen = chosen or block.sensor
            if block.sensor != chosen:
                continue
            if wav is None:
                wav = wave.open(str(out), "wb")  # noqa: SIM115 (closed in finally)
                wav.setnchannels(block.channels)
                wav.setsampwidth(2)
                wav.setframerate(block.rate)
            wav.writeframes(np.ascontiguousarray(block.pcm, dtype="<i2").tobytes())
            n += 1
            bar.update(n)
    finally:
        if wav is not None:
            wav.close()
    if wav is None:
        raise RecordingError(f"no audio{f' of {sensor}' if sensor else ''} to export")
    bar.done(f"wav: {n} blocks of {chosen} -> {out}")
    return n


def _frames(rec: Source, sensor: str | None, start: int,
            end: int | None) -> Iterator[ThermalFrame]:
    for _, frame in rec.events(start_ns=start, end_ns=end, schemas={mm.RAW_IMAGE}):
        assert isinstance(frame, ThermalFrame)
        if sensor is None or frame.sensor == sensor:
            yield frame


def _colour_range(rec: Source, clip: ClipOptions, start: int,
                  end: int | None) -> tuple[float, float]:
    if clip.range is not None:
        return clip.range
    lo, hi = np.inf, -np.inf
    for frame in _frames(rec, clip.sensor, start, end):  # first pass: the clip's own range
        lo, hi = min(lo, float(np.nanmin(frame.celsius))), max(hi, float(np.nanmax(frame.celsius)))
    return colormap.auto_range(np.array([lo, hi])) if np.isfinite(lo) else (0.0, 1.0)


def export_frames(rec: Source, out_dir: Path, clip: ClipOptions, start: int, end: int | None,
                  *, progress: bool | None = None) -> int:
    lo_hi = _colour_range(rec, clip, start, end)
    bar = Progress(f"frames {out_dir}", rec.count({mm.RAW_IMAGE}), shown=progress)
    n = 0
    for frame in _frames(rec, clip.sensor, start, end):
        scale = clip.scale or colormap.upscale_factor(frame.width, frame.height)
        rgb = colormap.render(frame.celsius, clip.colormap, lo_hi, scale)
        folder = out_dir / frame.sensor
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{frame.seq:06d}.png").write_bytes(png_bytes(rgb))
        n += 1
        bar.update(n)
    bar.done(f"frames: {n} PNG images in {out_dir} (range {lo_hi[0]:.2f}..{lo_hi[1]:.2f} °C)")
    return n


def cameras_in(rec: Source) -> list[str]:
    names: set[str] = set()
    for path in (p.path for p in rec.parts) if isinstance(rec, RecordingSet) else [rec.path]:
        with Recording(path) as one:
            names |= {s.metadata.get("sensor", "?") for s in one.streams_with({mm.RAW_IMAGE})}
    return sorted(names)


def export_mp4(rec: Source, out: Path, clip: ClipOptions, start: int, end: int | None, *,
               progress: bool | None = None) -> int:
    import av

    cameras = cameras_in(rec)
    if clip.sensor is None and len(cameras) > 1:
        raise ConfigError(f"several cameras ({', '.join(cameras)}): choose one with --sensor",
                          field="sensor")
    lo_hi = _colour_range(rec, clip, start, end)
    bar = Progress(f"mp4 {out}", rec.count({mm.RAW_IMAGE}), shown=progress)
    time_base = Fraction(1, 1000)  # pts in ms from the recorded times: frame timing survives
    n, last_pts = 0, -1
    with av.open(str(out), "w") as container:
        stream = None
        for frame in _frames(rec, clip.sensor, start, end):
            scale = clip.scale or colormap.upscale_factor(frame.width, frame.height)
            rgb = colormap.render(frame.celsius, clip.colormap, lo_hi, scale)
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
            bar.update(n)
        if stream is None:
            raise RecordingError(f"{rec.path}: no thermal frames to export")
        container.mux(stream.encode(None))
    bar.done(f"mp4: {n} frames -> {out}")
    return n


# -- what to export: files, or a window of a recordings directory ----------------------------

def parse_time(text: str, field: str) -> int:
    """``2026-12-01T08:00`` (local time), ``2026-12-01T08:00:00Z``, ``...+01:00``, or seconds
    since the epoch → ns since the epoch."""
    import datetime

    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError as exc:
        raise ConfigError(f"expected a date and time like 2026-12-01T08:00 (local), "
                          f"2026-12-01T08:00Z or seconds since 1970, got {text!r}",
                          field=field) from exc
    if when.tzinfo is None:
        when = when.astimezone()  # the machine's own time zone, as a person at it means
    return int(when.timestamp() * 1e9)


@dataclass
class Window:
    """The segments to read and the time window within them."""

    source: Source
    paths: list[Path]
    start_ns: int
    end_ns: int | None


def resolve_window(files: list[str], directory: str | None, *, start_s: float = 0.0,
                   end_s: float | None = None, from_ns: int | None = None,
                   to_ns: int | None = None) -> Window:
    """Files (one or several segments) or the segments of ``directory`` that overlap
    ``[from_ns, to_ns)`` (through its recordings library); ``start_s``/``end_s`` count from the
    first segment's start."""
    if start_s < 0 or (end_s is not None and end_s <= start_s):
        raise ConfigError("need 0 <= --start < --end", field="start")
    if from_ns is not None and to_ns is not None and to_ns <= from_ns:
        raise ConfigError("--to must be after --from", field="to")
    if directory is not None:
        from sensorlink.recording.library import Library

        library = Library(directory, recover_cut=False)  # export reads; it rewrites nothing
        library.sync()
        segments = [s for s in library.segments(from_ns, to_ns) if s.replayable]
        if not segments:
            raise RecordingError(f"no recorded segment in {directory} between "
                                 f"{utc_text(from_ns or 0)} and "
                                 f"{utc_text(to_ns) if to_ns else 'now'}")
        paths = [library.path_of(s) for s in segments]
    elif files:
        paths = [Path(f) for f in files]
    else:
        raise ConfigError("give recording files, or --dir DIR with --from/--to", field="file")
    source: Source = Recording(paths[0]) if len(paths) == 1 else RecordingSet(paths)
    start = source.start_ns + int(start_s * 1e9)
    end = None if end_s is None else source.start_ns + int(end_s * 1e9)
    if from_ns is not None:
        start = max(start, from_ns)
    if to_ns is not None:
        end = to_ns if end is None else min(end, to_ns)
    return Window(source, paths, start, end)
