//! Many links in one request (the REST API's `POST /v1/links/bulk`, the dashboard's CSV import): each
//! is validated and created on its own, in order, exactly as a single creation would be, so one bad
//! item never stops the others. A promo code used twice in one batch is taken by the first.

use uuid::Uuid;

use super::{create, CodeSource, CreateLink, Link, LinkError};
use crate::config::Config;

/// The most links one batch may create.
pub const MAX_BATCH: usize = 100;

/// Creates each request in order, each in its own transaction, and gives back what became of each, in
/// the same order. A request that could not be read is passed as its error and reported as it is.
pub async fn create_many(
    db: &sqlx::PgPool,
    config: &Config,
    codes: &CodeSource,
    brand_id: Uuid,
    requests: Vec<Result<CreateLink, LinkError>>,
) -> Vec<Result<Link, LinkError>> {
    let mut outcomes = Vec::with_capacity(requests.len());
    for request in requests {
        let outcome = match request.and_then(|body| body.validate(config).map_err(first_error)) {
            Ok(fields) => create(db, config, codes, brand_id, &fields).await,
            Err(e) => Err(e),
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// The first of a list of validation errors (never empty: `validate` fails with at least one).
pub fn first_error(errors: Vec<LinkError>) -> LinkError {
    errors.into_iter().next().unwrap_or_else(|| anyhow::anyhow!("validation failed without an error").into())
}
