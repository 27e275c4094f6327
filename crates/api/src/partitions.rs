//! Partition upkeep: raw clicks and pixel events are stored one partition per UTC month
//! (`migrations/0019_partitioned_clicks.sql`), so that old months are dropped whole, never deleted row by
//! row.
//!
//! - Months are created ahead: the current one and the next [`AHEAD`], for both tables. A click dated in
//!   a month that has no partition yet (the task did not run, or a clock far off) is not lost: ingestion
//!   creates the missing month on demand ([`create_missing`]) and stores the batch again.
//! - `CLICKS_RETENTION_MONTHS` (unset: for ever): a partition of raw clicks is dropped once the whole of
//!   its range is older than that many months (the legacy partition, everything before the first monthly
//!   one, included). The rollups (`link_daily`, `link_daily_dims` and their deltas) are never dropped, so
//!   reports over whole days stay exact.
//! - `RETAIN_PAGE_VIEWS_DAYS`: each month of pixel events is split by event; a month's page views are
//!   dropped once all of the month is older than that, its other events are kept for ever. Page views in
//!   the legacy partition are deleted row by row by `retention`, as before.
//!
//! One pass at a time across processes (a PostgreSQL advisory lock); partitions are attached (a SHARE
//! UPDATE EXCLUSIVE lock on the table, which ingestion's inserts do not wait for) and detached
//! `CONCURRENTLY` before being dropped, so neither blocks ingestion or reports.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use sqlx::{Acquire, Executor, PgConnection, PgPool};
use tokio::sync::watch;

/// The advisory lock a pass holds, and that creating a month on demand takes for its transaction.
pub const PARTITIONS_LOCK: i64 = 0x7061_7274_6974; // "partit"

/// Months created beyond the current one.
pub const AHEAD: u32 = 3;

/// Time between passes.
const EVERY: StdDuration = StdDuration::from_secs(60 * 60);

/// The two partitioned tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Clicks,
    PixelEvents,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Clicks => "clicks",
            Table::PixelEvents => "pixel_events",
        }
    }
}

/// What is dropped when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `CLICKS_RETENTION_MONTHS`: raw clicks are kept this many whole months; `None`, for ever.
    pub clicks_months: Option<u32>,
    /// `RETAIN_PAGE_VIEWS_DAYS`: a month's page views are dropped once all of it is older than this.
    pub page_views: Duration,
}

/// What a pass did: the partitions it created and dropped, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Upkept {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

/// The first instant of `t`'s UTC month.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MIN_UTC, |d| Utc.from_utc_datetime(&d))
}

/// A partition as the catalogue holds it; `from`/`to` are `None` for MINVALUE/MAXVALUE.
#[derive(Debug, sqlx::FromRow)]
struct Partition {
    name: String,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    detach_pending: bool,
    partitioned: bool,
}

impl Partition {
    fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| f < end) && self.to.is_none_or(|t| t > start)
    }
}

/// The partitions of `parent`, oldest first. Their bounds are read back from the catalogue's own text
/// (`FOR VALUES FROM ('…') TO ('…')`), which PostgreSQL writes and reads in the same session settings.
async fn partitions(conn: &mut PgConnection, parent: &str) -> Result<Vec<Partition>, sqlx::Error> {
    sqlx::query_as(
        r"select c.relname as name,
                 substring(pg_get_expr(c.relpartbound, c.oid) from 'FROM \(''([^'']+)''\)')::timestamptz as from,
                 substring(pg_get_expr(c.relpartbound, c.oid) from 'TO \(''([^'']+)''\)')::timestamptz as to,
                 i.inhdetachpending as detach_pending,
                 c.relkind = 'p' as partitioned
          from pg_inherits i join pg_class c on c.oid = i.inhrelid
          where i.inhparent = $1::regclass
          order by 2 nulls first",
    )
    .bind(parent)
    .fetch_all(conn)
    .await
}

/// A name from the catalogue, quoted; ours are lowercase letters, digits and underscores only.
fn ident(name: &str) -> Result<String, sqlx::Error> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        Ok(format!("\"{name}\""))
    } else {
        Err(sqlx::Error::Protocol(format!("unexpected partition name {name:?}")))
    }
}

/// A month's bound as a literal: digits, dashes and colons only, computed here, never read from input.
fn literal(t: DateTime<Utc>) -> String {
    t.format("'%Y-%m-%d %H:%M:%S+00'").to_string()
}

/// Creates the partitions of `table` for the months holding `times` that no partition covers yet, in
/// one transaction under [`PARTITIONS_LOCK`], so that processes creating the same month never collide.
/// Returns the tables created.
pub async fn create_missing(
    conn: &mut PgConnection,
    table: Table,
    times: &[DateTime<Utc>],
) -> Result<Vec<String>, sqlx::Error> {
    let mut months: Vec<DateTime<Utc>> = times.iter().map(|t| month_start(*t)).collect();
    months.sort_unstable();
    months.dedup();
    let mut tx = conn.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1)").bind(PARTITIONS_LOCK).execute(&mut *tx).await?;
    // Never queue behind a long query holding the table, with ingestion queued behind us.
    sqlx::query("set local lock_timeout = '5s'").execute(&mut *tx).await?;
    let existing = partitions(&mut tx, table.name()).await?;
    let mut created = Vec::new();
    for start in months {
        let Some(end) = start.checked_add_months(Months::new(1)) else { continue };
        if existing.iter().any(|p| p.overlaps(start, end)) {
            continue;
        }
        let name = format!("{}_{}", table.name(), start.format("y%Ym%m"));
        let (parent, part, from, to) = (table.name(), ident(&name)?, literal(start), literal(end));
        let sql = match table {
            Table::Clicks => format!(
                "create table {part} (like clicks including defaults including constraints);
                 alter table clicks attach partition {part} for values from ({from}) to ({to});"
            ),
            Table::PixelEvents => {
                let (views, other) = (ident(&format!("{name}_page_views"))?, ident(&format!("{name}_other"))?);
                format!(
                    "create table {part} (like pixel_events including defaults including constraints)
                         partition by list (event);
                     create table {views} partition of {part} for values in ('page_view');
                     create table {other} partition of {part}
                         for values in ('add_to_cart', 'begin_checkout', 'purchase');
                     alter table {parent} attach partition {part} for values from ({from}) to ({to});"
                )
            }
        };
        (&mut *tx).execute(sql.as_str()).await?;
        created.push(name);
    }
    tx.commit().await?;
    Ok(created)
}

