//! `/v1/integrations/shopify`: a brand claims its Shopify stores, so their webhooks
//! (`POST /v1/webhooks/shopify`, in [`webhooks`]) can be verified and credited to it. Who owns a shop is
//! decided by the deliveries its secret verifies ([`crate::shopify::shops`]).
//!
//! The webhook secret is write-only: stored as given (verifying an HMAC needs the key itself) and
//! never returned by any endpoint.

pub mod webhooks;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::schema::{ShopDomain as ShopDomainText, WebhookSecret as WebhookSecretText};
use crate::shopify::shops::{self, Shop};
use crate::shopify::{ShopDomain, WebhookSecret};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"shop_domain": "northwind-linen.myshopify.com",
    "webhook_secret": "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"}))]
pub struct ConnectShop {
    /// The shop's `*.myshopify.com` domain (what Shopify sends in `X-Shopify-Shop-Domain`), any case.
    #[schema(value_type = ShopDomainText)]
    pub shop_domain: String,
    /// The secret Shopify signs this shop's webhooks with. 1–256 characters; never returned.
    #[schema(value_type = WebhookSecretText)]
    pub webhook_secret: String,
}

#[utoipa::path(put, path = "/v1/integrations/shopify", tag = "shopify", operation_id = "connect_shop",
    request_body = ConnectShop, security(("api_key" = [])),
    description = "Claims the shop for this brand, or replaces its secret. The claim is `pending` until a \
        delivery signed with its secret verifies; the claim that verifies owns the shop. The answer depends \
        only on this brand's claim, never on what other brands hold.",
    responses((status = 200, body = Shop, description = "claimed, or its secret replaced"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_shop_domain`, `invalid_webhook_secret`, or \
            `invalid_body` (a missing, mistyped or unknown field)")))]
pub async fn connect(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<ConnectShop>,
) -> Result<axum::Json<Shop>, Error> {
    let shop =
        ShopDomain::parse(&body.shop_domain).map_err(|e| Error::invalid_field("invalid_shop_domain", e.to_string()))?;
    let secret = WebhookSecret::parse(&body.webhook_secret)
        .map_err(|e| Error::invalid_field("invalid_webhook_secret", e.to_string()))?;
    Ok(axum::Json(shops::connect(&state.db, &state.shopify_shops, brand.id, &shop, &secret).await?))
}

#[utoipa::path(get, path = "/v1/integrations/shopify", tag = "shopify", operation_id = "list_shops", params(Page),
    security(("api_key" = [])),
    responses((status = 200, body = List<Shop>, description = "the brand's shops, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<Shop>>, Error> {
    let page = page.parse()?;
    let rows = shops::list(&state.db, brand.id, page.before_seq, page.limit + 1).await?;
    Ok(axum::Json(List::from_rows(rows, page)))
}

#[utoipa::path(delete, path = "/v1/integrations/shopify/{shop_domain}", tag = "shopify", operation_id = "disconnect_shop",
    security(("api_key" = [])),
    params(("shop_domain" = ShopDomainText, Path, description = "the shop's domain, any case (any other string \
        names no shop: 404)")),
    responses((status = 204, description = "disconnected: its webhooks are no longer credited to this brand"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a shop of this brand")))]
pub async fn disconnect(
    State(state): State<AppState>,
    brand: Brand,
    Path(shop_domain): Path<String>,
) -> Result<StatusCode, Error> {
    let shop = ShopDomain::parse(&shop_domain).map_err(|_| Error::NotFound("shop"))?;
    if !shops::disconnect(&state.db, &state.shopify_shops, brand.id, &shop).await? {
        return Err(Error::NotFound("shop"));
    }
    Ok(StatusCode::NO_CONTENT)
}
