"""sensorlink recover FILE: make a recording cut short by a crash complete and indexed again."""

from __future__ import annotations

import argparse

from sensorlink.recording.recovery import recover

HELP = ("rewrite a recording cut short (no summary, no footer) as a complete, indexed file "
        "that default MCAP readers (make_reader, @mcap/core) open")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an .mcap recording")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="write the complete file here (a new file) and leave FILE as it is; "
                             "without it FILE is replaced, once the new file is safely on disk")


def main(args: argparse.Namespace) -> int:
    result = recover(args.file, args.output)
    if result is None:
        print(f"{args.file}: complete already (summary and index): nothing to recover")
        return 0
    print(f"{result.path}: {result.messages} messages in {result.chunks} chunks, complete and "
          f"indexed (the original: {result.problem})")
    return 0
