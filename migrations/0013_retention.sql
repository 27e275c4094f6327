-- Retention (crates/api/src/retention.rs): what each pass looks for, found through small partial
-- indexes rather than scans of the whole tables.

-- A processed delivery's body is dropped after RETAIN_SHOPIFY_BODIES_DAYS; the row stays (a redelivery
-- of its webhook id is still a duplicate). Failed deliveries are never processed, so they keep theirs.
alter table shopify_deliveries alter column body drop not null;
alter table shopify_deliveries
    add constraint shopify_deliveries_failed_keep_body check (processed_at is not null or body is not null);
create index shopify_deliveries_body_kept on shopify_deliveries (processed_at)
    where processed_at is not null and body is not null;

-- Finished outbox rows are deleted after RETAIN_OUTBOX_DAYS.
create index link_sync_outbox_done on link_sync_outbox (done_at) where done_at is not null;

-- Page views are deleted after RETAIN_PAGE_VIEWS_DAYS; every other pixel event is kept.
create index pixel_events_page_views on pixel_events (received_at) where event = 'page_view';
