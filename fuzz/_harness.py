"""Shared runner for the atheris harnesses in this folder.

With atheris installed (``pip install atheris``), ``python fuzz/fuzz_X.py [libFuzzer options]
[CORPUS_DIR]`` fuzzes with coverage guidance. Without it, ``python fuzz/fuzz_X.py FILE_OR_DIR...``
replays the given inputs once each (how a crash found elsewhere is reproduced, and how
tests/test_fuzz.py keeps these harnesses from rotting); ``SENSORLINK_FUZZ_REPLAY=1`` asks for
that even where atheris is installed. See docs/fuzzing.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path


def _inputs(args: list[str]) -> Iterator[bytes]:
    for arg in args:
        path = Path(arg)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            yield file.read_bytes()


def run(test_one_input: Callable[[bytes], None]) -> None:
    try:
        if os.environ.get("SENSORLINK_FUZZ_REPLAY"):
            raise ImportError("replay requested")  # replay even where atheris is installed
        import atheris
    except ImportError:
        args = [a for a in sys.argv[1:] if not a.startswith("-")]
        if not args:
            sys.exit(f"{sys.argv[0]}: atheris is not installed (pip install atheris); without it, "
                     "pass input files or folders to replay them")
        count = 0
        for data in _inputs(args):
            test_one_input(data)
            count += 1
        print(f"{Path(sys.argv[0]).name}: {count} inputs replayed, no unexpected exception")
        return
    atheris.instrument_all()  # the modules are imported already: instrument their bytecode
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
