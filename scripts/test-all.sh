#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine, installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tools"
# tests/spawn_errors.rs runs one scenario under valgrind (children run as forks there).
if ! command -v valgrind >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi
echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== rustdoc"
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps --all-features
echo "== layers"
# No import cycle among src/'s modules, and no import up ARCHITECTURE.md's layer table.
python3 scripts/check_layers.py
echo "== cargo test"
cargo test --workspace --all-features
for example in pipeline wait_any; do cargo run --quiet --example "$example"; done
for example in async_capture async_many; do cargo run --quiet --features tokio --example "$example"; done
# The Python checks first: they make target/py-venv with the module installed, which the
# benchmark's accelerated CPython variant runs on.
bash scripts/test-python.sh
bash scripts/bench-smoke.sh
