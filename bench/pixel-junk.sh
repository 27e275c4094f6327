#!/usr/bin/env bash
# Memory under junk: 100,000 POST /v1/pixel/events with pixel ids nobody has (half random junk from 1 byte
# to 60 KB, half shaped like real ids, every one different), and the API's resident memory (VmRSS)
# before and after. Every request comes from 127.0.0.1, so the per-client limits are raised for the run:
# every shaped id then reaches the lookup and the cache of unknown ids, the worst case for memory.
# Fails unless the growth stays under 50 MB.
# Usage: bash bench/pixel-junk.sh [requests, default 100000]
source "$(dirname "$0")/lib.sh"
REQUESTS=${1:-100000}
THREADS=2
export PIXEL_RATE_PER_CLIENT=1000000 PIXEL_RATE_PER_PIXEL=1000000

bench_build_api
bench_start_api
rss_kb() {
  kill -0 "$API_PID" 2>/dev/null || { echo "the API is not running any more" >&2; exit 1; }
  awk '/^VmRSS:/ {print $2}' "/proc/$API_PID/status"
}
out=$("$ROOT/target/release/api" brand create --name "Bench brand")
export PIXEL_ID=$(awk '/^pixel_id:/ {print $2}' <<<"$out")
export CS_REF=$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
start_kb=$(rss_kb)
# Ordinary traffic first, so that "before" includes what serving any traffic costs (pools, buffers).
wrk -t$THREADS -c16 -d3s -s "$ROOT/bench/lua/pixel.lua" "http://$BENCH_ADDR/v1/pixel/events" >/dev/null
before_kb=$(rss_kb)
began=$(date +%s.%N)
# One run of junk: wrk until every thread has had its share of answers, then stopped (SIGINT: it prints its
# report, with done()'s answers by status).
junk() {
  local done_dir wrk_pid
  done_dir=$(mktemp -d)
  JUNK_REQUESTS=$REQUESTS JUNK_THREADS=$THREADS JUNK_DONE_DIR=$done_dir wrk -t$THREADS -c16 -d1h --timeout 10s \
    -s "$ROOT/bench/lua/pixel-junk.lua" "http://$BENCH_ADDR/v1/pixel/events" >"$done_dir/report" &
  wrk_pid=$!
  while (( $(find "$done_dir" -maxdepth 1 -name '[0-9]*' | wc -l) < THREADS )); do
    kill -0 $wrk_pid 2>/dev/null || break
    sleep 0.2
  done
  kill -INT $wrk_pid 2>/dev/null || true
  wait $wrk_pid || true
  cat "$done_dir/report"
  rm -rf "$done_dir"
}
report=$(junk)
echo "$report"
grep -q "answers by status" <<<"$report" || { echo "wrk did not finish" >&2; exit 1; }
elapsed=$(echo "$(date +%s.%N) - $began" | bc)
after_kb=$(rss_kb)
# As much new junk again: the bounded caches and limits are full by now, so memory should not grow further.
junk | grep "answers by status"
again_kb=$(rss_kb)
growth_mb=$(echo "scale=1; ($after_kb - $before_kb) / 1024" | bc)
printf 'RSS at start %d MB, after ordinary traffic %d MB, after %d junk requests (%.1f s) %d MB, after %d more %d MB\n' \
  $((start_kb / 1024)) $((before_kb / 1024)) "$REQUESTS" "$elapsed" $((after_kb / 1024)) "$REQUESTS" $((again_kb / 1024))
echo "growth from the junk: $growth_mb MB (limit 50 MB)"
(( after_kb - before_kb < 50 * 1024 && again_kb - before_kb < 50 * 1024 )) || { echo "memory grew by 50 MB or more" >&2; exit 1; }
