//! The Conversions API: orders reported server-side by stores that are not on Shopify, with the brand's
//! key. An order reported here is `verified`; its attribution is the engine's, unchanged.
//!
//! Reporting is idempotent twice over. A request carries an `Idempotency-Key`: the first request with a
//! key claims it and stores its answer in the same transaction as the order (a new order: in the
//! statement that records it), so a retry with the same key and body gets the same answer and counts
//! nothing twice, and the same key with another body is a conflict; a concurrent request with the same
//! key waits for the first to commit (on the order's lock, or on the key itself when the bodies name
//! different orders) and then answers from it. And one order is counted once whatever reports it: an
//! order a server-side source already reported is answered as it stands (200), never recorded again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::ClickId;

use super::Conversion;
use crate::attribution::{self, Judged, OrderReport, RefundReport, Source};
use crate::money::{MaxOrderValue, Money};

/// Why a Conversions API request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// A field is invalid; `code` is the stable error code, the message names the field.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("amount is above the maximum order value ({max} {currency})")]
    AmountTooLarge { max: u64, currency: String },
    #[error("this Idempotency-Key was used with another request body")]
    IdempotencyConflict,
    #[error("refund {0} belongs to another order")]
    RefundConflict(String),
    #[error("the brand has no such order")]
    OrderNotFound,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn invalid(code: &'static str, message: impl Into<String>) -> ConversionError {
    ConversionError::Invalid { code, message: message.into() }
}

/// `{"amount_minor": 12999, "currency": "USD"}` as a client sends it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyInput {
    /// Integer minor units (cents for USD), 0 or more.
    #[schema(minimum = 0)]
    pub amount_minor: i64,
    /// ISO 4217 code of a currency with minor units.
    #[schema(value_type = crate::schema::CurrencyCode)]
    pub currency: String,
}

/// `POST /v1/conversions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"order_id": "1042", "amount": {"amount_minor": 12999, "currency": "USD"},
    "occurred_at": "2026-11-20T16:05:41Z", "cs_ref": "5f0c6a3e9b2d4c1fa7e8d9c0b1a2f3e4", "discount_codes": ["JESS20"]}))]
pub struct NewConversion {
    /// The store's order id, 1–128 characters; one order per id and brand.
    #[schema(value_type = crate::schema::StoreId)]
    pub order_id: String,
    /// What the customer paid, at most the deployment's maximum order value.
    pub amount: MoneyInput,
    /// When the order was placed (RFC 3339), not in the future.
    #[schema(value_type = crate::schema::Instant)]
    pub occurred_at: DateTime<Utc>,
    /// The click id the visitor arrived with (`cs_ref` from the landing URL).
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::TrimmedClickRef>)]
    pub cs_ref: Option<String>,
    /// Discount codes used on the order (the backup signal), at most 50.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::schema::DiscountCode>>, max_items = 50)]
    pub discount_codes: Option<Vec<String>>,
}

/// `POST /v1/conversions/{order_id}/refunds`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refund_id": "r-7", "amount": {"amount_minor": 2500, "currency": "USD"},
    "occurred_at": "2026-11-22T09:00:00Z"}))]
pub struct NewRefund {
    /// The store's refund id, 1–128 characters; a repeated id counts once.
    #[schema(value_type = crate::schema::StoreId)]
    pub refund_id: String,
    /// Money returned, in the order's currency.
    pub amount: MoneyInput,
    /// When the money was returned (RFC 3339), not in the future.
    #[schema(value_type = crate::schema::Instant)]
    pub occurred_at: DateTime<Utc>,
}

/// How far ahead of our clock a reported time may be.
const MAX_CLOCK_SKEW: Duration = Duration::minutes(10);
const MAX_DISCOUNT_CODES: usize = 50;

/// A store's id (order or refund): 1–128 characters, no control characters.
fn store_id(raw: &str, field: &'static str, code: &'static str) -> Result<String, ConversionError> {
    let id = raw.trim();
    if id.is_empty() || id.chars().count() > 128 || id.chars().any(char::is_control) {
        return Err(invalid(code, format!("{field} must be 1 to 128 characters without control characters")));
    }
    Ok(id.to_owned())
}

fn money(input: &MoneyInput, max: MaxOrderValue) -> Result<Money, ConversionError> {
    let amount = Money::from_minor(input.amount_minor, &input.currency)
        .map_err(|e| invalid("invalid_amount", format!("amount: {e}")))?;
    if !max.allows(&amount) {
        return Err(ConversionError::AmountTooLarge { max: max.0, currency: amount.currency });
    }
    Ok(amount)
}

