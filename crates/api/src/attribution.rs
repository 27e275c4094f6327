//! The attribution engine: which link (and so which creator) earned an order.
//!
//! An order (brand + order id) is one `conversions` row, however many pixel events and webhooks report
//! it. Every report adds its evidence (click ids in `order_refs`, discount codes on the row) and the
//! credit is recomputed from *all* the evidence, so the order of arrival never matters and a stronger
//! signal always replaces a weaker one:
//!
//! 1. a click: through any reported click id we find the visitor, and credit that visitor's latest
//!    human click on one of the brand's links within the 30 days before the order (Shopify's click ids
//!    are considered before the pixel's);
//! 2. else a discount code matching a link's promo code, case-insensitively (deactivated links too:
//!    their history, promo codes included, is kept);
//! 3. else nobody.
//!
//! Refunds are evidence of another kind: they never move the credit, they reduce the revenue credited.
//! They are kept per refund (a redelivered refund counts once) and an order's `refunded_minor` is
//! recomputed as their sum, so a refund that arrives before its order is applied when the order does.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::money::Money;

/// How far back a click can earn an order.
pub const WINDOW: Duration = Duration::days(30);

/// Who reported an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pixel,
    Shopify,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pixel => "pixel",
            Source::Shopify => "shopify",
        }
    }
}

/// One report of an order.
#[derive(Debug, Clone)]
pub struct OrderReport {
    pub brand_id: Uuid,
    pub order_id: String,
    pub amount: Money,
    /// When the order was placed (Shopify's `created_at`; for the pixel, when the event arrived).
    pub occurred_at: DateTime<Utc>,
    pub source: Source,
    /// Click ids the report carried (`cs_ref`), whether or not they name a click.
    pub refs: Vec<Uuid>,
    /// Discount codes on the order.
    pub discount_codes: Vec<String>,
}

/// The credit an order ends up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credit {
    Click { link_id: Uuid, click_id: Uuid },
    PromoCode { link_id: Uuid },
    Nobody,
}

/// Records one report of an order and recomputes its credit, in the caller's transaction.
///
/// The first report creates the order. Shopify's amount, currency and time are authoritative: they
/// replace what a pixel reported, never the other way round. Two statements: the first takes the
/// order's lock and merges the report in; the second, whose snapshot therefore includes everything
/// committed before the lock was granted (refunds, other reports' click ids), recomputes the credit.
pub async fn record_order(tx: &mut PgConnection, report: &OrderReport) -> Result<Credit, sqlx::Error> {
    // The update clause runs only for an order already known; its `where` skips reports that bring
    // nothing new, though the row is locked either way (and so are concurrent reports serialised).
    const SHOPIFY_TAKES_OVER: &str = "excluded.amount_source = 'shopify' and c.amount_source <> 'shopify'";
    sqlx::query(&format!(
        "with lock as ({LOCK_ORDER}),
         refs as (
             insert into order_refs (brand_id, order_id, cs_ref_id, source)
             select $1, $2, ref, $7 from lock, unnest($9::uuid[]) ref
             on conflict do nothing)
         insert into conversions as c
             (id, brand_id, order_id, amount_minor, currency, occurred_at, source, amount_source, discount_codes)
         select $3, $1, $2, $4, $5, $6, $7, $7, $8 from lock
         on conflict (brand_id, order_id) do update set
             amount_minor = case when {SHOPIFY_TAKES_OVER} then excluded.amount_minor else c.amount_minor end,
             currency = case when {SHOPIFY_TAKES_OVER} then excluded.currency else c.currency end,
             occurred_at = case when {SHOPIFY_TAKES_OVER} then excluded.occurred_at else c.occurred_at end,
             amount_source = case when {SHOPIFY_TAKES_OVER} then excluded.amount_source else c.amount_source end,
             discount_codes = array(select distinct unnest(c.discount_codes || excluded.discount_codes)),
             updated_at = now()
         where ({SHOPIFY_TAKES_OVER}) or not c.discount_codes @> excluded.discount_codes"
    ))
    .bind(report.brand_id)
    .bind(&report.order_id)
    .bind(Uuid::new_v4())
    .bind(report.amount.amount_minor)
    .bind(&report.amount.currency)
    .bind(report.occurred_at)
    .bind(report.source.as_str())
    .bind(&report.discount_codes)
    .bind(&report.refs)
    .execute(&mut *tx)
    .await?;
    credit(tx, report.brand_id, &report.order_id).await
}

/// One refund of an order: money returned to the customer.
#[derive(Debug, Clone)]
pub struct RefundReport {
    pub brand_id: Uuid,
    /// The refund's own id, unique per brand.
    pub refund_id: String,
    pub order_id: String,
    pub amount: Money,
    pub refunded_at: Option<DateTime<Utc>>,
}

