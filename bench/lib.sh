# Helpers the benchmark scripts share: a release API on a throwaway database, and wrk runs summarised.
# shellcheck shell=bash
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DB=${BENCH_DB:-tracking_links_bench}
BENCH_ADDR=${BENCH_ADDR:-127.0.0.1:18080}
# The internal listener (/internal/clicks), apart from the public one as in production.
BENCH_INTERNAL_ADDR=${BENCH_INTERNAL_ADDR:-127.0.0.1:18081}
# The scripts' Python and Lua halves read both.
export BENCH_ADDR BENCH_INTERNAL_ADDR
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB"
API_PID=""

bench_build_api() {
  bash "$ROOT/scripts/ensure-postgres.sh"
  for tool in wrk jq bc; do
    command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
  done
  (cd "$ROOT" && cargo build --release -p api --quiet)
  # BENCH_KEEP_DB=1: the data of the previous run stays (a script that can reuse it says so).
  if [ "${BENCH_KEEP_DB:-0}" != 1 ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists $BENCH_DB with (force)" >/dev/null
  fi
}

# Starts the API (migrating the fresh database) and waits until it is ready.
bench_start_api() {
  # The benchmarks' links point at shops that do not exist: checking them in the background would only add
  # outbound requests and row locks to what is measured.
  DESTINATION_CHECKS=${DESTINATION_CHECKS:-false} \
  BIND_ADDR=$BENCH_ADDR INTERNAL_BIND_ADDR=$BENCH_INTERNAL_ADDR RUST_LOG=${RUST_LOG:-warn} "$ROOT/target/release/api" serve &
  API_PID=$!
  trap 'kill $API_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    curl -sf "http://$BENCH_ADDR/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "API did not become ready" >&2
  return 1
}

# bench_wrk NAME RUNS wrk-args...: runs wrk RUNS times and prints the median requests/s and the median p50/p99.
bench_wrk() {
  local name=$1 runs=$2
  shift 2
  local out rps=() p50=() p99=()
  for _ in $(seq 1 "$runs"); do
    out=$(wrk --latency "$@")
    rps+=("$(awk '/^Requests\/sec/ {print $2}' <<<"$out")")
    p50+=("$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99+=("$(awk '$1 == "99%" {print $2}' <<<"$out")")
    if grep -q 'Non-2xx' <<<"$out"; then echo "$out" >&2; echo "$name: non-2xx answers" >&2; return 1; fi
  done
  printf '%-34s median req/s %-10s p50 %-9s p99 %-9s (runs: %s)\n' "$name" \
    "$(printf '%s\n' "${rps[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
    "$(printf '%s\n' "${p50[@]}" | sort -h | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
    "$(printf '%s\n' "${p99[@]}" | sort -h | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
    "$(IFS=,; echo "${rps[*]}")"
}

# bench_stored TABLE WHAT RUNS wrk-args...: runs wrk RUNS times and reports rows committed to TABLE per second,
# counted in the table itself (the figure that matters: what was stored, not what was answered), with the
# requests' p50/p99, then the median rate.
bench_stored() {
  local table=$1 what=$2 runs=$3
  shift 3
  local rates=() before after start elapsed rate out
  count() { psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from $table"; }
  for run in $(seq 1 "$runs"); do
    before=$(count)
    start=$(date +%s.%N)
    out=$(wrk --latency "$@")
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    after=$(count)
    if grep -q 'Non-2xx' <<<"$out"; then echo "$out" >&2; echo "non-2xx answers" >&2; return 1; fi
    rate=$(echo "($after - $before) / $elapsed" | bc)
    rates+=("$rate")
    printf 'run %d: %s %s stored in %.1f s = %s/s; request p50 %s p99 %s\n' "$run" "$((after - before))" "$what" \
      "$elapsed" "$rate" "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
  done
  echo "median: $(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') $what/s stored"
}

# CPU time (clock ticks) of the API process and of each PostgreSQL backend serving the bench database,
# one "pid ticks" line each: requests/s depend on whatever else the machine runs, CPU per request does not.
cpu_snapshot() {
  local pid
  for pid in "$API_PID" $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" \
      -c "select pid from pg_stat_activity where datname = '$BENCH_DB' and pid <> pg_backend_pid()"); do
    [ -r "/proc/$pid/stat" ] && awk -v pid="$pid" '{print pid, $14 + $15}' "/proc/$pid/stat"
  done
}
# cpu_spent BEFORE AFTER: "api_ticks postgres_ticks" between two snapshots (backends opened meanwhile count from 0).
cpu_spent() {
  awk -v api="$API_PID" 'NR == FNR {before[$1] = $2; next} {d = $2 - before[$1]; if ($1 == api) a += d; else p += d}
    END {print a + 0, p + 0}' "$1" "$2"
}
TICK=$(getconf CLK_TCK)

# The machine's speed for PostgreSQL at this moment: pgbench's transactions per second over
# `BEGIN; SELECT 1 ×3; COMMIT` (16 clients, prepared, 5 s) against the bench database. This machine's speed
# drifts by a fifth within an hour and by more between days: a figure printed with the reference taken beside
# it says how fast the machine was when it was taken. (Not a conversion factor: this is mostly round trips.)
bench_reference() {
  local script
  command -v pgbench >/dev/null || { echo "n/a (no pgbench)"; return 0; }
  script=$(mktemp)
  printf 'BEGIN;\nSELECT 1;\nSELECT 1;\nSELECT 1;\nCOMMIT;\n' >"$script"
  pgbench -h 127.0.0.1 -U postgres -n -M prepared -c16 -j2 -T5 -f "$script" "$BENCH_DB" 2>/dev/null |
    awk '/^tps/ {printf "%d\n", $3}'
  rm -f "$script"
}
