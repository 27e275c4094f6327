//! `/v1/creators`: the people whose links a brand tracks.

use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::creators::{self, CreateCreator, Creator};

#[utoipa::path(post, path = "/v1/creators", tag = "creators", operation_id = "create_creator",
    request_body = CreateCreator, security(("api_key" = [])),
    responses((status = 201, body = Creator),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_name`, `invalid_handle`, or `invalid_body` (a \
            missing, mistyped or unknown field)")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<CreateCreator>,
) -> Result<(StatusCode, axum::Json<Creator>), Error> {
    Ok((StatusCode::CREATED, axum::Json(creators::create(&state.db, brand.id, &body).await?)))
}

#[utoipa::path(get, path = "/v1/creators", tag = "creators", operation_id = "list_creators", params(Page),
    security(("api_key" = [])),
    responses((status = 200, body = List<Creator>, description = "the brand's creators, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<Creator>>, Error> {
    let page = page.parse()?;
    let rows = creators::list(&state.db, brand.id, page.before_seq, page.limit + 1).await?;
    Ok(axum::Json(List::from_rows(rows, page)))
}

#[utoipa::path(get, path = "/v1/creators/{id}", tag = "creators", operation_id = "get_creator",
    params(("id" = Uuid, Path, description = "the creator")), security(("api_key" = [])),
    responses((status = 200, body = Creator), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a creator of this brand")))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Creator>, Error> {
    creators::get(&state.db, brand.id, id).await?.map(axum::Json).ok_or(Error::NotFound("creator"))
}
