//! The connection pools (the primary, and the read replica when there is one), created database and
//! migrated schema.

pub mod replica;

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool, Postgres};

use crate::config::Config;
pub use replica::{ReadPool, ReplicaStatus};

/// The schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// How long a pooled connection may sit idle before it is checked again before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Connects, creating the database if it does not exist yet, and brings the schema up to date.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<PgPool> {
    if !Postgres::database_exists(&config.database_url).await.context("reaching PostgreSQL")? {
        tracing::info!("creating the database");
        // Another process (a second API instance, a CLI command) may create it at the same moment.
        if let Err(e) = Postgres::create_database(&config.database_url).await {
            if !Postgres::database_exists(&config.database_url).await.unwrap_or(false) {
                return Err(e).context("creating the database");
            }
        }
    }
    let pool = pool_options(config).connect(&config.database_url).await.context("connecting to PostgreSQL")?;
    MIGRATOR.run(&pool).await.context("running migrations")?;
    Ok(pool)
}

/// The pool reports and lists read from: with `DATABASE_READ_URL`, a pool on that replica (connected lazily,
/// so the API starts and serves from the primary while the replica is down; see [`replica`]), else the
/// primary itself. The replica is never migrated: it replays the primary's schema.
pub fn read_pool(config: &Config, primary: &PgPool) -> anyhow::Result<ReadPool> {
    let Some(url) = &config.database_read_url else { return Ok(ReadPool::primary_only(primary.clone())) };
    let replica = pool_options(config).connect_lazy(url).context("DATABASE_READ_URL is not a PostgreSQL URL")?;
    Ok(ReadPool::with_replica(primary.clone(), replica, config.database_read_max_lag))
}

/// The settings of both pools.
fn pool_options(config: &Config) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A connection that sat idle may have been closed under us (a database restart, a proxy's idle
        // timeout): those are checked with a round trip before use. One in steady use is not: checking
        // every acquisition cost a round trip per transaction, about a tenth of an order's CPU.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}
