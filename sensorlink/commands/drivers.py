"""sensorlink drivers: list every registered driver and whether it can load here."""

from __future__ import annotations

import argparse
import json

from sensorlink.sources.registry import list_drivers

HELP = "list the registered sensor drivers, their sensor kind and whether they can load here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per driver")


def main(args: argparse.Namespace) -> int:
    listings = list_drivers()
    if args.json:
        for d in listings:
            print(json.dumps({"name": d.name, "kind": d.kind, "loadable": d.loadable,
                              "problem": d.problem, "description": d.description,
                              "target": d.target}))
        return 0
    width = max((len(d.name) for d in listings), default=4)
    for d in listings:
        state = "ok" if d.loadable else f"cannot load: {d.problem}"
        print(f"{d.name:<{width}}  {d.kind:<10}  {state:<12}  {d.description}")
    return 0
