#!/usr/bin/env bash
# Runs `cargo test --workspace` RUNS times in a row (default 10) while a busy loop keeps one core fully
# occupied, and stops at the first failure: how we check that the suite does not flake on a loaded
# machine. Run it in a fresh clone, after `bash scripts/test.sh` has installed the tools and built the
# worker once. Each run's output is kept in target/repeat-tests/run-N.log.
# Usage: bash scripts/repeat-tests.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
LOGS=target/repeat-tests
mkdir -p "$LOGS"

# The busy core: a shell loop that never sleeps, pinned to core 0.
taskset -c 0 bash -c 'while :; do :; done' &
BUSY=$!
trap 'kill $BUSY 2>/dev/null || true' EXIT

for run in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  if cargo test --workspace >"$LOGS/run-$run.log" 2>&1; then
    echo "run $run of $RUNS: passed in $(($(date +%s) - start)) s ($(grep -c '^test .* ok$' "$LOGS/run-$run.log") tests ok)"
  else
    echo "run $run of $RUNS: FAILED after $(($(date +%s) - start)) s; see $LOGS/run-$run.log" >&2
    grep -E '^test .* FAILED$|panicked at' "$LOGS/run-$run.log" | head -20 >&2
    exit 1
  fi
done
echo "all $RUNS runs passed with one core kept busy"
