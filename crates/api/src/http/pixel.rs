//! The storefront pixel: `GET /pixel.js` and `POST /v1/pixel/events`.
//!
//! The events endpoint is public (identified by the brand's pixel id, CORS open) and so hostile input
//! by default: the pixel id's shape is checked before anything else and ids are resolved through a
//! cache that remembers unknown ones too ([`crate::pixels`]); every field is validated; the page URL
//! loses its query string (it can carry personal data); requests are rate limited per brand and per
//! client of the brand, in bounded memory ([`crate::limits`]). The client's address is only a
//! rate-limit key in memory; it is never stored.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use governor::Quota;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::ClickId;

use super::error::{Error, ErrorBody};
use super::extract::Client;
use super::AppState;
use crate::attribution::Judged;
use crate::client::ClientKey;
use crate::limits::{Backend, KeyedLimiter};
use crate::money::{MaxOrderValue, Money};
use crate::pixels::{EventName, PixelId, Valid};

static PIXEL_JS: &str = include_str!("../../static/pixel.js");

/// `GET /pixel.js`: cached for a day by browsers and CDNs, revalidated by ETag.
pub async fn script(headers: HeaderMap) -> Response {
    static ETAG_VALUE: OnceLock<String> = OnceLock::new();
    let etag = ETAG_VALUE.get_or_init(|| format!("\"{}\"", &hex(&Sha256::digest(PIXEL_JS.as_bytes()))[..16]));
    let cache = [
        (CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400, stale-while-revalidate=604800")),
        (ETAG, HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"pixel\""))),
    ];
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=utf-8")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (StatusCode::OK, cache, headers, PIXEL_JS).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Most brands and most (brand, client) pairs remembered by the pixel's limits at once.
const MAX_LIMITED_KEYS: u64 = 100_000;

/// Pixel limits, shared by every process through Redis when `REDIS_URL` is set (else in memory, one
/// process's share of the traffic): per brand (`PIXEL_RATE_PER_PIXEL`), per
/// client of a brand (`PIXEL_RATE_PER_CLIENT`), and per client for ids that are not in the cache yet,
/// each of which costs a query (`PIXEL_RATE_PER_CLIENT` too: a store's visitors all name the same id, so
/// legitimate traffic almost never gets there).
pub struct PixelLimits {
    per_brand: KeyedLimiter<Uuid>,
    per_client: KeyedLimiter<(Uuid, ClientKey)>,
    lookups: KeyedLimiter<ClientKey>,
}

impl PixelLimits {
    pub fn new(per_brand: NonZeroU32, per_client: NonZeroU32, backend: &Backend) -> Self {
        let quota =
            |n: NonZeroU32| Quota::per_second(n).allow_burst(n.saturating_mul(NonZeroU32::MIN.saturating_add(1)));
        PixelLimits {
            per_brand: KeyedLimiter::new("pixel:brand", quota(per_brand), MAX_LIMITED_KEYS, backend),
            per_client: KeyedLimiter::new("pixel:client", quota(per_client), MAX_LIMITED_KEYS, backend),
            lookups: KeyedLimiter::new("pixel:lookup", quota(per_client), MAX_LIMITED_KEYS, backend),
        }
    }

    async fn check(&self, brand: Uuid, client: ClientKey) -> Result<(), Error> {
        // An event refused for its client does not count against its brand.
        self.per_client.check(&(brand, client)).await.map_err(|retry_after| Error::RateLimited { retry_after })?;
        self.per_brand.check(&brand).await.map_err(|retry_after| Error::RateLimited { retry_after })
    }

    async fn check_lookup(&self, client: ClientKey) -> Result<(), Error> {
        self.lookups.check(&client).await.map_err(|retry_after| Error::RateLimited { retry_after })
    }

    /// How many keys the limits remember in all (bounded, whatever clients send).
    pub fn key_count(&self) -> u64 {
        self.per_brand.key_count() + self.per_client.key_count() + self.lookups.key_count()
    }
}

/// `POST /v1/pixel/events`. The body is JSON whatever the `Content-Type` (the pixel sends `text/plain`,
/// which keeps the request free of a CORS preflight).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pixel_id": "px_2vnnh22f4y6dgu83", "event": "purchase",
    "cs_ref": "5f0c6a3e9b2d4c1fa7e8d9c0b1a2f3e4", "order_id": "1042", "value": "129.99", "currency": "USD",
    "url": "https://shop.example/checkout/thank-you"}))]
pub struct PixelEvent {
    #[schema(value_type = crate::schema::PixelId)]
    pub pixel_id: String,
    pub event: EventName,
    /// The click id from the landing URL or the `_cs_ref` cookie.
    #[schema(value_type = Option<crate::schema::ClickRef>)]
    pub cs_ref: Option<String>,
    /// Required for purchases; a string (or a number), at most 128 characters.
    #[schema(value_type = Option<crate::schema::PixelOrderId>)]
    pub order_id: Option<Value>,
    /// Decimal amount as a string ("129.99"); required for purchases.
    #[schema(value_type = Option<String>)]
    pub value: Option<Value>,
    /// ISO 4217 code; required with `value`.
    pub currency: Option<String>,
    /// The page; stored without query string or fragment.
    #[schema(value_type = Option<crate::schema::PageUrl>)]
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: Uuid,
}

