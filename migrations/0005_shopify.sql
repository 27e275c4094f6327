-- Shopify: connected shops, every verified webhook delivery, and refunds.

-- A shop belongs to at most one brand. The webhook secret is kept as given because verifying Shopify's
-- HMAC needs the key itself (a hash of it would not do); the API never returns it.
create table shopify_shops (
    shop_domain     text primary key check (length(shop_domain) between 1 and 253),
    brand_id        uuid not null references brands (id),
    seq             bigint generated always as identity,
    webhook_secret  text not null check (length(webhook_secret) between 1 and 256),
    connected_at    timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index shopify_shops_brand_seq on shopify_shops (brand_id, seq desc);

-- Every delivery whose signature verified, with its exact body, so a delivery that failed (or was
-- processed by a buggy release) can be replayed. A webhook id is processed once: `processed_at` is set
-- in the same transaction as the order or refund it recorded. No foreign key to `shopify_shops`:
-- disconnecting a shop keeps its history.
create table shopify_deliveries (
    id                bigint generated always as identity primary key,
    shop_domain       text not null,
    brand_id          uuid not null references brands (id),
    webhook_id        text not null check (length(webhook_id) between 1 and 255),
    topic             text not null check (length(topic) between 1 and 255),
    body              bytea not null,
    received_at       timestamptz not null default now(),
    last_received_at  timestamptz not null default now(),
    attempts          integer not null default 1,
    processed_at      timestamptz,
    error             text,
    constraint shopify_deliveries_webhook_key unique (shop_domain, webhook_id)
);
create index shopify_deliveries_failed on shopify_deliveries (id) where processed_at is null;

-- Money returned to customers, one row per Shopify refund (its id is unique per brand, so a redelivered
-- refund counts once). A refund may arrive before its order: it waits here and is applied when the order
-- is recorded. `conversions.refunded_minor` is the sum of an order's refunds in the order's currency.
create table refunds (
    brand_id        uuid not null references brands (id),
    refund_id       text not null check (length(refund_id) between 1 and 128),
    order_id        text not null check (length(order_id) between 1 and 128),
    amount_minor    bigint not null check (amount_minor >= 0),
    currency        text not null check (currency ~ '^[A-Z]{3}$'),
    refunded_at     timestamptz,
    created_at      timestamptz not null default now(),
    constraint refunds_brand_refund_key primary key (brand_id, refund_id)
);
create index refunds_order on refunds (brand_id, order_id);
