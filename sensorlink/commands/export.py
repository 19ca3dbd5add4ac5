"""sensorlink export: readings to CSV or Parquet, alarms to CSV, a microphone to WAV, thermal
frames to PNG images or an MP4, from one recording or a time window across segments
(the exporters: :mod:`sensorlink.recording.export`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sensorlink import colormap
from sensorlink.errors import ConfigError
from sensorlink.recording import export

HELP = ("export recordings (files, or a time window of a recordings directory): readings to "
        "CSV or Parquet, alarms to CSV, audio to WAV, thermal frames to PNG images or an MP4")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="*", help=".mcap recordings (segments of one timeline)")
    parser.add_argument("--dir", metavar="DIR", help="a recordings directory: export the "
                        "segments between --from and --to, across segment boundaries")
    parser.add_argument("--from", dest="from_time", metavar="TIME",
                        help="start of the window: 2026-12-01T08:00 (local time), "
                        "2026-12-01T08:00Z, or seconds since 1970")
    parser.add_argument("--to", dest="to_time", metavar="TIME", help="end of the window")
    parser.add_argument("--csv", metavar="OUT", help="write every reading, one row each")
    parser.add_argument("--parquet", metavar="OUT",
                        help="the same as Parquet (needs: pip install 'sensorlink[parquet]')")
    parser.add_argument("--alarms-csv", metavar="OUT", help="write every alarm state change")
    parser.add_argument("--wav", metavar="OUT", help="write a microphone array's recorded "
                        "channels as a WAV file (--sensor picks the array)")
    parser.add_argument("--frames", metavar="DIR", help="write thermal frames as PNG images")
    parser.add_argument("--mp4", metavar="OUT", help="write thermal frames as an H.264 video")
    parser.add_argument("--sensor", help="only this camera or microphone (needed for --mp4 "
                        "when there are several cameras)")
    parser.add_argument("--colormap", default=colormap.DEFAULT_COLORMAP,
                        choices=sorted(colormap.COLORMAPS))
    parser.add_argument("--range", metavar="LO:HI", help="fixed colour range in °C "
                        "(default: the clip's own min and max)")
    parser.add_argument("--scale", type=int, help="upscale factor (default: about 400 px)")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="seconds from the start of the (first) recording")
    parser.add_argument("--end", type=float, metavar="S", help="seconds from the start")
    parser.add_argument("--progress", action="store_true",
                        help="show a progress bar on stderr even when it is not a terminal")


def _range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError as exc:
        raise ConfigError(f"expected LO:HI in °C, got {text!r}", field="range") from exc
    if not hi > lo:
        raise ConfigError("HI must be above LO", field="range")
    return lo, hi


def main(args: argparse.Namespace) -> int:
    outputs = (args.csv, args.parquet, args.alarms_csv, args.wav, args.frames, args.mp4)
    if not any(outputs):
        raise ConfigError("nothing to do: give --csv, --parquet, --alarms-csv, --wav, "
                          "--frames and/or --mp4")
    clip = export.ClipOptions(args.sensor, args.colormap, _range(args.range), args.scale)
    window = export.resolve_window(
        args.file, args.dir, start_s=args.start, end_s=args.end,
        from_ns=export.parse_time(args.from_time, "from") if args.from_time else None,
        to_ns=export.parse_time(args.to_time, "to") if args.to_time else None)
    progress = True if args.progress else None
    with window.source as rec:
        if rec.cut_short:
            print("note: a segment was cut short; exporting what it holds", file=sys.stderr)
        span = (window.start_ns, window.end_ns)
        if args.csv:
            export.export_csv(rec, Path(args.csv), *span, progress=progress)
        if args.parquet:
            export.export_parquet(rec, Path(args.parquet), *span, progress=progress)
        if args.alarms_csv:
            export.export_alarms(window.paths, Path(args.alarms_csv), *span)
        if args.wav:
            export.export_wav(rec, Path(args.wav), *span, args.sensor, progress=progress)
        if args.frames:
            export.export_frames(rec, Path(args.frames), clip, *span, progress=progress)
        if args.mp4:
            export.export_mp4(rec, Path(args.mp4), clip, *span, progress=progress)
    return 0
