#!/usr/bin/env bash
# Checks the API against its own OpenAPI document with schemathesis (`--checks all`): no 5xx; every answer's
# status, content type, headers and body documented; every request the document allows accepted, and every
# request it rules out refused. Runs the debug `api` binary (`cargo build -p api --bin api`, which
# scripts/test.sh does; CARGO_TARGET_DIR is respected) on a fresh database, seeds one brand's creators,
# campaign, links, creator tokens, order and shop so that path parameters name something real, and exits
# non-zero on any failure.
#
# A fixed seed and a bounded number of examples per operation make the run reproducible and short (about a
# minute and a half on two cores). Extra arguments go to `schemathesis run` (`--seed 7 --max-examples 500`).
# The virtualenv is reused from SCHEMATHESIS_VENV (default: under ~/.cache).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tracking-links/schemathesis-$SCHEMATHESIS_VERSION}
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
API_BIN=$TARGET/debug/api
DB=tracking_links_schemathesis

[ -x "$API_BIN" ] || { echo "$API_BIN is missing: run cargo build -p api --bin api" >&2; exit 1; }
bash scripts/ensure-postgres.sh

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "version $SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

WORK=$(mktemp -d)
API_PID=""
stop_api() {
  if [ -n "$API_PID" ]; then
    kill -TERM "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop_api EXIT

psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists $DB with (force)" >/dev/null
# The API runs with these settings only, whatever the caller's environment holds. The pixel's rate limits
# are generous: the run checks what the endpoint accepts, not how fast (its 429 is documented all the same).
# (`env` execs the binary, so the PID below is the API's own.)
# Statements are signed with a key made for this run.
SIGNING_KEY=$("$API_BIN" statement-key create | sed -n 's/^STATEMENT_SIGNING_KEY=//p')
[ -n "$SIGNING_KEY" ] || { echo "api statement-key create printed no key" >&2; exit 1; }
API=(env -i PATH="$PATH" DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" RUST_LOG=info NO_COLOR=1
  STATEMENT_SIGNING_KEY="$SIGNING_KEY" KV_SINK=none PIXEL_RATE_PER_PIXEL=100000 PIXEL_RATE_PER_CLIENT=100000 STATEMENT_VERIFY_RATE_PER_CLIENT=100000
  BIND_ADDR=127.0.0.1:0 INTERNAL_BIND_ADDR=127.0.0.1:0 "$API_BIN")
# Port 0: the kernel gives each listener a free port as it binds; the API logs which (read back below).
"${API[@]}" serve >"$WORK/api.log" 2>&1 &
API_PID=$!

# `... api listening addr=127.0.0.1:PORT`, once the public listener is bound.
ADDR=""
for _ in $(seq 1 600); do
  kill -0 "$API_PID" 2>/dev/null || { cat "$WORK/api.log" >&2; echo "the API exited" >&2; exit 1; }
  ADDR=$(sed -n 's/.*api listening addr=\([0-9.:]*\).*/\1/p' "$WORK/api.log" | head -n1)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$WORK/api.log" >&2; echo "the API did not bind its listener in 60 s" >&2; exit 1; }
BASE=http://$ADDR
for attempt in $(seq 1 600); do
  curl -sf "$BASE/readyz" >/dev/null && break
  [ "$attempt" = 600 ] && { cat "$WORK/api.log" >&2; echo "the API was not ready in 60 s" >&2; exit 1; }
  sleep 0.1
done

# --- Seed data: one brand, and something real for every path parameter -----------------------------------
"${API[@]}" brand create --name "Schemathesis" >"$WORK/brand.txt" 2>>"$WORK/api.log"
field() { sed -n "s/^$1: //p" "$WORK/brand.txt"; }
API_KEY=$(field api_key)
PIXEL_ID=$(field pixel_id)
# call METHOD PATH [JSON]: the answer's body; fails on anything but 2xx.
call() {
  curl -sS --fail-with-body -X "$1" -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
    -H 'Idempotency-Key: seed' ${3:+--data "$3"} "$BASE$2"
}
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
CREATOR_ID=$(call POST /v1/creators '{"name": "Jessica Alvarez", "handle": "@jessica"}' | json id)
OTHER_CREATOR_ID=$(call POST /v1/creators '{"name": "Sam Okafor"}' | json id)
CAMPAIGN_ID=$(call POST /v1/campaigns '{"name": "Spring drop"}' | json id)
LINK_ID=$(call POST /v1/links "{\"destination_url\": \"https://shop.example/p/1\", \"creator_id\": \"$CREATOR_ID\",
  \"campaign_id\": \"$CAMPAIGN_ID\", \"platform\": \"instagram\", \"promo_code\": \"JESS20\", \"share_revenue\": true}" |
  json id)
# A link of its own for DELETE, so that deleting it leaves the other one to PATCH.
DELETED_LINK_ID=$(call POST /v1/links '{"destination_url": "https://shop.example/p/2"}' | json id)
# The creator token /v1/me/links runs with, and another creator's token for DELETE to revoke.
CREATOR_TOKEN=$(call POST "/v1/creators/$CREATOR_ID/tokens" | json token)
STATEMENT_ID=$(curl -sS --fail-with-body -X POST -H "Authorization: Bearer $CREATOR_TOKEN" -H 'Content-Type: application/json' \
  --data "{\"brand_id\": \"$(field brand_id)\", \"from\": \"2025-01-01T00:00:00Z\", \"to\": \"2025-02-01T00:00:00Z\"}" \
  "$BASE/v1/me/statements" | python3 -c 'import json, sys; print(json.load(sys.stdin)["statement"]["id"])')
REVOKED_PREFIX=$(call POST "/v1/creators/$OTHER_CREATOR_ID/tokens" | json prefix)
# The order refunds and cancellations name (in USD: see scripts/schemathesis_hooks.py). The document's
# examples use other order ids, so they create orders.
ORDER_ID=$(call POST /v1/conversions '{"order_id": "seed-1001", "amount": {"amount_minor": 12999, "currency": "USD"},
  "occurred_at": "2025-01-15T10:00:00Z", "discount_codes": ["JESS20"]}' | json order_id)
SHOP=$(call PUT /v1/integrations/shopify \
  '{"shop_domain": "schemathesis.myshopify.com", "webhook_secret": "shpss_schemathesis"}' | json shop_domain)

# path_params OPERATION NAME VALUE...: the operation's path parameters are the seeded objects nine times in
# ten, else what the document allows (which names nothing: a documented 404); the stateful phase also
# follows the ids earlier answers returned.
n=0
path_params() {
  local operation=$1 bindings=""
  shift
  while [ $# -gt 0 ]; do
    n=$((n + 1))
    printf '[dictionaries.seeded_%s]\nvalues = ["%s"]\n\n' "$n" "$2"
    bindings="$bindings${bindings:+, }\"path.$1\" = { dictionary = \"seeded_$n\", probability = 0.9 }"
    shift 2
  done
  printf '[[operations]]\ninclude-name = "%s"\nparameters = { %s }\n\n' "$operation" "$bindings"
}
{
  cat <<TOML
base-url = "$BASE"
hooks = "$ROOT/scripts/schemathesis_hooks.py"
# Nothing carried over from earlier runs (crashes replayed, examples remembered): every run is the same.
cache = { enabled = false }

# Each security scheme with its credential: the brand's API key, and a creator token for /v1/me/links.
[auth.openapi]
api_key = { bearer = "$API_KEY" }
creator_token = { bearer = "$CREATOR_TOKEN" }

[dictionaries.pixel]
values = ["$PIXEL_ID"]

[[operations]]
include-name = "POST /v1/pixel/events"
# Mostly the seeded pixel, so that events reach validation (an unknown pixel is a documented 404).
parameters = { "body.pixel_id" = { dictionary = "pixel", probability = 0.9 } }

TOML
  path_params "GET /v1/creators/{id}" id "$CREATOR_ID"
  path_params "GET /v1/campaigns/{id}" id "$CAMPAIGN_ID"
  path_params "GET /v1/links/{id}" id "$LINK_ID"
  path_params "PATCH /v1/links/{id}" id "$LINK_ID"
  path_params "GET /v1/links/{id}/stats" id "$LINK_ID"
  path_params "DELETE /v1/links/{id}" id "$DELETED_LINK_ID"
  path_params "POST /v1/creators/{id}/tokens" id "$CREATOR_ID"
  path_params "GET /v1/creators/{id}/tokens" id "$CREATOR_ID"
  path_params "DELETE /v1/creators/{id}/tokens/{prefix}" id "$OTHER_CREATOR_ID" prefix "$REVOKED_PREFIX"
  path_params "POST /v1/conversions/{order_id}/refunds" order_id "$ORDER_ID"
  path_params "POST /v1/conversions/{order_id}/cancel" order_id "$ORDER_ID"
  path_params "DELETE /v1/integrations/shopify/{shop_domain}" shop_domain "$SHOP"
  path_params "POST /v1/statements/{id}/revoke" id "$STATEMENT_ID"
} >"$WORK/schemathesis.toml"

# From the scratch directory, so that nothing schemathesis writes lands in the tree.
cd "$WORK"
status=0
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
  --checks all --seed 1 --max-examples 100 --generation-database none --workers 1 --no-color "$@" || status=$?
if [ "$status" != 0 ]; then
  # What the API logged about its own errors, for the failures above.
  grep -E ' (ERROR|WARN) ' "$WORK/api.log" | tail -n 20 >&2 || true
fi
exit "$status"
