#!/usr/bin/env bash
# Pin what was tested: rewrite constraints.txt from the current .venv (dev-only tools left out).
set -euo pipefail
cd "$(dirname "$0")/.."
{ echo "# Exact versions CI installs (pip install -c constraints.txt). Regenerate with scripts/freeze.sh"
  .venv/bin/pip freeze --exclude-editable | grep -viE '^(ruff|pyflakes|py-spy|pyinstrument)=='; } > constraints.txt
