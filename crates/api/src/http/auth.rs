//! `Authorization: Bearer <api key>` for the brand endpoints.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::Error;
use super::AppState;

/// The brand a request acts for, proven by one of its unrevoked API keys.
#[derive(Debug, Clone, Copy)]
pub struct Brand {
    pub id: Uuid,
}

/// The bearer credential of a request, if there is one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Brand {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = bearer(parts).ok_or(Error::Unauthorized)?;
        let id =
            crate::brands::authenticate(&state.db, &state.api_keys, presented).await?.ok_or(Error::Unauthorized)?;
        Ok(Brand { id })
    }
}
