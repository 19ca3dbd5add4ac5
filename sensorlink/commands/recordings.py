"""sensorlink recordings list|show|prune|reindex: the recordings library of a directory."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from sensorlink.config import load_config
from sensorlink.config_recording import RecordingConfig
from sensorlink.errors import ConfigError
from sensorlink.recording.library import Library
from sensorlink.recording.library_api import days, segments_in
from sensorlink.recording.retention import RetentionPolicy, prune

HELP = ("the recordings library: list recordings by day, show a segment, prune by the "
        "retention rules, reindex from the files")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "show", "prune", "reindex"))
    parser.add_argument("dir", nargs="?", help="the recordings directory (default: the "
                        "config's record_dir, else ./recordings)")
    parser.add_argument("--config", metavar="TOML", help="take the directory and the "
                        "retention rules ([recording]) from this config")
    parser.add_argument("--segment", metavar="NAME", help="show: this segment (default: all "
                        "of the latest day)")
    parser.add_argument("--keep-days", type=float, metavar="D")
    parser.add_argument("--keep-alarm-days", type=float, metavar="D")
    parser.add_argument("--max-total-gb", type=float, metavar="GB")
    parser.add_argument("--dry-run", action="store_true", help="prune: say, delete nothing")
    parser.add_argument("--rebuild", action="store_true",
                        help="reindex: forget the index and build it again from every file")
    parser.add_argument("--json", action="store_true", help="one JSON document")


def _when(t_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t_ns / 1e9))


def _settings(args: argparse.Namespace) -> tuple[Path, RecordingConfig]:
    config, directory = RecordingConfig(), None
    if args.config:
        loaded = load_config(args.config)
        config, directory = loaded.recording, loaded.service.record_dir
    changes = {k: v for k, v in (("keep_days", args.keep_days),
                                 ("keep_alarm_days", args.keep_alarm_days),
                                 ("max_total_gb", args.max_total_gb)) if v is not None}
    try:
        config = dataclasses.replace(config, **changes)
    except ValueError as exc:
        name, _, message = str(exc).partition(": ")
        raise ConfigError(message, field=f"--{name.replace('_', '-')}") from exc
    return Path(args.dir or directory or "recordings"), config


def _print(args: argparse.Namespace, report: Any, lines: list[str]) -> None:
    print(json.dumps(report, ensure_ascii=False) if args.json else "\n".join(lines))


def main(args: argparse.Namespace) -> int:
    directory, config = _settings(args)
    if not directory.is_dir():
        raise ConfigError("no such directory", source=str(directory))
    library = Library(directory)
    if args.action == "reindex":
        changes = library.rebuild() if args.rebuild else library.sync()
        _print(args, changes, [f"{directory}: {len(library.segments())} segments indexed; "
                               f"{', '.join(f'{len(v)} {k}' for k, v in changes.items())}"])
        return 0
    library.sync()
    if args.action == "prune":
        doomed = prune(library, RetentionPolicy.from_config(config), dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        _print(args, [{"name": s.name, "size": s.size, "reason": r} for s, r in doomed],
               [f"{verb} {s.name} ({_when(s.start_ns)}, {s.size / 1e6:.1f} MB): {r}"
                for s, r in doomed] or ["nothing to delete"])
        return 0
    if args.action == "show":
        segments = library.segments()
        if args.segment:
            segments = [s for s in segments if s.name == args.segment]
            if not segments:
                raise ConfigError(f"no segment named {args.segment!r} in {directory}",
                                  field="segment")
        report = {"segments": []}
        if segments:  # the one asked for, or the latest
            one = segments[-1]
            report = segments_in(library, one.start_ns, one.end_ns + 1)
            report["segments"] = [s for s in report["segments"] if s["name"] == one.name]
        lines = []
        for s in report["segments"]:
            lines.append(f"{s['name']}  {s['state']}  {_when(s['start_ns'])} .. "
                         f"{_when(s['end_ns'])}  {s['size'] / 1e6:.1f} MB  {s['samples']} samples"
                         + (f"  ({s['problem']})" if s["problem"] else ""))
            lines += [f"    {topic}: {n}" for topic, n in sorted(s["streams"].items())]
            lines += [f"    alarm {_when(a[0])} {a[1]} {a[2]} {a[3]} {a[4]}"
                      for a in s["alarm_marks"]]
        _print(args, report, lines or ["no segments"])
        return 0
    offset = -time.altzone // 60 if time.localtime().tm_isdst > 0 else -time.timezone // 60
    report = days(library, offset)
    lines = []
    for day in report["days"]:
        lines.append(f"{day['day']}  {day['segments']} segments, {day['bytes'] / 1e6:.1f} MB")
        for run in day["runs"]:
            states = ", ".join(f"{n} {k}" for k, n in sorted(run["states"].items()))
            alarms = f", {len(run['alarms'])} alarm events" if run["alarms"] else ""
            lines.append(f"  {_when(run['start_ns'])[11:]} .. {_when(run['end_ns'])[11:]}  "
                         f"{run['segments']} segments ({states}), {', '.join(run['sensors'])}"
                         f"{alarms}")
    _print(args, report, lines or [f"{directory}: no recordings"])
    return 0
