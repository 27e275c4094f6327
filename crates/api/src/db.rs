//! The connection pool, created database and migrated schema.

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool, Postgres};

use crate::config::Config;

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
    let pool = PgPoolOptions::new()
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
        .connect(&config.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    MIGRATOR.run(&pool).await.context("running migrations")?;
    Ok(pool)
}
