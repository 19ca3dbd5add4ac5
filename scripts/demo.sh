#!/usr/bin/env bash
# Set up (first run only) and start the demo: simulated sensors, dashboard URL printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sensorlink demo "$@"
