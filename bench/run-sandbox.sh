#!/bin/sh
# bench: the cost of one command in a running run sandbox against one fresh bwrap per command
# (the model before one-sandbox-per-run), and of one persistent-shell call; median of N (default 30).
# Usage: bench/run-sandbox.sh [N]   (docs/PERFORMANCE.md records the figures)
set -eu
cd "$(dirname "$0")/.."
swift build --build-tests --scratch-path .build-bench >/dev/null
PATCHD_BENCH_N="${1:-30}" swift test --skip-build --scratch-path .build-bench --filter RunSandboxBench 2>&1 | grep 'run-sandbox bench'
