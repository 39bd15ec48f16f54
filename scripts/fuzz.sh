#!/usr/bin/env bash
# The long fuzz run: builds tests/fuzz.rs in release and runs every target with a million
# generated inputs (ORCAOPS_FUZZ_INPUTS overrides), printing one count line per target.
# The seed defaults to the current time, so each run explores new inputs; it is printed,
# and ORCAOPS_FUZZ_SEED=<seed> repeats a run exactly. Crashing inputs are written to
# $CARGO_TARGET_DIR/fuzz-crashes/<target>/ (or target/fuzz-crashes/). See docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORCAOPS_FUZZ_INPUTS="${ORCAOPS_FUZZ_INPUTS:-1000000}"
export ORCAOPS_FUZZ_SEED="${ORCAOPS_FUZZ_SEED:-$(date +%s)}"
echo "[fuzz] $ORCAOPS_FUZZ_INPUTS inputs per target, seed $ORCAOPS_FUZZ_SEED" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# One test thread: the targets share the machine fairly and their lines come out whole.
status=0
cargo test --release --locked --test fuzz -- --nocapture --test-threads=1 "$@" 2>&1 |
    tee "$log" || status=$?
echo "[fuzz] summary:" >&2
grep -E '^fuzz [a-z]+:' "$log" || true
exit "$status"
