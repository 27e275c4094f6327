-- Raw clicks and pixel events partitioned by UTC month, so that retention drops whole months
-- (crates/api/src/partitions.rs keeps months created ahead and drops old ones) instead of deleting rows,
-- and the tables that grow with traffic stop growing without bound.
--
-- The existing rows are not copied. Each table is renamed to `<table>_legacy`, a partitioned table takes
-- its name, and the legacy table is attached as the partition of everything before the first monthly
-- boundary B (the start of a UTC month at least a day ahead, so that no click or event arriving while
-- this runs, nor a click up to 10 minutes ahead of our clock, falls past it). Monthly partitions start at
-- B. What makes that cheap:
--   - a CHECK (time < B) on the legacy table, added NOT VALID then validated: validation reads the table
--     once and writes nothing; ATTACH PARTITION then skips its own scan, since the valid CHECK proves the
--     partition's range;
--   - the partitioned table's indexes match the legacy table's, which ATTACH adopts as they are, except
--     the primary key: a partitioned table's unique keys must hold the partition key, so `clicks` is keyed
--     by (id, occurred_at) and `pixel_events` by (id, received_at, event). That one index is built here.
--
-- Locks: sqlx runs a migration in one transaction, and renaming a table takes an ACCESS EXCLUSIVE lock,
-- held until the commit, so the validation scan and the new key's index build happen while both tables
-- are locked (ingestion and the pixel wait; nothing is rewritten). That is seconds at ten million rows.
-- For a table far larger, do both beforehand on the live database, where they block nothing, and this
-- migration uses them as they are:
--     create unique index concurrently clicks_legacy_id_time on clicks (id, occurred_at);
--     alter table clicks add constraint clicks_legacy_range check (occurred_at < 'B') not valid;
--     alter table clicks validate constraint clicks_legacy_range;    -- SHARE UPDATE EXCLUSIVE only
-- (and the same for pixel_events: `pixel_events_legacy_key` on (id, received_at, event),
-- `pixel_events_legacy_range` on received_at), with B the first day of a coming UTC month, e.g.
-- '2026-08-01 00:00:00+00'. The lock is then held only for the catalogue changes.
--
-- A redelivered click carries the same id and the same time, so (id, occurred_at) still recognises it
-- (`on conflict (id, occurred_at) do nothing` in ingestion). Click ids are random 128-bit values made at
-- the edge, so no two clicks share one; lookups by id alone (attribution) read one index entry per
-- partition.
--
-- Pixel events: every monthly partition is itself split by event, `_page_views` and `_other`, so that
-- retention drops a month's page views whole and keeps its add-to-cart, checkout and purchase events
-- for ever. The legacy partition holds both kinds; retention deletes its old page views row by row, as
-- before (through `pixel_events_page_views`, kept on it alone).

set local timezone = 'UTC';

-- The order in which a purchase takes them (its event, then clicks through attribution), so that a
-- purchase under way and this migration never wait for each other.
lock table pixel_events, clicks in access exclusive mode;

-- B, and the legacy tables' range constraints (unless made beforehand, as above).
create function pg_temp.legacy_bound(tbl regclass, constraint_name text, time_column text) returns timestamptz
language plpgsql as $$
declare
    def text;
    bound timestamptz;
begin
    select pg_get_constraintdef(oid) into def
    from pg_constraint where conrelid = tbl and conname = constraint_name and convalidated;
    if def is not null then
        bound := substring(def from '''([^'']+)''')::timestamptz;
        if bound is null or bound <> date_trunc('month', bound) then
            raise exception '% must bound % by the start of a UTC month: %', constraint_name, time_column, def;
        end if;
        return bound;
    end if;
    bound := date_trunc('month', now() + interval '1 month' + interval '1 day');
    -- One made beforehand but never validated is made again.
    if exists (select from pg_constraint where conrelid = tbl and conname = constraint_name) then
        execute format('alter table %s drop constraint %I', tbl, constraint_name);
    end if;
    execute format('alter table %s add constraint %I check (%I < %L) not valid', tbl, constraint_name, time_column, bound);
    execute format('alter table %s validate constraint %I', tbl, constraint_name);
    return bound;
end $$;

create temporary table legacy_bounds on commit drop as
select pg_temp.legacy_bound('clicks', 'clicks_legacy_range', 'occurred_at') as clicks,
       pg_temp.legacy_bound('pixel_events', 'pixel_events_legacy_range', 'received_at') as pixel_events;

