#!/usr/bin/env bash
# The Python module, in a virtual environment of its own inside the build directory
# (target/py-venv: created when missing, reused after; the system interpreter is left alone):
# installs what it needs (maturin, pytest, mypy), builds and installs ./python as the module `popen`,
# runs its tests, then CPython's own test_subprocess (with install(fork_exec_only=True), then
# with install()), test_asyncio.test_subprocess and test_posix spawn tests on it.
# PYTHON (default python3) is the interpreter the environment is made from.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${CARGO_TARGET_DIR:-target}/py-venv"
# What the environment needs, one requirement per line.
PACKAGES=(
    "maturin>=1.9.4,<2"
    pytest
    hypothesis
    mypy  # checks the type stubs (python/tests/test_stubs.py)
)
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== python: virtual environment $VENV"
# Debian and Ubuntu ship venv's ensurepip in a package of its own (python3.X-venv).
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    VERSION="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "python$VERSION-venv" >/dev/null ||
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
# A venv whose interpreter no longer runs (its base Python was removed or upgraded) is remade.
if ! "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
    "$PYTHON" -m venv --clear "$VENV"
fi
# What `activate` does: the build runs the environment's maturin by name.
VIRTUAL_ENV="$(cd "$VENV" && pwd)"
export VIRTUAL_ENV PATH="$VIRTUAL_ENV/bin:$PATH"
VPY="$VIRTUAL_ENV/bin/python"

echo "== python: install ${PACKAGES[*]}; build and install ./python"
"$VPY" -m pip install --quiet "${PACKAGES[@]}"
# Built in tree with the environment's maturin (no isolated build environment to download);
# reinstalled on every run because its version does not change when its code does.
"$VPY" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps ./python
echo "== python: module tests"
"$VPY" -m pytest -q -p no:cacheprovider python/tests
echo "== python: CPython's test_subprocess on popen (fork_exec only, then with communicate and wait)"
"$VPY" scripts/cpython_conformance.py
echo "== python: CPython's test_asyncio.test_subprocess on popen, unchanged"
"$VPY" scripts/cpython_conformance.py --test test_asyncio.test_subprocess --mode full
"$VPY" scripts/cpython_posix_spawn_conformance.py  # CPython's test_posix spawn tests on popen
