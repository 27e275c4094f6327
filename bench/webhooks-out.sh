#!/usr/bin/env bash
# Outbound webhooks: events delivered per second by one API process to a local receiver (Node's http
# server answering 204), signed, in order per endpoint. EVENTS link.created events are written to the
# outbox in SQL with the function the API's own transactions call, for ENDPOINTS endpoints of one brand;
# the figure is deliveries marked delivered per second, from the first to the last, counted in PostgreSQL.
# Usage: bash bench/webhooks-out.sh [events, default 20000] [endpoints, default 1 and 4]
source "$(dirname "$0")/lib.sh"
EVENTS=${1:-20000}
RECEIVER_PORT=${RECEIVER_PORT:-18090}
export ALLOW_PRIVATE_TARGETS=true

bench_build_api
bench_start_api
node "$ROOT/bench/receiver.mjs" "$RECEIVER_PORT" &
RECEIVER_PID=$!
trap 'kill $API_PID $RECEIVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$RECEIVER_PORT/count" >/dev/null && break; sleep 0.1; done

for endpoints in ${2:-1 4}; do
  out=$("$ROOT/target/release/api" brand create --name "Bench brand $endpoints" 2>/dev/null)
  KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
  BRAND=$(awk '/^brand_id:/ {print $2}' <<<"$out")
  for e in $(seq 1 "$endpoints"); do
    curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -d "{\"url\":\"http://127.0.0.1:$RECEIVER_PORT/hook/$e\",\"events\":[\"link.created\"]}" \
      "http://$BENCH_ADDR/v1/webhooks" >/dev/null
  done
  link=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"destination_url":"https://shop.example/products/linen-shirt"}' "http://$BENCH_ADDR/v1/links")
  LINK_ID=$(jq -r .id <<<"$link")
  # Wait for that link's own event to go, then queue the benchmark's events in one statement.
  for _ in $(seq 1 100); do
    [ "$(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from webhook_deliveries where status = 'pending'")" = 0 ] && break
    sleep 0.1
  done
  base=$(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from webhook_deliveries where status = 'delivered'")
  psql -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" -v brand="$BRAND" -v link="$LINK_ID" -v n="$EVENTS" <<'SQL' >/dev/null
select emit_webhook_event(:'brand', 'link.created',
                          (select to_jsonb(l) from (select id, seq, code, destination_url, campaign_id, creator_id, platform,
                                                           content_type, promo_code, share_revenue, active, version,
                                                           created_at, deleted_at from links where id = :'link') l), null)
from generate_series(1, :n);
SQL
  total=$((EVENTS * endpoints))
  start=$(date +%s.%N)
  while :; do
    done_now=$(psql -qtA -h 127.0.0.1 -U postgres -d "$BENCH_DB" -c "select count(*) from webhook_deliveries where status = 'delivered'")
    [ $((done_now - base)) -ge "$total" ] && break
    sleep 0.2
  done
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$endpoints endpoint(s): $total deliveries in $(printf %.1f "$elapsed") s = $(echo "$total / $elapsed" | bc) deliveries/s"
done
echo "receiver got $(curl -sf "http://127.0.0.1:$RECEIVER_PORT/count") requests"
