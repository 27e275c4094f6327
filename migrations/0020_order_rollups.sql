-- Order rollups: reports read whole days and hours of orders from rollups, as they do clicks, so a report's
-- cost no longer grows with the number of orders in its window (all time, for a brand with 100,000 orders,
-- aggregated every one of them).
--
-- The rollups hold facts, not rules: per link, UTC hour (or day), currency and status, how many orders and
-- their amount net of refunds. Which statuses count, and where, stays `crate::revenue`'s to say; reports
-- apply it to rollup rows and to raw orders alike.
--
-- Every write to `conversions` (an order recorded, re-judged, re-credited, refunded, cancelled, its time
-- corrected by the store) appends what it changed to `order_hourly_delta` in the same transaction: the new
-- rows' contributions added, the old rows' taken away. Triggers are per statement, over transition tables,
-- so a bulk re-attribution or the confirmation sweep writes one grouped insert, and no write ever updates a
-- shared rollup row (concurrent orders of one link never wait on each other). The fold task moves the
-- deltas into the hourly and daily rollups; reports read rollups and pending deltas together through the
-- *_all views, so they are exact at every moment.

-- An order's amount net of refunds, never below zero: the one definition reports and rollups share.
create function order_net_minor(amount_minor bigint, refunded_minor bigint) returns bigint
    language sql immutable parallel safe as $$ select greatest(amount_minor - refunded_minor, 0) $$;

create table order_hourly (
    link_id         uuid not null,
    hour            timestamptz not null check (hour = date_bin('1 hour', hour, timestamptz '2000-01-01 00:00:00+00')),
    currency        text not null,
    status          text not null,
    brand_id        uuid not null,
    orders          bigint not null,
    net_minor       bigint not null,
    primary key (link_id, hour, currency, status)
);
create index order_hourly_brand_hour on order_hourly (brand_id, hour)
    include (link_id, currency, status, orders, net_minor);

create table order_daily (
    link_id         uuid not null,
    day             date not null,
    currency        text not null,
    status          text not null,
    brand_id        uuid not null,
    orders          bigint not null,
    net_minor       bigint not null,
    primary key (link_id, day, currency, status)
);
create index order_daily_brand_day on order_daily (brand_id, day)
    include (link_id, currency, status, orders, net_minor);

-- Changes not yet folded; `orders` and `net_minor` may be negative (what an order no longer adds).
create table order_hourly_delta (
    link_id         uuid not null,
    hour            timestamptz not null,
    currency        text not null,
    status          text not null,
    brand_id        uuid not null,
    orders          bigint not null,
    net_minor       bigint not null
);
create index order_hourly_delta_link_hour on order_hourly_delta (link_id, hour);
create index order_hourly_delta_brand_hour on order_hourly_delta (brand_id, hour);

create function order_rollup_inserted() returns trigger language plpgsql as $$
begin
    insert into order_hourly_delta (link_id, hour, currency, status, brand_id, orders, net_minor)
        select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00'), currency, status,
               brand_id, count(*), sum(order_net_minor(amount_minor, refunded_minor))
        from inserted where link_id is not null
        group by 1, 2, 3, 4, 5;
    return null;
end $$;

create function order_rollup_updated() returns trigger language plpgsql as $$
begin
    insert into order_hourly_delta (link_id, hour, currency, status, brand_id, orders, net_minor)
        select link_id, hour, currency, status, brand_id, sum(orders), sum(net_minor) from (
            select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00') as hour, currency,
                   status, brand_id, 1 as orders, order_net_minor(amount_minor, refunded_minor) as net_minor
            from after_update where link_id is not null
            union all
            select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00'), currency,
                   status, brand_id, -1, -order_net_minor(amount_minor, refunded_minor)
            from before_update where link_id is not null
        ) changes
        group by 1, 2, 3, 4, 5
        having sum(orders) <> 0 or sum(net_minor) <> 0;
    return null;
end $$;

create function order_rollup_deleted() returns trigger language plpgsql as $$
begin
    insert into order_hourly_delta (link_id, hour, currency, status, brand_id, orders, net_minor)
        select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00'), currency, status,
               brand_id, -count(*), -sum(order_net_minor(amount_minor, refunded_minor))
        from deleted where link_id is not null
        group by 1, 2, 3, 4, 5;
    return null;
end $$;

create trigger order_rollup_inserted after insert on conversions
    referencing new table as inserted for each statement execute function order_rollup_inserted();
create trigger order_rollup_updated after update on conversions
    referencing old table as before_update new table as after_update
    for each statement execute function order_rollup_updated();
create trigger order_rollup_deleted after delete on conversions
    referencing old table as deleted for each statement execute function order_rollup_deleted();

-- The rollups of the orders stored so far.
insert into order_hourly (link_id, hour, currency, status, brand_id, orders, net_minor)
    select link_id, date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00'), currency, status, brand_id,
           count(*), sum(order_net_minor(amount_minor, refunded_minor))
    from conversions where link_id is not null
    group by 1, 2, 3, 4, 5;
insert into order_daily (link_id, day, currency, status, brand_id, orders, net_minor)
    select link_id, (hour at time zone 'UTC')::date, currency, status, brand_id, sum(orders), sum(net_minor)
    from order_hourly
    group by 1, 2, 3, 4, 5;

create view order_hourly_all as
    select link_id, hour, (hour at time zone 'UTC')::date as day, currency, status, brand_id, orders, net_minor
    from order_hourly
    union all
    select link_id, hour, (hour at time zone 'UTC')::date, currency, status, brand_id, orders, net_minor
    from order_hourly_delta;

create view order_daily_all as
    select link_id, day, currency, status, brand_id, orders, net_minor from order_daily
    union all
    select link_id, (hour at time zone 'UTC')::date, currency, status, brand_id, orders, net_minor
    from order_hourly_delta;
