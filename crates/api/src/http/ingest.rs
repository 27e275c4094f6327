//! `POST /internal/clicks`: click batches from the edge worker's queue consumer.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use super::auth::bearer;
use super::error::{Error, ErrorBody};
use super::extract::Json;
use super::AppState;
use crate::ingest::{self, IngestSummary, MAX_BATCH};
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

#[utoipa::path(post, path = "/internal/clicks", tag = "internal", security(("edge_ingest_token" = [])),
    request_body(content = Object, description = "{\"clicks\": [click event, ...]}"),
    responses((status = 200, body = IngestSummary, description = "stored and committed; duplicates ignored"),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn clicks(
    State(state): State<AppState>,
    _edge: Edge,
    Json(batch): Json<Batch>,
) -> Result<axum::Json<IngestSummary>, Error> {
    if batch.clicks.len() > MAX_BATCH {
        return Err(Error::invalid_field("batch_too_large", format!("at most {MAX_BATCH} clicks per batch")));
    }
    Ok(axum::Json(ingest::store_batch(&state.db, &batch.clicks).await?))
}
