//! `/v1/webhooks`: the brand's outbound webhook endpoints and their deliveries. The rules are
//! [`crate::webhooks`]'s; this is their REST adapter.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use uuid::Uuid;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::webhooks::{self, Delivery, Endpoint, EndpointPatch, EndpointWithSecret, NewEndpoint, WebhookError};

impl From<WebhookError> for Error {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid { code, message } => Error::invalid_field(code, message),
            WebhookError::TooMany => Error::Conflict { code: "too_many_endpoints", message: e.to_string() },
            WebhookError::NotFound(what) => Error::NotFound(what),
            WebhookError::Database(db) => Error::Database(db),
        }
    }
}

/// `{"data": [...]}`: every endpoint of the brand (at most 20).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Endpoints {
    pub data: Vec<Endpoint>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", operation_id = "create_webhook_endpoint",
    request_body = NewEndpoint, security(("api_key" = [])),
    responses((status = 201, body = EndpointWithSecret, description = "registered; `secret` is shown only now"),
        (status = 400, body = ErrorBody, description = "`malformed_json`"),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`too_many_endpoints`: the brand has 20"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_url` (not https, or a loopback, private or \
            link-local target), `invalid_events`, `invalid_description`, `invalid_body`")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<NewEndpoint>,
) -> Result<(StatusCode, axum::Json<EndpointWithSecret>), Error> {
    let created = webhooks::create(&state.db, state.config.target_policy(), brand.id, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", operation_id = "list_webhook_endpoints",
    security(("api_key" = [])),
    responses((status = 200, body = Endpoints, description = "the brand's endpoints, newest first"),
        (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, brand: Brand) -> Result<axum::Json<Endpoints>, Error> {
    Ok(axum::Json(Endpoints { data: webhooks::list(&state.db, brand.id).await? }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook_endpoint",
    security(("api_key" = [])), params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 200, body = Endpoint), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not an endpoint of this brand")))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Endpoint>, Error> {
    Ok(axum::Json(webhooks::get(&state.db, brand.id, id).await?))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook_endpoint",
    request_body = EndpointPatch, security(("api_key" = [])), params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 200, body = Endpoint), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not an endpoint of this brand"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_url`, `invalid_events`, `invalid_description`, \
            `invalid_body`")))]
pub async fn update(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Json(patch): Json<EndpointPatch>,
) -> Result<axum::Json<Endpoint>, Error> {
    Ok(axum::Json(webhooks::update(&state.db, state.config.target_policy(), brand.id, id, &patch).await?))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook_endpoint",
    security(("api_key" = [])), params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 204, description = "removed, with its deliveries"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not an endpoint of this brand")))]
pub async fn delete(State(state): State<AppState>, brand: Brand, Path(id): Path<Uuid>) -> Result<StatusCode, Error> {
    webhooks::delete(&state.db, brand.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", operation_id = "rotate_webhook_secret",
    security(("api_key" = [])), params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 200, body = EndpointWithSecret, description = "the new secret, shown only now; for 24 hours \
            deliveries carry a signature with the old secret too"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not an endpoint of this brand")))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<EndpointWithSecret>, Error> {
    Ok(axum::Json(webhooks::rotate_secret(&state.db, brand.id, id, Utc::now()).await?))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "send_webhook_test",
    security(("api_key" = [])), params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 202, body = Delivery, description = "a `webhook.test` event is queued for this endpoint"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not an endpoint of this brand")))]
pub async fn send_test(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<Delivery>), Error> {
    Ok((StatusCode::ACCEPTED, axum::Json(webhooks::send_test(&state.db, brand.id, id).await?)))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    security(("api_key" = [])), params(("id" = Uuid, Path, description = "the endpoint"), Page),
    responses((status = 200, body = List<Delivery>, description = "the endpoint's deliveries, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not an endpoint of this brand")))]
pub async fn deliveries(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<Delivery>>, Error> {
    let page = page.parse()?;
    let rows = webhooks::deliveries(&state.db, brand.id, id, page.before_seq, page.limit + 1).await?;
    Ok(axum::Json(List::from_rows(rows, page)))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    operation_id = "retry_webhook_delivery", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "the endpoint"), ("delivery_id" = Uuid, Path, description = "the delivery")),
    responses((status = 202, body = Delivery, description = "queued for one more attempt now"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a delivery of an endpoint of this brand")))]
pub async fn retry(
    State(state): State<AppState>,
    brand: Brand,
    Path((id, delivery_id)): Path<(Uuid, Uuid)>,
) -> Result<(StatusCode, axum::Json<Delivery>), Error> {
    Ok((StatusCode::ACCEPTED, axum::Json(webhooks::retry(&state.db, brand.id, id, delivery_id).await?)))
}
