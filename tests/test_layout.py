"""The package is laid out by pipeline stage (README, "How it fits together"); this keeps it so.

Stages: the core at the top of ``sensorlink/`` (samples, hub, driver, status, errors, config, ...),
then ``sources/`` and ``analysis/`` (analysis holds the signal processing that sources share,
such as direction finding in the microphone drivers), then the sinks ``webrtc/``,
``recording/`` and ``bridges/``, which never import each other, and at the very top the
composition root (``service``, ``cli``, ``commands/``) that wires them together. Every import
counts, type-only ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import REPO

PACKAGE = REPO / "sensorlink"
DRIVERS = REPO / "drivers"
MAX_LINES = 400

SINKS = ("webrtc", "recording", "bridges")
#: the composition root: may import everything
ROOT = {"sensorlink.service", "sensorlink.cli", "sensorlink.commands"}


def module_name(path: Path) -> str:
    if path.is_relative_to(DRIVERS):
        parts = ["sensorlink_drivers", *path.relative_to(DRIVERS).with_suffix("").parts]
    else:
        parts = ["sensorlink", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    files = [*PACKAGE.rglob("*.py"), *DRIVERS.rglob("*.py")]
    return {module_name(p): p for p in files if "__pycache__" not in p.parts}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every sensorlink module ``path`` imports, at any depth of the file (TYPE_CHECKING too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            # the longest known module the name lies in ("sensorlink.hub.Hub" -> sensorlink.hub)
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "sensorlink":
                out.add(name)
    return out


def stage(module: str) -> str:
    if module.startswith(("sensorlink_drivers", "sensorlink.emulators")):
        return "sources"  # the built-in drivers, and the fake devices they are tested against
    if any(module == r or module.startswith(r + ".") for r in ROOT):
        return "root"
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in ("sources", "analysis", *SINKS):
        return parts[1]
    if len(parts) == 2 and parts[1] in ("sources", "analysis", *SINKS):
        return parts[1]
    return "core"


LEVEL = {"core": 0, "analysis": 1, "sources": 1, "webrtc": 2, "recording": 2, "bridges": 2,
         "root": 3}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def test_no_import_runs_from_a_lower_stage_to_a_higher_one() -> None:
    wrong = []
    for module, deps in graph().items():
        for dep in deps:
            a, b = stage(module), stage(dep)
            if LEVEL[b] > LEVEL[a] or (a in SINKS and b in SINKS and a != b) \
                    or (a == "analysis" and b == "sources"):
                wrong.append(f"{module} ({a}) imports {dep} ({b})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles_type_only_imports_included() -> None:
    deps = graph()
    # A package's __init__ importing its own submodules is how a package exports; an edge from
    # a submodule back to its package is then the only way round, and counts.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(deps):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", sorted(modules().values()), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines: split it by what it holds"
