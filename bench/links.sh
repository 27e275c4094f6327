#!/usr/bin/env bash
# Load test of the links API on a release build over loopback:
#   POST /v1/links (creates), and GET /v1/links?creator_id= with 100,000 links in the brand.
# With WITH_WEBHOOK=1 the brand has a webhook endpoint (a local receiver) subscribed to link.created, so
# every create also writes its event, which the API delivers meanwhile.
# Usage: [WITH_WEBHOOK=1] bash bench/links.sh [seconds per run, default 10] [runs, default 3]
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RUNS=${2:-3}

bench_build_api
if [ "${WITH_WEBHOOK:-0}" = 1 ]; then export ALLOW_PRIVATE_TARGETS=true; fi
bench_start_api
out=$("$ROOT/target/release/api" brand create --name "Bench brand")
export KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
BRAND=$(awk '/^brand_id:/ {print $2}' <<<"$out")

# 100 creators, 100,000 links spread over them (1,000 each), made in SQL.
psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v brand="$BRAND" <<'SQL' >/dev/null
insert into creators (id, brand_id, name)
  select gen_random_uuid(), :'brand', 'creator ' || g from generate_series(1, 100) g;
insert into links (id, brand_id, code, destination_url, creator_id, platform)
  select gen_random_uuid(), :'brand',
         (select string_agg(substr('abcdefghjkmnpqrstuvwxyz23456789', 1 + floor(random() * 31)::int, 1), '')
            from generate_series(1, 8) where g > 0),
         'https://shop.example/p/' || g,
         (select id from creators where brand_id = :'brand' order by id offset (g % 100) limit 1),
         'instagram'
  from generate_series(1, 100000) g
  on conflict do nothing;
analyze;
SQL
if [ "${WITH_WEBHOOK:-0}" = 1 ]; then
  node "$ROOT/bench/receiver.mjs" 18090 &
  RECEIVER_PID=$!
  trap 'kill $API_PID $RECEIVER_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18090/count >/dev/null && break; sleep 0.1; done
  curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"url":"http://127.0.0.1:18090/hook","events":["link.created"]}' "http://$BENCH_ADDR/v1/webhooks" >/dev/null
fi
CREATOR=$(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select id from creators limit 1")
echo "links in brand: $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from links")"

bench_wrk "GET /v1/links?creator_id= (100k)" "$RUNS" -t2 -c16 -d"${SECS}s" -s "$ROOT/bench/lua/auth.lua" \
  "http://$BENCH_ADDR/v1/links?creator_id=$CREATOR"
bench_wrk "POST /v1/links" "$RUNS" -t2 -c32 -d"${SECS}s" -s "$ROOT/bench/lua/create-link.lua" "http://$BENCH_ADDR/v1/links"
