-- Storefront pixel events, attribution and the rollups that keep reports fast at millions of clicks.

-- Events as a storefront reported them (validated). No IP address, no user agent; the page URL without
-- its query string. `click_id` is set when `cs_ref` names one of this brand's clicks, `cs_ref_id` whenever
-- it is shaped like a click id (so a click ingested after the event can still be matched).
create table pixel_events (
    id              uuid primary key,
    brand_id        uuid not null references brands (id),
    event           text not null check (event in ('page_view', 'add_to_cart', 'begin_checkout', 'purchase')),
    cs_ref_id       uuid,
    order_id        text check (length(order_id) between 1 and 128),
    value_minor     bigint check (value_minor >= 0),
    currency        text check (currency ~ '^[A-Z]{3}$'),
    url             text check (length(url) <= 2048),
    received_at     timestamptz not null default now()
);
create index pixel_events_brand_time on pixel_events (brand_id, received_at);
create index pixel_events_order on pixel_events (brand_id, order_id) where order_id is not null;

-- Every click id an order was reported with, by the pixel or by Shopify. Attribution considers all of
-- them, and a click ingested after its order's report re-attributes the order through this table.
create table order_refs (
    brand_id        uuid not null references brands (id),
    order_id        text not null,
    cs_ref_id       uuid not null,
    source          text not null check (source in ('pixel', 'shopify')),
    created_at      timestamptz not null default now(),
    primary key (brand_id, order_id, cs_ref_id)
);
create index order_refs_ref on order_refs (cs_ref_id);

-- Attribution finds a visitor's latest click of a brand through any of their clicks.
create index clicks_brand_visitor_time on clicks (brand_id, visitor_id, occurred_at desc);

-- Conversions record who reported the order first and where its amount came from.
alter table conversions
    add column source text not null default 'pixel' check (source in ('pixel', 'shopify')),
    add column amount_source text not null default 'pixel' check (amount_source in ('pixel', 'shopify')),
    add column credited_at timestamptz,
    -- Discount codes the order carried (from Shopify), the backup signal when no click is known.
    add column discount_codes text[] not null default '{}';
create index conversions_click on conversions (click_id) where click_id is not null;

-- A unique click is a visitor's first human click on a link: additive over days, so it rolls up.
create table link_visitors (
    link_id         uuid not null references links (id),
    visitor_id      uuid not null,
    brand_id        uuid not null references brands (id),
    first_click_at  timestamptz not null,
    primary key (link_id, visitor_id)
);
create index link_visitors_link_time on link_visitors (link_id, first_click_at);
create index link_visitors_brand_time on link_visitors (brand_id, first_click_at);

-- Per link and UTC day: human clicks, unique clicks (first clicks) and bot clicks. Maintained at ingest.
create table link_daily (
    link_id         uuid not null references links (id),
    day             date not null,
    brand_id        uuid not null references brands (id),
    clicks          bigint not null default 0,
    unique_clicks   bigint not null default 0,
    bot_clicks      bigint not null default 0,
    primary key (link_id, day)
);
create index link_daily_brand_day on link_daily (brand_id, day);

-- Per link, UTC day and dimension (0 country, 1 device type, 2 browser, 3 OS): human clicks per value.
create table link_daily_dims (
    link_id         uuid not null references links (id),
    day             date not null,
    dimension       smallint not null check (dimension between 0 and 3),
    value           text not null,
    clicks          bigint not null,
    primary key (link_id, day, dimension, value)
);

-- Creators' read-only tokens, stored as SHA-256 hashes like API keys.
create table creator_tokens (
    id              uuid primary key,
    creator_id      uuid not null,
    brand_id        uuid not null references brands (id),
    prefix          text not null constraint creator_tokens_prefix_key unique,
    token_hash      bytea not null check (length(token_hash) = 32),
    created_at      timestamptz not null default now(),
    revoked_at      timestamptz,
    constraint creator_tokens_creator_fkey foreign key (brand_id, creator_id) references creators (brand_id, id)
);

-- Conversion lists are newest first with opaque cursors, like every other list.
alter table conversions add column seq bigint generated always as identity;
create index conversions_brand_seq on conversions (brand_id, seq desc);
