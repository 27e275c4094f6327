//! Where reports and lists read: a PostgreSQL streaming replica (`DATABASE_READ_URL`) while it answers,
//! else the primary.
//!
//! Only reads that may lag the primary by the replica's replay delay are sent here: reports, lists and
//! exports. Writes, and every read that must see a write just made (a link just created and returned,
//! sessions and sign-in, idempotent replays, anything inside a transaction, the KV outbox, the background
//! tasks), use the primary pool directly.
//!
//! The replica is never allowed to stop reads, nor to make them stale by more than a bound: a monitor asks
//! it how much of the primary's WAL it has replayed every [`PROBE_EVERY`] on a connection of its own (so a
//! busy pool is not mistaken for a dead server), and while it does not answer within [`PROBE_TIMEOUT`], or
//! lags the primary by more than `DATABASE_READ_MAX_LAG_SECS`, [`ReadPool::pool`] hands out the primary
//! instead. A warning is logged when the replica stops answering or falls behind (repeated at most once a
//! minute while it stays so) and a line when it serves reads again. Until its first answer, reads go to
//! the primary.
//!
//! Lag is measured against the primary, not by the replica's own view (a replica cut off from the primary
//! believes it is up to date): each probe notes the primary's WAL position and the time, then asks the
//! replica what it has replayed; the lag is the time since the latest noted position the replica has
//! replayed (none: at least since the oldest one still noted).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::watch;

/// How often the replica is asked whether it answers.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The longest the probe waits for the replica (connecting, or answering) before reads go to the primary.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// At most one warning about the replica being down per this period.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What `/readyz` says of the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaStatus {
    /// No `DATABASE_READ_URL`: everything reads from the primary.
    NotConfigured,
    /// Reports and lists read from the replica.
    Answering,
    /// The replica does not answer (or has not yet): reports and lists read from the primary.
    Unreachable,
    /// The replica answers but lags the primary by more than the bound: reports and lists read from the
    /// primary until it catches up.
    Lagging,
}

impl ReplicaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaStatus::NotConfigured => "not_configured",
            ReplicaStatus::Answering => "ok",
            ReplicaStatus::Unreachable => "unreachable",
            ReplicaStatus::Lagging => "lagging",
        }
    }

    fn from_u8(n: u8) -> Self {
        match n {
            ANSWERING => ReplicaStatus::Answering,
            LAGGING => ReplicaStatus::Lagging,
            _ => ReplicaStatus::Unreachable,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ReplicaStatus::Answering => ANSWERING,
            ReplicaStatus::Lagging => LAGGING,
            ReplicaStatus::Unreachable | ReplicaStatus::NotConfigured => UNREACHABLE,
        }
    }
}

const UNREACHABLE: u8 = 0;
const ANSWERING: u8 = 1;
const LAGGING: u8 = 2;

/// The pool reports and lists read from; cheap to clone.
#[derive(Clone)]
pub struct ReadPool {
    primary: PgPool,
    replica: Option<Arc<Replica>>,
}

struct Replica {
    pool: PgPool,
    /// Where the monitor connects (the pool's own settings).
    options: PgConnectOptions,
    /// The last probe's verdict ([`ReplicaStatus`] as a number).
    status: AtomicU8,
    /// How far behind the primary reads may be.
    max_lag: Duration,
}

impl ReadPool {
    /// No replica: reads use the primary pool.
    pub fn primary_only(primary: PgPool) -> Self {
        ReadPool { primary, replica: None }
    }

    /// Reads go to `replica` (a pool that may not have connected yet) once the monitor
    /// ([`ReadPool::monitor`]) has seen it answer, and to `primary` whenever it does not.
    /// Reads further behind the primary than `max_lag` go to the primary too.
    pub fn with_replica(primary: PgPool, replica: PgPool, max_lag: Duration) -> Self {
        let options = replica.connect_options().as_ref().clone();
        let replica = Replica { pool: replica, options, status: AtomicU8::new(UNREACHABLE), max_lag };
        ReadPool { primary, replica: Some(Arc::new(replica)) }
    }

