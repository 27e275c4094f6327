//! The connection pool, created database and migrated schema.

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use crate::config::Config;

/// The schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

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
        .connect(&config.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    MIGRATOR.run(&pool).await.context("running migrations")?;
    Ok(pool)
}
