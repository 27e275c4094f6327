//! `POST /v1/webhooks/shopify`: orders and refunds from connected shops.
//!
//! Nothing is parsed or stored before the signature is verified against the raw body: an unsigned,
//! wrongly signed or unknown-shop request is a bare 401 (the same for all three, so the endpoint tells
//! nobody which shops are connected). Shopify waits about five seconds and then redelivers for hours,
//! so each delivery is one short transaction, and a redelivery is recognised by its webhook id.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::super::error::{Error, ErrorBody};
use super::super::AppState;
use crate::shopify::{self, Delivery, Outcome, ShopDomain};

/// Shopify orders can be large (hundreds of line items); this route accepts bodies up to this size.
pub const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

const SHOP_HEADER: &str = "x-shopify-shop-domain";
const HMAC_HEADER: &str = "x-shopify-hmac-sha256";
const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";
const TOPIC_HEADER: &str = "x-shopify-topic";

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

#[utoipa::path(post, path = "/v1/webhooks/shopify", tag = "shopify",
    params(
        ("X-Shopify-Hmac-Sha256" = String, Header, description = "base64 HMAC-SHA256 of the raw body with the shop's webhook secret"),
        ("X-Shopify-Shop-Domain" = String, Header, description = "the shop's myshopify.com domain"),
        ("X-Shopify-Webhook-Id" = String, Header, description = "the delivery's id; redeliveries repeat it"),
        ("X-Shopify-Topic" = String, Header, description = "`orders/create`, `orders/paid` and `refunds/create` are acted on"),
    ),
    request_body(content = String, content_type = "application/json", description = "Shopify's order or refund payload"),
    responses((status = 200, body = Receipt),
        (status = 400, body = ErrorBody, description = "verified, but the payload cannot be used (kept for replay)"),
        (status = 401, body = ErrorBody, description = "missing or wrong signature, or a shop that is not connected"),
        (status = 413, body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Receipt>, Error> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::bad_request("unreadable_body", rejection.body_text()),
    })?;
    let shop = header(&headers, SHOP_HEADER).and_then(|h| ShopDomain::parse(h).ok()).ok_or(Error::Unauthorized)?;
    let signature = header(&headers, HMAC_HEADER).ok_or(Error::Unauthorized)?;
    let Some(connection) = shopify::connection(&state.db, &state.shopify_shops, &shop).await? else {
        // The same work as for a connected shop, so timing does not tell connected shops apart either.
        std::hint::black_box(shopify::verify_signature(b"not a connected shop", &body, signature));
        return Err(Error::Unauthorized);
    };
    if !shopify::verify_signature(connection.secret.as_bytes(), &body, signature) {
        return Err(Error::Unauthorized);
    }

    let webhook_id = header(&headers, WEBHOOK_ID_HEADER)
        .filter(|id| id.len() <= 255)
        .ok_or_else(|| Error::bad_request("invalid_webhook_id", "X-Shopify-Webhook-Id is missing or too long"))?;
    let topic = header(&headers, TOPIC_HEADER)
        .filter(|t| t.len() <= 255)
        .ok_or_else(|| Error::bad_request("invalid_topic", "X-Shopify-Topic is missing or too long"))?;
    // Once verified, a delivery is seen through even if Shopify hangs up (it gives up after about five
    // seconds): its redelivery is then a cheap duplicate, and no transaction is abandoned half-way.
    let (db, brand_id, webhook_id, topic) =
        (state.db.clone(), connection.brand_id, webhook_id.to_owned(), topic.to_owned());
    let rules = shopify::Rules::of(&state.config);
    let outcome = tokio::spawn(async move {
        let delivery = Delivery { shop: &shop, brand_id, webhook_id: &webhook_id, topic: &topic, body: &body };
        shopify::receive(&db, &delivery, rules).await
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
