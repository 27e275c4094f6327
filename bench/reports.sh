#!/usr/bin/env bash
# Reports at scale: one brand with 10,000,000 clicks over 90 days on 1,000 links of 100 creators, and
# 100,000 conversions, generated in SQL (click rollups built the way ingestion builds them; order rollups
# by the triggers on conversions and the API's fold).
# Then wrk times GET /v1/attribution?group_by=creator and GET /v1/links/{id}/stats (the link with the most
# clicks) over windows of every shape: the last 30 whole days, 30 days from a ragged second to now, the
# last 24 hours (ragged at both ends), and all time.
# Usage: bash bench/reports.sh [clicks, default 10000000] [seconds per run, default 10] [runs, default 3]
# BENCH_KEEP_DB=1 times the data a previous run generated (another build on the same data: it migrates it).
source "$(dirname "$0")/lib.sh"
CLICKS=${1:-10000000}
SECS=${2:-10}
RUNS=${3:-3}

bench_build_api
bench_start_api
psql_bench() { psql -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -U postgres -d "$BENCH_DB" "$@"; }
BRAND=$(psql_bench -tA -c "select id from brands where name = 'Bench brand'")
if [ -n "$BRAND" ]; then
  echo "timing the data of the previous run: $(psql_bench -tA -c 'select count(*) from clicks') clicks"
  export KEY=$("$ROOT/target/release/api" key create --brand "$BRAND" | awk '/^api_key:/ {print $2}')
  until [ "$(psql_bench -tA -c 'select count(*) from order_hourly_delta')" = 0 ]; do sleep 1; done
  psql_bench -c 'vacuum analyze'
else
out=$("$ROOT/target/release/api" brand create --name "Bench brand")
export KEY=$(awk '/^api_key:/ {print $2}' <<<"$out")
BRAND=$(awk '/^brand_id:/ {print $2}' <<<"$out")

echo "generating $CLICKS clicks..."
start=$(date +%s)
psql_bench -v brand="$BRAND" -v clicks="$CLICKS" <<'SQL'
insert into creators (id, brand_id, name) select gen_random_uuid(), :'brand', 'creator ' || g from generate_series(1, 100) g;
insert into campaigns (id, brand_id, name) select gen_random_uuid(), :'brand', 'campaign ' || g from generate_series(1, 10) g;
create temporary table c as select id, row_number() over (order by id) as n from creators;
create temporary table k as select id, row_number() over (order by id) as n from campaigns;
insert into links (id, brand_id, code, destination_url, creator_id, campaign_id, platform, content_type)
  select gen_random_uuid(), :'brand', 'b' || lpad(g::text, 7, '0'), 'https://shop.example/p/' || g,
         (select id from c where n = 1 + g % 100), (select id from k where n = 1 + g % 10),
         (array['instagram','tiktok','youtube','x','facebook','linkedin'])[1 + g % 6],
         (array['sponsored_post','story','reel','video','bio_link','affiliate'])[1 + g % 6]
  from generate_series(1, 1000) g;
create temporary table l as select id, row_number() over (order by id) - 1 as n from links;

-- Load clicks without per-row index maintenance or foreign-key checks, then index once.
alter table clicks drop constraint clicks_pkey;
drop index clicks_link_time, clicks_brand_time, clicks_brand_visitor_time;
set session_replication_role = replica;
-- Skewed over links (a few links get most clicks), 2,000,000 visitors, 5% bots, over the last 90 days.
insert into clicks (id, link_id, brand_id, occurred_at, visitor_id, new_visitor, bot, country, referrer_host, device_type, browser, os)
  select gen_random_uuid(), l.id, :'brand', now() - random() * interval '90 days',
         ('00000000-0000-4000-8000-' || lpad(to_hex((random() * 2000000)::int), 12, '0'))::uuid,
         random() < 0.5, random() < 0.05,
         (array['US','DE','GB','FR','BR','IN'])[1 + (random() * 5)::int], 'l.instagram.com',
         (array['mobile','mobile','desktop','tablet'])[1 + (random() * 3)::int],
         (array['Mobile Safari','Chrome Mobile','Chrome','Instagram','Firefox'])[1 + (random() * 4)::int],
         (array['iOS','Android','Windows','Mac OS X'])[1 + (random() * 3)::int]
  from (select floor(1000 * power(random(), 3))::int as li from generate_series(1, :clicks)) s
  join l on l.n = s.li;
set session_replication_role = origin;
alter table clicks add constraint clicks_pkey primary key (id, occurred_at);
create index clicks_link_time on clicks (link_id, occurred_at);
create index clicks_brand_time on clicks (brand_id, occurred_at);
create index clicks_brand_visitor_time on clicks (brand_id, visitor_id, occurred_at desc);

