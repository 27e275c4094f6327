//! Outbound webhooks: brands' systems hear about their links and orders as they change.
//!
//! A brand registers endpoints (an https URL and the event types it wants). Every change that causes an
//! event writes it, with one delivery per subscribed endpoint, in the change's own transaction (the
//! SQL function `emit_webhook_event`; orders through a trigger on `conversions`, since every source of
//! orders writes there): nothing is announced that did not happen, and nothing that happened is lost.
//! A background task ([`deliver`]) sends them off the request path, signed as the Standard Webhooks
//! specification describes, at least once, in order per endpoint, retrying with back-off for more than
//! three days; an endpoint that has failed for five days is disabled. Targets are checked against
//! server-side request forgery ([`target`]).

pub mod deliver;
pub mod target;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

pub use deliver::{deliver_due, run, Deliverer};
pub use target::{Refused, TargetPolicy};

/// Every event type an endpoint can subscribe to. `link.destination_broken` is sent when a link's
/// destination check finds it broken or unreachable after it was `ok` or never checked
/// ([`crate::links::health`]).
pub const EVENT_TYPES: [&str; 7] = [
    "link.created",
    "link.updated",
    "link.deactivated",
    "conversion.created",
    "conversion.status_changed",
    "conversion.refunded",
    "link.destination_broken",
];

/// The event a brand sends itself from the dashboard (or `POST /v1/webhooks/{id}/test`) to try an
/// endpoint: delivered to that endpoint only, whatever it subscribed to.
pub const TEST_EVENT: &str = "webhook.test";

/// Most endpoints one brand may have.
pub const MAX_ENDPOINTS: i64 = 20;

/// How long a rotated-out secret keeps signing deliveries next to the new one.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A field is invalid; `code` is the stable error code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("a brand may have at most {MAX_ENDPOINTS} webhook endpoints")]
    TooMany,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn invalid(code: &'static str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid { code, message: message.into() }
}

/// An endpoint as the REST API shows it (never its secret, which is shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// The event types delivered to it.
    pub events: Vec<String>,
    /// Whether events are delivered to it.
    pub enabled: bool,
    /// Why it is disabled: `failing` (every delivery failed for 5 days) or `manual`.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Since when every delivery attempt failed; null while deliveries succeed.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint with its signing secret: the answer of creating one or rotating its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` and the base64 of 32 random bytes: the HMAC key is those bytes. Shown only now.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.brand.example/creatorscore", "events": ["conversion.created",
    "conversion.status_changed"], "description": "payouts"}))]
pub struct NewEndpoint {
    /// An https URL (at most 2,048 characters) that is not, and does not resolve to, a loopback, private or
    /// link-local address.
    #[schema(value_type = crate::schema::WebhookUrl)]
    pub url: String,
    /// 1–7 of the event types.
    #[schema(value_type = Vec<crate::schema::WebhookEventType>, min_items = 1)]
    pub events: Vec<String>,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`: the fields to change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[schema(value_type = Option<crate::schema::WebhookUrl>)]
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<crate::schema::WebhookEventType>>, min_items = 1)]
    pub events: Option<Vec<String>>,
    /// At most 500 characters; empty removes it.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// `true` enables it again (deliveries that were waiting resume, in order); `false` pauses it.
    pub enabled: Option<bool>,
}

/// One event for one endpoint, as `GET /v1/webhooks/{id}/deliveries` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending` (waiting or being retried), `delivered` or `failed` (retries exhausted).
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last attempt; null when it got no answer.
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When it is tried next (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A new signing secret.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

async fn checked_url(policy: TargetPolicy, raw: &str) -> Result<String, WebhookError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 2048 {
        return Err(invalid("invalid_url", "url must be 1 to 2048 characters"));
    }
    let refused = |e: Refused| invalid("invalid_url", format!("url: {e}"));
    let url = policy.check_url(raw, true).map_err(refused)?;
    // Normalising may add to the URL (a `/` for an empty path): the stored form is what must fit.
    if url.as_str().len() > 2048 {
        return Err(invalid("invalid_url", "url must be at most 2048 characters once normalised"));
    }
    policy.resolve(&url).await.map_err(refused)?;
    Ok(url.to_string())
}

fn checked_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    let mut kept: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            return Err(invalid(
                "invalid_events",
                format!("unknown event type {event:?}; known: {}", EVENT_TYPES.join(", ")),
            ));
        }
        if !kept.contains(event) {
            kept.push(event.clone());
        }
    }
    if kept.is_empty() {
        return Err(invalid("invalid_events", "events must name at least one event type"));
    }
    Ok(kept)
}