    /// The pool to read a report or a list from now.
    pub fn pool(&self) -> &PgPool {
        match &self.replica {
            Some(replica) if replica.status.load(Ordering::Relaxed) == ANSWERING => &replica.pool,
            _ => &self.primary,
        }
    }

    pub fn status(&self) -> ReplicaStatus {
        match &self.replica {
            None => ReplicaStatus::NotConfigured,
            Some(replica) => ReplicaStatus::from_u8(replica.status.load(Ordering::Relaxed)),
        }
    }

    /// Probes the replica every [`PROBE_EVERY`] until `stopped` turns true (returns at once without one).
    /// Every process that answers requests runs it, `--no-background` ones too: it decides where this
    /// process's own reads go.
    pub async fn monitor(self, mut stopped: watch::Receiver<bool>) {
        let Some(replica) = self.replica else { return };
        let mut connection: Option<PgConnection> = None;
        let mut last_warning: Option<Instant> = None;
        let mut positions = Positions::default();
        let mut ticker = tokio::time::interval(PROBE_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
            // The primary's position first: whatever the replica answers afterwards is compared with it.
            let primary = tokio::time::timeout(PROBE_TIMEOUT, wal_position(&self.primary)).await;
            match primary {
                Ok(Ok(position)) => positions.note(Instant::now(), position, replica.max_lag),
                Ok(Err(e)) => tracing::debug!(error = %e, "the primary's WAL position could not be read"),
                Err(_) => tracing::debug!("the primary's WAL position took too long to read"),
            }
            let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe(&replica.options, &mut connection)).await;
            let answered = matches!(outcome, Ok(Ok(_)));
            let verdict = match outcome {
                Ok(Ok(replayed)) => match positions.lag(Instant::now(), replayed) {
                    Some(lag) if lag > replica.max_lag => Err(format!(
                        "it lags the primary by {} s or more, beyond DATABASE_READ_MAX_LAG_SECS={}",
                        lag.as_secs(),
                        replica.max_lag.as_secs()
                    )),
                    _ => Ok(()),
                },
                Ok(Err(e)) => {
                    // A connection that failed is not trusted again.
                    connection = None;
                    Err(e.to_string())
                }
                Err(_) => {
                    connection = None;
                    Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis()))
                }
            };
            let status = match (&verdict, answered) {
                (Ok(()), _) => ReplicaStatus::Answering,
                (Err(_), true) => ReplicaStatus::Lagging,
                (Err(_), false) => ReplicaStatus::Unreachable,
            };
            let was = ReplicaStatus::from_u8(replica.status.swap(status.as_u8(), Ordering::Relaxed));
            match verdict {
                Ok(()) if was != ReplicaStatus::Answering => {
                    tracing::info!("the read replica answers and is up to date: reports and lists read from it")
                }
                Ok(()) => {}
                Err(error) => {
                    let now = Instant::now();
                    if was != status || last_warning.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
                        last_warning = Some(now);
                        tracing::warn!(
                            error,
                            status = status.as_str(),
                            "the read replica does not serve reads: reports and lists read from the primary until it does (this warning is repeated at most once a minute)"
                        );
                    }
                }
            }
        }
        if let Some(connection) = connection {
            let _ = connection.close().await;
        }
    }
}

/// The primary's WAL positions noted by recent probes, oldest first, with when they were noted.
#[derive(Debug, Default)]
struct Positions(VecDeque<(Instant, u64)>);

impl Positions {
    /// Notes the primary's position now; positions too old to tell whether the replica is within `max_lag`
    /// are forgotten (the queue stays bounded).
    fn note(&mut self, at: Instant, position: u64, max_lag: Duration) {
        self.0.push_back((at, position));
        while self.0.len() > 2 && self.0.get(1).is_some_and(|(second, _)| at.duration_since(*second) > max_lag) {
            self.0.pop_front();
        }
    }

