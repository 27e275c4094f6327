#!/usr/bin/env bash
# Shopify webhooks: orders/create deliveries per second one API process verifies, stores and credits
# (POST /v1/webhooks/shopify), and their latency. Every request is a distinct, correctly signed delivery
# (its own webhook id and order id) of a ~6 KB order shaped like tests/fixtures/shopify: half carry a
# creator's promo code, half a landing-site cs_ref naming a real click. HMACs cannot be computed fast
# enough in wrk's Lua, so the deliveries are generated and signed beforehand (Python) and replayed in order.
# The figure is deliveries processed per second, counted in PostgreSQL.
# Usage: bash bench/webhooks.sh [seconds per run, default 10] [runs, default 3] [deliveries per run, default 60000]
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RUNS=${2:-3}
PER_RUN=${3:-60000}
export EDGE_INGEST_TOKEN=bench-ingest-token-0123456789abcdefgh
export SHOP=bench-linen.myshopify.com
SECRET=shpss_bench_5b0e7c1d9a2f4e6b8c3d1a0f9e8d7c6b
WORK=$(mktemp -d)
THREADS=2

# gen clicks LINKS | gen deliveries RUN COUNT: the Python half of the benchmark.
gen() {
  python3 - "$ROOT" "$WORK" "$SECRET" "$THREADS" "$@" <<'PY'
import base64, hashlib, hmac, json, os, random, sys, time, urllib.request, uuid
from datetime import datetime, timedelta, timezone

root, work, secret, threads, mode, *args = sys.argv[1:]
threads = int(threads)
addr = os.environ["BENCH_INTERNAL_ADDR"]
if mode == "clicks":
    # 1,000 clicks an hour ago, over the bench links, through the edge's ingest route.
    links = [pair.split(":") for pair in args[0].split(",")]
    at_ms = int((time.time() - 3600) * 1000)
    ids = []
    for batch in range(10):
        events = []
        for _ in range(100):
            link_id, code = random.choice(links)
            click = uuid.uuid4().hex
            ids.append(click)
            events.append({"v": 1, "click_id": click, "code": code, "link_id": link_id, "occurred_at_ms": at_ms,
                           "visitor_id": uuid.uuid4().hex, "new_visitor": True, "bot": False})
        request = urllib.request.Request(f"http://{addr}/internal/clicks", json.dumps({"clicks": events}).encode(),
                                         {"Content-Type": "application/json",
                                          "Authorization": "Bearer " + os.environ["EDGE_INGEST_TOKEN"]})
        urllib.request.urlopen(request).read()
    open(f"{work}/clicks.txt", "w").write("\n".join(ids))
else:
    run, count = int(args[0]), int(args[1])
    clicks = open(f"{work}/clicks.txt").read().split()
    template = json.load(open(f"{root}/tests/fixtures/shopify/orders_create_promo.json"))
    created_at = datetime.now(timezone(timedelta(hours=-5))).isoformat(timespec="seconds")
    outputs = [open(f"{work}/run{run}.{t}.tsv", "w") for t in range(threads)]
    for i in range(count):
        order = dict(template)  # only top-level fields change
        order_id = 6_000_000_000_000 + run * 10_000_000 + i
        order.update(id=order_id, admin_graphql_api_id=f"gid://shopify/Order/{order_id}", name=f"#{order_id}",
                     created_at=created_at, processed_at=created_at, updated_at=created_at)
        if i % 2:
            order["discount_codes"] = [{"code": f"BENCH{i % 10}", "amount": "13.35", "type": "percentage"}]
        else:
            order["discount_codes"] = []
            order["landing_site"] = f"/products/linen-shirt?utm_source=instagram&cs_ref={random.choice(clicks)}"
        body = json.dumps(order, separators=(",", ":")).encode()
        signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        outputs[i % threads].write(f"{uuid.uuid4()}\t{signature}\t{body.decode()}\n")
    for output in outputs:
        output.close()
PY
}

