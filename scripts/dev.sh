#!/usr/bin/env bash
# Sets up and runs the whole product locally: PostgreSQL (started if needed, database created on first
# start), the API on http://127.0.0.1:8080 (its internal routes, where the worker posts clicks, on
# http://127.0.0.1:8081) and the edge worker under `wrangler dev` on http://127.0.0.1:8787.
# Ctrl-C stops both.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

bash scripts/ensure-postgres.sh
bash scripts/install-edge-tools.sh
bash scripts/build-worker.sh >/dev/null
cargo build --release -p api --bin api

[ -f .env ] && set -a && source .env && set +a
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tracking_links}"
export BIND_ADDR="${BIND_ADDR:-127.0.0.1:8080}"
export INTERNAL_BIND_ADDR="${INTERNAL_BIND_ADDR:-127.0.0.1:8081}"
EDGE_PORT="${EDGE_PORT:-8787}"
export TRACKING_BASE_URL="${TRACKING_BASE_URL:-http://127.0.0.1:$EDGE_PORT}"
# Shared secrets between the API and the worker (at least 32 bytes, or both refuse them), made fresh for
# this session unless given: 32 random bytes as 64 hex digits.
new_token() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export EDGE_INGEST_TOKEN="${EDGE_INGEST_TOKEN:-$(new_token)}"
export KV_SYNC_TOKEN="${KV_SYNC_TOKEN:-$(new_token)}"
export KV_SINK="${KV_SINK:-worker}"
export KV_SYNC_URL="${KV_SYNC_URL:-http://127.0.0.1:$EDGE_PORT}"
# Local development: webhook endpoints may be local receivers over plain http.
export ALLOW_PRIVATE_TARGETS="${ALLOW_PRIVATE_TARGETS:-true}"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

target/release/api migrate
setsid target/release/api serve &
PIDS+=($!)
mkdir -p .wrangler/dev-state
WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false CI=true setsid node_modules/.bin/wrangler dev \
  --ip 127.0.0.1 --port "$EDGE_PORT" --persist-to .wrangler/dev-state --show-interactive-dev-session=false \
  --log-level warn \
  --var "INGEST_URL:http://$INTERNAL_BIND_ADDR" --var "EDGE_INGEST_TOKEN:$EDGE_INGEST_TOKEN" \
  --var "KV_SYNC_TOKEN:$KV_SYNC_TOKEN" </dev/null &
PIDS+=($!)

cat <<MSG

  API        http://$BIND_ADDR   (OpenAPI: http://$BIND_ADDR/openapi.json)
  Dashboard  http://$BIND_ADDR/brand/sign-in
  Edge       http://127.0.0.1:$EDGE_PORT/{code}

  Create a brand (prints brand_id, api_key and pixel_id):
    DATABASE_URL=$DATABASE_URL target/release/api brand create --name "My brand"
  Then, with the api_key:
    curl -s -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' \\
      -d '{"destination_url":"https://shop.example/p"}' http://$BIND_ADDR/v1/links
  A brand's own short domain: POST /v1/domains {"hostname":"go.brand.test"}, then
    DATABASE_URL=$DATABASE_URL target/release/api domain activate go.brand.test
  and try its links with: curl -i -H 'Host: go.brand.test' http://127.0.0.1:$EDGE_PORT/{code}
  A person who signs in to the dashboard (prints a password, shown once):
    DATABASE_URL=$DATABASE_URL target/release/api user create --brand \$BRAND_ID --email you@example.com

MSG
wait -n "${PIDS[@]}"
