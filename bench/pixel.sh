#!/usr/bin/env bash
# Pixel events stored per second by one API process: POST /v1/pixel/events with 80% page views,
# 10% add-to-cart and 10% purchases (each purchase attributed to a real click in the same transaction).
# Every request comes from 127.0.0.1, so the per-client rate limit is raised for the run.
# Usage: bash bench/pixel.sh [seconds per run, default 10] [runs, default 3]
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RUNS=${2:-3}
export PIXEL_RATE_PER_CLIENT=1000000 PIXEL_RATE_PER_PIXEL=1000000 EDGE_INGEST_TOKEN=bench-ingest-token

bench_build_api
bench_start_api
out=$("$ROOT/target/release/api" brand create --name "Bench brand")
KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
export PIXEL_ID=$(awk '/^pixel_id:/ {print $2}' <<<"$out")
link=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"destination_url":"https://shop.example/"}' "http://$BENCH_ADDR/v1/links")
export CS_REF=$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
now_ms=$(( $(date +%s) * 1000 - 60000 ))
curl -sf -H "Authorization: Bearer $EDGE_INGEST_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"clicks\":[{\"v\":1,\"click_id\":\"$CS_REF\",\"code\":$(jq .code <<<"$link"),\"link_id\":$(jq .id <<<"$link"),\"occurred_at_ms\":$now_ms,\"visitor_id\":\"$(python3 -c 'import uuid; print(uuid.uuid4().hex)')\",\"new_visitor\":true,\"bot\":false}]}" \
  "http://$BENCH_ADDR/internal/clicks" >/dev/null

count() { psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from pixel_events"; }
rates=()
for run in $(seq 1 "$RUNS"); do
  before=$(count)
  start=$(date +%s.%N)
  out=$(wrk --latency -t2 -c16 -d"${SECS}s" -s "$ROOT/bench/lua/pixel.lua" "http://$BENCH_ADDR/v1/pixel/events")
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  after=$(count)
  rate=$(echo "($after - $before) / $elapsed" | bc)
  rates+=("$rate")
  grep -q 'Non-2xx' <<<"$out" && { echo "$out"; echo "non-2xx answers" >&2; exit 1; }
  printf 'run %d: %s events stored in %.1f s = %s events/s; p50 %s p99 %s\n' "$run" "$((after - before))" "$elapsed" \
    "$rate" "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
done
echo "median: $(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') pixel events/s stored"
echo "orders credited to the click: $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions where method = 'click'") of $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions")"
