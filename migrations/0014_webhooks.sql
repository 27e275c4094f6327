-- Outbound webhooks (crates/api/src/webhooks): brands' endpoints, the events that happened to their
-- objects, and one delivery per event and subscribed endpoint. Events and their deliveries are written by
-- `emit_webhook_event` in the transaction of the change that causes them (a transactional outbox); a
-- background task delivers them.

create table webhook_endpoints (
    id                    uuid primary key,
    brand_id              uuid not null references brands (id),
    seq                   bigint generated always as identity,
    url                   text not null check (length(url) between 1 and 2048),
    description           text check (length(description) <= 500),
    events                text[] not null check (cardinality(events) between 1 and 20),
    enabled               boolean not null default true,
    -- Why a disabled endpoint is: `failing` (5 days of failed deliveries) or `manual`.
    disabled_reason       text check (disabled_reason in ('failing', 'manual')),
    disabled_at           timestamptz,
    -- The signing secret (`whsec_` + base64 of 32 random bytes); kept, since every delivery is signed with it.
    secret                text not null,
    -- After a rotation, the previous secret also signs deliveries until `previous_secret_until`.
    previous_secret       text,
    previous_secret_until timestamptz,
    -- Since when every attempt failed; null once one succeeds.
    failing_since         timestamptz,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    constraint webhook_endpoints_disabled check (enabled = (disabled_reason is null))
);
create index webhook_endpoints_brand on webhook_endpoints (brand_id, seq desc);

-- What happened. `object` is the object as it stood when the event was emitted: a link as the REST API
-- shows it, or an order as stored (rendered as the REST API shows it at delivery); `previous` holds the
-- attributes that changed, as they were.
create table webhook_events (
    id          uuid primary key default gen_random_uuid(),
    brand_id    uuid not null references brands (id),
    type        text not null,
    object      jsonb not null,
    previous    jsonb,
    created_at  timestamptz not null default now()
);

-- One event for one endpoint. `seq` is the order deliveries are made in, per endpoint.
create table webhook_deliveries (
    id               uuid primary key default gen_random_uuid(),
    seq              bigint generated always as identity,
    endpoint_id      uuid not null references webhook_endpoints (id) on delete cascade,
    event_id         uuid not null references webhook_events (id),
    status           text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null default now(),
    -- A worker sending it holds it until then (so several processes never send one twice at once).
    leased_until     timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz not null default now()
);
create index webhook_deliveries_pending on webhook_deliveries (endpoint_id, seq) where status = 'pending';
create index webhook_deliveries_endpoint on webhook_deliveries (endpoint_id, seq desc);
create index webhook_deliveries_event on webhook_deliveries (event_id);
-- Retention (crates/api/src/retention.rs): ended deliveries by age, then events by age.
create index webhook_deliveries_ended on webhook_deliveries (last_attempt_at) where status <> 'pending';
create index webhook_events_created on webhook_events (created_at);

-- Emits an event for the brand's enabled endpoints subscribed to its type: nothing when there are none.
create function emit_webhook_event(p_brand uuid, p_type text, p_object jsonb, p_previous jsonb) returns void
language plpgsql as $$
declare
    event_id uuid;
begin
    if not exists (select 1 from webhook_endpoints where brand_id = p_brand and enabled and p_type = any(events)) then
        return;
    end if;
    insert into webhook_events (brand_id, type, object, previous)
    values (p_brand, p_type, p_object, p_previous)
    returning id into event_id;
    insert into webhook_deliveries (endpoint_id, event_id)
    select id, event_id from webhook_endpoints
    where brand_id = p_brand and enabled and p_type = any(events)
    order by seq;
end $$;

-- Orders are written by every source (pixel, Shopify, Conversions API, the confirmation sweep,
-- re-attribution): their events come from the one place they all go through. The object has the columns
-- of an order as the REST API lists it (crates/api/src/conversions: `Row`).
create function conversions_webhook_events() returns trigger
language plpgsql as $$
declare
    object jsonb;
begin
    if not exists (select 1 from webhook_endpoints where brand_id = new.brand_id and enabled) then
        return null;
    end if;
    select to_jsonb(r) into object from (
        select new.seq, new.order_id, new.status, new.amount_minor, new.refunded_minor, new.currency, new.link_id,
               (select l.creator_id from links l where l.id = new.link_id) as creator_id, new.method, new.click_id,
               new.occurred_at, new.credited_at, new.source, new.verified_at, new.confirm_by, new.cancelled_at,
               new.discount_codes) r;
    if tg_op = 'INSERT' then
        perform emit_webhook_event(new.brand_id, 'conversion.created', object, null);
    else
        if new.status is distinct from old.status then
            perform emit_webhook_event(new.brand_id, 'conversion.status_changed', object,
                                       jsonb_build_object('status', old.status));
        end if;
        if new.refunded_minor > old.refunded_minor then
            perform emit_webhook_event(new.brand_id, 'conversion.refunded', object,
                                       jsonb_build_object('refunded_minor', old.refunded_minor));
        end if;
    end if;
    return null;
end $$;

create trigger conversions_webhook_events_insert after insert on conversions
    for each row execute function conversions_webhook_events();
create trigger conversions_webhook_events_update after update of status, refunded_minor on conversions
    for each row when (new.status is distinct from old.status or new.refunded_minor > old.refunded_minor)
    execute function conversions_webhook_events();
