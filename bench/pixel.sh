#!/usr/bin/env bash
# Pixel events stored per second by one API process: POST /v1/pixel/events with 80% page views,
# 10% add-to-cart and 10% purchases (each purchase attributed to a real click in the same transaction).
# Every request comes from 127.0.0.1, so the per-client rate limit is raised for the run.
# Usage: bash bench/pixel.sh [seconds per run, default 10] [runs, default 3]
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RUNS=${2:-3}
export PIXEL_RATE_PER_CLIENT=1000000 PIXEL_RATE_PER_PIXEL=1000000 EDGE_INGEST_TOKEN=bench-ingest-token-0123456789abcdefgh

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
  "http://$BENCH_INTERNAL_ADDR/internal/clicks" >/dev/null

bench_stored pixel_events "pixel events" "$RUNS" -t2 -c16 -d"${SECS}s" -s "$ROOT/bench/lua/pixel.lua" \
  "http://$BENCH_ADDR/v1/pixel/events"
echo "orders credited to the click: $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions where method = 'click'") of $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions")"
