//! `/v1/campaigns`: groups of links a brand runs together.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, PageRequest, Path, Query};
use super::json::Json;
use super::AppState;
use crate::domain::Name;
use crate::schema::DisplayName;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Spring drop"}))]
pub struct CreateCampaign {
    /// 1–200 characters once trimmed.
    #[schema(value_type = DisplayName)]
    pub name: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SeqCampaign {
    seq: i64,
    #[sqlx(flatten)]
    campaign: Campaign,
}

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
    Ok((StatusCode::CREATED, axum::Json(create_campaign(&state.db, brand.id, &body).await?)))
}

/// Validates and stores a campaign of the brand.
pub async fn create_campaign(db: &PgPool, brand_id: Uuid, body: &CreateCampaign) -> Result<Campaign, Error> {
    let name = Name::parse(&body.name, 200).map_err(|e| Error::invalid_field("invalid_name", format!("name {e}")))?;
    let campaign = sqlx::query_as::<_, Campaign>(
        "insert into campaigns (id, brand_id, name) values ($1, $2, $3) returning id, name, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(brand_id)
    .bind(name.into_inner())
    .fetch_one(db)
    .await?;
    Ok(campaign)
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
    Ok(axum::Json(list_campaigns(&state.db, brand.id, page.parse()?).await?))
}

/// One page of the brand's campaigns, newest first.
pub async fn list_campaigns(db: &PgPool, brand_id: Uuid, page: PageRequest) -> Result<List<Campaign>, Error> {
    let rows = sqlx::query_as::<_, SeqCampaign>(
        "select seq, id, name, created_at from campaigns
         where brand_id = $1 and ($2::bigint is null or seq < $2)
         order by seq desc limit $3",
    )
    .bind(brand_id)
    .bind(page.before_seq)
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    let rows = rows.into_iter().map(|r| (r.seq, r.campaign)).collect();
    Ok(List::from_rows(rows, page))
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
    sqlx::query_as::<_, Campaign>("select id, name, created_at from campaigns where id = $1 and brand_id = $2")
        .bind(id)
        .bind(brand.id)
        .fetch_optional(&state.db)
        .await?
        .map(axum::Json)
        .ok_or(Error::NotFound("campaign"))
}