/// A description: at most 500 characters, control characters (which PostgreSQL or a page could choke on)
/// turned into spaces, surrounding whitespace trimmed; empty is none.
fn checked_description(description: Option<&str>) -> Result<Option<String>, WebhookError> {
    let Some(raw) = description else { return Ok(None) };
    if raw.chars().count() > 500 {
        return Err(invalid("invalid_description", "description must be at most 500 characters"));
    }
    let text: String = raw.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

const COLUMNS: &str = "id, url, description, events, enabled, disabled_reason, disabled_at, failing_since, created_at,
     updated_at";

/// Registers an endpoint; its secret is in the answer and nowhere else.
pub async fn create(
    db: &PgPool,
    policy: TargetPolicy,
    brand_id: Uuid,
    new: &NewEndpoint,
) -> Result<EndpointWithSecret, WebhookError> {
    let url = checked_url(policy, &new.url).await?;
    let events = checked_events(&new.events)?;
    let description = checked_description(new.description.as_deref())?;
    let secret = new_secret();
    let mut tx = db.begin().await?;
    // The brand's row is locked so that two requests cannot both add the twentieth endpoint.
    sqlx::query("select 1 from brands where id = $1 for update").bind(brand_id).execute(&mut *tx).await?;
    let count: i64 = sqlx::query_scalar("select count(*) from webhook_endpoints where brand_id = $1")
        .bind(brand_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_ENDPOINTS {
        return Err(WebhookError::TooMany);
    }
    let row: Endpoint = sqlx::query_as(&format!(
        "insert into webhook_endpoints (id, brand_id, url, description, events, secret)
         values ($1, $2, $3, $4, $5, $6) returning {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(brand_id)
    .bind(&url)
    .bind(&description)
    .bind(&events)
    .bind(&secret)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(EndpointWithSecret { endpoint: row, secret })
}

/// The brand's endpoints, newest first (at most [`MAX_ENDPOINTS`]).
pub async fn list<'e>(db: impl PgExecutor<'e>, brand_id: Uuid) -> Result<Vec<Endpoint>, WebhookError> {
    let rows: Vec<Endpoint> =
        sqlx::query_as(&format!("select {COLUMNS} from webhook_endpoints where brand_id = $1 order by seq desc"))
            .bind(brand_id)
            .fetch_all(db)
            .await?;
    Ok(rows)
}

/// One of the brand's endpoints.
pub async fn get<'e>(db: impl PgExecutor<'e>, brand_id: Uuid, id: Uuid) -> Result<Endpoint, WebhookError> {
    let row: Option<Endpoint> =
        sqlx::query_as(&format!("select {COLUMNS} from webhook_endpoints where brand_id = $1 and id = $2"))
            .bind(brand_id)
            .bind(id)
            .fetch_optional(db)
            .await?;
    row.ok_or(WebhookError::NotFound("webhook endpoint"))
}

/// Changes an endpoint. Enabling it clears why it was disabled, and its deliveries resume in order.
pub async fn update(
    db: &PgPool,
    policy: TargetPolicy,
    brand_id: Uuid,
    id: Uuid,
    patch: &EndpointPatch,
) -> Result<Endpoint, WebhookError> {
    let url = match &patch.url {
        Some(raw) => Some(checked_url(policy, raw).await?),
        None => None,
    };
    let events = patch.events.as_deref().map(checked_events).transpose()?;
    let description = match &patch.description {
        Some(text) => Some(checked_description(Some(text))?.unwrap_or_default()),
        None => None,
    };
    let row: Option<Endpoint> = sqlx::query_as(&format!(
        "update webhook_endpoints set
             url = coalesce($3, url),
             events = coalesce($4, events),
             description = case when $5::text is null then description else nullif($5, '') end,
             enabled = coalesce($6, enabled),
             disabled_reason = case when $6 is null then disabled_reason
                                    when $6 then null
                                    when enabled then 'manual' else disabled_reason end,
             disabled_at = case when $6 is null then disabled_at
                                when $6 then null
                                when enabled then now() else disabled_at end,
             failing_since = case when $6 and not enabled then null else failing_since end,
             updated_at = now()
         where brand_id = $1 and id = $2
         returning {COLUMNS}"
    ))
    .bind(brand_id)
    .bind(id)
    .bind(url)
    .bind(events)
    .bind(description)
    .bind(patch.enabled)
    .fetch_optional(db)
    .await?;
    row.ok_or(WebhookError::NotFound("webhook endpoint"))
}

/// Removes an endpoint and its deliveries.
pub async fn delete(db: &PgPool, brand_id: Uuid, id: Uuid) -> Result<(), WebhookError> {
    let gone = sqlx::query("delete from webhook_endpoints where brand_id = $1 and id = $2")
        .bind(brand_id)
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(WebhookError::NotFound("webhook endpoint"));
    }
    Ok(())
}

/// Gives an endpoint a new secret; the previous one keeps signing deliveries, next to the new one, for
/// [`ROTATION_OVERLAP`], so a receiver can switch without losing a delivery.
pub async fn rotate_secret(
    db: &PgPool,
    brand_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<EndpointWithSecret, WebhookError> {
    let secret = new_secret();
    let row: Option<Endpoint> = sqlx::query_as(&format!(
        "update webhook_endpoints set previous_secret = secret, previous_secret_until = $4, secret = $3,
             updated_at = now()
         where brand_id = $1 and id = $2
         returning {COLUMNS}"
    ))
    .bind(brand_id)
    .bind(id)
    .bind(&secret)
    .bind(now + ROTATION_OVERLAP)
    .fetch_optional(db)
    .await?;
    let endpoint = row.ok_or(WebhookError::NotFound("webhook endpoint"))?;
    Ok(EndpointWithSecret { endpoint, secret })
}

const DELIVERY_COLUMNS: &str = "d.seq, d.id, d.event_id, ev.type as event_type, d.status, d.attempts,
     d.last_status_code, d.last_error, d.last_attempt_at,
     case when d.status = 'pending' then d.next_attempt_at end as next_attempt_at, d.delivered_at, d.created_at";

/// A delivery with its sequence number (the list's cursor).
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    seq: i64,
    #[sqlx(flatten)]
    delivery: Delivery,
}

/// One page of an endpoint's deliveries, newest first, each with its sequence number (the cursor):
/// at most `limit` before `before_seq`.
pub async fn deliveries(
    db: &PgPool,
    brand_id: Uuid,
    endpoint_id: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Delivery)>, WebhookError> {
    get(db, brand_id, endpoint_id).await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
        "select {DELIVERY_COLUMNS}
         from webhook_deliveries d join webhook_events ev on ev.id = d.event_id
         where d.endpoint_id = $1 and ($2::bigint is null or d.seq < $2)
         order by d.seq desc limit $3"
    ))
    .bind(endpoint_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.delivery)).collect())
}

