#!/usr/bin/env bash
# Builds the edge worker into crates/edge-worker/build/ (worker/shim.mjs + index.wasm), which
# wrangler.toml and bench/workerd/ point at. Run scripts/install-edge-tools.sh first.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# worker-build looks for its tools in these variables, then downloads them; there is nothing to
# download from here, so point it at the installed ones.
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$ROOT/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$ROOT/node_modules/.bin/esbuild}"
# A target directory of its own, so a wasm build never waits on the lock of a native one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/edge}"

for tool in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [ -x "$tool" ] || { echo "missing $tool: run scripts/install-edge-tools.sh" >&2; exit 1; }
done

cd "$ROOT/crates/edge-worker"
worker-build --release
ls -l build/worker/shim.mjs build/index_bg.wasm 2>/dev/null || ls -lR build | head -20
