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
cargo clippy --workspace --all-targets -- -D warnings
echo "== rustdoc"
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps
echo "== cargo test"
cargo test --workspace
bash scripts/bench-smoke.sh
bash scripts/test-python.sh
