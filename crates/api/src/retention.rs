//! Retention: data that has served its purpose is dropped after a configured time, so the tables that
//! grow with traffic stop growing without bound.
//!
//! - Shopify delivery bodies (`RETAIN_SHOPIFY_BODIES_DAYS`): a delivery processed longer ago than that
//!   loses its body; the row (webhook id, topic, times, attempts) stays, so a redelivery is still
//!   recognised as a duplicate. A delivery that failed keeps its body until it is processed (by a
//!   redelivery or `api shopify replay`), however old it is.
//! - The KV outbox (`RETAIN_OUTBOX_DAYS`): rows whose change reached KV (`done_at` set) are deleted;
//!   pending ones are never touched.
//! - Outbound webhook deliveries (`RETAIN_WEBHOOK_DELIVERIES_DAYS`): deliveries that ended (delivered,
//!   or failed after every retry) longer ago are deleted, then events no delivery refers to any more;
//!   pending ones are never touched.
//! - Pixel page views (`RETAIN_PAGE_VIEWS_DAYS`): only `page_view` events are deleted. Purchases, cart
//!   and checkout events, orders, their click references and everything else attribution stands on
//!   are kept for ever. Here, those of the legacy partition (received before pixel events were
//!   partitioned by month); `partitions` drops a monthly partition's page views whole once all of its
//!   month is older than the setting.
//!
//! A pass runs at start-up and then every hour, in one process at a time (a PostgreSQL advisory lock),
//! and deletes in batches of at most [`BATCH`] rows per statement, each its own short transaction, so a
//! first pass over a large backlog never holds locks or writes a huge transaction.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;

/// The advisory lock a retention pass holds from its first statement to its last.
pub const RETENTION_LOCK: i64 = 0x7265_7461_696e; // "retain"

/// Rows per statement.
pub const BATCH: i64 = 1000;

/// Time between passes.
const EVERY: StdDuration = StdDuration::from_secs(60 * 60);

/// How long each kind of data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `RETAIN_SHOPIFY_BODIES_DAYS` (default 30): bodies of deliveries processed longer ago are dropped.
    pub shopify_bodies: Duration,
    /// `RETAIN_OUTBOX_DAYS` (default 7): outbox rows finished longer ago are deleted.
    pub outbox: Duration,
    /// `RETAIN_PAGE_VIEWS_DAYS` (default 90): page views received longer ago are deleted.
    pub page_views: Duration,
    /// `RETAIN_WEBHOOK_DELIVERIES_DAYS` (default 30): webhook deliveries that ended longer ago are deleted.
    pub webhook_deliveries: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            shopify_bodies: Duration::days(30),
            outbox: Duration::days(7),
            page_views: Duration::days(90),
            webhook_deliveries: Duration::days(30),
        }
    }
}

/// What a pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Delivery bodies dropped.
    pub shopify_bodies: u64,
    /// Finished outbox rows deleted.
    pub outbox_rows: u64,
    /// Page views deleted.
    pub page_views: u64,
    /// Ended webhook deliveries deleted.
    pub webhook_deliveries: u64,
    /// Webhook events deleted (no delivery referred to them any more).
    pub webhook_events: u64,
    /// Statements run (each touching at most the batch size).
    pub batches: u64,
}

/// One kind of data: a statement that removes at most `$2` rows older than `$1`, oldest first.
struct Kind {
    name: &'static str,
    sql: &'static str,
}

const SHOPIFY_BODIES: Kind = Kind {
    name: "shopify delivery bodies",
    sql: "update shopify_deliveries set body = null where id in (
              select id from shopify_deliveries
              where processed_at < $1 and body is not null order by processed_at limit $2)",
};

const OUTBOX: Kind = Kind {
    name: "finished outbox rows",
    sql: "delete from link_sync_outbox where id in (
              select id from link_sync_outbox where done_at < $1 order by done_at limit $2)",
};

/// Page views in the legacy partition only (the rows from before pixel events were partitioned by
/// month): the monthly partitions' page views are dropped a month at a time by `partitions`.
const PAGE_VIEWS: Kind = Kind {
    name: "page views",
    sql: "delete from pixel_events_legacy where id in (
              select id from pixel_events_legacy
              where event = 'page_view' and received_at < $1 order by received_at limit $2)",
};

