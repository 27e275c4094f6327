//! `POST /v1/links/bulk`: up to 100 links in one request, each created (or refused) on its own by
//! [`crate::links::bulk::create_many`].

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::super::auth::Brand;
use super::super::error::{Error, ErrorBody, ErrorDetail};
use super::super::json::{self, Json};
use super::super::AppState;
use crate::links::bulk::{self, MAX_BATCH};
use crate::links::{CreateLink, Link, LinkError};

/// The largest body this route accepts: 100 links of a few KiB each.
pub const MAX_BULK_BODY_BYTES: usize = 1024 * 1024;

/// The links to create, each a [`CreateLink`] body, read on its own: one malformed item is refused as
/// that item's error and does not stop the others.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"links": [
    {"destination_url": "https://shop.example/products/linen-shirt", "platform": "instagram", "promo_code": "JESS20"},
    {"destination_url": "https://shop.example/products/linen-shirt", "platform": "tiktok", "promo_code": "JESS20"},
    {"destination_url": "not a url"}
]}))]
pub struct BulkCreateLinks {
    /// 1–100 bodies of `POST /v1/links` (schema `CreateLink`). Any JSON value is taken here: an item that is
    /// not a valid body is that item's error in the answer (`invalid_body`, or the code a single creation
    /// gives), never the whole request's.
    #[schema(value_type = Vec<serde_json::Value>, min_items = 1, max_items = 100)]
    pub links: Vec<Value>,
}

/// What became of each item, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"data": [
    {"index": 0, "link": {"id": "8f14e45f-ceea-467f-a0e6-0f8a2b3c4d5e", "code": "k7m2p9qa",
        "short_url": "https://trk.creatorscore.io/k7m2p9qa", "destination_url": "https://shop.example/products/linen-shirt",
        "campaign_id": null, "creator_id": null, "platform": "instagram", "content_type": null, "promo_code": "JESS20",
        "share_revenue": false, "active": true, "created_at": "2026-11-20T15:58:02Z", "deleted_at": null,
        "domain": null, "utm_source": null, "utm_medium": null, "utm_campaign": null, "utm_term": null,
        "utm_content": null, "expires_at": null, "expired_url": null, "destination_status": null,
        "destination_http_status": null, "destination_checked_at": null}},
    {"index": 1, "error": {"code": "promo_code_taken",
        "message": "another active link of this brand already uses this promo code"}},
    {"index": 2, "error": {"code": "invalid_destination_url",
        "message": "destination_url must be an absolute http(s) URL"}}
]}))]
pub struct BulkCreated {
    pub data: Vec<BulkItem>,
}

/// One item's outcome: the link created, or why it was not (the code and message a single
/// `POST /v1/links` would have answered with).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BulkItem {
    Created {
        /// The item's position in `links`, from 0.
        index: usize,
        link: Box<Link>,
    },
    Failed {
        index: usize,
        error: ErrorDetail,
    },
}

#[utoipa::path(post, path = "/v1/links/bulk", tag = "links", operation_id = "create_links_bulk",
    request_body = BulkCreateLinks, security(("api_key" = [])),
    description = "Creates 1–100 links in one request. Each item is validated and created on its own, in order, as \
        `POST /v1/links` would: the answer lists every item's link or error, and only the valid ones are stored. A \
        promo code used twice in one batch goes to the first item; the later one fails with `promo_code_taken`.",
    responses((status = 200, body = BulkCreated, description = "every item's outcome, in the order sent"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "a body over 1 MiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_body`: not `{\"links\": [...]}`, or fewer than 1 or \
            more than 100 links")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<BulkCreateLinks>,
) -> Result<axum::Json<BulkCreated>, Error> {
    if body.links.is_empty() || body.links.len() > MAX_BATCH {
        return Err(Error::invalid_field("invalid_body", format!("links must hold 1 to {MAX_BATCH} links")));
    }
    // An unreadable item keeps its place in the batch, with its own error.
    let requests = body
        .links
        .iter()
        .map(|item| json::from_value::<CreateLink>(item).map_err(|e| LinkError::invalid("invalid_body", e.to_string())))
        .collect();
    let outcomes = bulk::create_many(&state.db, &state.config, &state.codes, brand.id, requests).await;
    let data = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Ok(link) => BulkItem::Created { index, link: Box::new(link) },
            Err(e) => BulkItem::Failed { index, error: Error::from(e).detail() },
        })
        .collect();
    Ok(axum::Json(BulkCreated { data }))
}
