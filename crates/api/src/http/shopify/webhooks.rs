//! `POST /v1/webhooks/shopify`: orders and refunds from claimed shops.
//!
//! The headers are judged before a byte of the body is read: a missing or malformed shop or signature is
//! a bare 401, a delivery triggered too long ago a 400. Then the body is read and its signature checked
//! against the shop's claims ([`crate::shopify::shops`]) before anything is parsed or stored: a wrong
//! signature and an unclaimed shop are the same 401 after the same work, so the endpoint tells nobody
//! which shops are claimed. Shopify waits about five seconds and then redelivers for hours, so each
//! delivery is one short transaction, and a redelivery is recognised by its webhook id. At most
//! `SHOPIFY_WEBHOOK_CONCURRENCY` deliveries are handled at once; beyond that the answer is 503 at once,
//! and Shopify retries.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::ServiceBuilder;
use utoipa::ToSchema;

use super::super::error::{Error, ErrorBody};
use super::super::AppState;
use crate::shopify::{self, shops, Delivery, Outcome, ShopDomain};

/// Shopify orders can be large (hundreds of line items); this route accepts bodies up to this size.
pub const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

const SHOP_HEADER: &str = "x-shopify-shop-domain";
const HMAC_HEADER: &str = "x-shopify-hmac-sha256";
const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";
const TOPIC_HEADER: &str = "x-shopify-topic";
const TRIGGERED_AT_HEADER: &str = "x-shopify-triggered-at";

/// What became of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    /// `processed`, `duplicate` (this webhook id was processed before) or `ignored` (a topic we do not
    /// act on).
    pub status: &'static str,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

/// The webhook route: its handler, its body limit and its concurrency limit.
pub fn route(concurrency: usize) -> MethodRouter<AppState> {
    post(receive).layer::<_, Infallible>(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async { overloaded() }))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(Arc::new(Semaphore::new(concurrency)))),
    )
}

/// Every permit is taken: Shopify retries a 503 later.
fn overloaded() -> Response {
    let error = Error::Invalid {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "overloaded",
        message: "too many deliveries at once; retry shortly".into(),
    };
    ([(header::RETRY_AFTER, "1")], error).into_response()
}

