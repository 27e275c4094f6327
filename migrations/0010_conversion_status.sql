-- What can be proven about each order: its status, the facts it is derived from, the Conversions API's
-- idempotency keys, and refunds reported through that API.

-- The server-side source of an order can now also be the Conversions API.
alter table conversions drop constraint conversions_source_check;
alter table conversions add constraint conversions_source_check check (source in ('pixel', 'shopify', 'api'));
alter table conversions drop constraint conversions_amount_source_check;
alter table conversions add constraint conversions_amount_source_check
    check (amount_source in ('pixel', 'shopify', 'api'));
alter table order_refs drop constraint order_refs_source_check;
alter table order_refs add constraint order_refs_source_check check (source in ('pixel', 'shopify', 'api'));

-- The facts a status is derived from, each set by whoever reports it:
--   verified_at   first report by a server-side source (a verified Shopify webhook, the Conversions API);
--   confirm_by    for an order the pixel reported first on a brand that has a server-side source, the end
--                 of the window in which a server-side report is expected (null: the brand had none);
--   cancelled_at  cancelled by Shopify or through the Conversions API;
--   test          a Shopify test order;
--   disputed      pixel reports of different visitors claim it.
alter table conversions
    add column verified_at timestamptz,
    add column confirm_by timestamptz,
    add column cancelled_at timestamptz,
    add column test boolean not null default false,
    add column disputed boolean not null default false,
    add column status text not null default 'unverified'
        check (status in ('verified', 'pending', 'unconfirmed', 'unverified', 'disputed', 'cancelled', 'test'));

-- The one definition of an order's status. Every write that changes a fact above stores its result, and
-- the confirmation sweep stores it for pending orders whose window has passed (`expired`); reports only
-- ever read the stored column.
create function conversion_status(
    test boolean, cancelled_at timestamptz, verified_at timestamptz, disputed boolean, confirm_by timestamptz,
    expired boolean
) returns text language sql immutable as $$
    select case
        when test then 'test'
        when cancelled_at is not null then 'cancelled'
        when verified_at is not null then 'verified'
        when disputed then 'disputed'
        when confirm_by is null then 'unverified'
        when expired then 'unconfirmed'
        else 'pending'
    end
$$;

-- Orders as they stand: those Shopify reported are verified; those only the pixel reported, on a brand
-- with a connected shop, wait 72 hours from their first report (the default window) and are unconfirmed
-- after it; any other pixel-only order is unverified.
update conversions set verified_at = updated_at where amount_source <> 'pixel';
update conversions c set confirm_by = c.created_at + interval '72 hours'
where c.verified_at is null and exists (select 1 from shopify_shops s where s.brand_id = c.brand_id);
update conversions set status = conversion_status(test, cancelled_at, verified_at, disputed, confirm_by,
                                                  confirm_by <= now());

-- The confirmation sweep finds pending orders by the end of their window.
create index conversions_pending on conversions (confirm_by) where status = 'pending';

-- Reports read status alongside the figures, from the index alone: brand-wide reports by time, and one
-- link's figures (link stats, the creators' view, the links list) by link and time.
create index conversions_brand_time_status on conversions (brand_id, occurred_at)
    include (link_id, currency, amount_minor, refunded_minor, status);
drop index conversions_brand_time_covering;
create index conversions_link_time_status on conversions (link_id, occurred_at)
    include (currency, amount_minor, refunded_minor, status) where link_id is not null;
drop index conversions_link_time;

-- A brand that ever reported an order through the Conversions API has a server-side source: its
-- pixel-only orders wait for confirmation from then on.
alter table brands add column conversions_api_at timestamptz;

-- `POST /v1/conversions` idempotency: the first request with a key stores its answer in the same
-- transaction as the order; a retry with the same key and body gets that answer again, with another body
-- a conflict. Kept per brand.
create table idempotency_keys (
    brand_id        uuid not null references brands (id),
    key             text not null check (length(key) between 1 and 255),
    request_hash    bytea not null check (length(request_hash) = 32),
    status_code     smallint not null,
    response        jsonb not null,
    created_at      timestamptz not null default now(),
    primary key (brand_id, key)
);

-- Orders that name a click ingestion has just stored, to be re-attributed off the path that acknowledges
-- the batch: queued in the statement that stores the clicks (so a crash loses nothing), drained in bulk
-- by a background task.
create table reattribution_queue (
    brand_id        uuid not null,
    order_id        text not null,
    queued_at       timestamptz not null default now(),
    primary key (brand_id, order_id)
);
