#!/usr/bin/env bash
# Fails early with a clear message when the interpreter cannot run the TFX 1.21 stack.
set -euo pipefail
py=${1:-python3}
if ! command -v "$py" >/dev/null 2>&1; then
  echo "[setup] ERROR: expected a Python >= 3.11 interpreter. Received: PYTHON=$py (not found). Run 'make PYTHON=/path/to/python3.11 setup'." >&2
  exit 1
fi
ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "[setup] ERROR: the TFX 1.21 stack needs Python >= 3.11 (tested on 3.11). Received: PYTHON=$py (Python $ver). Run 'make PYTHON=/path/to/python3.11 setup'." >&2
  exit 1
fi
if ! "$py" -m venv --help >/dev/null 2>&1; then
  echo "[setup] ERROR: expected the venv module. Received: $py without venv (apt-get install python3.11-venv)." >&2
  exit 1
fi
