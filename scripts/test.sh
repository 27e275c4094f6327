#!/usr/bin/env bash
# Runs every test: unit and property tests, the pixel's tests, the API against a fresh PostgreSQL database
# per test (and the shared rate limits against the local Redis), and the end-to-end tests that start the API
# binary and the worker under `wrangler dev` (and drive Debian's Chromium through a purchase and through the
# brand dashboard), then schemathesis against the API's OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-postgres.sh
bash scripts/ensure-redis.sh
bash scripts/install-edge-tools.sh
bash scripts/install-browser.sh
bash scripts/install-python-deps.sh
bash scripts/build-worker.sh >/dev/null
# The storefront pixel's own tests, in a fake browser (Node's built-in runner).
node --test crates/api/static/
# The end-to-end tests start the real `api` binary.
cargo build -p api --bin api --quiet
cargo test --workspace "$@"
# The API against its own OpenAPI document: schemathesis, every check, on the binary built above.
bash scripts/schemathesis.sh
