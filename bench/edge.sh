#!/usr/bin/env bash
# Redirect throughput of the edge worker on plain `workerd serve`, side by side with trivial workers
# that only answer a fixed 302, on the same runtime in the same run (bench/workerd/*.capnp, one
# workerd process each).
#
#   bash bench/edge.sh            # builds everything, then 8 rounds of 4 s per worker
#   ROUNDS=5 DURATION=20s CONNECTIONS=32 bash bench/edge.sh
#   CF_BLOB=1 bash bench/edge.sh  # every request also carries what Cloudflare adds to it: a production-sized
#                                 # `request.cf` (bench/workerd/cf.json) and the CF-IPCountry header
#
# Prints, per worker, the median requests/s, p50/p99 and workerd CPU time per redirect over the rounds,
# and the edge worker's share of each baseline: the median of the rounds' ratios, each round's edge run
# against the baseline's run just before it, by requests/s and by CPU per redirect (which is steadier
# than requests/s on a machine that is busy with something else). Every request of the edge worker is
# a real click: KV read, id generation, cookie, event to the queue (the KV and queue services are small
# local workers).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-4s}
CONNECTIONS=${CONNECTIONS:-32}
UA='Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36'
REFERER='https://l.instagram.com/?u=https%3A%2F%2Ftrk.creatorscore.io%2Fk7m2p9qr'
HEADERS=(-H "User-Agent: $UA" -H "Referer: $REFERER") CF_NOTE=""
if [ "${CF_BLOB:-0}" = 1 ]; then
  HEADERS+=(-H "CF-IPCountry: DE" -H "cf-blob: $(tr -d '\n' <"$ROOT/bench/workerd/cf.json")")
  CF_NOTE=", requests with request.cf and CF-IPCountry"
fi

command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
WORKERD="$ROOT/node_modules/.bin/workerd"
[ -x "$WORKERD" ] || { echo "run scripts/install-edge-tools.sh first" >&2; exit 1; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  BUILD_LOG=$(mktemp /tmp/edge-bench-build.XXXXXX.log)
  echo "building the edge worker and the workers-rs baseline (log: $BUILD_LOG)" >&2
  if ! {
    bash "$ROOT/scripts/build-worker.sh" &&
      (
        # The baseline, built with the same tools and target directory.
        export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
        export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt" ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/edge}"
        cd "$ROOT/bench/workerd/trivial-rs" && worker-build --release
      )
  } >"$BUILD_LOG" 2>&1; then
    tail -30 "$BUILD_LOG" >&2
    exit 1
  fi
  rm -f "$BUILD_LOG"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NAMES=(trivial-js trivial-rs edge)
LOG=$(mktemp /tmp/edge-bench-workerd.XXXXXX.log)

# With two cores or more, every workerd runs on the last core and wrk on the first, so that the two
# never take turns on one core and the kernel does not move them about between runs.
PIN_WORKERD=() PIN_WRK=()
if [ "$(nproc)" -gt 1 ] && command -v taskset >/dev/null; then
  PIN_WORKERD=(taskset -c "$(($(nproc) - 1))") PIN_WRK=(taskset -c 0)
fi

# One workerd process per worker (bench/workerd/NAME.capnp): CPU time is then read per worker, with
# no other isolate's garbage collection or runtime work charged to it.
declare -A PORTS PIDS URLS
for name in "${NAMES[@]}"; do
  PORTS[$name]=$(free_port)
  "${PIN_WORKERD[@]}" "$WORKERD" serve "$ROOT/bench/workerd/$name.capnp" \
    --socket-addr "http=127.0.0.1:${PORTS[$name]}" >>"$LOG" 2>&1 &
  PIDS[$name]=$!
  URLS[$name]="http://127.0.0.1:${PORTS[$name]}/k7m2p9qr"
done
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

for name in "${NAMES[@]}"; do
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:${PORTS[$name]}/" && break
    sleep 0.1
  done
done

# Only measure what is meant: the edge must answer the bench code with a real redirect.
location=$(curl -s -o /dev/null -w '%{redirect_url}' -H "User-Agent: $UA" "${URLS[edge]}")
case "$location" in
  https://shop.example/products/linen-shirt\?variant=4411\&utm_source=creator\&cs_ref=*\#reviews) ;;
  *) echo "the edge worker did not redirect as expected: '$location'" >&2; cat "$LOG" >&2; exit 1 ;;
esac

# CPU time (user + system, in clock ticks) a worker's workerd has used so far: per request, it is a
# figure that other load on the machine hardly moves, unlike requests/s.
cpu_ticks() { awk '{print $14 + $15}' "/proc/${PIDS[$1]}/stat"; }
TICKS_PER_SEC=$(getconf CLK_TCK)

# run NAME: one wrk run; prints "rps p50 p99 cpu_us_per_request" (latencies in ms).
run() {
  local out before after
  before=$(cpu_ticks "$1")
  out=$("${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${HEADERS[@]}" "${URLS[$1]}")
  after=$(cpu_ticks "$1")
  if grep -q 'Non-2xx or 3xx' <<<"$out"; then echo "$out" >&2; echo "$1: unexpected statuses" >&2; exit 1; fi
  awk -v ticks=$((after - before)) -v hz="$TICKS_PER_SEC" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /requests in/ { n = $1 }
    /^Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.2f %.2f %.1f\n", rps, p50, p99, ticks / hz * 1e6 / n }' <<<"$out"
}

declare -A RESULTS
for name in "${NAMES[@]}"; do # warm every isolate up
  "${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d2s "${URLS[$name]}" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do # interleaved, so drift on a shared machine hits all three alike
  for name in "${NAMES[@]}"; do
    RESULTS[$name]+="$(run "$name")"$'\n'
  done
  echo "round $round/$ROUNDS done" >&2
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" 'NF {print $c}' <<<"${RESULTS[$1]}" | median; }
# ratio BASE COLUMN: the median over rounds of the edge's share of BASE, each round against the run of
# BASE just before it (column 1, requests/s: edge / base; column 4, CPU per redirect: base / edge).
ratio() {
  paste <(awk 'NF' <<<"${RESULTS[edge]}") <(awk 'NF' <<<"${RESULTS[$1]}") |
    awk -v c="$2" '{ e = $c; b = $(c + 4); print (c == 4 ? b / e : e / b) * 100 }' | median
}

echo
echo "workerd $("$WORKERD" --version | awk '{print $2}'), wrk -t1 -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds, $(nproc) cores$CF_NOTE"
printf '%-12s %12s %9s %9s %12s   %s\n' worker redirects/s p50_ms p99_ms cpu_us/redir "runs (req/s)"
for name in "${NAMES[@]}"; do
  printf '%-12s %12s %9s %9s %12s   %s\n' "$name" "$(col "$name" 1)" "$(col "$name" 2)" "$(col "$name" 3)" \
    "$(col "$name" 4)" "$(awk 'NF {print $1}' <<<"${RESULTS[$name]}" | paste -sd, -)"
done
for base in trivial-rs trivial-js; do
  printf 'edge vs %-10s throughput %3.0f%%   (by CPU per redirect: %3.0f%%; medians of the per-round ratios)\n' \
    "$base" "$(ratio "$base" 1)" "$(ratio "$base" 4)"
done
if grep -qi error "$LOG"; then
  echo "workerd logged errors (log kept: $LOG):" >&2
  grep -i error "$LOG" | sort | uniq -c | head >&2
else
  rm -f "$LOG"
fi