fn not_in_future(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, ConversionError> {
    if crate::reports::in_range(at).is_err() {
        return Err(invalid("invalid_occurred_at", "occurred_at must be a time from 1970 to 9999"));
    }
    if at > now + MAX_CLOCK_SKEW {
        return Err(invalid("invalid_occurred_at", "occurred_at must not be in the future"));
    }
    Ok(at)
}

impl NewConversion {
    /// The order as attribution sees it, or why it cannot be.
    fn report(&self, brand_id: Uuid, max: MaxOrderValue, now: DateTime<Utc>) -> Result<OrderReport, ConversionError> {
        let order_id = store_id(&self.order_id, "order_id", "invalid_order_id")?;
        let amount = money(&self.amount, max)?;
        let occurred_at = not_in_future(self.occurred_at, now)?;
        let refs = match self.cs_ref.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => {
                vec![ClickId::parse(r).map_err(|_| invalid("invalid_cs_ref", "cs_ref is not a click id"))?.as_uuid()]
            }
            None => Vec::new(),
        };
        let codes = self.discount_codes.clone().unwrap_or_default();
        if codes.len() > MAX_DISCOUNT_CODES {
            return Err(invalid("invalid_discount_codes", format!("at most {MAX_DISCOUNT_CODES} discount_codes")));
        }
        let mut discount_codes = Vec::with_capacity(codes.len());
        for code in codes {
            let code = code.trim();
            if code.is_empty() || code.chars().count() > 255 || code.chars().any(char::is_control) {
                return Err(invalid("invalid_discount_codes", "each discount code must be 1 to 255 characters"));
            }
            discount_codes.push(code.to_owned());
        }
        Ok(OrderReport {
            brand_id,
            order_id,
            amount,
            occurred_at,
            source: Source::Api,
            refs,
            discount_codes,
            cancelled_at: None,
            test: false,
        })
    }
}

/// What an idempotent request answers: whether it created something (201) or found it (200), and the
/// order as it stood when first answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub created: bool,
    pub conversion: Conversion,
}

/// An `Idempotency-Key` header: 1–255 visible ASCII characters.
pub fn idempotency_key(raw: Option<&str>) -> Result<&str, ConversionError> {
    let key = raw.ok_or_else(|| invalid("missing_idempotency_key", "the Idempotency-Key header is required"))?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters"));
    }
    Ok(key)
}

/// The request's fingerprint: the SHA-256 of its JSON with object keys sorted, so the same body sent
/// with other spacing or key order is the same request.
fn fingerprint(body: &NewConversion) -> Vec<u8> {
    let canonical: Value = serde_json::to_value(body).unwrap_or(Value::Null);
    Sha256::digest(canonical.to_string().as_bytes()).to_vec()
}

/// Records an order reported through the Conversions API under `key`.
pub async fn report(
    db: &PgPool,
    brand_id: Uuid,
    key: &str,
    body: &NewConversion,
    max: MaxOrderValue,
    judged: Judged,
) -> Result<Answer, ConversionError> {
    // Invalid requests are refused before the key is claimed: they may be corrected and sent again.
    let report = body.report(brand_id, max, judged.now)?;
    let hash = fingerprint(body);
    let keep = attribution::KeepAnswer { key, request_hash: &hash, columns: super::COLUMNS, status_code: 201 };
    // The usual request reports a new order: created in one round trip, with its answer kept under the key.
    if let Some(answer) =
        attribution::create_order_once(db, &report, judged, &attribution::Claim::Answer(&keep)).await?
    {
        return Ok(Answer { created: true, conversion: super::from_snapshot(&answer).map_err(decode)? });
    }
    // Any other (a retry, a second key for one order, a pixel order confirmed) changed nothing there.
    // The transaction holds the order's lock from its start: what it reads next includes every report
    // of the order, and every use of the key, committed before it.
    let mut tx = attribution::begin_for_order(db, brand_id, &report.order_id).await?;
    let created = match attribution::record_order_once(&mut tx, &report, judged, &keep).await? {
        // The usual path: the order is new, and its answer was kept under the key as it was created.
        attribution::Once::Created(answer) => {
            tx.commit().await?;
            return Ok(Answer { created: true, conversion: super::from_snapshot(&answer).map_err(decode)? });
        }
        attribution::Once::KeyTaken => {
            tx.rollback().await?;
            return replay(db, brand_id, key, &hash).await;
        }
        attribution::Once::Recorded => true,
        attribution::Once::AlreadyReported => false,
    };
    // The order as it now stands is the answer, stored under the key in the same statement that reads
    // it: as the row it was read from, which a replay turns into the same answer. A request that took
    // the key meanwhile (for another order: this one's lock keeps out any for the same order) is waited
    // for, and then its answer is this one's.
    let row: Option<super::Row> = sqlx::query_as(&format!(
        "with answer as (
             select {columns} from conversions c left join links l on l.id = c.link_id
             where c.brand_id = $1 and c.order_id = $2),
         saved as (
             insert into idempotency_keys (brand_id, key, request_hash, status_code, response)
             select $1, $3, $5, $4, to_jsonb(answer) from answer
             on conflict do nothing
             returning 1)
         select * from answer where exists (select 1 from saved)",
        columns = super::COLUMNS
    ))
    .bind(brand_id)
    .bind(&report.order_id)
    .bind(key)
    .bind(if created { 201i16 } else { 200 })
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return replay(db, brand_id, key, &hash).await;
    };
    tx.commit().await?;
    Ok(Answer { created, conversion: row.into_conversion().1 })
}

