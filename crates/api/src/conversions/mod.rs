//! Orders as a brand sees them: every order with its status and the credit that explains it
//! (`GET /v1/conversions`), the Conversions API that reports orders server-side ([`server`]), and the
//! confirmation sweep that ends the wait of pending orders.

pub mod server;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::attribution::Status;
use crate::money::Money;

/// Which orders a list shows.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversionFilter {
    /// Orders placed at or after this time (RFC 3339, from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z;
    /// else 400 `invalid_query`).
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    pub from: Option<DateTime<Utc>>,
    /// Orders placed before this time (RFC 3339, same range as `from`).
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    pub to: Option<DateTime<Utc>>,
    pub creator_id: Option<Uuid>,
    pub link_id: Option<Uuid>,
    /// Only orders of this status.
    pub status: Option<Status>,
    /// At most this many orders (1–200, default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One order, its status, and the credit that explains its revenue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Conversion {
    pub order_id: String,
    /// What can be proven about the order; only `verified` and `unverified` orders count in reports, and
    /// `pending` ones apart.
    pub status: Status,
    /// The order's amount as reported (a server-side source's, once one reported it).
    pub amount: Money,
    /// Refunded so far.
    pub refunded: Money,
    /// What is credited: amount minus refunds, never below zero.
    pub net: Money,
    /// The credited link; null when the order credits nobody.
    pub link_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    /// `click` or `promo_code`; null when nobody is credited.
    pub method: Option<String>,
    /// The credited click, for `click` credits.
    pub click_id: Option<String>,
    /// When the order was placed.
    pub occurred_at: DateTime<Utc>,
    /// When the current credit was decided.
    pub credited_at: Option<DateTime<Utc>>,
    /// Who reported the order first: `pixel`, `shopify` or `api`.
    pub source: String,
    /// When a server-side source (Shopify, the Conversions API) first reported it.
    pub verified_at: Option<DateTime<Utc>>,
    /// For orders only the pixel reported on a brand with a server-side source: when the wait for the
    /// store's confirmation ends (`pending` until then, `unconfirmed` after).
    pub confirm_by: Option<DateTime<Utc>>,
    /// When the store cancelled it.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Discount codes the order carried.
    pub discount_codes: Vec<String>,
}

/// An order as stored; also what the Conversions API keeps as a request's answer (`to_jsonb` of it).
#[derive(sqlx::FromRow, Deserialize)]
struct Row {
    seq: i64,
    order_id: String,
    status: String,
    amount_minor: i64,
    refunded_minor: i64,
    currency: String,
    link_id: Option<Uuid>,
    creator_id: Option<Uuid>,
    method: Option<String>,
    click_id: Option<Uuid>,
    occurred_at: DateTime<Utc>,
    credited_at: Option<DateTime<Utc>>,
    source: String,
    verified_at: Option<DateTime<Utc>>,
    confirm_by: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    discount_codes: Vec<String>,
}

impl Row {
    fn into_conversion(self) -> (i64, Conversion) {
        let money = |amount_minor: i64| Money { amount_minor, currency: self.currency.clone() };
        let conversion = Conversion {
            amount: money(self.amount_minor),
            refunded: money(self.refunded_minor),
            net: money(self.amount_minor.saturating_sub(self.refunded_minor).max(0)),
            status: Status::parse(&self.status).unwrap_or(Status::Unverified),
            click_id: self.click_id.map(|u| u.simple().to_string()),
            order_id: self.order_id,
            link_id: self.link_id,
            creator_id: self.creator_id,
            method: self.method,
            occurred_at: self.occurred_at,
            credited_at: self.credited_at,
            source: self.source,
            verified_at: self.verified_at,
            confirm_by: self.confirm_by,
            cancelled_at: self.cancelled_at,
            discount_codes: self.discount_codes,
        };
        (self.seq, conversion)
    }
}

/// An order from a stored snapshot of its row (`to_jsonb` of the columns a list selects): what the
/// Conversions API keeps as a request's answer, and what an order's webhook event carries.
pub fn from_snapshot(snapshot: &serde_json::Value) -> Result<Conversion, serde_json::Error> {
    Row::deserialize(snapshot).map(|row| row.into_conversion().1)
}

/// When the brand's clicks among `ids` happened (the clicks orders were credited to); another brand's
/// click ids are not answered.
pub async fn click_times(
    db: &sqlx::PgPool,
    brand_id: Uuid,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, DateTime<Utc>>, sqlx::Error> {
    let rows: Vec<(Uuid, DateTime<Utc>)> =
        sqlx::query_as("select id, occurred_at from clicks where brand_id = $1 and id = any($2)")
            .bind(brand_id)
            .bind(ids)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

pub(crate) const COLUMNS: &str = "c.seq, c.order_id, c.status, c.amount_minor, c.refunded_minor, c.currency, c.link_id,
     l.creator_id, c.method, c.click_id, c.occurred_at, c.credited_at, c.source, c.verified_at, c.confirm_by,
     c.cancelled_at, c.discount_codes";

/// One page of the brand's orders matching `filter`, newest first, each with its sequence number (the
/// list's cursor): at most `limit` orders before `before_seq`.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    brand_id: Uuid,
    filter: &ConversionFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Conversion)>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS}
         from conversions c left join links l on l.id = c.link_id
         where c.brand_id = $1
           and ($2::timestamptz is null or c.occurred_at >= $2) and ($3::timestamptz is null or c.occurred_at < $3)
           and ($4::uuid is null or l.creator_id = $4) and ($5::uuid is null or c.link_id = $5)
           and ($6::text is null or c.status = $6)
           and ($7::bigint is null or c.seq < $7)
         order by c.seq desc limit $8"
    ))
    .bind(brand_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.creator_id)
    .bind(filter.link_id)
    .bind(filter.status.map(Status::as_str))
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Row::into_conversion).collect())
}

/// One order of the brand, as the list shows it.
pub async fn find<'e>(
    db: impl PgExecutor<'e>,
    brand_id: Uuid,
    order_id: &str,
) -> Result<Option<Conversion>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS}
         from conversions c left join links l on l.id = c.link_id
         where c.brand_id = $1 and c.order_id = $2"
    ))
    .bind(brand_id)
    .bind(order_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.into_conversion().1))
}

/// The advisory lock of the confirmation sweep: with several processes, one sweeps at a time (two would
/// update the same rows at once, queue behind each other's row locks, and could deadlock).
pub const SWEEP_LOCK: i64 = 0x7377_6565_7073; // "sweeps"

/// Ends the wait of every pending order whose confirmation window closed by `now`: it becomes
/// `unconfirmed`, through the one status rule. Returns how many orders changed (0 when another process
/// is sweeping).
pub async fn close_confirmation_windows(db: &sqlx::PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let locked: bool =
        sqlx::query_scalar("select pg_try_advisory_xact_lock($1)").bind(SWEEP_LOCK).fetch_one(&mut *tx).await?;
    if !locked {
        return Ok(0);
    }
    let changed = sqlx::query(
        "update conversions
         set status = conversion_status(test, cancelled_at, verified_at, disputed, confirm_by, true), updated_at = now()
         where status = 'pending' and confirm_by <= $1",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(changed)
}

/// Closes confirmation windows every `every` until `stop`: a named background task.
pub async fn run_confirmation_sweep(
    db: sqlx::PgPool,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match close_confirmation_windows(&db, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "pending orders unconfirmed: their confirmation window closed"),
            Err(e) => tracing::warn!(error = %e, "closing confirmation windows failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
