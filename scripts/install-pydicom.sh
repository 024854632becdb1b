#!/usr/bin/env bash
# Installs pydicom (pure Python, no dependencies) into models/python for the DICOS round-trip
# check (scripts/dicos_check.py, run by the CLI test `export_dicos_reads_back_in_pydicom`).
# pip only unpacks the wheel; nothing else is installed. Idempotent.
# Usage: scripts/install-pydicom.sh, then PYTHONPATH=models/python python3 scripts/dicos_check.py
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -f models/python/pydicom/__init__.py ]; then
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target models/python \
        pydicom==3.0.1
fi
PYTHONPATH=models/python "$PY" -c 'import pydicom; print("pydicom", pydicom.__version__, "in", pydicom.__path__[0])'