-- Clicks.
create unique index if not exists clicks_legacy_id_time on clicks (id, occurred_at);
alter table clicks rename to clicks_legacy;
alter table clicks_legacy drop constraint clicks_pkey;
alter table clicks_legacy add constraint clicks_legacy_pkey primary key using index clicks_legacy_id_time;
alter index clicks_link_time rename to clicks_legacy_link_time;
alter index clicks_brand_time rename to clicks_legacy_brand_time;
alter index clicks_brand_visitor_time rename to clicks_legacy_brand_visitor_time;

-- The same columns and constraints as before (0001, 0015), keyed by (id, occurred_at).
create table clicks (
    id              uuid not null,              -- the click id handed out as cs_ref
    link_id         uuid not null,
    brand_id        uuid not null,
    occurred_at     timestamptz not null,
    visitor_id      uuid not null,
    new_visitor     boolean not null,
    bot             boolean not null,
    country         text,
    referrer_host   text,
    device_type     text,
    browser         text,
    os              text,
    received_at     timestamptz not null default now(),
    source          text not null default 'link',
    constraint clicks_pkey primary key (id, occurred_at),
    constraint clicks_link_id_fkey foreign key (link_id) references links (id),
    constraint clicks_brand_id_fkey foreign key (brand_id) references brands (id),
    constraint clicks_source_check check (source in ('link', 'qr'))
) partition by range (occurred_at);
create index clicks_link_time on clicks (link_id, occurred_at);
create index clicks_brand_time on clicks (brand_id, occurred_at);
create index clicks_brand_visitor_time on clicks (brand_id, visitor_id, occurred_at desc);

do $$
declare
    b timestamptz := (select clicks from legacy_bounds);
begin
    execute format('alter table clicks attach partition clicks_legacy for values from (minvalue) to (%L)', b);
    -- The first two months; crates/api/src/partitions.rs keeps creating them ahead.
    for i in 0..1 loop
        execute format('create table %I partition of clicks for values from (%L) to (%L)',
                       'clicks_' || to_char(b + make_interval(months => i), '"y"YYYY"m"MM'),
                       b + make_interval(months => i), b + make_interval(months => i + 1));
    end loop;
end $$;

-- Pixel events.
create unique index if not exists pixel_events_legacy_key on pixel_events (id, received_at, event);
alter table pixel_events rename to pixel_events_legacy;
alter table pixel_events_legacy drop constraint pixel_events_pkey;
alter table pixel_events_legacy add constraint pixel_events_legacy_pkey primary key using index pixel_events_legacy_key;
alter index pixel_events_brand_time rename to pixel_events_legacy_brand_time;
alter index pixel_events_order rename to pixel_events_legacy_order;
alter index pixel_events_page_views rename to pixel_events_legacy_page_views;

-- The same columns and constraints as before (0004), keyed by (id, received_at, event).
create table pixel_events (
    id              uuid not null,
    brand_id        uuid not null,
    event           text not null,
    cs_ref_id       uuid,
    order_id        text,
    value_minor     bigint,
    currency        text,
    url             text,
    received_at     timestamptz not null default now(),
    constraint pixel_events_pkey primary key (id, received_at, event),
    constraint pixel_events_brand_id_fkey foreign key (brand_id) references brands (id),
    constraint pixel_events_event_check check (event in ('page_view', 'add_to_cart', 'begin_checkout', 'purchase')),
    constraint pixel_events_order_id_check check (length(order_id) between 1 and 128),
    constraint pixel_events_value_minor_check check (value_minor >= 0),
    constraint pixel_events_currency_check check (currency ~ '^[A-Z]{3}$'),
    constraint pixel_events_url_check check (length(url) <= 2048)
) partition by range (received_at);
create index pixel_events_brand_time on pixel_events (brand_id, received_at);
create index pixel_events_order on pixel_events (brand_id, order_id) where order_id is not null;

do $$
declare
    b timestamptz := (select pixel_events from legacy_bounds);
    month text;
begin
    execute format('alter table pixel_events attach partition pixel_events_legacy for values from (minvalue) to (%L)', b);
    for i in 0..1 loop
        month := 'pixel_events_' || to_char(b + make_interval(months => i), '"y"YYYY"m"MM');
        execute format('create table %I partition of pixel_events for values from (%L) to (%L) partition by list (event)',
                       month, b + make_interval(months => i), b + make_interval(months => i + 1));
        execute format('create table %I partition of %I for values in (''page_view'')', month || '_page_views', month);
        execute format('create table %I partition of %I for values in (''add_to_cart'', ''begin_checkout'', ''purchase'')',
                       month || '_other', month);
    end loop;
end $$;
