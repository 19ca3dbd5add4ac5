"""Make tests/data/recordings/v2-complete.mcap: make_v1.py's script (the same contents), run with
sensorlink at commit ef48a37 (body form v2: JSON everywhere, thermal and audio as base64
strings; no nulls).

    python tests/data/recordings/make_v2.py tests/data/recordings/v2-complete.mcap
"""
import runpy
import sys
from pathlib import Path

sys.argv[2:] = ["v2"]
runpy.run_path(str(Path(__file__).with_name("make_v1.py")), run_name="__main__")
