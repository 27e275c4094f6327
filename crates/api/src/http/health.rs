//! Liveness and readiness for the orchestrator.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// The process is up.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve: the database answers. `replica` says where reports and lists read: `ok` (the
/// replica), `unreachable` (the primary, until the replica answers again), `lagging` (the primary, until
/// the replica is within `DATABASE_READ_MAX_LAG_SECS` again) or `not_configured`. A replica
/// that does not answer never makes the process unready, since the primary serves its reads meanwhile.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let replica = state.reads.status().as_str();
    match sqlx::query("select 1").execute(&state.db).await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready", "replica": replica}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unreachable", "replica": replica})),
            )
        }
    }
}
