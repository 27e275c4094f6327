//! Link changes KV refused, set aside so they hold back nothing: listed by `api kv parked`, pushed
//! again by `api kv retry` (after the cause is fixed), and settled on their own as soon as a later
//! push of the same link succeeds.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::push::{Change, Settled};

/// A parked change: the outbox row, its link's code, and why KV refused it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ParkedChange {
    pub id: i64,
    pub link_id: Uuid,
    pub code: String,
    pub version: i64,
    pub parked_at: DateTime<Utc>,
    pub error: String,
}

/// Every parked change, oldest first.
pub async fn list_parked(db: &PgPool) -> Result<Vec<ParkedChange>, sqlx::Error> {
    sqlx::query_as(
        "select o.id, o.link_id, l.code, o.version, o.parked_at, o.error
         from link_sync_outbox o join links l on l.id = o.link_id
         where o.parked_at is not null and o.done_at is null
         order by o.id",
    )
    .fetch_all(db)
    .await
}

/// Puts every parked change back in the queue: the drainer pushes those links' current state again, and
/// parks again whatever KV still refuses. Returns how many were put back.
pub async fn retry_parked(db: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "update link_sync_outbox set parked_at = null, error = null where parked_at is not null and done_at is null",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Settles the parked changes of links whose current state KV now holds.
pub(super) async fn resolve(tx: &mut PgConnection, links: &[Uuid]) -> Result<(), sqlx::Error> {
    if links.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update link_sync_outbox set done_at = now()
         where parked_at is not null and done_at is null and link_id = any($1)",
    )
    .bind(links)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records the outcome of a push that no outbox row asked for (the reconciliation, a resync): each
/// refused change becomes a parked row (once per link and version), and the parked changes of links
/// now in KV are settled.
pub(super) async fn record_push(
    tx: &mut PgConnection,
    changes: &[Change],
    settled: &Settled,
) -> Result<(), sqlx::Error> {
    let (mut links, mut versions, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (i, reason) in &settled.parked {
        links.push(changes[*i].link_id);
        versions.push(changes[*i].version);
        errors.push(reason.clone());
    }
    sqlx::query(
        "insert into link_sync_outbox (link_id, version, parked_at, error)
         select p.link_id, p.version, now(), p.error
         from unnest($1::uuid[], $2::bigint[], $3::text[]) as p (link_id, version, error)
         where not exists (
             select 1 from link_sync_outbox o
             where o.link_id = p.link_id and o.version = p.version and o.parked_at is not null and o.done_at is null
         )",
    )
    .bind(&links)
    .bind(&versions)
    .bind(&errors)
    .execute(&mut *tx)
    .await?;
    let synced: Vec<Uuid> = settled.synced.iter().map(|&i| changes[i].link_id).collect();
    resolve(tx, &synced).await?;
    log(changes, settled);
    Ok(())
}

/// One warning per parked change, naming the link and KV's reason.
pub(super) fn log(changes: &[Change], settled: &Settled) {
    for (i, reason) in &settled.parked {
        let change = &changes[*i];
        tracing::warn!(
            code = %change.key,
            link_id = %change.link_id,
            version = change.version,
            error = %reason,
            "KV refused a link change; it is parked (`api kv parked` lists it, `api kv retry` pushes it again)"
        );
    }
}