/// Records a refund once (by refund id) and reduces its order's credited revenue, in the caller's
/// transaction. A refund of an order not recorded yet waits and is applied by [`record_order`].
/// Returns whether the refund was new.
pub async fn record_refund(tx: &mut PgConnection, refund: &RefundReport) -> Result<bool, sqlx::Error> {
    let new = sqlx::query(&format!(
        "with lock as ({LOCK_ORDER})
         insert into refunds (brand_id, order_id, refund_id, amount_minor, currency, refunded_at)
         select $1, $2, $3, $4, $5, $6 from lock
         on conflict (brand_id, refund_id) do nothing"
    ))
    .bind(refund.brand_id)
    .bind(&refund.order_id)
    .bind(&refund.refund_id)
    .bind(refund.amount.amount_minor)
    .bind(&refund.amount.currency)
    .bind(refund.refunded_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if new {
        apply_refunds(tx, refund.brand_id, &refund.order_id).await?;
    }
    Ok(new)
}

/// Serialises everything that writes one order's refunds or creates the order, until the transaction
/// ends: without it, a refund committed while its order was being created could be missed by both.
/// Taken in the first statement of both paths (as a CTE, to save a round trip), before any row lock on
/// the order, so the two kinds of lock never deadlock. `$1` is the brand, `$2` the order id; the first
/// key is "ordr", the second a hash of the order.
const LOCK_ORDER: &str = "select pg_advisory_xact_lock(1869767794, hashtext($1::text || '/' || $2))";

/// Sets the order's refunded amount to the sum of its refunds in the order's currency (a refund in
/// another currency cannot be converted exactly, so it is kept but not subtracted). The sum is stored
/// as is; reports and `net` clamp amount minus refunds at zero.
async fn apply_refunds(tx: &mut PgConnection, brand_id: Uuid, order_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with total as (
             select coalesce(sum(r.amount_minor), 0)::bigint as minor
             from conversions c
             join refunds r on r.brand_id = c.brand_id and r.order_id = c.order_id and r.currency = c.currency
             where c.brand_id = $1 and c.order_id = $2)
         update conversions c set refunded_minor = total.minor, updated_at = now()
         from total
         where c.brand_id = $1 and c.order_id = $2 and c.refunded_minor <> total.minor",
    )
    .bind(brand_id)
    .bind(order_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Recomputes an order's credit from all its evidence and stores it if it changed, locking the order
/// first so that the recomputation sees every report committed before it.
pub async fn attribute(tx: &mut PgConnection, brand_id: Uuid, order_id: &str) -> Result<Credit, sqlx::Error> {
    sqlx::query("select 1 from conversions where brand_id = $1 and order_id = $2 for update")
        .bind(brand_id)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    credit(tx, brand_id, order_id).await
}

/// The credit, from all the evidence, of an order the transaction has locked, stored if it changed,
/// together with the order's refunded amount: one statement.
///
/// The click is the latest human click, within the window before the order, of any visitor named by
/// the order's click ids (Shopify's considered before the pixel's). Only this brand's clicks count, so
/// another brand's click id credits nobody. Refunds in another currency than the order's cannot be
/// converted exactly: they are kept but not subtracted. The refunded sum is stored as is; reports and
/// `net` clamp amount minus refunds at zero.
async fn credit(tx: &mut PgConnection, brand_id: Uuid, order_id: &str) -> Result<Credit, sqlx::Error> {
    let row: Option<(Option<Uuid>, Option<String>, Option<Uuid>)> = sqlx::query_as(
        "with o as (
             select occurred_at, discount_codes, currency from conversions where brand_id = $1 and order_id = $2),
         clicked as (
             select later.id as click_id, later.link_id
             from o
             join order_refs r on r.brand_id = $1 and r.order_id = $2
             join clicks named on named.id = r.cs_ref_id and named.brand_id = r.brand_id
             join clicks later on later.brand_id = named.brand_id and later.visitor_id = named.visitor_id
             where not later.bot and later.occurred_at <= o.occurred_at and later.occurred_at > o.occurred_at - $3
             order by r.source = 'shopify' desc, later.occurred_at desc, later.id
             limit 1),
         promo as (
             select l.id as link_id
             from o
             join links l on l.brand_id = $1 and l.promo_code is not null
                 and lower(l.promo_code) = any(array(select lower(code) from unnest(o.discount_codes) code))
             where not exists (select 1 from clicked)
             order by l.active desc, l.created_at desc
             limit 1),
         credit as (
             select coalesce(clicked.link_id, promo.link_id) as link_id,
                    case when clicked.click_id is not null then 'click'
                         when promo.link_id is not null then 'promo_code' end as method,
                    clicked.click_id,
                    (select coalesce(sum(r.amount_minor), 0) from refunds r
                     where r.brand_id = $1 and r.order_id = $2 and r.currency = o.currency)::bigint as refunded
             from o left join clicked on true left join promo on true),
         stored as (
             update conversions c
             set link_id = credit.link_id, method = credit.method, click_id = credit.click_id,
                 refunded_minor = credit.refunded, updated_at = now(),
                 credited_at = case when (c.link_id, c.method, c.click_id)
                                         is distinct from (credit.link_id, credit.method, credit.click_id)
                                    then now() else c.credited_at end
             from credit
             where c.brand_id = $1 and c.order_id = $2
               and (c.link_id, c.method, c.click_id, c.refunded_minor)
                   is distinct from (credit.link_id, credit.method, credit.click_id, credit.refunded))
         select link_id, method, click_id from credit",
    )
    .bind(brand_id)
    .bind(order_id)
    .bind(WINDOW)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match row {
        Some((Some(link_id), Some(method), Some(click_id))) if method == "click" => Credit::Click { link_id, click_id },
        Some((Some(link_id), Some(method), _)) if method == "promo_code" => Credit::PromoCode { link_id },
        _ => Credit::Nobody,
    })
}

/// Re-attributes the orders that were reported with any of these (just stored) click ids: a click can
/// reach us after the purchase that followed it, when the edge's queue is slower than the pixel.
pub async fn reattribute_for_clicks(db: &sqlx::PgPool, click_ids: &[Uuid]) -> Result<usize, sqlx::Error> {
    if click_ids.is_empty() {
        return Ok(0);
    }
    let orders: Vec<(Uuid, String)> =
        sqlx::query_as("select distinct brand_id, order_id from order_refs where cs_ref_id = any($1)")
            .bind(click_ids)
            .fetch_all(db)
            .await?;
    for (brand_id, order_id) in &orders {
        let mut tx = db.begin().await?;
        attribute(&mut tx, *brand_id, order_id).await?;
        tx.commit().await?;
    }
    Ok(orders.len())
}
