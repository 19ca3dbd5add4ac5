"""sensorlink info FILE: what a recording holds, and whether it was cut short."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from sensorlink.recording.reader import Recording, stream_stats

HELP = "show a recording's streams, durations, counts, gaps in seq, and whether it was cut short"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an .mcap recording")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")


def _when(t_ns: int) -> str:
    if not t_ns:
        return "-"
    return datetime.datetime.fromtimestamp(t_ns / 1e9, datetime.UTC).isoformat(
        timespec="milliseconds")


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty() and total:
        print(f"\rreading {done}/{total} messages ({100 * done // total}%)", end="",
              file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    with Recording(args.file) as rec:
        stats = stream_stats(rec, _progress)
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)
        session = rec.session
        report = {
            "file": str(rec.path), "bytes": rec.size, "cut_short": rec.cut_short,
            "problem": rec.problem, "start_ns": rec.start_ns, "end_ns": rec.end_ns,
            "duration_s": round(rec.duration_s, 6), "chunks": rec.chunk_count,
            "messages": sum(s.count for s in stats),
            "host": session.get("host"), "version": session.get("version"),
            "part": session.get("part"), "previous": session.get("previous") or None,
            "finished": rec.metadata_named("sensorlink.summary") is not None,
            "streams": [s.to_dict() for s in stats],
        }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    state = "CUT SHORT: " + report["problem"] if rec.cut_short else "complete (summary and index)"
    print(f"file      {report['file']} ({report['bytes'] / 1e6:.2f} MB)")
    print(f"state     {state}")
    print(f"recorded  {_when(rec.start_ns)} .. {_when(rec.end_ns)} ({rec.duration_s:.3f} s)")
    if session:
        extra = f", part {report['part']}" if report["part"] not in (None, "1") else ""
        print(f"by        sensorlink {report['version']} on {report['host']}{extra}")
    print(f"contents  {report['messages']} messages in {report['chunks']} chunks")
    print()
    width = max((len(s.stream.topic) for s in stats), default=5)
    print(f"{'topic':<{width}}  {'schema':<24} {'count':>8} {'rate/s':>8} {'duration':>9}  gaps")
    for s in stats:
        rate = (s.count - 1) / s.duration_s if s.duration_s > 0 and s.count > 1 else 0.0
        if not s.stream.is_sample:
            gaps = "-"
        elif s.missing or s.resets:
            gaps = f"{s.missing} missing in {s.gaps} gap(s)" + (
                f", {s.resets} restart(s)" if s.resets else "")
        else:
            gaps = "none"
        print(f"{s.stream.topic:<{width}}  {s.stream.schema:<24} {s.count:>8} {rate:>8.2f} "
              f"{s.duration_s:>8.3f}s  {gaps}")
    return 0
