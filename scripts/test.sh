#!/usr/bin/env bash
# Runs every test: unit and property tests, the API against a fresh PostgreSQL database per test, and the
# end-to-end tests that start the API binary and the worker under `wrangler dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-postgres.sh
bash scripts/install-edge-tools.sh
bash scripts/build-worker.sh >/dev/null
# The end-to-end tests start the real `api` binary.
cargo build -p api --bin api --quiet
cargo test --workspace "$@"
