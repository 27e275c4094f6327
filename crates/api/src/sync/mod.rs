//! Keeping Workers KV in step with the links table; the edge reads nothing else.
//!
//! Every link write adds a row to `link_sync_outbox` in its own transaction. One drainer at a time
//! (a PostgreSQL advisory lock, so any number of API processes may run) takes pending rows in order,
//! reads the *current* state of their links, pushes it to KV, and marks the rows done only after KV
//! accepted it. Because the pushed state is always read at push time and pushes never overlap, the
//! newest version of a link is what KV ends with, however retries interleave with new changes.
//!
//! What could still go wrong is handled where it happens:
//! - a push whose outcome is unknown (timeout, 5xx, connection reset) leaves its rows pending: the
//!   links' current state is pushed again, with back-off, until an answer is definite;
//! - a late write that lands after a newer one (the request outlived its timeout) loses at the worker,
//!   which refuses any version lower than the one it holds; with Cloudflare's API, which cannot refuse
//!   it, the periodic reconciliation ([`reconcile`]) writes the newest state again;
//! - a batch KV refuses for its content is split until the record at fault is alone; that record is
//!   parked with KV's reason (`parked_at`, `error`; `api kv parked`) and every other one is applied.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

mod parked;
mod push;
mod reconcile;
mod sinks;

pub use parked::{list_parked, retry_parked, ParkedChange};
pub use reconcile::{reconcile, reconcile_if_due, resync, PushReport, RECONCILE_WINDOW};
pub use sinks::{Applied, CloudflareKv, KvDelete, PushError, StaleKey, WorkerKv};

use push::{push_isolating, Change, LinkState, Settled, STATE_COLUMNS};

/// The advisory lock every KV writer (drainer, reconciliation, resync) holds while it reads and pushes.
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

    fn put(&self, pairs: &[KvPair]) -> impl Future<Output = Result<Applied, PushError>> + Send;
    fn delete(&self, deletes: &[KvDelete]) -> impl Future<Output = Result<Applied, PushError>> + Send;
}

/// Pushes one batch of pending changes. Returns how many outbox rows it settled (done, or parked when
/// KV refused their record); 0 when there was nothing to do or another process holds the lock. Fails
/// when part of the batch is unsettled (KV down, slow or refusing the request itself): what was settled
/// before stays settled, the rest stays pending.
pub async fn drain_once<S: KvSink>(db: &PgPool, sink: &S, batch: i64) -> anyhow::Result<usize> {
    let batch = batch.min(i64::try_from(S::MAX_BATCH).unwrap_or(i64::MAX));
    let (settled_rows, unsettled) = in_transaction(db, async |tx| {
        let locked: bool =
            sqlx::query_scalar("select pg_try_advisory_xact_lock($1)").bind(SYNC_LOCK).fetch_one(&mut *tx).await?;
        if !locked {
            return Ok((0, None));
        }
        let pending: Vec<(i64, Uuid)> = sqlx::query_as(
            "select id, link_id from link_sync_outbox where done_at is null and parked_at is null order by id limit $1",
        )
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        if pending.is_empty() {
            return Ok((0, None));
        }
        let link_ids: Vec<Uuid> = pending.iter().map(|(_, link)| *link).collect::<BTreeSet<_>>().into_iter().collect();
        let states: Vec<LinkState> = sqlx::query_as(&format!("select {STATE_COLUMNS} from links where id = any($1)"))
            .bind(&link_ids)
            .fetch_all(&mut *tx)
            .await?;
        let changes: Vec<Change> = states.into_iter().map(Change::from).collect();
        let settled = push_isolating(sink, &changes).await;
        let rows = settle_rows(tx, &pending, &changes, &settled).await?;
        anyhow::Ok((rows, settled.unsettled))
    })
    .await?;
    match unsettled {
        Some(e) => Err(e.context(format!("KV sync: {settled_rows} changes settled, the rest stays pending"))),
        None => Ok(settled_rows),
    }
}

