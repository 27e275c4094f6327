-- Monthly click rollups: reports that add a window up without a per-day breakdown (the attribution report,
-- a link's all-time totals in lists) read its whole calendar months from one row per link and month instead
-- of one per link and day, so "all time" costs about what the last 30 days do however long the brand's
-- history. `day` is the month's first day, so a month's row answers the same day bounds as the daily rows
-- of that month.
--
-- The fold task adds each hourly delta to its hour, its day and its month in one statement; reports read
-- the monthly rollups and the pending deltas together through link_monthly_all.

create table link_monthly (
    link_id         uuid not null references links (id),
    day             date not null check (day = date_trunc('month', day)::date),
    brand_id        uuid not null references brands (id),
    clicks          bigint not null default 0,
    unique_clicks   bigint not null default 0,
    bot_clicks      bigint not null default 0,
    primary key (link_id, day)
);
create index link_monthly_brand_day on link_monthly (brand_id, day) include (link_id, clicks, unique_clicks);

-- The months of the clicks counted so far: the daily rollups (and their pending deltas are folded into
-- every level later, as any other).
insert into link_monthly (link_id, day, brand_id, clicks, unique_clicks, bot_clicks)
    select link_id, date_trunc('month', day)::date, brand_id, sum(clicks), sum(unique_clicks), sum(bot_clicks)
    from link_daily group by 1, 2, 3;

create view link_monthly_all as
    select link_id, day, brand_id, clicks, unique_clicks, bot_clicks from link_monthly
    union all
    select link_id, date_trunc('month', hour at time zone 'UTC')::date, brand_id, clicks, unique_clicks, bot_clicks
    from link_hourly_delta;
