#!/usr/bin/env bash
# The Python module: installs what it needs (maturin, pytest), builds and installs ./python as
# the module `popen`, runs its tests, then CPython's own test_subprocess on it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
pip() { "$PYTHON" -m pip "$@"; }

echo "== python: install maturin, pytest; build and install ./python"
pip install --quiet maturin pytest hypothesis
pip install --quiet --force-reinstall --no-deps ./python
echo "== python: module tests"
"$PYTHON" -m pytest -q -p no:cacheprovider python/tests
echo "== python: CPython's test_subprocess on popen"
"$PYTHON" scripts/cpython_conformance.py
"$PYTHON" scripts/cpython_posix_spawn_conformance.py  # CPython's test_posix spawn tests on popen
