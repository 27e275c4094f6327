//! `/v1/integrations/shopify`: a brand connects its Shopify stores, so their webhooks
//! (`POST /v1/webhooks/shopify`, in [`webhooks`]) can be verified and credited to it.
//!
//! The webhook secret is write-only: stored as given (verifying an HMAC needs the key itself) and
//! never returned by any endpoint.

pub mod webhooks;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{Json, List, Page, Path, Query};
use super::AppState;
use crate::shopify::{ShopDomain, WebhookSecret};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectShop {
    /// The shop's `*.myshopify.com` domain (what Shopify sends in `X-Shopify-Shop-Domain`), any case.
    pub shop_domain: String,
    /// The secret Shopify signs this shop's webhooks with. 1–256 characters; never returned.
    pub webhook_secret: String,
}

/// A connected shop. Its secret is never shown.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Shop {
    /// Lowercase host name.
    pub shop_domain: String,
    pub connected_at: DateTime<Utc>,
}

#[utoipa::path(put, path = "/v1/integrations/shopify", tag = "shopify", request_body = ConnectShop,
    security(("api_key" = [])),
    responses((status = 200, body = Shop, description = "connected, or its secret replaced"),
        (status = 409, body = ErrorBody, description = "`shop_taken`: the shop is connected to another brand"),
        (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<ConnectShop>,
) -> Result<axum::Json<Shop>, Error> {
    let shop =
        ShopDomain::parse(&body.shop_domain).map_err(|e| Error::invalid_field("invalid_shop_domain", e.to_string()))?;
    let secret = WebhookSecret::parse(&body.webhook_secret)
        .map_err(|e| Error::invalid_field("invalid_webhook_secret", e.to_string()))?;
    // One statement: connects the shop, or replaces the secret when the brand already has it, and
    // returns nothing when another brand has it (no race between a check and the write).
    let connected: Option<Shop> = sqlx::query_as(
        "insert into shopify_shops (shop_domain, brand_id, webhook_secret) values ($1, $2, $3)
         on conflict (shop_domain) do update set webhook_secret = excluded.webhook_secret, updated_at = now()
             where shopify_shops.brand_id = excluded.brand_id
         returning shop_domain, connected_at",
    )
    .bind(shop.as_str())
    .bind(brand.id)
    .bind(secret.expose())
    .fetch_optional(&state.db)
    .await?;
    state.shopify_shops.invalidate(&shop);
    connected
        .map(axum::Json)
        .ok_or_else(|| Error::Conflict { code: "shop_taken", message: format!("{shop} is connected to another brand") })
}

#[derive(sqlx::FromRow)]
struct SeqShop {
    seq: i64,
    #[sqlx(flatten)]
    shop: Shop,
}

#[utoipa::path(get, path = "/v1/integrations/shopify", tag = "shopify", params(Page), security(("api_key" = [])),
    responses((status = 200, body = List<Shop>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<Shop>>, Error> {
    let page = page.parse()?;
    let rows: Vec<SeqShop> = sqlx::query_as(
        "select seq, shop_domain, connected_at from shopify_shops
         where brand_id = $1 and ($2::bigint is null or seq < $2)
         order by seq desc limit $3",
    )
    .bind(brand.id)
    .bind(page.before_seq)
    .bind(page.limit + 1)
    .fetch_all(&state.db)
    .await?;
    let rows = rows.into_iter().map(|r| (r.seq, r.shop)).collect();
    Ok(axum::Json(List::from_rows(rows, page)))
}

#[utoipa::path(delete, path = "/v1/integrations/shopify/{shop_domain}", tag = "shopify", security(("api_key" = [])),
    responses((status = 204, description = "disconnected: its webhooks are refused from now on"),
        (status = 404, body = ErrorBody, description = "not a shop of this brand")))]
pub async fn disconnect(
    State(state): State<AppState>,
    brand: Brand,
    Path(shop_domain): Path<String>,
) -> Result<StatusCode, Error> {
    let shop = ShopDomain::parse(&shop_domain).map_err(|_| Error::NotFound("shop"))?;
    let deleted = sqlx::query("delete from shopify_shops where shop_domain = $1 and brand_id = $2")
        .bind(shop.as_str())
        .bind(brand.id)
        .execute(&state.db)
        .await?
        .rows_affected();
    state.shopify_shops.invalidate(&shop);
    if deleted == 0 {
        return Err(Error::NotFound("shop"));
    }
    Ok(StatusCode::NO_CONTENT)
}
