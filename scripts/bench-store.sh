#!/usr/bin/env bash
# Backing-store figures against a real S3-compatible server (versitygw on
# loopback, installed by scripts/install-test-deps.sh): store writes saved
# by write-behind on a skewed workload, read-through hit and miss latency
# next to a direct S3 GET, and write-back throughput. Prints the figures;
# docs/benchmarks.md records them.
#
#   bash scripts/bench-store.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-test-deps.sh >/dev/null
ENGRAM_FIGURES=1 go test -count=1 -run '^TestStoreFigures$' -v ./internal/node 2>&1 |
	grep -E 'persist_figures_test|^(ok|FAIL|---)' | sed -E 's/^ +persist_figures_test.go:[0-9]+: //'
