-- The outbox of link changes still to be pushed to Workers KV. A row is written in the same transaction
-- as the change it records, so a committed change is never lost and an uncommitted one never reaches KV.
create table link_sync_outbox (
    id          bigint generated always as identity primary key,
    link_id     uuid not null references links (id),
    version     bigint not null,
    created_at  timestamptz not null default now(),
    done_at     timestamptz
);
create index link_sync_outbox_pending on link_sync_outbox (id) where done_at is null;
