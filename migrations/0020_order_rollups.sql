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
-- row's contribution added, the old row's taken away. No write ever updates a shared rollup row, so
-- concurrent orders of one link never wait on each other. The fold task moves the deltas into the hourly
-- and daily rollups; reports read rollups and pending deltas together through the *_all views, so they are
-- exact at every moment.

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
-- Folded every second, so it holds a second's orders: brand-wide reports scan it, one link's figures find
-- theirs by link (no second index for writes to keep up).
create index order_hourly_delta_link_hour on order_hourly_delta (link_id, hour);

-- What a change to an order adds to and takes away from the rollups: the old row's contribution taken
-- away, the new row's added. Row triggers whose WHEN conditions (checked without calling the function)
-- skip what changes nothing the rollups hold: orders credited to no link, and updates of other columns
-- (discount codes, evidence, times of verification).
create function order_rollup_changed() returns trigger language plpgsql as $$
begin
    if tg_op in ('UPDATE', 'DELETE') and old.link_id is not null then
        insert into order_hourly_delta (link_id, hour, currency, status, brand_id, orders, net_minor)
        values (old.link_id, date_bin('1 hour', old.occurred_at, timestamptz '2000-01-01 00:00:00+00'), old.currency,
                old.status, old.brand_id, -1, -order_net_minor(old.amount_minor, old.refunded_minor));
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.link_id is not null then
        insert into order_hourly_delta (link_id, hour, currency, status, brand_id, orders, net_minor)
        values (new.link_id, date_bin('1 hour', new.occurred_at, timestamptz '2000-01-01 00:00:00+00'), new.currency,
                new.status, new.brand_id, 1, order_net_minor(new.amount_minor, new.refunded_minor));
    end if;
    return null;
end $$;

create trigger order_rollup_inserted after insert on conversions
    for each row when (new.link_id is not null) execute function order_rollup_changed();
create trigger order_rollup_updated after update on conversions
    for each row when (
        (old.link_id, old.occurred_at, old.currency, old.status, old.brand_id,
         order_net_minor(old.amount_minor, old.refunded_minor))
        is distinct from
        (new.link_id, new.occurred_at, new.currency, new.status, new.brand_id,
         order_net_minor(new.amount_minor, new.refunded_minor)))
    execute function order_rollup_changed();
create trigger order_rollup_deleted after delete on conversions
    for each row when (old.link_id is not null) execute function order_rollup_changed();

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
