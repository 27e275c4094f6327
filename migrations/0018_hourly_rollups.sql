-- Hourly rollups: reports read whole days from the daily rollups, whole hours from the hourly ones, and
-- only the minutes at a window's two ragged ends from raw clicks, so a "last 24 hours" view (or any window
-- that does not start at midnight) costs what an aligned one does.
--
-- Ingestion now appends its counts per UTC hour (link_hourly_delta, link_hourly_dims_delta); the fold task
-- moves them into both the hourly and the daily rollups in one statement. Reports read the rollups and
-- the pending deltas together through the *_all views, so they are exact at every moment.

create table link_hourly (
    link_id         uuid not null references links (id),
    hour            timestamptz not null check (hour = date_bin('1 hour', hour, timestamptz '2000-01-01 00:00:00+00')),
    brand_id        uuid not null references brands (id),
    clicks          bigint not null default 0,
    unique_clicks   bigint not null default 0,
    bot_clicks      bigint not null default 0,
    primary key (link_id, hour)
);
create index link_hourly_brand_hour on link_hourly (brand_id, hour) include (link_id, clicks, unique_clicks);

create table link_hourly_dims (
    link_id         uuid not null references links (id),
    hour            timestamptz not null,
    dimension       smallint not null check (dimension between 0 and 4),
    value           text not null,
    clicks          bigint not null,
    primary key (link_id, hour, dimension, value)
);

create table link_hourly_delta (
    link_id         uuid not null,
    hour            timestamptz not null,
    brand_id        uuid not null,
    clicks          bigint not null,
    unique_clicks   bigint not null,
    bot_clicks      bigint not null
);
create index link_hourly_delta_link_hour on link_hourly_delta (link_id, hour);
create index link_hourly_delta_brand_hour on link_hourly_delta (brand_id, hour);

create table link_hourly_dims_delta (
    link_id         uuid not null,
    hour            timestamptz not null,
    dimension       smallint not null,
    value           text not null,
    clicks          bigint not null
);
create index link_hourly_dims_delta_link_hour on link_hourly_dims_delta (link_id, hour);

-- Pending daily deltas are folded now: from here on ingestion writes hourly ones.
insert into link_daily (link_id, day, brand_id, clicks, unique_clicks, bot_clicks)
    select link_id, day, brand_id, sum(clicks), sum(unique_clicks), sum(bot_clicks)
    from link_daily_delta group by link_id, day, brand_id
    on conflict (link_id, day) do update set
        clicks = link_daily.clicks + excluded.clicks,
        unique_clicks = link_daily.unique_clicks + excluded.unique_clicks,
        bot_clicks = link_daily.bot_clicks + excluded.bot_clicks;
insert into link_daily_dims (link_id, day, dimension, value, clicks)
    select link_id, day, dimension, value, sum(clicks) from link_daily_dims_delta group by 1, 2, 3, 4
    on conflict (link_id, day, dimension, value) do update set clicks = link_daily_dims.clicks + excluded.clicks;
drop view link_daily_all;
drop view link_daily_dims_all;
drop table link_daily_delta;
drop table link_daily_dims_delta;

-- The hourly rollups of the clicks stored so far, built the way ingestion builds them.
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
    select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00'), d.dimension,
           coalesce(d.value, 'unknown'), count(*)
    from clicks
    cross join lateral (values (0::smallint, country), (1::smallint, device_type), (2::smallint, browser),
                               (3::smallint, os), (4::smallint, source)) as d(dimension, value)
    where not bot and (d.dimension <> 4 or d.value <> 'link')
    group by 1, 2, 3, 4;

create view link_daily_all as
    select link_id, day, brand_id, clicks, unique_clicks, bot_clicks from link_daily
    union all
    select link_id, (hour at time zone 'UTC')::date, brand_id, clicks, unique_clicks, bot_clicks from link_hourly_delta;

create view link_daily_dims_all as
    select link_id, day, dimension, value, clicks from link_daily_dims
    union all
    select link_id, (hour at time zone 'UTC')::date, dimension, value, clicks from link_hourly_dims_delta;

create view link_hourly_all as
    select link_id, hour, brand_id, clicks, unique_clicks, bot_clicks from link_hourly
    union all
    select link_id, hour, brand_id, clicks, unique_clicks, bot_clicks from link_hourly_delta;

create view link_hourly_dims_all as
    select link_id, hour, dimension, value, clicks from link_hourly_dims
    union all
    select link_id, hour, dimension, value, clicks from link_hourly_dims_delta;
