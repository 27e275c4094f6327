//! `/v1/campaigns`: groups of links a brand runs together.

use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::campaigns::{self, Campaign, CreateCampaign};

#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", operation_id = "create_campaign",
    request_body = CreateCampaign, security(("api_key" = [])),
    responses((status = 201, body = Campaign),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_name`, or `invalid_body` (a missing, mistyped \
            or unknown field)")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<CreateCampaign>,
) -> Result<(StatusCode, axum::Json<Campaign>), Error> {
    Ok((StatusCode::CREATED, axum::Json(campaigns::create(&state.db, brand.id, &body).await?)))
}

#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", operation_id = "list_campaigns", params(Page),
    security(("api_key" = [])),
    responses((status = 200, body = List<Campaign>, description = "the brand's campaigns, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<Campaign>>, Error> {
    let page = page.parse()?;
    let rows = campaigns::list(state.read(), brand.id, page.before_seq, page.limit + 1).await?;
    Ok(axum::Json(List::from_rows(rows, page)))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", operation_id = "get_campaign",
    params(("id" = Uuid, Path, description = "the campaign")), security(("api_key" = [])),
    responses((status = 200, body = Campaign), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a campaign of this brand")))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Campaign>, Error> {
    campaigns::get(&state.db, brand.id, id).await?.map(axum::Json).ok_or(Error::NotFound("campaign"))
}
