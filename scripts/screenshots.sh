#!/usr/bin/env bash
# Saves screenshots of the dashboard's overview, a job, a workflow DAG (and one of 482
# nodes, grouped) and a sandbox
# into docs/images/, from a real headless Chromium against the real binary and Docker
# (the test `screenshots_of_the_main_pages` in tests/dashboard.rs). Rerun it after
# changing the dashboard, and look at the pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
mkdir -p docs/images
ORCAOPS_SCREENSHOTS="$PWD/docs/images" cargo test --test dashboard -- screenshots_of_the_main_pages a_500_node_workflow_is_grouped_and_expands
ls -l docs/images/*.png
