#!/usr/bin/env bash
# Conversions API: orders stored per second by one API process (POST /v1/conversions with the brand's key).
# Every request is a new order with its own order id and its own Idempotency-Key, naming a real click
# (cs_ref), so each one claims its key, records the order and credits it in one transaction.
# The figure is orders committed per second, counted in PostgreSQL, then how many were credited to the click.
# Usage: bash bench/conversions.sh [seconds per run, default 10] [runs, default 3]
# The machine's PostgreSQL speed (bench_reference) is measured before and after the runs, so that a figure
# says how fast the machine was when it was taken.
# CLICK_MONTHS=N: the clicks table has N monthly partitions more (as a deployment that has kept raw clicks
# for N more months has), so that the cost of every month kept shows; default 0.
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RUNS=${2:-3}
export EDGE_INGEST_TOKEN=bench-ingest-token-0123456789abcdefgh

bench_build_api
bench_start_api
out=$("$ROOT/target/release/api" brand create --name "Bench brand")
export KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
link=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"destination_url":"https://shop.example/"}' "http://$BENCH_ADDR/v1/links")
export CS_REF=$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
now_ms=$(( $(date +%s) * 1000 - 60000 ))
curl -sf -H "Authorization: Bearer $EDGE_INGEST_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"clicks\":[{\"v\":1,\"click_id\":\"$CS_REF\",\"code\":$(jq .code <<<"$link"),\"link_id\":$(jq .id <<<"$link"),\"occurred_at_ms\":$now_ms,\"visitor_id\":\"$(python3 -c 'import uuid; print(uuid.uuid4().hex)')\",\"new_visitor\":true,\"bot\":false}]}" \
  "http://$BENCH_INTERNAL_ADDR/internal/clicks" >/dev/null
# Every order was placed half a minute ago: after the click, never in the future.
export OCCURRED_AT=$(date -u -d '30 seconds ago' +%Y-%m-%dT%H:%M:%SZ)

# A store that has reported orders for a while: 100,000 earlier orders (half with a click id), each with
# its Idempotency-Key. Then fresh statistics, as autovacuum keeps them on a live database: on empty tables
# the planner picks sequential scans, which the pool's connections keep in their cached plans as the
# tables grow (a third of PostgreSQL's CPU per order went to them).
BRAND=$(awk '/^brand_id:/ {print $2}' <<<"$out")
psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v brand="$BRAND" <<'SQL' >/dev/null
update brands set conversions_api_at = now() - interval '30 days' where id = :'brand';
insert into conversions (id, brand_id, order_id, amount_minor, currency, occurred_at, source, amount_source,
                         verified_at, status)
  select gen_random_uuid(), :'brand', 'earlier-' || g, 8481, 'USD', now() - interval '20 days', 'api', 'api',
         now() - interval '20 days', 'verified'
  from generate_series(1, 100000) g;
insert into order_refs (brand_id, order_id, cs_ref_id, source)
  select :'brand', 'earlier-' || g, gen_random_uuid(), 'api' from generate_series(1, 100000, 2) g;
insert into idempotency_keys (brand_id, key, request_hash, status_code, response)
  select :'brand', 'earlier-' || g, sha256(g::text::bytea), 201, '{}' from generate_series(1, 100000) g;
vacuum analyze;
checkpoint;
SQL
# Months ahead stand in for months kept: a partition is planned and locked the same, whichever month it holds.
psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v months="${CLICK_MONTHS:-0}" <<'SQL' >/dev/null
select format('create table if not exists %I partition of clicks for values from (%L) to (%L)',
              'clicks_bench_' || to_char(m, 'YYYYMM'), m, m + interval '1 month')
from generate_series(date_trunc('month', now()) + interval '10 years',
                     date_trunc('month', now()) + interval '10 years' + (:'months'::int - 1) * interval '1 month',
                     interval '1 month') m
\gexec
vacuum analyze clicks;
SQL

reference_before=$(bench_reference)
WORK=$(mktemp -d)
cpu_snapshot >"$WORK/cpu.before"
before=$(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions")
bench_stored conversions "orders" "$RUNS" -t2 -c16 -d"${SECS}s" -s "$ROOT/bench/lua/conversions.lua" \
  "http://$BENCH_ADDR/v1/conversions"
cpu_snapshot >"$WORK/cpu.after"
after=$(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions")
read -r api_ticks pg_ticks < <(cpu_spent "$WORK/cpu.before" "$WORK/cpu.after")
rm -rf "$WORK"
api_us=$(echo "$api_ticks * 1000000 / $TICK / ($after - $before)" | bc)
pg_us=$(echo "$pg_ticks * 1000000 / $TICK / ($after - $before)" | bc)
echo "CPU per order: API $api_us µs + PostgreSQL $pg_us µs, i.e. at most $((2000000 / (api_us + pg_us)))/s if both" \
  "cores did nothing else (WAL writer, wrk and the kernel not counted)"
reference_after=$(bench_reference)
echo "machine reference (pgbench, BEGIN; SELECT 1 ×3; COMMIT, -c16 -T5): $reference_before tps before the runs," \
  "$reference_after after"
echo "orders credited to the click: $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions where method = 'click'") of $(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from conversions")"
