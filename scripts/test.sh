#!/usr/bin/env bash
# The whole test suite, from nothing: installs and starts Docker and the test
# image if missing (scripts/setup.sh), checks formatting and lints, then runs
# every test: unit, SQLite, folder, real-Docker and end-to-end (the real binary),
# then the chaos suite (tests/chaos.rs) on its own, serially, last.
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
# The chaos suite restarts a Docker daemon of its own, kills the server and fills a
# tmpfs; `test = false` keeps it out of the line above. Serially: each test loads the
# machine. Set ORCAOPS_CHAOS_BURST=500 for the issue's full sandbox burst (docs/testing.md).
echo "[test] cargo test --test chaos (serially)" >&2
cargo test --test chaos --locked -- --test-threads=1