/// A stored answer that does not read back as an order.
fn decode(e: serde_json::Error) -> ConversionError {
    ConversionError::Database(sqlx::Error::Decode(Box::new(e)))
}

/// The stored answer of a key already used: the same one for the same request, a conflict for another.
async fn replay(db: &PgPool, brand_id: Uuid, key: &str, hash: &[u8]) -> Result<Answer, ConversionError> {
    let (stored_hash, status_code, response): (Vec<u8>, i16, Value) = sqlx::query_as(
        "select request_hash, status_code, response from idempotency_keys where brand_id = $1 and key = $2",
    )
    .bind(brand_id)
    .bind(key)
    .fetch_one(db)
    .await?;
    if stored_hash != hash {
        return Err(ConversionError::IdempotencyConflict);
    }
    let conversion = super::from_snapshot(&response).map_err(decode)?;
    Ok(Answer { created: status_code == 201, conversion })
}

/// Records a refund of an order the brand has; a refund id already recorded for this order counts once.
pub async fn refund(
    db: &PgPool,
    brand_id: Uuid,
    order_id: &str,
    body: &NewRefund,
    max: MaxOrderValue,
    now: DateTime<Utc>,
) -> Result<Answer, ConversionError> {
    let refund_id = store_id(&body.refund_id, "refund_id", "invalid_refund_id")?;
    let amount = money(&body.amount, max)?;
    let refunded_at = not_in_future(body.occurred_at, now)?;
    let mut tx = attribution::begin_for_order(db, brand_id, order_id).await?;
    let order = super::find(&mut *tx, brand_id, order_id).await?.ok_or(ConversionError::OrderNotFound)?;
    if order.amount.currency != amount.currency {
        return Err(invalid(
            "currency_mismatch",
            format!("amount.currency must be the order's currency, {}", order.amount.currency),
        ));
    }
    let report =
        RefundReport { brand_id, refund_id, order_id: order_id.to_owned(), amount, refunded_at: Some(refunded_at) };
    let created = attribution::record_refund(&mut tx, &report).await?;
    // A refund id already recorded is a repeat only if it was recorded for this order. Checked after the
    // insert, whose conflict waits for a concurrent request with the same refund id to commit: checked
    // before it, two requests naming two orders would both see no owner, and the loser would answer
    // 200 for an order the refund does not belong to.
    if !created {
        let owner: Option<String> =
            sqlx::query_scalar("select order_id from refunds where brand_id = $1 and refund_id = $2")
                .bind(brand_id)
                .bind(&report.refund_id)
                .fetch_optional(&mut *tx)
                .await?;
        if owner.as_deref().is_some_and(|owner| owner != order_id) {
            return Err(ConversionError::RefundConflict(report.refund_id));
        }
    }
    let conversion = super::find(&mut *tx, brand_id, order_id).await?.ok_or(ConversionError::OrderNotFound)?;
    tx.commit().await?;
    Ok(Answer { created, conversion })
}

/// Cancels an order the brand has (its status becomes `cancelled`; cancelling again changes nothing).
pub async fn cancel(
    db: &PgPool,
    brand_id: Uuid,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<Conversion, ConversionError> {
    let mut tx = attribution::begin_for_order(db, brand_id, order_id).await?;
    attribution::cancel(&mut tx, brand_id, order_id, now, now).await?.ok_or(ConversionError::OrderNotFound)?;
    let conversion = super::find(&mut *tx, brand_id, order_id).await?.ok_or(ConversionError::OrderNotFound)?;
    tx.commit().await?;
    Ok(conversion)
}
