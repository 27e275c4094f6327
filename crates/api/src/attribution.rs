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
/// replace what a pixel reported, never the other way round.
pub async fn record_order(tx: &mut PgConnection, report: &OrderReport) -> Result<Credit, sqlx::Error> {
    sqlx::query(&format!(
        "with lock as ({LOCK_ORDER})
         insert into conversions (id, brand_id, order_id, amount_minor, currency, occurred_at, source, amount_source)
         select $3, $1, $2, $4, $5, $6, $7, $7 from lock
         on conflict (brand_id, order_id) do nothing"
    ))
    .bind(report.brand_id)
    .bind(&report.order_id)
    .bind(Uuid::new_v4())
    .bind(report.amount.amount_minor)
    .bind(&report.amount.currency)
    .bind(report.occurred_at)
    .bind(report.source.as_str())
    .execute(&mut *tx)
    .await?;
    // Serialises concurrent reports of the same order. A later statement than the lock's, so it sees
    // every refund committed before the lock was granted.
    let (amount_source, refunded): (String, bool) = sqlx::query_as(
        "select amount_source, exists (select 1 from refunds r where r.brand_id = $1 and r.order_id = $2)
         from conversions where brand_id = $1 and order_id = $2 for update",
    )
    .bind(report.brand_id)
    .bind(&report.order_id)
    .fetch_one(&mut *tx)
    .await?;
    if report.source == Source::Shopify && amount_source != Source::Shopify.as_str() {
        sqlx::query(
            "update conversions set amount_minor = $3, currency = $4, occurred_at = $5, amount_source = 'shopify',
                    updated_at = now()
             where brand_id = $1 and order_id = $2",
        )
        .bind(report.brand_id)
        .bind(&report.order_id)
        .bind(report.amount.amount_minor)
        .bind(&report.amount.currency)
        .bind(report.occurred_at)
        .execute(&mut *tx)
        .await?;
    }
    if !report.discount_codes.is_empty() {
        sqlx::query(
            "update conversions set discount_codes = array(select distinct unnest(discount_codes || $3::text[]))
             where brand_id = $1 and order_id = $2",
        )
        .bind(report.brand_id)
        .bind(&report.order_id)
        .bind(&report.discount_codes)
        .execute(&mut *tx)
        .await?;
    }
    if !report.refs.is_empty() {
        sqlx::query(
            "insert into order_refs (brand_id, order_id, cs_ref_id, source)
             select $1, $2, unnest($3::uuid[]), $4 on conflict do nothing",
        )
        .bind(report.brand_id)
        .bind(&report.order_id)
        .bind(&report.refs)
        .bind(report.source.as_str())
        .execute(&mut *tx)
        .await?;
    }
    if refunded {
        apply_refunds(tx, report.brand_id, &report.order_id).await?;
    }
    attribute(tx, report.brand_id, &report.order_id).await
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

/// Recomputes an order's credit from all its evidence and stores it if it changed.
pub async fn attribute(tx: &mut PgConnection, brand_id: Uuid, order_id: &str) -> Result<Credit, sqlx::Error> {
    // Most orders carry no click id at all: then there is no click to look for.
    let (occurred_at, discount_codes, has_refs): (DateTime<Utc>, Vec<String>, bool) = sqlx::query_as(
        "select occurred_at, discount_codes,
                exists (select 1 from order_refs r where r.brand_id = $1 and r.order_id = $2)
         from conversions where brand_id = $1 and order_id = $2 for update",
    )
    .bind(brand_id)
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?;

    let mut credit = Credit::Nobody;
    let sources = if has_refs { &[Source::Shopify, Source::Pixel][..] } else { &[] };
    for &source in sources {
        if let Some((click_id, link_id)) = latest_click(tx, brand_id, order_id, source, occurred_at).await? {
            credit = Credit::Click { link_id, click_id };
            break;
        }
    }
    if credit == Credit::Nobody && !discount_codes.is_empty() {
        let lowered: Vec<String> = discount_codes.iter().map(|c| c.trim().to_lowercase()).collect();
        let promo: Option<Uuid> = sqlx::query_scalar(
            "select id from links
             where brand_id = $1 and promo_code is not null and lower(promo_code) = any($2)
             order by active desc, created_at desc limit 1",
        )
        .bind(brand_id)
        .bind(&lowered)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(link_id) = promo {
            credit = Credit::PromoCode { link_id };
        }
    }

    let (link_id, method, click_id) = match &credit {
        Credit::Click { link_id, click_id } => (Some(*link_id), Some("click"), Some(*click_id)),
        Credit::PromoCode { link_id } => (Some(*link_id), Some("promo_code"), None),
        Credit::Nobody => (None, None, None),
    };
    sqlx::query(
        "update conversions set link_id = $3, method = $4, click_id = $5, credited_at = now(), updated_at = now()
         where brand_id = $1 and order_id = $2
           and (link_id, method, click_id) is distinct from ($3, $4, $5)",
    )
    .bind(brand_id)
    .bind(order_id)
    .bind(link_id)
    .bind(method)
    .bind(click_id)
    .execute(&mut *tx)
    .await?;
    Ok(credit)
}

/// The latest human click, within the window before the order, of any visitor named by the order's
/// click ids from `source`. Only this brand's clicks count, so another brand's click id credits nobody.
async fn latest_click(
    tx: &mut PgConnection,
    brand_id: Uuid,
    order_id: &str,
    source: Source,
    at: DateTime<Utc>,
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "select later.id, later.link_id
         from order_refs r
         join clicks named on named.id = r.cs_ref_id and named.brand_id = r.brand_id
         join clicks later on later.brand_id = named.brand_id and later.visitor_id = named.visitor_id
         where r.brand_id = $1 and r.order_id = $2 and r.source = $3
           and not later.bot and later.occurred_at <= $4 and later.occurred_at > $4 - $5::interval
         order by later.occurred_at desc, later.id
         limit 1",
    )
    .bind(brand_id)
    .bind(order_id)
    .bind(source.as_str())
    .bind(at)
    .bind(WINDOW)
    .fetch_optional(tx)
    .await
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
