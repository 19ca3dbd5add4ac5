#!/usr/bin/env bash
# Set up sensorlink in ./.venv on a fresh machine (idempotent; fast when already done).
#   scripts/setup.sh           the service and its test tools
#   scripts/setup.sh --browser also Debian's chromium for the browser tests (needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "setup: Python 3.11 or newer is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON" >&2
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    # Debian's own Python keeps venv/ensurepip in a separate package.
    rm -rf .venv
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: installing Debian's python3-venv" >&2
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
stamp=.venv/.sensorlink-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing sensorlink and pinned dependencies (constraints.txt)" >&2
  log=.venv/setup-pip.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -c constraints.txt -e '.[test,parquet]'; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install failed (log above, also in $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# What the tests need from Debian: chromium for the browser tests, ALSA's configuration for the
# microphone capture test, the servers the deployment tests start on loopback or in a network
# namespace of their own (mosquitto, coturn, janus), and iproute2 for that namespace.
TEST_PACKAGES="chromium libasound2-data mosquitto mosquitto-clients coturn janus iproute2 util-linux"
# Xiph's reference FLAC decoder, to check the recorder's FLAC audio with a decoder we did not use.
TEST_PACKAGES="$TEST_PACKAGES flac"
# GStreamer's webrtcbin as a WebRTC peer we did not write, run by Debian's python3 with Debian's
# bindings, websockets and msgpack (tests/gst_webrtc_viewer.py).
TEST_PACKAGES="$TEST_PACKAGES gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-nice gstreamer1.0-libav python3-gi python3-gst-1.0
  gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-nice-0.1 python3-websockets
  python3-msgpack"
if [ "${1:-}" = "--browser" ]; then
  missing=""
  for pkg in $TEST_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "setup: installing Debian packages for the tests:$missing" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
  fi
fi

# Readers we did not write, for the recording tests: @mcap/core under node (tests/node,
# pinned by its package-lock.json). Installed again only when the lockfile changes.
if [ "${1:-}" = "--browser" ]; then
  lock="$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat tests/node/node_modules/.sensorlink-installed 2>/dev/null)" != "$lock" ]; then
    command -v npm >/dev/null 2>&1 || { echo "setup: npm (Node.js 20+) is required for tests/node" >&2; exit 1; }
    echo "setup: installing tests/node (npm ci)" >&2
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error >&2
    echo "$lock" > tests/node/node_modules/.sensorlink-installed
  fi
fi
