#!/usr/bin/env bash
# Runs fuzz targets, each for a number of inputs, and prints libFuzzer's summary of each.
# Usage: bash fuzz/run.sh [runs per target, default 1000000] [target ...]   (default: every target)
#
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# -O -a: optimised, with debug assertions and overflow checks (an overflow is a panic, so a finding).
# Each target's corpus grows in fuzz/corpus/<target> (not committed); fuzz/seeds/<target> and the Shopify
# fixtures are read as starting points. A failing input is saved under fuzz/artifacts/<target>/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
RUNS=${1:-1000000}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
SANITIZER=${FUZZ_SANITIZER:-address}
cargo fuzz build -O -a --sanitizer "$SANITIZER"
for target in "${TARGETS[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds+=("fuzz/seeds/$target")
  [ "$target" = shopify_payload ] && seeds+=("tests/fixtures/shopify")
  log="fuzz/artifacts/$target.log"
  mkdir -p fuzz/artifacts
  start=$(date +%s)
  cargo fuzz run -O -a --sanitizer "$SANITIZER" "$target" "$corpus" "${seeds[@]}" -- \
    -runs="$RUNS" -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; echo "$target FAILED (log: $log)"; exit 1; }
  secs=$(( $(date +%s) - start ))
  echo "$target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1) (wall ${secs}s; $(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}') inputs executed)"
done
