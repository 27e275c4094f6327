//! The storefront pixel: `GET /pixel.js` and `POST /v1/pixel/events`.
//!
//! The events endpoint is public (identified by the brand's pixel id, CORS open) and so hostile input
//! by default: every field is validated, the page URL loses its query string (it can carry personal
//! data), and requests are rate limited per pixel and per client. The client's address is only a
//! rate-limit key in memory; it is never stored.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::ClickId;

use super::error::{Error, ErrorBody};
use super::AppState;
use crate::attribution::{self, Judged, OrderReport, Source};
use crate::money::{MaxOrderValue, Money};

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

/// Per-pixel and per-client limits, in memory (one process's share of the traffic).
pub struct PixelLimits {
    per_pixel: DefaultKeyedRateLimiter<String>,
    per_client: DefaultKeyedRateLimiter<(String, IpAddr)>,
}

impl PixelLimits {
    pub fn new(per_pixel: NonZeroU32, per_client: NonZeroU32) -> Self {
        let quota =
            |n: NonZeroU32| Quota::per_second(n).allow_burst(n.saturating_mul(NonZeroU32::MIN.saturating_add(1)));
        PixelLimits {
            per_pixel: RateLimiter::dashmap(quota(per_pixel)),
            per_client: RateLimiter::dashmap(quota(per_client)),
        }
    }

    fn check(&self, pixel_id: &str, client: IpAddr) -> Result<(), Error> {
        // Keys of clients that went quiet are dropped now and then, so memory stays bounded.
        if self.per_client.len() > 100_000 {
            self.per_client.retain_recent();
            self.per_pixel.retain_recent();
        }
        let client_ok = self.per_client.check_key(&(pixel_id.to_owned(), client)).is_ok();
        if client_ok && self.per_pixel.check_key(&pixel_id.to_owned()).is_ok() {
            Ok(())
        } else {
            Err(Error::RateLimited)
        }
    }
}

/// The address a request came from: the first `X-Forwarded-For` hop when the API sits behind a proxy
/// it trusts (`TRUST_FORWARDED_FOR=true`), else the TCP peer.
pub struct Client(pub IpAddr);

impl FromRequestParts<AppState> for Client {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| parts.headers.get("x-forwarded-for")?.to_str().ok()?.split(',').next()?.trim().parse().ok())
            .flatten();
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Client(forwarded.or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0]))))
    }
}

/// Event names the pixel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    PageView,
    AddToCart,
    BeginCheckout,
    Purchase,
}

impl EventName {
    fn as_str(self) -> &'static str {
        match self {
            EventName::PageView => "page_view",
            EventName::AddToCart => "add_to_cart",
            EventName::BeginCheckout => "begin_checkout",
            EventName::Purchase => "purchase",
        }
    }
}

/// `POST /v1/pixel/events`. The body is JSON whatever the `Content-Type` (the pixel sends `text/plain`,
/// which keeps the request free of a CORS preflight).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PixelEvent {
    pub pixel_id: String,
    pub event: EventName,
    /// The click id from the landing URL or the `_cs_ref` cookie.
    pub cs_ref: Option<String>,
    /// Required for purchases; a string (or an integer), at most 128 characters.
    #[schema(value_type = Option<String>)]
    pub order_id: Option<Value>,
    /// Decimal amount as a string ("129.99"); required for purchases.
    #[schema(value_type = Option<String>)]
    pub value: Option<Value>,
    /// ISO 4217 code; required with `value`.
    pub currency: Option<String>,
    /// The page; stored without query string or fragment.
    pub url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: Uuid,
}

/// A validated event.
struct Valid {
    event: EventName,
    cs_ref: Option<Uuid>,
    order_id: Option<String>,
    amount: Option<Money>,
    url: Option<String>,
}

fn scalar_text(value: &Value, field: &str) -> Result<String, Error> {
    match value {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::invalid_field("invalid_field", format!("{field} must be a string"))),
    }
}

fn validate(body: PixelEvent, max: MaxOrderValue) -> Result<Valid, Error> {
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

#[utoipa::path(post, path = "/v1/pixel/events", tag = "pixel", request_body = PixelEvent,
    responses((status = 202, body = Accepted), (status = 404, body = ErrorBody, description = "unknown pixel"),
        (status = 422, body = ErrorBody, description = "an invalid field, or `amount_too_large` (a purchase above the \
            maximum order value)"), (status = 429, body = ErrorBody)))]
pub async fn event(
    State(state): State<AppState>,
    Client(client): Client,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Accepted>), Error> {
    let body: PixelEvent = serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Error::invalid_field("invalid_body", e.to_string()),
        _ => Error::bad_request("malformed_json", e.to_string()),
    })?;
    state.pixel_limits.check(&body.pixel_id, client)?;
    let brand_id = brand_of_pixel(&state, &body.pixel_id).await?;
    let event = validate(body, state.config.max_order_value)?;

    let id = Uuid::new_v4();
    let now = Utc::now();
    let insert = sqlx::query(
        "insert into pixel_events (id, brand_id, event, cs_ref_id, order_id, value_minor, currency, url, received_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(brand_id)
    .bind(event.event.as_str())
    .bind(event.cs_ref)
    .bind(&event.order_id)
    .bind(event.amount.as_ref().map(|m| m.amount_minor))
    .bind(event.amount.as_ref().map(|m| m.currency.as_str()))
    .bind(&event.url)
    .bind(now);
    match (event.event, event.order_id.clone(), event.amount.clone()) {
        // A purchase is stored with its order's attribution, all or nothing.
        (EventName::Purchase, Some(order_id), Some(amount)) => {
            let mut tx = state.db.begin().await?;
            insert.execute(&mut *tx).await?;
            let report = OrderReport {
                brand_id,
                order_id,
                amount,
                occurred_at: now,
                source: Source::Pixel,
                refs: event.cs_ref.into_iter().collect(),
                discount_codes: Vec::new(),
                cancelled_at: None,
                test: false,
            };
            let judged = Judged { now, confirmation_window: state.config.confirmation_window };
            attribution::record_order(&mut tx, &report, judged).await?;
            tx.commit().await?;
        }
        // Anything else is one row: one statement, its own implicit transaction, one round trip.
        _ => {
            insert.execute(&state.db).await?;
        }
    }
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted { id })))
}

/// The brand a pixel id belongs to; pixel ids never change, so answers are cached.
async fn brand_of_pixel(state: &AppState, pixel_id: &str) -> Result<Uuid, Error> {
    if let Some(brand) = state.pixel_brands.get(pixel_id) {
        return Ok(brand);
    }
    let brand: Option<Uuid> = sqlx::query_scalar("select id from brands where pixel_id = $1")
        .bind(pixel_id)
        .fetch_optional(&state.db)
        .await?;
    let brand = brand.ok_or(Error::NotFound("pixel"))?;
    state.pixel_brands.insert(pixel_id.to_owned(), brand);
    Ok(brand)
}

/// The shared state the pixel needs.
pub type PixelBrands = Arc<moka::sync::Cache<String, Uuid>>;
