//! Keeping Workers KV in step with the links table; the edge reads nothing else.
//!
//! Every link write adds a row to `link_sync_outbox` in its own transaction. One drainer at a time
//! (a PostgreSQL advisory lock, so any number of API processes may run) takes pending rows in order,
//! reads the *current* state of their links, pushes it to KV, and marks the rows done only after KV
//! accepted it. Because the pushed state is always read at push time and pushes never overlap, the
//! newest version of a link is what KV ends with, however retries interleave with new changes.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use shared::LinkRecord;

mod sinks;

pub use sinks::{CloudflareKv, WorkerKv};

/// The advisory lock every KV writer (drainer, resync) holds while it reads and pushes.
const SYNC_LOCK: i64 = 0x6b76_7379_6e63; // "kvsync"

/// Rows per drain (at most the sink's batch limit).
pub const DRAIN_BATCH: i64 = 1000;

/// One key/value pair, shaped as Cloudflare's bulk write (and our worker's sync route) expects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvPair {
    pub key: String,
    pub value: String,
}

/// Where link records go. Implementations must be idempotent: a batch may be sent again after a
/// failure that happened after KV had in fact applied it.
pub trait KvSink: Send + Sync {
    /// Most keys one request may carry.
    const MAX_BATCH: usize;

    fn put(&self, pairs: &[KvPair]) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn delete(&self, keys: &[String]) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Records that `link` changed, in the caller's transaction.
pub async fn enqueue(tx: &mut sqlx::PgConnection, link: &crate::http::links::LinkRow) -> Result<(), sqlx::Error> {
    sqlx::query("insert into link_sync_outbox (link_id, version) values ($1, $2)")
        .bind(link.id)
        .bind(link.version)
        .execute(tx)
        .await?;
    Ok(())
}

/// The state of a link as the edge should see it.
#[derive(Debug, sqlx::FromRow)]
struct LinkState {
    id: Uuid,
    code: String,
    destination_url: String,
    version: i64,
    active: bool,
}

/// Splits link states into KV writes (active links) and deletes (inactive ones).
fn plan(states: impl IntoIterator<Item = LinkState>) -> (Vec<KvPair>, Vec<String>) {
    let mut puts = Vec::new();
    let mut deletes = Vec::new();
    for state in states {
        if state.active {
            let record = LinkRecord::new(state.id, state.destination_url, state.version);
            puts.push(KvPair { key: state.code, value: record.to_json() });
        } else {
            deletes.push(state.code);
        }
    }
    (puts, deletes)
}

async fn push<S: KvSink>(sink: &S, puts: &[KvPair], deletes: &[String]) -> anyhow::Result<()> {
    if !puts.is_empty() {
        sink.put(puts).await?;
    }
    if !deletes.is_empty() {
        sink.delete(deletes).await?;
    }
    Ok(())
}

/// Pushes one batch of pending changes. Returns how many outbox rows it completed (0 when there was
/// nothing to do or another process holds the lock).
pub async fn drain_once<S: KvSink>(db: &PgPool, sink: &S, batch: i64) -> anyhow::Result<usize> {
    let batch = batch.min(i64::try_from(S::MAX_BATCH).unwrap_or(i64::MAX));
    in_transaction(db, async |tx| {
        let locked: bool =
            sqlx::query_scalar("select pg_try_advisory_xact_lock($1)").bind(SYNC_LOCK).fetch_one(&mut *tx).await?;
        if !locked {
            return Ok(0);
        }
        let pending: Vec<(i64, Uuid)> =
            sqlx::query_as("select id, link_id from link_sync_outbox where done_at is null order by id limit $1")
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let link_ids: Vec<Uuid> = pending.iter().map(|(_, link)| *link).collect::<BTreeSet<_>>().into_iter().collect();
        let states: Vec<LinkState> =
            sqlx::query_as("select id, code, destination_url, version, active from links where id = any($1)")
                .bind(&link_ids)
                .fetch_all(&mut *tx)
                .await?;
        let (puts, deletes) = plan(states);
        push(sink, &puts, &deletes).await?;
        let ids: Vec<i64> = pending.iter().map(|(id, _)| *id).collect();
        sqlx::query("update link_sync_outbox set done_at = now() where id = any($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tracing::info!(changes = ids.len(), written = puts.len(), deleted = deletes.len(), "links synced to KV");
        Ok(ids.len())
    })
    .await
}

/// Runs `work` in one transaction and ends it explicitly before returning: committed when `work`
/// succeeds, rolled back when it fails. The sync lock taken inside is then free at once; a dropped sqlx
/// transaction rolls back only when its pooled connection is next used, and until then every other
/// drain would find the lock taken and do nothing.
async fn in_transaction<T>(
    db: &PgPool,
    work: impl AsyncFnOnce(&mut PgConnection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut tx = db.begin().await?;
    match work(&mut tx).await {
        Ok(done) => {
            tx.commit().await?;
            Ok(done)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

/// Runs the drainer until `shutdown` turns true: drains while there is work, polls when idle, and
/// backs off exponentially (0.5 s to 30 s) while KV or the database fails.
pub async fn run<S: KvSink>(db: PgPool, sink: S, mut shutdown: watch::Receiver<bool>) {
    const IDLE: Duration = Duration::from_millis(200);
    const MAX_BACKOFF: Duration = Duration::from_secs(30);
    let mut backoff = Duration::from_millis(500);
    tracing::info!("KV sync started");
    loop {
        let wait = match drain_once(&db, &sink, DRAIN_BATCH).await {
            Ok(0) => IDLE,
            Ok(_) => {
                backoff = Duration::from_millis(500);
                Duration::ZERO
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "KV sync failed; changes stay in the outbox"
                );
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    tracing::info!("KV sync stopped");
}

/// Re-pushes every link: active ones written, inactive ones deleted. For disaster recovery (an emptied
/// namespace, a new one). Holds the sync lock page by page, so it never overwrites a newer push.
pub async fn resync<S: KvSink>(db: &PgPool, sink: &S, page: i64) -> anyhow::Result<ResyncReport> {
    let page = page.min(i64::try_from(S::MAX_BATCH).unwrap_or(i64::MAX));
    let mut report = ResyncReport::default();
    let mut after = 0i64;
    loop {
        let pushed = in_transaction(db, async |tx| {
            sqlx::query("select pg_advisory_xact_lock($1)").bind(SYNC_LOCK).execute(&mut *tx).await?;
            let rows: Vec<SeqState> = sqlx::query_as(
                "select seq, id, code, destination_url, version, active from links where seq > $1 order by seq limit $2",
            )
            .bind(after)
            .bind(page)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last().map(|r| r.seq) else { return anyhow::Ok(None) };
            let (puts, deletes) = plan(rows.into_iter().map(|r| r.state));
            push(sink, &puts, &deletes).await?;
            Ok(Some((last, puts.len(), deletes.len())))
        })
        .await?;
        let Some((last, written, deleted)) = pushed else { break };
        after = last;
        report.written += written;
        report.deleted += deleted;
    }
    Ok(report)
}

#[derive(sqlx::FromRow)]
struct SeqState {
    seq: i64,
    #[sqlx(flatten)]
    state: LinkState,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResyncReport {
    pub written: usize,
    pub deleted: usize,
}
