-- Covering indexes for brand-wide reports: a 30-day attribution report reads ~30,000 rollup rows and
-- tens of thousands of conversions from the index alone, without visiting the table.
create index link_daily_brand_day_covering on link_daily (brand_id, day) include (link_id, clicks, unique_clicks);
drop index link_daily_brand_day;
create index conversions_brand_time_covering on conversions (brand_id, occurred_at)
    include (link_id, currency, amount_minor, refunded_minor);
drop index conversions_brand_time;