/// Detaches `child` from `parent` without blocking either's readers and writers, then drops it. A
/// detach interrupted before (a crash, a shutdown) is finished first.
async fn detach_and_drop(conn: &mut PgConnection, parent: &str, child: &Partition) -> Result<(), sqlx::Error> {
    let (parent, part) = (ident(parent)?, ident(&child.name)?);
    let how = if child.detach_pending { "finalize" } else { "concurrently" };
    let detach = format!("alter table {parent} detach partition {part} {how}");
    conn.execute(detach.as_str()).await?;
    let drop = format!("drop table {part}");
    conn.execute(drop.as_str()).await?;
    Ok(())
}

/// Drops what `policy` no longer keeps at `now`: raw-click partitions whose whole range is older than
/// the retention in months, and the page views of months wholly older than the page views' retention.
async fn drop_old(conn: &mut PgConnection, policy: &Policy, now: DateTime<Utc>) -> Result<Vec<String>, sqlx::Error> {
    let mut dropped = Vec::new();
    if let Some(months) = policy.clicks_months {
        let cutoff = now.checked_sub_months(Months::new(months)).unwrap_or(DateTime::<Utc>::MIN_UTC);
        for p in partitions(conn, "clicks").await? {
            if p.to.is_some_and(|to| to <= cutoff) {
                detach_and_drop(conn, "clicks", &p).await?;
                dropped.push(p.name);
            }
        }
    }
    let cutoff = now.checked_sub_signed(policy.page_views).unwrap_or(DateTime::<Utc>::MIN_UTC);
    for month in partitions(conn, "pixel_events").await? {
        // The legacy partition is not split by event: retention deletes its page views row by row.
        if !month.partitioned || month.to.is_none_or(|to| to > cutoff) {
            continue;
        }
        let views = format!("{}_page_views", month.name);
        for p in partitions(conn, &month.name).await? {
            if p.name == views {
                detach_and_drop(conn, &month.name, &p).await?;
                dropped.push(p.name);
            }
        }
    }
    Ok(dropped)
}

/// One pass at `now`: creates the current month and the next [`AHEAD`] for both tables, then drops what
/// `policy` no longer keeps. `None` when another process holds the lock (it is doing the same work).
pub async fn upkeep(db: &PgPool, policy: &Policy, now: DateTime<Utc>) -> Result<Option<Upkept>, sqlx::Error> {
    let mut conn = db.acquire().await?;
    let locked: bool =
        sqlx::query_scalar("select pg_try_advisory_lock($1)").bind(PARTITIONS_LOCK).fetch_one(&mut *conn).await?;
    if !locked {
        return Ok(None);
    }
    let result = async {
        let ahead: Vec<DateTime<Utc>> =
            (0..=AHEAD).filter_map(|i| month_start(now).checked_add_months(Months::new(i))).collect();
        let mut created = create_missing(&mut conn, Table::Clicks, &ahead).await?;
        created.extend(create_missing(&mut conn, Table::PixelEvents, &ahead).await?);
        let dropped = drop_old(&mut conn, policy, now).await?;
        Ok::<_, sqlx::Error>(Upkept { created, dropped })
    }
    .await;
    // A session lock outlives a failed statement: release it, or close the connection if even that fails.
    if sqlx::query("select pg_advisory_unlock($1)").bind(PARTITIONS_LOCK).execute(&mut *conn).await.is_err() {
        conn.close_on_drop();
    }
    result.map(Some)
}

/// Runs a pass at start and then every hour until `shutdown` turns true; after a failure, tries again
/// sooner (1 minute, doubling up to the hour).
pub async fn run(db: PgPool, policy: Policy, shutdown: watch::Receiver<bool>) {
    tracing::info!(
        clicks_retention_months = policy.clicks_months,
        page_views_days = policy.page_views.num_days(),
        ahead = AHEAD,
        "partition upkeep started"
    );
    crate::periodic::every("partition upkeep", EVERY, shutdown, || async {
        let done = upkeep(&db, &policy, Utc::now()).await?;
        if let Some(done) = &done {
            tracing::info!(created = ?done.created, dropped = ?done.dropped, "partition upkeep done");
        }
        Ok::<_, sqlx::Error>(done.is_some())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_starts_at_midnight_utc_on_its_first_day() {
        let t = Utc.with_ymd_and_hms(2027, 2, 28, 23, 59, 59).unwrap();
        assert_eq!(month_start(t), Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap());
        assert_eq!(month_start(month_start(t)), month_start(t));
    }

    #[test]
    fn only_our_own_names_are_quoted() {
        assert_eq!(ident("clicks_y2027m01").unwrap(), "\"clicks_y2027m01\"");
        assert!(ident("clicks\"; drop table links; --").is_err());
        assert!(ident("").is_err());
    }
}
