//! Pushing links again from the links table alone, whatever the outbox says: the periodic
//! reconciliation (links changed in the last day) and `api kv resync` (every link).
//!
//! The reconciliation is what makes KV converge with Cloudflare's API, which cannot refuse a stale
//! write: a push that timed out may still land after a newer one, and the next reconciliation writes
//! the newest state over it. With the worker's sync route it is a second line behind the version check.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::watch;

use super::push::{push_isolating, Change, LinkState, STATE_COLUMNS};
use super::{in_transaction, parked, KvSink, DRAIN_BATCH, SYNC_LOCK};

/// Links changed within this long before a reconciliation starts are pushed again by it.
pub const RECONCILE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The advisory lock of the reconciliation: one process runs it at a time.
const RECONCILE_LOCK: i64 = 0x6b76_7265_636f; // "kvreco"

/// What a push from the links table did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Active links written.
    pub written: usize,
    /// Inactive links deleted.
    pub deleted: usize,
    /// Links KV refused, now parked.
    pub parked: usize,
}

/// Re-pushes every link: active ones written, inactive ones deleted. For disaster recovery (an emptied
/// namespace, a new one). Holds the sync lock page by page, so it never overwrites a newer push.
pub async fn resync<S: KvSink>(db: &PgPool, sink: &S, page: i64) -> anyhow::Result<PushReport> {
    push_pages(db, sink, None, page).await
}

/// Re-pushes every link changed (`updated_at`) at or after `since`, as [`resync`] does.
pub async fn reconcile<S: KvSink>(
    db: &PgPool,
    sink: &S,
    since: DateTime<Utc>,
    page: i64,
) -> anyhow::Result<PushReport> {
    push_pages(db, sink, Some(since), page).await
}

/// Runs [`reconcile`] over the last [`RECONCILE_WINDOW`] unless some process started one less than
/// `every` ago: the start is claimed in the database (`kv_reconcile`) while the reconciliation lock is
/// held, so however many API processes run, one reconciles per period. A reconciliation that fails is
/// rolled back with its claim, so the next look runs it again. `None` when it was not due.
pub async fn reconcile_if_due<S: KvSink>(db: &PgPool, sink: &S, every: Duration) -> anyhow::Result<Option<PushReport>> {
    in_transaction(db, async |tx| {
        let locked: bool =
            sqlx::query_scalar("select pg_try_advisory_xact_lock($1)").bind(RECONCILE_LOCK).fetch_one(&mut *tx).await?;
        if !locked {
            return Ok(None);
        }
        let since: Option<DateTime<Utc>> = sqlx::query_scalar(
            "insert into kv_reconcile (id, started_at) values (true, now())
             on conflict (id) do update set started_at = excluded.started_at
                 where kv_reconcile.started_at <= now() - make_interval(secs => $1)
             returning started_at - make_interval(secs => $2)",
        )
        .bind(every.as_secs_f64())
        .bind(RECONCILE_WINDOW.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(since) = since else { return Ok(None) };
        reconcile(db, sink, since, DRAIN_BATCH).await.map(Some)
    })
    .await
}

/// Looks every minute (or every `every`, when shorter) whether a reconciliation is due, until
/// `shutdown` turns true. `every = None`: reconciliation is off.
pub(super) async fn run<S: KvSink>(
    db: &PgPool,
    sink: &S,
    every: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(every) = every else { return };
    let look = every.min(Duration::from_secs(60));
    loop {
        let due = tokio::select! {
            due = reconcile_if_due(db, sink, every) => due,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        match due {
            Ok(Some(report)) => tracing::info!(
                written = report.written,
                deleted = report.deleted,
                parked = report.parked,
                "KV reconciled: links changed in the last day pushed again"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "KV reconciliation failed; it runs again soon"),
        }
        tokio::select! {
            () = tokio::time::sleep(look) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SeqState {
    seq: i64,
    #[sqlx(flatten)]
    state: LinkState,
}

/// Pushes links in `seq` order, `page` at a time (at most the sink's limit), each page in its own
/// transaction under the sync lock; `since` keeps only links changed from then on. Stops at the first
/// unsettled push (the pages before it stay pushed).
async fn push_pages<S: KvSink>(
    db: &PgPool,
    sink: &S,
    since: Option<DateTime<Utc>>,
    page: i64,
) -> anyhow::Result<PushReport> {
    let page = page.min(i64::try_from(S::MAX_BATCH).unwrap_or(i64::MAX));
    let mut report = PushReport::default();
    let mut after = 0i64;
    loop {
        let pushed = in_transaction(db, async |tx| {
            sqlx::query("select pg_advisory_xact_lock($1)").bind(SYNC_LOCK).execute(&mut *tx).await?;
            let rows: Vec<SeqState> = sqlx::query_as(&format!(
                "select seq, {STATE_COLUMNS} from links
                 where seq > $1 and ($3::timestamptz is null or updated_at >= $3)
                 order by seq limit $2"
            ))
            .bind(after)
            .bind(page)
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last().map(|r| r.seq) else { return anyhow::Ok(None) };
            let changes: Vec<Change> = rows.into_iter().map(|r| Change::from(r.state)).collect();
            let mut settled = push_isolating(sink, &changes).await;
            if let Some(e) = settled.unsettled.take() {
                return Err(e.context(format!("KV push stopped after {} links", report.written + report.deleted)));
            }
            parked::record_push(tx, &changes, &settled).await?;
            let written = settled.synced.iter().filter(|&&i| changes[i].value.is_some()).count();
            Ok(Some((last, written, settled.synced.len() - written, settled.parked.len())))
        })
        .await?;
        let Some((last, written, deleted, parked)) = pushed else { break };
        after = last;
        report.written += written;
        report.deleted += deleted;
        report.parked += parked;
    }
    Ok(report)
}
