#!/usr/bin/env bash
# Smoke test of the benchmark: runs every scenario with every variant briefly (popen-bench
# --quick) and fails if any of them fails. It never judges speed; the full benchmark is
# `cargo run --release -p popen-bench` (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== bench smoke"
if ! command -v python3 >/dev/null; then
    echo "python3 is needed for the CPython variant" >&2
    exit 1
fi
if [ -z "${POPEN_BENCH_PYTHON:-}" ] && ! "${CARGO_TARGET_DIR:-target}/py-venv/bin/python" -c "import popen" 2>/dev/null; then
    echo "the accelerated CPython variant needs the module: run scripts/test-python.sh first" >&2
    exit 1
fi
cargo run --release -p popen-bench -- --quick
