-- The edge converges: a link change KV refuses is parked with KV's reason instead of holding back every
-- later change, and a periodic reconciliation pushes recently changed links again.

-- A parked row is neither done nor pending: the drainer skips it until `api kv retry` clears
-- `parked_at`, or a later push of the same link settles it (`done_at`).
alter table link_sync_outbox
    add column parked_at timestamptz,
    add column error     text,
    add constraint link_sync_outbox_parked_has_error check (parked_at is null or error is not null);

drop index link_sync_outbox_pending;
create index link_sync_outbox_pending on link_sync_outbox (id) where done_at is null and parked_at is null;
create index link_sync_outbox_parked on link_sync_outbox (link_id) where parked_at is not null and done_at is null;

-- The reconciliation pushes links changed in the last day.
create index links_updated_at on links (updated_at);

-- When the last reconciliation started: one row, claimed by the process that runs the next one.
create table kv_reconcile (
    id         boolean primary key default true check (id),
    started_at timestamptz not null
);
