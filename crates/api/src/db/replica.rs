//! Where reports and lists read: a PostgreSQL streaming replica (`DATABASE_READ_URL`) while it answers,
//! else the primary.
//!
//! Only reads that may lag the primary by the replica's replay delay are sent here: reports, lists and
//! exports. Writes, and every read that must see a write just made (a link just created and returned,
//! sessions and sign-in, idempotent replays, anything inside a transaction, the KV outbox, the background
//! tasks), use the primary pool directly.
//!
//! The replica is never allowed to stop reads: a monitor asks it `select 1` every [`PROBE_EVERY`] on a
//! connection of its own (so a busy pool is not mistaken for a dead server), and while it does not answer
//! within [`PROBE_TIMEOUT`], [`ReadPool::pool`] hands out the primary instead. A warning is logged when the
//! replica stops answering (repeated at most once a minute while it stays down) and a line when it answers
//! again. Until its first answer, reads go to the primary.

use std::sync::atomic::{AtomicBool, Ordering};
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
}

impl ReplicaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaStatus::NotConfigured => "not_configured",
            ReplicaStatus::Answering => "ok",
            ReplicaStatus::Unreachable => "unreachable",
        }
    }
}

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
    /// The last probe's verdict.
    answering: AtomicBool,
}

impl ReadPool {
    /// No replica: reads use the primary pool.
    pub fn primary_only(primary: PgPool) -> Self {
        ReadPool { primary, replica: None }
    }

    /// Reads go to `replica` (a pool that may not have connected yet) once the monitor
    /// ([`ReadPool::monitor`]) has seen it answer, and to `primary` whenever it does not.
    pub fn with_replica(primary: PgPool, replica: PgPool) -> Self {
        let options = replica.connect_options().as_ref().clone();
        let replica = Replica { pool: replica, options, answering: AtomicBool::new(false) };
        ReadPool { primary, replica: Some(Arc::new(replica)) }
    }

    /// The pool to read a report or a list from now.
    pub fn pool(&self) -> &PgPool {
        match &self.replica {
            Some(replica) if replica.answering.load(Ordering::Relaxed) => &replica.pool,
            _ => &self.primary,
        }
    }

    pub fn status(&self) -> ReplicaStatus {
        match &self.replica {
            None => ReplicaStatus::NotConfigured,
            Some(replica) if replica.answering.load(Ordering::Relaxed) => ReplicaStatus::Answering,
            Some(_) => ReplicaStatus::Unreachable,
        }
    }

    /// Probes the replica every [`PROBE_EVERY`] until `stopped` turns true (returns at once without one).
    /// Every process that answers requests runs it, `--no-background` ones too: it decides where this
    /// process's own reads go.
    pub async fn monitor(self, mut stopped: watch::Receiver<bool>) {
        let Some(replica) = self.replica else { return };
        let mut connection: Option<PgConnection> = None;
        let mut last_warning: Option<Instant> = None;
        let mut ticker = tokio::time::interval(PROBE_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
            let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe(&replica.options, &mut connection)).await;
            let error = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
            };
            let was_answering = replica.answering.swap(error.is_none(), Ordering::Relaxed);
            match error {
                None if !was_answering => tracing::info!("the read replica answers: reports and lists read from it"),
                None => {}
                Some(error) => {
                    // A connection that failed or timed out is not trusted again.
                    connection = None;
                    let now = Instant::now();
                    if was_answering || last_warning.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
                        last_warning = Some(now);
                        tracing::warn!(
                            error,
                            "the read replica does not answer: reports and lists read from the primary until it does (this warning is repeated at most once a minute)"
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

/// One `select 1` on the replica, connecting first if needed.
async fn probe(options: &PgConnectOptions, connection: &mut Option<PgConnection>) -> Result<(), sqlx::Error> {
    if connection.is_none() {
        *connection = Some(options.connect().await?);
    }
    match connection.as_mut() {
        Some(conn) => sqlx::query("select 1").execute(conn).await.map(drop),
        None => Ok(()),
    }
}
