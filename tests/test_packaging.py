"""A regular (non-editable) install has everything: drivers under our namespace, schemas,
dashboard files, commands and the entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_drivers_schemas_dashboard_and_entry_points(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                             str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = next(tmp_path.glob("sensorlink-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not any(n.startswith("drivers/") for n in names), "no top-level 'drivers' module"
    for required in ("sensorlink_drivers/simulated/thermal.py", "sensorlink/schemas/control.schema.json",
                     "sensorlink/web/index.html", "sensorlink/commands/demo.py", "sensorlink/cli.py"):
        assert required in names, required
    # Every module of every room (sources/, webrtc/ ...) is packaged, not only the ones named above.
    source_modules = {p.relative_to(REPO).as_posix() for p in (REPO / "sensorlink").rglob("*.py")
                      if "__pycache__" not in p.parts}
    assert source_modules <= names, sorted(source_modules - names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[sensorlink.drivers]" in text and "sim-thermal = sensorlink_drivers" in text
    # Every module the entry points name is inside the wheel.
    section = text.split("[sensorlink.drivers]", 1)[1].split("\n[", 1)[0]
    for line in filter(None, (line.strip() for line in section.splitlines())):
        module = line.split("=", 1)[1].strip().split(":")[0]
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, line

    # ...and it imports from a plain install target, away from the source tree.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300)
    probe = subprocess.run(
        [sys.executable, "-I", "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); "
         "import sensorlink_drivers.simulated.thermal as t, sensorlink.validation as w, sensorlink.cli; "
         "print(t.__file__); print(w.load_schema('control')['$id'])", str(target)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert str(target) in probe.stdout and "control.schema.json" in probe.stdout
