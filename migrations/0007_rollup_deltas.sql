-- Ingestion appends each batch's rollup counts as delta rows instead of updating the shared per-day rows:
-- every batch of a hot link used to wait for the previous batch's commit on the same rows. One background
-- task folds the deltas into link_daily / link_daily_dims every second; reports read both through views,
-- so they are exact at every moment (the fold moves rows in one statement).
create table link_daily_delta (
    link_id         uuid not null,
    day             date not null,
    brand_id        uuid not null,
    clicks          bigint not null,
    unique_clicks   bigint not null,
    bot_clicks      bigint not null
);
create index link_daily_delta_link_day on link_daily_delta (link_id, day);
create index link_daily_delta_brand_day on link_daily_delta (brand_id, day);

create table link_daily_dims_delta (
    link_id         uuid not null,
    day             date not null,
    dimension       smallint not null,
    value           text not null,
    clicks          bigint not null
);
create index link_daily_dims_delta_link_day on link_daily_dims_delta (link_id, day);

create view link_daily_all as
    select link_id, day, brand_id, clicks, unique_clicks, bot_clicks from link_daily
    union all
    select link_id, day, brand_id, clicks, unique_clicks, bot_clicks from link_daily_delta;

create view link_daily_dims_all as
    select link_id, day, dimension, value, clicks from link_daily_dims
    union all
    select link_id, day, dimension, value, clicks from link_daily_dims_delta;
