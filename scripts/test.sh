#!/usr/bin/env bash
# The whole test suite, from nothing: installs and starts Docker and the test
# image if missing (scripts/setup.sh), checks formatting and lints, then runs
# every test: unit, SQLite, folder, real-Docker and end-to-end (the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings
echo "[test] cargo test" >&2
# Benches are not tests: clippy above compiles them; `cargo bench` runs them.
cargo test --lib --bins --tests --locked
