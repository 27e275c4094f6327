#!/usr/bin/env bash
# Installs what building and running the edge worker needs, skipping whatever is already there:
# the wasm32 target, worker-build and wasm-bindgen-cli (versions pinned to match crates/edge-worker),
# and the npm tools pinned in package-lock.json (wrangler, binaryen's wasm-opt, esbuild).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130  # must equal the `wasm-bindgen = "=..."` pin of crates/edge-worker

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

installed_version() { # prints the version `NAME --version` reports ("0.8.7" or "name 0.8.7"), or nothing
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | awk '{print $NF}'
}

if [ "$(installed_version worker-build)" != "$WORKER_BUILD_VERSION" ]; then
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi
if [ "$(installed_version wasm-bindgen)" != "$WASM_BINDGEN_VERSION" ]; then
  # Without --locked: its lockfile wants a crate version the registry here does not serve.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# npm ci again only when package-lock.json changed since the last install (it wipes node_modules).
# npm warns that the install scripts of esbuild and workerd did not run: they are not needed, the
# binaries come in their platform packages.
stamp=node_modules/.installed-lock.sha256
if [ ! -x node_modules/.bin/wrangler ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum package-lock.json)" ]; then
  npm ci --no-audit --no-fund
  sha256sum package-lock.json >"$stamp"
fi