/// Tries a delivery again now (one more attempt; a failed one that fails again stays failed). A
/// delivered one is sent again, as a receiver that lost it may ask.
pub async fn retry(
    db: &PgPool,
    brand_id: Uuid,
    endpoint_id: Uuid,
    delivery_id: Uuid,
) -> Result<Delivery, WebhookError> {
    let row: Option<DeliveryRow> = sqlx::query_as(&format!(
        "with retried as (
             update webhook_deliveries d set status = 'pending', next_attempt_at = now(), leased_until = null
             from webhook_endpoints e
             where d.id = $3 and d.endpoint_id = $2 and e.id = d.endpoint_id and e.brand_id = $1
             returning d.*)
         select {DELIVERY_COLUMNS} from retried d join webhook_events ev on ev.id = d.event_id"
    ))
    .bind(brand_id)
    .bind(endpoint_id)
    .bind(delivery_id)
    .fetch_optional(db)
    .await?;
    row.map(|r| r.delivery).ok_or(WebhookError::NotFound("delivery"))
}

/// Sends the endpoint a `webhook.test` event (queued like any other, delivered to it alone).
pub async fn send_test(db: &PgPool, brand_id: Uuid, endpoint_id: Uuid) -> Result<Delivery, WebhookError> {
    let row: Option<DeliveryRow> = sqlx::query_as(&format!(
        "with e as (select id from webhook_endpoints where brand_id = $1 and id = $2),
         ev as (
             insert into webhook_events (brand_id, type, object)
             select $1, $3, jsonb_build_object('endpoint_id', e.id, 'message',
                                               'A test event sent from CreatorScore to check this endpoint.')
             from e returning *),
         d as (
             insert into webhook_deliveries (endpoint_id, event_id) select $2, ev.id from ev returning *)
         select {DELIVERY_COLUMNS} from d join ev on ev.id = d.event_id"
    ))
    .bind(brand_id)
    .bind(endpoint_id)
    .bind(TEST_EVENT)
    .fetch_optional(db)
    .await?;
    row.map(|r| r.delivery).ok_or(WebhookError::NotFound("webhook endpoint"))
}

/// How many of the brand's endpoints were disabled for failing (the dashboard says so on every list).
pub async fn failing_count(db: &PgPool, brand_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from webhook_endpoints where brand_id = $1 and disabled_reason = 'failing'")
        .bind(brand_id)
        .fetch_one(db)
        .await
}