/// Marks the outbox rows of a drained batch: done when their link's state is in KV (or the link is
/// gone); for a link KV refused, its newest row parked with the reason and the refused state's version,
/// older ones done (that state covered them all), and the newest done too when that version is parked
/// already; untouched when unsettled. Earlier parked rows of links now in KV are done too. Returns how
/// many rows were settled.
async fn settle_rows(
    tx: &mut PgConnection,
    pending: &[(i64, Uuid)],
    changes: &[Change],
    settled: &Settled,
) -> Result<usize, sqlx::Error> {
    let known: HashSet<Uuid> = changes.iter().map(|c| c.link_id).collect();
    let synced: HashSet<Uuid> = settled.synced.iter().map(|&i| changes[i].link_id).collect();
    let refused: HashMap<Uuid, (i64, &str)> = settled
        .parked
        .iter()
        .map(|(i, reason)| (changes[*i].link_id, (changes[*i].version, reason.as_str())))
        .collect();
    let mut newest: HashMap<Uuid, i64> = HashMap::new();
    for &(id, link) in pending.iter().filter(|(_, link)| refused.contains_key(link)) {
        newest.entry(link).and_modify(|n| *n = (*n).max(id)).or_insert(id);
    }
    let (mut done, mut park_ids, mut park_versions, mut park_errors) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &(id, link) in pending {
        match refused.get(&link) {
            Some(&(version, reason)) if newest.get(&link) == Some(&id) => {
                park_ids.push(id);
                park_versions.push(version);
                park_errors.push(reason.to_owned());
            }
            Some(_) => done.push(id),
            None if synced.contains(&link) || !known.contains(&link) => done.push(id),
            None => {}
        }
    }
    sqlx::query("update link_sync_outbox set done_at = now() where id = any($1)").bind(&done).execute(&mut *tx).await?;
    // One parked row per link and version: the reconciliation may have parked this state already.
    sqlx::query(
        "update link_sync_outbox o set done_at = now()
         from unnest($1::bigint[], $2::bigint[]) as p (id, version)
         where o.id = p.id and exists (
             select 1 from link_sync_outbox x
             where x.link_id = o.link_id and x.version = p.version and x.parked_at is not null and x.done_at is null
         )",
    )
    .bind(&park_ids)
    .bind(&park_versions)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update link_sync_outbox o set parked_at = now(), error = p.error, version = p.version
         from unnest($1::bigint[], $2::bigint[], $3::text[]) as p (id, version, error)
         where o.id = p.id and o.done_at is null",
    )
    .bind(&park_ids)
    .bind(&park_versions)
    .bind(&park_errors)
    .execute(&mut *tx)
    .await?;
    parked::resolve(tx, &synced.into_iter().collect::<Vec<_>>()).await?;
    parked::log(changes, settled);
    let written = settled.synced.iter().filter(|&&i| changes[i].value.is_some()).count();
    tracing::info!(
        changes = done.len() + park_ids.len(),
        written,
        deleted = settled.synced.len() - written,
        parked = settled.parked.len(),
        "links synced to KV"
    );
    Ok(done.len() + park_ids.len())
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

/// Runs the drainer and, every `reconcile_every` (`None`: never), the reconciliation, until `shutdown`
/// turns true.
pub async fn run<S: KvSink>(db: PgPool, sink: S, reconcile_every: Option<Duration>, shutdown: watch::Receiver<bool>) {
    tracing::info!(reconcile_every_minutes = reconcile_every.map(|e| e.as_secs() / 60), "KV sync started");
    tokio::join!(drain(&db, &sink, shutdown.clone()), reconcile::run(&db, &sink, reconcile_every, shutdown));
    tracing::info!("KV sync stopped");
}

/// The drainer: drains while there is work, polls when idle, and backs off exponentially (0.5 s to
/// 30 s) while KV or the database fails; each retry pushes the links' state as it is then.
async fn drain<S: KvSink>(db: &PgPool, sink: &S, mut shutdown: watch::Receiver<bool>) {
    const IDLE: Duration = Duration::from_millis(200);
    const MAX_BACKOFF: Duration = Duration::from_secs(30);
    let mut backoff = Duration::from_millis(500);
    loop {
        let wait = match drain_once(db, sink, DRAIN_BATCH).await {
            Ok(0) => IDLE,
            Ok(_) => {
                backoff = Duration::from_millis(500);
                Duration::ZERO
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "KV sync failed or its outcome is unknown; the links' current state is pushed again"
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
}
