//! `GET /v1/links/{id}/stats`: what one link did over a window ([`crate::links::stats`]).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::super::auth::Brand;
use super::super::error::{Error, ErrorBody};
use super::super::extract::{Path, Query};
use super::super::AppState;
use crate::links::stats::{link_stats, LinkStats};
use crate::reports::Window;
use crate::schema::Instant;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Inclusive start (RFC 3339, from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z; else 400
    /// `invalid_query`); default: the beginning. Not after `to` (else 400 `invalid_window`).
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    #[param(value_type = Option<Instant>)]
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end (RFC 3339, same range as `from`); default: open (now).
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    #[param(value_type = Option<Instant>)]
    pub to: Option<DateTime<Utc>>,
}

impl WindowParams {
    pub fn resolve(&self, default_from: DateTime<Utc>) -> Result<Window, Error> {
        let window = Window { from: self.from.unwrap_or(default_from), to: self.to };
        if window.to.is_some_and(|to| window.from > to) {
            return Err(Error::bad_request("invalid_window", "from must not be after to"));
        }
        Ok(window)
    }
}

#[utoipa::path(get, path = "/v1/links/{id}/stats", tag = "links", operation_id = "link_stats",
    params(("id" = Uuid, Path, description = "the link"), WindowParams), security(("api_key" = [])),
    responses((status = 200, body = LinkStats),
        (status = 400, body = ErrorBody, description = "`invalid_query` (a malformed or out-of-range date), \
            `invalid_window` (`from` after `to`)"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not a link of this brand")))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Query(params): Query<WindowParams>,
) -> Result<axum::Json<LinkStats>, Error> {
    let window = params.resolve(DateTime::<Utc>::UNIX_EPOCH)?;
    // Whether the link is the brand's is asked of the primary, so a link created a moment ago is no 404; its
    // figures are a report, read from the replica when there is one.
    crate::links::find(&mut *state.db.acquire().await?, brand.id, id, false).await?;
    let mut conn = state.read().acquire().await?;
    Ok(axum::Json(link_stats(&mut conn, id, window).await?))
}