fn scalar_text(value: &Value, field: &str) -> Result<String, Error> {
    match value {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::invalid_field("invalid_field", format!("{field} must be a string"))),
    }
}

/// Every field of an event checked, as the handler checks it once the pixel id is known (public for the
/// fuzz target, which runs exactly this).
pub fn validate(body: PixelEvent, max: MaxOrderValue) -> Result<Valid, Error> {
    let cs_ref = body
        .cs_ref
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| ClickId::parse(r.trim()).map(|c| c.as_uuid()))
        .transpose()
        .map_err(|_| Error::invalid_field("invalid_cs_ref", "cs_ref is not a click id"))?;
    let order_id = body.order_id.as_ref().map(|o| scalar_text(o, "order_id")).transpose()?;
    if let Some(id) = &order_id {
        if id.is_empty() || id.chars().count() > 128 || id.chars().any(char::is_control) {
            return Err(Error::invalid_field("invalid_order_id", "order_id must be 1 to 128 characters"));
        }
    }
    let amount = match (&body.value, &body.currency) {
        (Some(value), Some(currency)) => Some(
            Money::parse(&scalar_text(value, "value")?, currency)
                .map_err(|e| Error::invalid_field("invalid_amount", e.to_string()))?,
        ),
        (None, None) => None,
        _ => return Err(Error::invalid_field("invalid_amount", "value and currency go together")),
    };
    if let Some(amount) = amount.as_ref().filter(|a| !max.allows(a)) {
        return Err(Error::invalid_field(
            "amount_too_large",
            format!("value is above the maximum order value ({} {})", max.0, amount.currency),
        ));
    }
    if body.event == EventName::Purchase && (order_id.is_none() || amount.is_none()) {
        return Err(Error::invalid_field("invalid_purchase", "a purchase needs order_id, value and currency"));
    }
    let url = body.url.as_deref().map(page_url).transpose()?;
    Ok(Valid { event: body.event, cs_ref, order_id, amount, url })
}

/// The page's origin and path: query strings and fragments can carry e-mail addresses and tokens.
fn page_url(raw: &str) -> Result<String, Error> {
    let invalid =
        || Error::invalid_field("invalid_url", "url must be an absolute http(s) URL of at most 2048 characters");
    let mut url = Url::parse(raw).map_err(|_| invalid())?;
    if raw.len() > 2048 || !matches!(url.scheme(), "http" | "https") {
        return Err(invalid());
    }
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(url.into())
}

#[utoipa::path(post, path = "/v1/pixel/events", tag = "pixel", operation_id = "pixel_event", request_body = PixelEvent,
    responses((status = 202, body = Accepted),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON (or not UTF-8)"),
        (status = 404, body = ErrorBody, description = "`not_found`: an unknown pixel id, or one not shaped like a \
            pixel id (`px_` and 16 lowercase code characters), answered before any limit or lookup"),
        (status = 422, body = ErrorBody, description = "an invalid field, or `amount_too_large` (a purchase above the \
            maximum order value)"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: a body over 64 KiB"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: over the brand's or this client's rate, or \
            this client named too many pixel ids the API had not seen recently",
            headers(("Retry-After" = u64, description = "whole seconds until a request would pass (at least 1)")))))]
pub async fn event(
    State(state): State<AppState>,
    Client(client): Client,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, axum::Json<Accepted>), Error> {
    // Over the body limit is the only way reading it fails before the handler runs.
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        status => Error::Invalid { status, code: "invalid_body", message: e.body_text() },
    })?;
    let body: PixelEvent = super::json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Error::invalid_field("invalid_body", e.to_string()),
        _ => Error::bad_request("malformed_json", e.to_string()),
    })?;
    // Before any limit or lookup: an id of the wrong shape names no brand.
    let pixel_id = PixelId::parse(&body.pixel_id).ok_or(Error::NotFound("pixel"))?;
    let brand_id = brand_of_pixel(&state, &pixel_id, client).await?;
    state.pixel_limits.check(brand_id, client).await?;
    let event = validate(body, state.config.max_order_value)?;

    let judged = Judged { now: Utc::now(), confirmation_window: state.config.confirmation_window };
    let id = crate::pixels::record(&state.db, brand_id, &event, judged).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted { id })))
}

/// The brand a pixel id belongs to: remembered answers cost nothing; an id not remembered costs a query,
/// and counts against the client's lookups.
async fn brand_of_pixel(state: &AppState, pixel_id: &PixelId, client: ClientKey) -> Result<Uuid, Error> {
    let brand = match state.pixel_brands.cached(pixel_id) {
        Some(brand) => brand,
        None => {
            state.pixel_limits.check_lookup(client).await?;
            state.pixel_brands.brand_of(&state.db, pixel_id).await?
        }
    };
    brand.ok_or(Error::NotFound("pixel"))
}
