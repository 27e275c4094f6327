//! `/v1/creators`: the people whose links a brand tracks.

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
use crate::schema::{DisplayName, Handle};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Jessica Alvarez", "handle": "@jessica"}))]
pub struct CreateCreator {
    /// 1–200 characters once trimmed.
    #[schema(value_type = DisplayName)]
    pub name: String,
    /// The creator's handle on their main platform, e.g. `@jessica` (at most 100 characters).
    #[schema(value_type = Option<Handle>)]
    pub handle: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Creator {
    pub id: Uuid,
    pub name: String,
    pub handle: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, handle, created_at";

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
    Ok((StatusCode::CREATED, axum::Json(create_creator(&state.db, brand.id, &body).await?)))
}

/// Validates and stores a creator of the brand.
pub async fn create_creator(db: &PgPool, brand_id: Uuid, body: &CreateCreator) -> Result<Creator, Error> {
    let name = Name::parse(&body.name, 200).map_err(|e| Error::invalid_field("invalid_name", format!("name {e}")))?;
    let handle = body
        .handle
        .as_deref()
        .map(|h| Name::parse(h, 100).map_err(|e| Error::invalid_field("invalid_handle", format!("handle {e}"))))
        .transpose()?;
    let creator = sqlx::query_as::<_, Creator>(&format!(
        "insert into creators (id, brand_id, name, handle) values ($1, $2, $3, $4) returning {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(brand_id)
    .bind(name.into_inner())
    .bind(handle.map(Name::into_inner))
    .fetch_one(db)
    .await?;
    Ok(creator)
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
    Ok(axum::Json(list_creators(&state.db, brand.id, page.parse()?).await?))
}

/// One page of the brand's creators, newest first.
pub async fn list_creators(db: &PgPool, brand_id: Uuid, page: PageRequest) -> Result<List<Creator>, Error> {
    let rows: Vec<(i64, Creator)> = sqlx::query_as::<_, SeqCreator>(&format!(
        "select seq, {COLUMNS} from creators
         where brand_id = $1 and ($2::bigint is null or seq < $2)
         order by seq desc limit $3"
    ))
    .bind(brand_id)
    .bind(page.before_seq)
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.seq, r.creator))
    .collect();
    Ok(List::from_rows(rows, page))
}

#[derive(sqlx::FromRow)]
struct SeqCreator {
    seq: i64,
    #[sqlx(flatten)]
    creator: Creator,
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
    sqlx::query_as::<_, Creator>(&format!("select {COLUMNS} from creators where id = $1 and brand_id = $2"))
        .bind(id)
        .bind(brand.id)
        .fetch_optional(&state.db)
        .await?
        .map(axum::Json)
        .ok_or(Error::NotFound("creator"))
}