/// Refuses a delivery Shopify triggered longer ago than the configured window. Shopify always sends the
/// header; a request without it is judged by its signature alone, since the header is not signed and so
/// requiring it would stop nobody.
fn check_age(headers: &HeaderMap, now: DateTime<Utc>, max_age: chrono::Duration) -> Result<(), Error> {
    let Some(raw) = header(headers, TRIGGERED_AT_HEADER) else {
        return Ok(());
    };
    let triggered_at = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| Error::bad_request("invalid_triggered_at", "X-Shopify-Triggered-At is not an RFC 3339 time"))?;
    if shopify::too_old(triggered_at.with_timezone(&Utc), now, max_age) {
        return Err(Error::bad_request(
            "stale_delivery",
            format!("this delivery was triggered more than {} hours ago", max_age.num_hours()),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/webhooks/shopify", tag = "shopify", operation_id = "shopify_webhook",
    params(
        ("X-Shopify-Hmac-Sha256" = String, Header, description = "base64 HMAC-SHA256 of the raw body with the shop's webhook secret"),
        ("X-Shopify-Shop-Domain" = String, Header, description = "the shop's myshopify.com domain"),
        ("X-Shopify-Webhook-Id" = String, Header, description = "the delivery's id; redeliveries repeat it"),
        ("X-Shopify-Topic" = String, Header, description = "`orders/create`, `orders/paid`, `orders/cancelled` and `refunds/create` are acted on"),
        ("X-Shopify-Triggered-At" = Option<String>, Header, description = "when Shopify triggered the delivery (RFC 3339; retries keep it); older than `SHOPIFY_MAX_DELIVERY_AGE_HOURS` is refused"),
    ),
    request_body(content = String, content_type = "application/json", description = "Shopify's order or refund payload"),
    responses((status = 200, body = Receipt),
        (status = 400, body = ErrorBody, description = "`stale_delivery` or `invalid_triggered_at` (judged before the body is read); \
            or verified, but `invalid_webhook_id`, `invalid_topic`, or `invalid_payload` (kept for replay)"),
        (status = 401, body = ErrorBody, description = "missing or wrong signature, or a shop no brand has proven or claimed"),
        (status = 413, body = ErrorBody, description = "a body over 2 MiB"),
        (status = 503, body = ErrorBody, description = "`overloaded`: too many deliveries at once (`Retry-After`)")))]
pub async fn receive(State(state): State<AppState>, request: Request) -> Result<axum::Json<Receipt>, Error> {
    let headers = request.headers();
    let shop = header(headers, SHOP_HEADER).and_then(|h| ShopDomain::parse(h).ok()).ok_or(Error::Unauthorized)?;
    let signature = header(headers, HMAC_HEADER).ok_or(Error::Unauthorized)?.to_owned();
    check_age(headers, Utc::now(), state.config.shopify_max_delivery_age)?;
    let webhook_id = header(headers, WEBHOOK_ID_HEADER).filter(|id| id.len() <= 255).map(str::to_owned);
    let topic = header(headers, TOPIC_HEADER).filter(|t| t.len() <= 255).map(str::to_owned);
    let claims = shops::claims(&state.db, &state.shopify_shops, &shop).await?;

    let body = Bytes::from_request(request, &state).await.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::bad_request("unreadable_body", rejection.body_text()),
    })?;
    // Once verified, a delivery is seen through even if Shopify hangs up (it gives up after about five
    // seconds): its redelivery is then a cheap duplicate, and no transaction is abandoned half-way.
    let (db, cache, rules) = (state.db.clone(), state.shopify_shops.clone(), shopify::Rules::of(&state.config));
    let outcome = tokio::spawn(async move {
        let brand_id =
            shops::authenticate(&db, &cache, &shop, &claims, &body, &signature).await?.ok_or(Error::Unauthorized)?;
        let webhook_id = webhook_id
            .ok_or_else(|| Error::bad_request("invalid_webhook_id", "X-Shopify-Webhook-Id is missing or too long"))?;
        let topic =
            topic.ok_or_else(|| Error::bad_request("invalid_topic", "X-Shopify-Topic is missing or too long"))?;
        let delivery = Delivery { shop: &shop, brand_id, webhook_id: &webhook_id, topic: &topic, body: &body };
        Ok::<_, Error>(shopify::receive(&db, &delivery, rules).await?)
    })
    .await
    .map_err(anyhow::Error::from)??;
    let status = match outcome {
        Outcome::Processed => "processed",
        Outcome::Duplicate => "duplicate",
        Outcome::Ignored => "ignored",
        Outcome::Rejected(reason) => return Err(Error::bad_request("invalid_payload", reason.0)),
    };
    Ok(axum::Json(Receipt { status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triggered(at: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TRIGGERED_AT_HEADER, at.parse().unwrap());
        headers
    }

    #[test]
    fn deliveries_older_than_the_window_are_refused_and_the_rest_accepted() {
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let hour = chrono::Duration::hours(1);
        assert!(check_age(&triggered("2026-12-01T11:00:00Z"), now, hour).is_ok(), "exactly the window");
        assert!(check_age(&triggered("2026-12-01T13:00:00.5+01:00"), now, hour).is_ok(), "another offset");
        assert!(check_age(&triggered("2026-12-02T12:00:00Z"), now, hour).is_ok(), "in the future");
        assert!(check_age(&HeaderMap::new(), now, hour).is_ok(), "no header");
        let stale = check_age(&triggered("2026-12-01T10:59:59Z"), now, hour).unwrap_err();
        assert!(matches!(stale, Error::Invalid { code: "stale_delivery", .. }), "{stale:?}");
        for bad in ["yesterday", "2026-12-01", "2026-12-01T11:00:00", "-262143-01-05T00:00:00Z"] {
            let error = check_age(&triggered(bad), now, hour).unwrap_err();
            assert!(matches!(error, Error::Invalid { code: "invalid_triggered_at", .. }), "{bad}: {error:?}");
        }
    }
}
