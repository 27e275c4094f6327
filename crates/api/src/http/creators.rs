//! `/v1/creators`: the people whose links a brand tracks, and their invitations to the creators' portal.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::creator_accounts::{self, AccountError};
use crate::creators::{self, CreateCreator, Creator};

impl From<AccountError> for Error {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::NotFound => Error::NotFound("creator"),
            e @ AccountError::AlreadyJoined => {
                Error::Invalid { status: StatusCode::CONFLICT, code: "creator_joined", message: e.to_string() }
            }
            AccountError::Database(db) => Error::Database(db),
            e => Error::invalid_field("invalid_account", e.to_string()),
        }
    }
}

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
    let rows = creators::list(state.read(), brand.id, page.before_seq, page.limit + 1).await?;
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

/// A one-time link to the creators' portal.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationLink {
    /// Shown once (only a hash is kept): whoever opens it creates a portal account, or signs in to one,
    /// and sees this creator's links and figures.
    #[schema(example = "https://api.creatorscore.io/creator/invitations/q3Zk7mP2x9aR4sT1wAbCdEfGhJkMnPqRsTuVwXyZ234")]
    pub url: String,
    /// Seven days from now; accepting it, or unlinking the creator, ends it sooner.
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/creators/{id}/invitations", tag = "creators", operation_id = "invite_creator",
    params(("id" = Uuid, Path, description = "the creator")), security(("api_key" = [])),
    responses((status = 201, body = InvitationLink, description = "a new one-time invitation link, valid 7 days; \
            earlier open ones stay valid until one is accepted"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a creator of this brand"),
        (status = 409, body = ErrorBody, description = "`creator_joined`: the creator is already linked to an \
            account (unlink it first)")))]
pub async fn invite(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<InvitationLink>), Error> {
    let invitation = creator_accounts::invite(&state.db, &state.config, brand.id, id).await?;
    Ok((StatusCode::CREATED, axum::Json(InvitationLink { url: invitation.url, expires_at: invitation.expires_at })))
}

#[utoipa::path(delete, path = "/v1/creators/{id}/account", tag = "creators", operation_id = "unlink_creator_account",
    params(("id" = Uuid, Path, description = "the creator")), security(("api_key" = [])),
    responses((status = 204, description = "unlinked: the creator's portal account no longer sees this brand, from \
            its next request; open invitations are withdrawn (unlinking again is still 204)"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a creator of this brand")))]
pub async fn unlink_account(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    creator_accounts::unlink(&state.db, brand.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
