//! Running the HTTP server until SIGINT or SIGTERM, then draining in-flight requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, KvSinkConfig};
use crate::http::{self, AppState};
use crate::sync::{self, CloudflareKv, WorkerKv};

/// Whether a process runs the background tasks besides answering requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Every background task (the default). Each is safe with any number of processes running it: one
    /// worker at a time where that matters (advisory locks), rows claimed with `SKIP LOCKED` elsewhere.
    Run,
    /// `api serve --no-background`: requests only.
    Off,
}

pub async fn serve(config: Config, background: Background) -> anyhow::Result<()> {
    let db = crate::db::connect_and_migrate(&config).await?;
    let reads = crate::db::read_pool(&config, &db)?;
    if config.edge_ingest_token.is_none() {
        tracing::warn!("EDGE_INGEST_TOKEN is not set: /internal/clicks refuses every batch");
    }
    let listener =
        TcpListener::bind(config.bind_addr).await.with_context(|| format!("binding {}", config.bind_addr))?;
    // `/internal/*` has a listener of its own, so the public one can never serve it.
    let internal_listener = TcpListener::bind(config.internal_bind_addr)
        .await
        .with_context(|| format!("binding INTERNAL_BIND_ADDR {}", config.internal_bind_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    tracing::info!(addr = %internal_listener.local_addr()?, "internal routes listening");
    if config.database_read_url.is_some() {
        tracing::info!("DATABASE_READ_URL is set: reports and lists read from the replica while it answers");
    }
    match &config.redis {
        Some(redis) => tracing::info!(key_prefix = redis.key_prefix, "rate limits are shared through Redis"),
        None => tracing::info!("REDIS_URL is not set: rate limits are counted per process"),
    }
    let state = AppState::new(db, config).with_reads(reads.clone());
    let (stop, stopped) = watch::channel(false);
    // Where this process's reports and lists read: every process that answers requests watches its
    // replica, `--no-background` ones too.
    let monitor = tokio::spawn(reads.monitor(stopped.clone()));
    // So does every one forget the API keys revoked anywhere.
    let key_listener =
        tokio::spawn(crate::brands::run_key_listener(state.db.clone(), state.api_keys.clone(), stopped.clone()));
    let tasks = match background {
        Background::Run => spawn_background(&state, &stopped)?,
        Background::Off => {
            tracing::info!("--no-background: this process only answers requests");
            Vec::new()
        }
    };
    // The dashboard's dummy password hash, made now so that the first sign-in with an unknown email does
    // not take longer than the others.
    tokio::task::spawn_blocking(crate::users::dummy_hash);
    // The peer address is only a rate-limit key for the public pixel endpoint; it is never stored.
    let app = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let internal_app = http::internal_router(state);
    // One signal stops both listeners.
    let (shut, shutting) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = shut.send(true);
    });
    let signalled = |mut shutting: watch::Receiver<bool>| async move {
        let _ = shutting.wait_for(|down| *down).await;
    };
    let public = axum::serve(listener, app).with_graceful_shutdown(signalled(shutting.clone()));
    let internal = axum::serve(internal_listener, internal_app).with_graceful_shutdown(signalled(shutting));
    tokio::try_join!(async { public.await }, async { internal.await })?;
    // Requests are drained; let the tasks finish their current batch (the KV sync marks nothing done it
    // did not push).
    let _ = stop.send(true);
    for task in tasks {
        task.await?;
    }
    monitor.await?;
    key_listener.await?;
    tracing::info!("api stopped");
    Ok(())
}

/// Starts every background task; each stops when `stopped` turns true.
fn spawn_background(state: &AppState, stopped: &watch::Receiver<bool>) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let (db, config) = (&state.db, &*state.config);
    let mut tasks = Vec::new();
    // Link changes to KV: one drainer at a time across processes (advisory lock).
    tasks.extend(spawn_kv_sync(db, config, stopped.clone())?);
    // Rollup deltas folded: one process at a time (advisory lock).
    tasks.push(tokio::spawn(crate::rollups::run(db.clone(), stopped.clone())));
    // Orders that name clicks which arrived after them, re-attributed off the ingestion path (rows
    // claimed with SKIP LOCKED).
    tasks.push(tokio::spawn(crate::attribution::run_reattribution(
        db.clone(),
        Duration::from_millis(200),
        stopped.clone(),
    )));
    // Processed Shopify bodies, finished outbox rows and old page views removed, hourly (see `retention`;
    // one process at a time).
    tasks.push(tokio::spawn(crate::retention::run(db.clone(), config.retention, stopped.clone())));
    // Monthly partitions of clicks and pixel events created ahead, old ones dropped (see `partitions`;
    // one process at a time).
    let policy = crate::partitions::Policy {
        clicks_months: config.clicks_retention_months,
        page_views: config.retention.page_views,
    };
    tasks.push(tokio::spawn(crate::partitions::run(db.clone(), policy, stopped.clone())));
    // Pending orders whose confirmation window closed become unconfirmed (one process at a time).
    tasks.push(tokio::spawn(crate::conversions::run_confirmation_sweep(
        db.clone(),
        Duration::from_secs(60),
        stopped.clone(),
    )));
    // Outbound webhooks, delivered off the request path (endpoints leased with SKIP LOCKED).
    let deliverer = crate::webhooks::Deliverer::new(Arc::new(config.clone()))?;
    tasks.push(tokio::spawn(crate::webhooks::run(db.clone(), deliverer, Duration::from_millis(500), stopped.clone())));
    // Links' destinations, checked when due (on creation, on a change, then daily; links claimed with
    // SKIP LOCKED).
    if config.destination_checks {
        let checker = crate::links::health::Checker::from_config(config)?;
        tasks.push(tokio::spawn(crate::links::health::run(
            db.clone(),
            checker,
            Duration::from_secs(30),
            stopped.clone(),
        )));
    } else {
        tracing::warn!("DESTINATION_CHECKS=false: links' destinations are not checked");
    }
    // Brands' pending domains, checked with Cloudflare for SaaS every minute (one process at a time).
    tasks.push(tokio::spawn(crate::domains::run(state.domains.clone(), Duration::from_secs(60), stopped.clone())));
    Ok(tasks)
}

/// Starts the KV drainer for the configured sink.
fn spawn_kv_sync(
    db: &PgPool,
    config: &Config,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let db = db.clone();
    Ok(match &config.kv_sink {
        KvSinkConfig::None => {
            tracing::warn!("KV_SINK=none: link changes stay in the outbox and never reach an edge");
            None
        }
        KvSinkConfig::Worker { url, token } => {
            Some(tokio::spawn(sync::run(db, WorkerKv::new(url, token.clone())?, config.kv_reconcile_every, stopped)))
        }
        KvSinkConfig::Cloudflare { api_base, account_id, namespace_id, token } => Some(tokio::spawn(sync::run(
            db,
            CloudflareKv::new(api_base, account_id, namespace_id, token.clone())?,
            config.kv_reconcile_every,
            stopped,
        ))),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => tracing::error!(error = %e, "cannot listen for SIGTERM"),
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