-- The rollups ingestion maintains, built in bulk.
insert into link_visitors (link_id, visitor_id, brand_id, first_click_at)
  select link_id, visitor_id, brand_id, min(occurred_at) from clicks where not bot group by 1, 2, 3;
insert into link_daily (link_id, day, brand_id, clicks, unique_clicks, bot_clicks)
  select link_id, day, brand_id, sum(clicks), sum(uniques), sum(bots) from (
      select link_id, (occurred_at at time zone 'UTC')::date as day, brand_id,
             count(*) filter (where not bot) as clicks, 0 as uniques, count(*) filter (where bot) as bots
      from clicks group by 1, 2, 3
      union all
      select link_id, (first_click_at at time zone 'UTC')::date, brand_id, 0, count(*), 0 from link_visitors group by 1, 2, 3
  ) parts group by 1, 2, 3;
insert into link_daily_dims (link_id, day, dimension, value, clicks)
  select link_id, (occurred_at at time zone 'UTC')::date, d.dimension, coalesce(d.value, 'unknown'), count(*)
  from clicks cross join lateral (values (0::smallint, country), (1::smallint, device_type), (2::smallint, browser), (3::smallint, os)) d(dimension, value)
  where not bot group by 1, 2, 3, 4;
insert into link_monthly (link_id, day, brand_id, clicks, unique_clicks, bot_clicks)
  select link_id, date_trunc('month', day)::date, brand_id, sum(clicks), sum(unique_clicks), sum(bot_clicks)
  from link_daily group by 1, 2, 3;
insert into link_hourly (link_id, hour, brand_id, clicks, unique_clicks, bot_clicks)
  select link_id, hour, brand_id, sum(clicks), sum(uniques), sum(bots) from (
      select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00') as hour, brand_id,
             count(*) filter (where not bot) as clicks, 0 as uniques, count(*) filter (where bot) as bots
      from clicks group by 1, 2, 3
      union all
      select link_id, date_bin('1 hour', first_click_at, timestamptz '2000-01-01 00:00:00+00'), brand_id, 0, count(*), 0
      from link_visitors group by 1, 2, 3
  ) parts group by 1, 2, 3;
insert into link_hourly_dims (link_id, hour, dimension, value, clicks)
  select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00'), d.dimension, coalesce(d.value, 'unknown'), count(*)
  from clicks cross join lateral (values (0::smallint, country), (1::smallint, device_type), (2::smallint, browser), (3::smallint, os)) d(dimension, value)
  where not bot group by 1, 2, 3, 4;

-- 100,000 orders credited to human clicks.
insert into conversions (id, brand_id, order_id, amount_minor, currency, link_id, method, click_id, occurred_at, credited_at)
  select gen_random_uuid(), :'brand', 'order-' || n, 1000 + (random() * 20000)::int, 'USD', link_id, 'click', id,
         occurred_at + interval '1 hour', now()
  from (select id, link_id, occurred_at, row_number() over () as n from clicks where not bot limit 100000) picked;
SQL
# The API folds the orders' rollup deltas within a second; then fresh statistics and visibility maps.
until [ "$(psql_bench -tA -c 'select count(*) from order_hourly_delta')" = 0 ]; do sleep 1; done
psql_bench -c 'vacuum analyze'
echo "generated in $(( $(date +%s) - start )) s: $(psql_bench -tA -c 'select count(*) from clicks') clicks, $(psql_bench -tA -c 'select count(*) from conversions') conversions"
fi

TO=$(date -u +%Y-%m-%dT00:00:00Z)
FROM=$(date -u -d '30 days ago' +%Y-%m-%dT00:00:00Z)
LINK=$(psql_bench -tA -c "select link_id from link_daily group by 1 order by sum(clicks) desc limit 1")
echo "busiest link: $(psql_bench -tA -c "select sum(clicks) from link_daily where link_id = '$LINK'") clicks"

RAGGED_30D=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)
LAST_24H=$(date -u -d '24 hours ago' +%Y-%m-%dT%H:%M:%SZ)
for window in "30 whole days|from=$FROM&to=$TO" "30 days, ragged edges|from=$RAGGED_30D" \
              "last 24 hours|from=$LAST_24H" "all time|from=1970-01-01T00:00:00Z"; do
  label=${window%%|*} query=${window#*|}
  bench_wrk "GET /v1/attribution?group_by=creator ($label)" "$RUNS" -t1 -c4 -d"${SECS}s" -s "$ROOT/bench/lua/auth.lua" \
    "http://$BENCH_ADDR/v1/attribution?group_by=creator&$query"
  bench_wrk "GET /v1/links/{id}/stats ($label)" "$RUNS" -t1 -c4 -d"${SECS}s" -s "$ROOT/bench/lua/auth.lua" \
    "http://$BENCH_ADDR/v1/links/$LINK/stats?$query"
done
