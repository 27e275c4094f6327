#!/usr/bin/env bash
# CSV exports: GET /v1/conversions.csv of ORDERS orders (default 100,000), streamed. Reports the time, the
# size, and the API process's peak resident memory during the export (VmHWM, reset before each export
# through /proc/PID/clear_refs) next to the same for a tenth of the orders: bounded memory means the peak
# does not grow with the export's size.
# Usage: bash bench/exports.sh [orders, default 100000]
source "$(dirname "$0")/lib.sh"
ORDERS=${1:-100000}

bench_build_api
bench_start_api
out=$("$ROOT/target/release/api" brand create --name "Bench brand" 2>/dev/null)
export RUST_LOG=error
KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
BRAND=$(awk '/^brand_id:/ {print $2}' <<<"$out")
link=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"destination_url":"https://shop.example/"}' "http://$BENCH_ADDR/v1/links")
psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v brand="$BRAND" -v link="$(jq -r .id <<<"$link")" -v n="$ORDERS" <<'SQL' >/dev/null
insert into conversions (id, brand_id, order_id, amount_minor, currency, occurred_at, source, amount_source, verified_at,
                         status, link_id, method, discount_codes)
  select gen_random_uuid(), :'brand', 'order-' || g, 1000 + g, 'USD', now() - interval '1 day', 'api', 'api', now(),
         'verified', :'link', 'promo_code', array['SPRING' || (g % 7), '=cmd|'' /C calc''!A0']
  from generate_series(1, :n) g;
vacuum analyze;
SQL
rss() { awk "/^$1:/ {print \$2}" "/proc/$API_PID/status"; }
export_once() {
  local what=$1
  echo 5 >"/proc/$API_PID/clear_refs"
  local before start bytes elapsed
  before=$(rss VmRSS)
  start=$(date +%s.%N)
  bytes=$(curl -sf -H "Authorization: Bearer $KEY" "http://$BENCH_ADDR/v1/conversions.csv?$what" | wc -c)
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$(printf '%-32s' "$2"): $bytes bytes in $(printf %.2f "$elapsed") s; RSS before $((before / 1024)) MiB, peak during $(( $(rss VmHWM) / 1024 )) MiB"
}
# A first export warms the process up (pool connections, allocator arenas).
export_once "" "warm-up (all $ORDERS orders)" >/dev/null
export_once "link_id=$(jq -r .id <<<"$link")" "all $ORDERS orders, by link_id"
small_to=$(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select to_char(now() + interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "update conversions set occurred_at = now() - interval '2 days' where seq % 10 <> 0" >/dev/null
export_once "from=$(date -u -d "1 day ago - 1 hour" +%Y-%m-%dT%H:%M:%SZ)&to=$small_to" "a tenth: $((ORDERS / 10)) orders"
export_once "" "all $ORDERS orders"