const WEBHOOK_DELIVERIES: Kind = Kind {
    name: "ended webhook deliveries",
    sql: "delete from webhook_deliveries where id in (
              select id from webhook_deliveries
              where status <> 'pending' and last_attempt_at < $1 order by last_attempt_at limit $2)",
};

const WEBHOOK_EVENTS: Kind = Kind {
    name: "delivered webhook events",
    sql: "delete from webhook_events where id in (
              select id from webhook_events e
              where created_at < $1 and not exists (select 1 from webhook_deliveries d where d.event_id = e.id)
              order by created_at limit $2)",
};

/// Removes what `policy` no longer keeps at `now`, `batch` rows per statement. `None` when another
/// process holds the retention lock (it is doing the same work). Stops between two statements once
/// `stopped` turns true; the next pass goes on from there.
pub async fn purge(
    db: &PgPool,
    policy: &Retention,
    now: DateTime<Utc>,
    batch: i64,
    stopped: &watch::Receiver<bool>,
) -> Result<Option<Purged>, sqlx::Error> {
    let mut conn = db.acquire().await?;
    let locked: bool =
        sqlx::query_scalar("select pg_try_advisory_lock($1)").bind(RETENTION_LOCK).fetch_one(&mut *conn).await?;
    if !locked {
        return Ok(None);
    }
    let mut purged = Purged::default();
    let result = async {
        let before = |keep: Duration| now.checked_sub_signed(keep).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let batches = &mut purged.batches;
        purged.shopify_bodies =
            drain(&mut conn, &SHOPIFY_BODIES, before(policy.shopify_bodies), batch, stopped, batches).await?;
        purged.outbox_rows = drain(&mut conn, &OUTBOX, before(policy.outbox), batch, stopped, batches).await?;
        purged.page_views = drain(&mut conn, &PAGE_VIEWS, before(policy.page_views), batch, stopped, batches).await?;
        let webhooks = before(policy.webhook_deliveries);
        purged.webhook_deliveries = drain(&mut conn, &WEBHOOK_DELIVERIES, webhooks, batch, stopped, batches).await?;
        purged.webhook_events = drain(&mut conn, &WEBHOOK_EVENTS, webhooks, batch, stopped, batches).await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    // A session lock outlives a failed statement: release it, or close the connection if even that fails,
    // so the lock never stays behind on a pooled connection.
    if sqlx::query("select pg_advisory_unlock($1)").bind(RETENTION_LOCK).execute(&mut *conn).await.is_err() {
        conn.close_on_drop();
    }
    result.map(|()| Some(purged))
}

/// Runs `kind`'s statement until it finds fewer than `batch` rows; returns how many it removed.
async fn drain(
    conn: &mut PgConnection,
    kind: &Kind,
    cutoff: DateTime<Utc>,
    batch: i64,
    stopped: &watch::Receiver<bool>,
    batches: &mut u64,
) -> Result<u64, sqlx::Error> {
    let mut removed = 0;
    while !*stopped.borrow() {
        let n = sqlx::query(kind.sql).bind(cutoff).bind(batch).execute(&mut *conn).await?.rows_affected();
        *batches += 1;
        removed += n;
        if n < u64::try_from(batch).unwrap_or(0) {
            break;
        }
    }
    if removed > 0 {
        tracing::debug!(kind = kind.name, removed, %cutoff, "retention removed rows");
    }
    Ok(removed)
}

/// Runs a pass at start and then every hour until `shutdown` turns true; after a failure, tries again
/// sooner (1 minute, doubling up to the hour).
pub async fn run(db: PgPool, policy: Retention, shutdown: watch::Receiver<bool>) {
    tracing::info!(
        shopify_bodies_days = policy.shopify_bodies.num_days(),
        outbox_days = policy.outbox.num_days(),
        page_views_days = policy.page_views.num_days(),
        "retention started"
    );
    let stop = shutdown.clone();
    crate::periodic::every("retention", EVERY, shutdown, || async {
        let purged = purge(&db, &policy, Utc::now(), BATCH, &stop).await?;
        if let Some(p) = &purged {
            tracing::info!(
                shopify_bodies = p.shopify_bodies,
                outbox_rows = p.outbox_rows,
                page_views = p.page_views,
                batches = p.batches,
                "retention pass done"
            );
        }
        Ok::<_, sqlx::Error>(purged.is_some())
    })
    .await;
}
