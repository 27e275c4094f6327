#!/usr/bin/env bash
# Click ingestion: clicks/s one API process stores from batches of 100 (POST /internal/clicks), and the
# latency of a batch. Every click is new (fresh click ids), so every batch is a real insert.
# Usage: bash bench/ingest.sh [seconds per run, default 10] [runs, default 3]
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RUNS=${2:-3}
export EDGE_INGEST_TOKEN=bench-ingest-token

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

count() { psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from clicks"; }
# The figure that matters is clicks committed to PostgreSQL per second, counted in the table itself.
rates=()
for run in $(seq 1 "$RUNS"); do
  before=$(count)
  start=$(date +%s.%N)
  out=$(wrk --latency -t2 -c8 -d"${SECS}s" -s "$ROOT/bench/lua/ingest.lua" "http://$BENCH_ADDR/internal/clicks")
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  after=$(count)
  rate=$(echo "($after - $before) / $elapsed" | bc)
  rates+=("$rate")
  printf 'run %d: %s clicks stored in %.1f s = %s clicks/s; batch p50 %s p99 %s\n' "$run" "$((after - before))" \
    "$elapsed" "$rate" "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
done
echo "median: $(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') clicks/s stored"
