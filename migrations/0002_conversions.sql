-- One row per order (brand + order id), however many pixel events or webhooks report it.
-- The credit (link, method, click) explains where the order's revenue went; a row with no link is an
-- order we know of that credits nobody.
create table conversions (
    id              uuid primary key,
    brand_id        uuid not null references brands (id),
    order_id        text not null check (length(order_id) between 1 and 128),
    amount_minor    bigint not null check (amount_minor >= 0),
    refunded_minor  bigint not null default 0 check (refunded_minor >= 0),
    currency        text not null check (currency ~ '^[A-Z]{3}$'),
    link_id         uuid references links (id),
    method          text check (method in ('click', 'promo_code')),
    click_id        uuid,
    occurred_at     timestamptz not null,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint conversions_brand_order_key unique (brand_id, order_id),
    constraint conversions_credit_complete check ((link_id is null) = (method is null)),
    constraint conversions_click_credit check (method is distinct from 'click' or click_id is not null)
);
create index conversions_link_time on conversions (link_id, occurred_at) where link_id is not null;
create index conversions_brand_time on conversions (brand_id, occurred_at);
