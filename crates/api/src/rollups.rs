//! Folding the rollup deltas ingestion appends (per link and UTC hour), and those every change to an order
//! appends (per link, UTC hour, currency and status: migration 0020's triggers), into the per-hour and
//! per-day rollup rows reports read.
//!
//! Ingestion never updates a shared rollup row (that serialised every batch of a hot link behind the
//! previous one's commit); it appends deltas. This task folds them in, one process at a time (an
//! advisory lock), each table in one statement that deletes the deltas and adds them to the rollups,
//! so a report — which reads rollups and deltas together through views — never counts a click twice
//! or misses one.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

const ROLLUP_LOCK: i64 = 0x726f_6c6c_7570; // "rollup"

/// Folds every pending delta; returns how many delta rows were folded (0 when another process holds
/// the lock).
pub async fn fold(db: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let locked: bool =
        sqlx::query_scalar("select pg_try_advisory_xact_lock($1)").bind(ROLLUP_LOCK).fetch_one(&mut *tx).await?;
    if !locked {
        return Ok(0);
    }
    // Each hourly delta is added to its hour, its UTC day and its month, in the statement that deletes it.
    let counts: i64 = sqlx::query_scalar(
        "with moved as (delete from link_hourly_delta returning *),
         hourly as (
             insert into link_hourly (link_id, hour, brand_id, clicks, unique_clicks, bot_clicks)
             select link_id, hour, brand_id, sum(clicks), sum(unique_clicks), sum(bot_clicks)
             from moved group by link_id, hour, brand_id
             on conflict (link_id, hour) do update set
                 clicks = link_hourly.clicks + excluded.clicks,
                 unique_clicks = link_hourly.unique_clicks + excluded.unique_clicks,
                 bot_clicks = link_hourly.bot_clicks + excluded.bot_clicks
         ),
         daily as (
             insert into link_daily (link_id, day, brand_id, clicks, unique_clicks, bot_clicks)
             select link_id, (hour at time zone 'UTC')::date, brand_id, sum(clicks), sum(unique_clicks), sum(bot_clicks)
             from moved group by 1, 2, 3
             on conflict (link_id, day) do update set
                 clicks = link_daily.clicks + excluded.clicks,
                 unique_clicks = link_daily.unique_clicks + excluded.unique_clicks,
                 bot_clicks = link_daily.bot_clicks + excluded.bot_clicks
         ),
         monthly as (
             insert into link_monthly (link_id, day, brand_id, clicks, unique_clicks, bot_clicks)
             select link_id, date_trunc('month', hour at time zone 'UTC')::date, brand_id, sum(clicks),
                    sum(unique_clicks), sum(bot_clicks)
             from moved group by 1, 2, 3
             on conflict (link_id, day) do update set
                 clicks = link_monthly.clicks + excluded.clicks,
                 unique_clicks = link_monthly.unique_clicks + excluded.unique_clicks,
                 bot_clicks = link_monthly.bot_clicks + excluded.bot_clicks
         )
         select count(*) from moved",
    )
    .fetch_one(&mut *tx)
    .await?;
    let dims: i64 = sqlx::query_scalar(
        "with moved as (delete from link_hourly_dims_delta returning *),
         hourly as (
             insert into link_hourly_dims (link_id, hour, dimension, value, clicks)
             select link_id, hour, dimension, value, sum(clicks) from moved group by 1, 2, 3, 4
             on conflict (link_id, hour, dimension, value) do update set clicks = link_hourly_dims.clicks + excluded.clicks
         ),
         daily as (
             insert into link_daily_dims (link_id, day, dimension, value, clicks)
             select link_id, (hour at time zone 'UTC')::date, dimension, value, sum(clicks) from moved group by 1, 2, 3, 4
             on conflict (link_id, day, dimension, value) do update set clicks = link_daily_dims.clicks + excluded.clicks
         )
         select count(*) from moved",
    )
    .fetch_one(&mut *tx)
    .await?;
    let orders: i64 = sqlx::query_scalar(
        "with moved as (delete from order_hourly_delta returning *),
         hourly as (
             insert into order_hourly (link_id, hour, currency, status, brand_id, orders, net_minor)
             select link_id, hour, currency, status, brand_id, sum(orders), sum(net_minor)
             from moved group by 1, 2, 3, 4, 5
             on conflict (link_id, hour, currency, status) do update set
                 orders = order_hourly.orders + excluded.orders,
                 net_minor = order_hourly.net_minor + excluded.net_minor
         ),
         daily as (
             insert into order_daily (link_id, day, currency, status, brand_id, orders, net_minor)
             select link_id, (hour at time zone 'UTC')::date, currency, status, brand_id, sum(orders), sum(net_minor)
             from moved group by 1, 2, 3, 4, 5
             on conflict (link_id, day, currency, status) do update set
                 orders = order_daily.orders + excluded.orders,
                 net_minor = order_daily.net_minor + excluded.net_minor
         )
         select count(*) from moved",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(u64::try_from(counts + dims + orders).unwrap_or(0))
}

/// Folds every second until `shutdown` turns true; failures are logged and retried (the deltas wait).
pub async fn run(db: PgPool, mut shutdown: watch::Receiver<bool>) {
    tracing::info!("rollup folding started");
    loop {
        match fold(&db).await {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "rollup deltas folded"),
            Err(e) => tracing::warn!(error = %e, "folding rollup deltas failed; they stay pending"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    tracing::info!("rollup folding stopped");
}
