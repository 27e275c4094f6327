//! `POST /internal/clicks`: click batches from the edge worker's queue consumer, on the internal
//! listener only (see [`super::internal_router`]).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::auth::bearer;
use super::error::{Error, ErrorBody, ErrorDetail};
use super::extract::Json;
use super::AppState;
use crate::ingest::{self, Horizon, IngestSummary, MAX_BATCH};
use crate::secrets;

/// Largest batch body: 1,000 events of at most ~1 KiB each, with room to spare.
pub const MAX_INGEST_BYTES: usize = 2 * 1024 * 1024;

/// The request carries `EDGE_INGEST_TOKEN`. Without a configured token nothing is accepted.
pub struct Edge;

impl FromRequestParts<AppState> for Edge {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let expected = state.config.edge_ingest_token.as_deref().ok_or(Error::Unauthorized)?;
        let presented = bearer(parts).ok_or(Error::Unauthorized)?;
        // Hashing first makes the comparison constant-time in the lengths too.
        let equal: bool = secrets::hash(presented).ct_eq(&secrets::hash(expected)).into();
        if equal {
            Ok(Edge)
        } else {
            Err(Error::Unauthorized)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    clicks: Vec<Box<RawValue>>,
}

/// The answer when some events must be delivered again: the error, the events concerned by index, and
/// what became of the others (already stored and committed).
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryLaterBody {
    /// `retry_later`.
    pub error: ErrorDetail,
    #[serde(flatten)]
    pub summary: IngestSummary,
}

#[utoipa::path(post, path = "/internal/clicks", tag = "internal", security(("edge_ingest_token" = [])),
    request_body(content = Object, description = "{\"clicks\": [click event, ...]}, at most 1,000"),
    responses(
        (status = 200, body = IngestSummary,
            description = "every event stored (or a duplicate, or of an unknown link) or rejected for good; committed"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody, description = "no token, a wrong one, or none configured"),
        (status = 413, body = ErrorBody, description = "body over 2 MiB"),
        (status = 415, body = ErrorBody, description = "not application/json"),
        (status = 422, body = ErrorBody,
            description = "`invalid_body`: not {\"clicks\": [...]}; `batch_too_large`: more than 1,000 events"),
        (status = 500, body = ErrorBody, description = "the database failed; nothing was committed"),
        (status = 503, body = RetryLaterBody,
            description = "`retry_later`: the events listed in `retry_later` (a newer event version, a clock ahead of \
                ours) were not stored and must be delivered again; every other event was handled and committed \
                as the summary says")))]
pub async fn clicks(State(state): State<AppState>, _edge: Edge, Json(batch): Json<Batch>) -> Result<Response, Error> {
    if batch.clicks.len() > MAX_BATCH {
        return Err(Error::invalid_field("batch_too_large", format!("at most {MAX_BATCH} clicks per batch")));
    }
    let horizon = Horizon { now: Utc::now(), max_age: state.config.click_max_age };
    let summary = ingest::store_batch(&state.db, &batch.clicks, horizon).await?;
    if summary.retry_later.is_empty() {
        return Ok(axum::Json(summary).into_response());
    }
    let message = format!(
        "{} of {} events cannot be stored by this version of the API yet; deliver them again (see retry_later)",
        summary.retry_later.len(),
        summary.received
    );
    let error = ErrorDetail { code: "retry_later".to_owned(), message };
    Ok((StatusCode::SERVICE_UNAVAILABLE, axum::Json(RetryLaterBody { error, summary })).into_response())
}

/// The internal listener's own OpenAPI document: the public `/openapi.json` describes only what the
/// public listener serves.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tracking Links internal API", description = "Served only on INTERNAL_BIND_ADDR."),
    paths(clicks),
    modifiers(&EdgeIngestToken)
)]
pub struct InternalDoc;

struct EdgeIngestToken;

impl Modify for EdgeIngestToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "edge_ingest_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /internal/openapi.json`.
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(InternalDoc::openapi())
}
