#!/usr/bin/env bash
# Click ingestion: clicks/s one API process stores from batches of 100 (POST /internal/clicks), and the
# latency of a batch. Every click is new (fresh click ids), so every batch is a real insert.
# Usage: bash bench/ingest.sh [seconds per run, default 10] [runs, default 3]
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RUNS=${2:-3}
export EDGE_INGEST_TOKEN=bench-ingest-token-0123456789abcdefgh

bench_build_api
bench_start_api
out=$("$ROOT/target/release/api" brand create --name "Bench brand")
export KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
links=()
for i in $(seq 1 10); do
  body=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"destination_url\":\"https://shop.example/$i\"}" "http://$BENCH_ADDR/v1/links")
  links+=("$(jq -r '.id + ":" + .code' <<<"$body")")
done
export LINKS=$(IFS=,; echo "${links[*]}")

bench_stored clicks clicks "$RUNS" -t2 -c8 -d"${SECS}s" -s "$ROOT/bench/lua/ingest.lua" "http://$BENCH_INTERNAL_ADDR/internal/clicks"