    /// How far behind the primary a replica that replayed up to `replayed` is (`None`: a server that is not
    /// a replica, so nothing to lag behind; or no position noted yet): none if it has replayed the latest
    /// noted position, else the time since the latest one it has replayed (it has everything written up
    /// to then), or, if it has replayed none, at least the time since the oldest.
    fn lag(&mut self, now: Instant, replayed: Option<u64>) -> Option<Duration> {
        let replayed = replayed?;
        // Positions before the latest replayed one tell nothing more.
        while self.0.get(1).is_some_and(|(_, position)| *position <= replayed) {
            self.0.pop_front();
        }
        let (at, position) = *self.0.front()?;
        Some(if position <= replayed && self.0.len() == 1 { Duration::ZERO } else { now.duration_since(at) })
    }
}

/// The primary's current WAL position, in bytes.
async fn wal_position(primary: &PgPool) -> Result<u64, sqlx::Error> {
    let position: i64 =
        sqlx::query_scalar("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetch_one(primary).await?;
    Ok(u64::try_from(position).unwrap_or(0))
}

/// Asks the replica how far it has replayed the primary's WAL (`None` from a server that is not in
/// recovery), connecting first if needed.
async fn probe(options: &PgConnectOptions, connection: &mut Option<PgConnection>) -> Result<Option<u64>, sqlx::Error> {
    if connection.is_none() {
        *connection = Some(options.connect().await?);
    }
    match connection.as_mut() {
        Some(conn) => {
            let replayed: Option<i64> = sqlx::query_scalar(
                "select case when pg_is_in_recovery()
                             then pg_wal_lsn_diff(coalesce(pg_last_wal_replay_lsn(), '0/0'), '0/0')::bigint end",
            )
            .fetch_one(conn)
            .await?;
            Ok(replayed.map(|r| u64::try_from(r).unwrap_or(0)))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn a_replica_that_replayed_the_latest_position_does_not_lag() {
        let start = Instant::now();
        let mut positions = Positions::default();
        assert_eq!(positions.lag(start, Some(0)), None, "nothing noted yet");
        positions.note(start, 100, MAX);
        assert_eq!(positions.lag(start, Some(100)), Some(Duration::ZERO));
        assert_eq!(positions.lag(start, None), None, "not a replica");
    }

    #[test]
    fn lag_is_the_time_since_the_latest_position_replayed() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut positions = Positions::default();
        for (s, position) in [(0, 100), (1, 200), (2, 300), (3, 400)] {
            positions.note(at(s), position, MAX);
        }
        // Replayed up to 250: everything up to second 1 is there.
        assert_eq!(positions.lag(at(4), Some(250)), Some(Duration::from_secs(3)));
        // Nothing noted replayed: at least since the oldest position still noted.
        let mut behind = Positions::default();
        behind.note(at(0), 100, MAX);
        behind.note(at(5), 200, MAX);
        assert_eq!(behind.lag(at(6), Some(50)), Some(Duration::from_secs(6)));
        // Caught up again.
        positions.note(at(5), 500, MAX);
        assert_eq!(positions.lag(at(5), Some(500)), Some(Duration::ZERO));
        assert_eq!(positions.0.len(), 1, "replayed positions are forgotten");
    }

    #[test]
    fn a_replica_stuck_for_ever_keeps_the_noted_positions_bounded_and_lags_beyond_the_bound() {
        let start = Instant::now();
        let mut positions = Positions::default();
        for s in 0..10_000u64 {
            positions.note(start + Duration::from_secs(s), 1_000 + s, MAX);
        }
        assert!(positions.0.len() <= 33, "{} positions kept", positions.0.len());
        let lag = positions.lag(start + Duration::from_secs(10_000), Some(10)).unwrap();
        assert!(lag > MAX, "{lag:?}");
    }
}
