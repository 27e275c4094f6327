#!/usr/bin/env bash
# Disaster recovery: how long `api kv resync` takes to push 100,000 links (90% active, written; 10% deleted,
# removed) through the worker's sync route into miniflare's local KV under wrangler dev.
# Usage: bash bench/resync.sh [links, default 100000]
source "$(dirname "$0")/lib.sh"
LINKS=${1:-100000}
EDGE_PORT=${EDGE_PORT:-18787}
export KV_SINK=worker KV_SYNC_URL="http://127.0.0.1:$EDGE_PORT" KV_SYNC_TOKEN=bench-kv-sync-token-0123456789abcdefg

bench_build_api
bash "$ROOT/scripts/install-edge-tools.sh" >/dev/null
bash "$ROOT/scripts/build-worker.sh" >/dev/null
"$ROOT/target/release/api" migrate
brand=$("$ROOT/target/release/api" brand create --name "Bench brand" | awk '/^brand_id:/ {print $2}')
psql -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v brand="$brand" -v links="$LINKS" <<'SQL'
insert into links (id, brand_id, code, destination_url, active, deleted_at)
  select gen_random_uuid(), :'brand',
         (select string_agg(substr('abcdefghjkmnpqrstuvwxyz23456789', 1 + floor(random() * 31)::int, 1), '')
            from generate_series(1, 8) where g > 0),
         'https://shop.example/p/' || g, g % 10 <> 0, case when g % 10 = 0 then now() end
  from generate_series(1, :links) g
  on conflict do nothing;
SQL

state=$(mktemp -d)
(cd "$ROOT" && CI=true WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false exec node_modules/.bin/wrangler dev \
  --ip 127.0.0.1 --port "$EDGE_PORT" --persist-to "$state" --show-interactive-dev-session=false --log-level error \
  --var "KV_SYNC_TOKEN:$KV_SYNC_TOKEN" --var "EDGE_INGEST_TOKEN:unused-by-this-bench-0123456789abcd" </dev/null >"$state/wrangler.log" 2>&1) &
WRANGLER_PID=$!
trap 'kill $WRANGLER_PID 2>/dev/null; pkill -f "workerd.*$state" 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$EDGE_PORT/_ready" && break; sleep 0.2; done

echo "links: $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c 'select count(*) from links')"
"$ROOT/target/release/api" kv resync
