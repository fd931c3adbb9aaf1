#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine, installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
bash scripts/bench-smoke.sh
bash scripts/test-python.sh