bench_build_api
bench_start_api
trap 'kill $API_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
out=$("$ROOT/target/release/api" brand create --name "Bench brand")
KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
curl -sf -X PUT -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d "{\"shop_domain\":\"$SHOP\",\"webhook_secret\":\"$SECRET\"}" "http://$BENCH_ADDR/v1/integrations/shopify" >/dev/null
links=()
for i in $(seq 0 9); do
  body=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"destination_url\":\"https://shop.example/$i\",\"promo_code\":\"bench$i\"}" "http://$BENCH_ADDR/v1/links")
  links+=("$(jq -r '.id + ":" + .code' <<<"$body")")
done
BENCH_INTERNAL_ADDR=$BENCH_INTERNAL_ADDR gen clicks "$(IFS=,; echo "${links[*]}")"
sql() { psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "$1"; }
# A shop that has been running for a while: 100,000 earlier orders (half with a click id) and their
# deliveries (with small bodies: only their keys matter here). Then fresh statistics, as autovacuum keeps
# them on a live database. On empty tables the planner would pick plans (seq scans of order_refs, say)
# that the pool's connections keep as their tables grow, and the figure would drift down run after run.
BRAND=$(awk '/^brand_id:/ {print $2}' <<<"$out")
psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v brand="$BRAND" -v shop="$SHOP" <<'SQL' >/dev/null
insert into conversions (id, brand_id, order_id, amount_minor, currency, occurred_at, source, amount_source)
  select gen_random_uuid(), :'brand', (5000000000000 + g)::text, 8481, 'USD', now() - interval '20 days', 'shopify', 'shopify'
  from generate_series(1, 100000) g;
insert into order_refs (brand_id, order_id, cs_ref_id, source)
  select :'brand', (5000000000000 + g)::text, gen_random_uuid(), 'shopify' from generate_series(1, 100000, 2) g;
insert into shopify_deliveries (shop_domain, brand_id, webhook_id, topic, body, processed_at)
  select :'shop', :'brand', gen_random_uuid()::text, 'orders/create', '\x7b7d', now() from generate_series(1, 100000);
analyze;
SQL


rates=()
cpus=()
for run in $(seq 1 "$RUNS"); do
  BENCH_ADDR=$BENCH_ADDR gen deliveries "$run" "$PER_RUN"
  before=$(sql "select count(*) from shopify_deliveries where processed_at is not null")
  cpu_snapshot >"$WORK/cpu.before"
  start=$(date +%s.%N)
  out=$(WEBHOOKS="$WORK/run$run" wrk --latency -t$THREADS -c32 -d"${SECS}s" -s "$ROOT/bench/lua/webhooks.lua" \
    "http://$BENCH_ADDR/v1/webhooks/shopify")
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  after=$(sql "select count(*) from shopify_deliveries where processed_at is not null")
  cpu_snapshot >"$WORK/cpu.after"
  read -r api_ticks pg_ticks < <(cpu_spent "$WORK/cpu.before" "$WORK/cpu.after")
  if grep -q 'Non-2xx' <<<"$out"; then echo "$out" >&2; echo "non-2xx answers" >&2; exit 1; fi
  done_=$((after - before))
  rate=$(echo "$done_ / $elapsed" | bc)
  rates+=("$rate")
  api_us=$(echo "$api_ticks * 1000000 / $TICK / $done_" | bc)
  pg_us=$(echo "$pg_ticks * 1000000 / $TICK / $done_" | bc)
  cpus+=("$((api_us + pg_us))")
  printf 'run %d: %s deliveries processed in %.1f s = %s/s (wrk: %s req/s); p50 %s p99 %s; CPU per webhook: API %s µs + PostgreSQL %s µs; load %s\n' \
    "$run" "$done_" "$elapsed" "$rate" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" "$api_us" "$pg_us" \
    "$(cut -d' ' -f1 /proc/loadavg)"
  rm -f "$WORK"/run"$run".*.tsv
done
sql "select method, count(*) from conversions group by 1 order by 1" | sed 's/^/credited by /'
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu=$(median "${cpus[@]}")
echo "median: $(median "${rates[@]}") webhooks/s processed; $cpu µs of CPU per webhook (API + PostgreSQL backends)," \
  "i.e. at most $((2000000 / cpu))/s if both cores did nothing else (WAL writer, wrk and the kernel not counted)"
