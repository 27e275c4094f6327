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

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let db = crate::db::connect_and_migrate(&config).await?;
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
    let (stop, stopped) = watch::channel(false);
    let sync = spawn_kv_sync(&db, &config, stopped.clone())?;
    let rollups = tokio::spawn(crate::rollups::run(db.clone(), stopped.clone()));
    // Orders that name clicks which arrived after them, re-attributed off the ingestion path.
    let reattribution =
        tokio::spawn(crate::attribution::run_reattribution(db.clone(), Duration::from_millis(200), stopped.clone()));
    // Processed Shopify bodies, finished outbox rows and old page views removed, hourly (see `retention`).
    let retention = tokio::spawn(crate::retention::run(db.clone(), config.retention, stopped.clone()));
    // Pending orders whose confirmation window closed become unconfirmed.
    let sweep =
        tokio::spawn(crate::conversions::run_confirmation_sweep(db.clone(), Duration::from_secs(60), stopped.clone()));
    // Outbound webhooks, delivered off the request path.
    let deliverer = crate::webhooks::Deliverer::new(Arc::new(config.clone()))?;
    let webhooks =
        tokio::spawn(crate::webhooks::run(db.clone(), deliverer, Duration::from_millis(500), stopped.clone()));
    // Links' destinations, checked when due (on creation, on a change, then daily).
    let health = if config.destination_checks {
        let checker = crate::links::health::Checker::from_config(&config)?;
        Some(tokio::spawn(crate::links::health::run(db.clone(), checker, Duration::from_secs(30), stopped.clone())))
    } else {
        tracing::warn!("DESTINATION_CHECKS=false: links' destinations are not checked");
        None
    };
    // The dashboard's dummy password hash, made now so that the first sign-in with an unknown email does
    // not take longer than the others.
    tokio::task::spawn_blocking(crate::users::dummy_hash);
    let state = AppState::new(db, config);
    // Brands' pending domains, checked with Cloudflare for SaaS every minute.
    let domains = tokio::spawn(crate::domains::run(state.domains.clone(), Duration::from_secs(60), stopped));
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
    // Requests are drained; let the sync finish its current batch (it marks nothing done it did not push).
    let _ = stop.send(true);
    if let Some(task) = sync {
        task.await?;
    }
    rollups.await?;
    reattribution.await?;
    sweep.await?;
    retention.await?;
    webhooks.await?;
    if let Some(task) = health {
        task.await?;
    }
    domains.await?;
    tracing::info!("api stopped");
    Ok(())
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
