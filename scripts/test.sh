#!/usr/bin/env bash
# Set up (venv, pinned dependencies, chromium) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
mkdir -p test-artifacts
# A native crash prints every thread's stack, in pytest (its faulthandler plugin does that too,
# from configure on) and in every Python process the tests start, from its first line.
export PYTHONFAULTHANDLER=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
