//! Creators' own view: read-only tokens a brand hands to a creator (created, listed and revoked here;
//! the rules are [`crate::creator_tokens`]'s), and `GET /v1/me/links`.
//!
//! A creator always sees the clicks and conversions of their links; revenue only on links that share
//! it, and there the field is present, elsewhere absent (not zero, which would be a lie).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{bearer, Brand};
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json;
use super::AppState;
use crate::creator_reports::MyLink;
use crate::creator_tokens::{self, Expiry, TokenError, TokenInfo};
use crate::schema::TokenPrefix;

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotFound => Error::NotFound("creator token"),
            TokenError::InvalidExpiry(message) => Error::invalid_field("invalid_expiry", message),
            TokenError::Database(db) => Error::Database(db),
        }
    }
}

/// What a new token may say about itself; every field is optional, and so is the body. `expires_at` and
/// `expires_in_days` are alternatives: not both (else 422 `invalid_expiry`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"expires_in_days": 90}))]
pub struct CreateToken {
    /// When the token stops working (RFC 3339): in the future, at most ten years away.
    pub expires_at: Option<DateTime<Utc>>,
    /// Or: how many days from now it stops working (1–3650).
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatorToken {
    /// Shown once; only its hash is stored.
    pub token: String,
    pub prefix: String,
    pub creator_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// Null: it never expires.
    pub expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/v1/creators/{id}/tokens", tag = "creators", operation_id = "create_creator_token",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "the creator")),
    request_body(content = Option<CreateToken>, content_type = "application/json",
        description = "optional: without a body (or with `{}` or `null`) the token never expires"),
    responses((status = 201, body = CreatorToken), (status = 400, body = ErrorBody, description = "malformed JSON"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not a creator of this brand"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody, description = "a body that is not JSON"),
        (status = 422, body = ErrorBody, description = "`invalid_expiry`, or an unknown field")))]
pub async fn create_token(
    State(state): State<AppState>,
    brand: Brand,
    Path(creator_id): Path<Uuid>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, axum::Json<CreatorToken>), Error> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::bad_request("unreadable_body", rejection.body_text()),
    })?;
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        CreateToken::default()
    } else if json::is_json(&headers) {
        json::from_bytes::<Option<CreateToken>>(&body)?.unwrap_or_default()
    } else {
        return Err(Error::Invalid {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "a body must be application/json".into(),
        });
    };
    let expiry = Expiry::parse(request.expires_at, request.expires_in_days, Utc::now())?;
    let created = creator_tokens::create(&state.db, brand.id, creator_id, expiry).await?;
    let TokenInfo { prefix, creator_id, created_at, expires_at, .. } = created.info;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatorToken { token: created.token, prefix, creator_id, created_at, expires_at }),
    ))
}

#[utoipa::path(get, path = "/v1/creators/{id}/tokens", tag = "creators", operation_id = "list_creator_tokens",
    security(("api_key" = [])), params(("id" = Uuid, Path, description = "the creator"), Page),
    responses((status = 200, body = List<TokenInfo>, description = "the creator's tokens, newest first, revoked and expired ones included; never the token itself"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a creator of this brand")))]
pub async fn list_tokens(
    State(state): State<AppState>,
    brand: Brand,
    Path(creator_id): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<TokenInfo>>, Error> {
    let page = page.parse()?;
    let rows = creator_tokens::list(&state.db, brand.id, creator_id, page.before_seq, page.limit + 1).await?;
    Ok(axum::Json(List::from_rows(rows, page)))
}

#[utoipa::path(delete, path = "/v1/creators/{id}/tokens/{prefix}", tag = "creators", operation_id = "revoke_creator_token",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "the creator"),
        ("prefix" = TokenPrefix, Path, description = "the token's prefix")),
    responses((status = 204, description = "revoked: the token stops working at once (revoking again is still 204)"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a creator of this brand, or not one of its tokens")))]
pub async fn revoke_token(
    State(state): State<AppState>,
    brand: Brand,
    Path((creator_id, prefix)): Path<(Uuid, String)>,
) -> Result<StatusCode, Error> {
    creator_tokens::revoke(&state.db, brand.id, creator_id, &prefix).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The creator a request acts for, proven by a creator token that is neither revoked nor expired. It
/// opens `/v1/me` and nothing else: brand endpoints only accept API keys.
pub struct Creator {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for Creator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = bearer(parts).ok_or(Error::Unauthorized)?;
        let id = creator_tokens::authenticate(&state.db, presented).await?.ok_or(Error::Unauthorized)?;
        Ok(Creator { id })
    }
}

#[utoipa::path(get, path = "/v1/me/links", tag = "creators", operation_id = "my_links", params(Page),
    security(("creator_token" = [])),
    responses((status = 200, body = List<MyLink>, description = "the creator's links, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`"),
        (status = 401, body = ErrorBody, description = "a missing, revoked or expired creator token")))]
pub async fn my_links(
    State(state): State<AppState>,
    creator: Creator,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<MyLink>>, Error> {
    let page = page.parse()?;
    let items =
        crate::creator_reports::my_links(state.read(), &state.config, creator.id, page.before_seq, page.limit + 1)
            .await?;
    Ok(axum::Json(List::from_rows(items, page)))
}
