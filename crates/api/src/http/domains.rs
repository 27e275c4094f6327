//! `/v1/domains`: a brand's own short domains. The rules are [`crate::domains`]'s.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Path};
use super::json::Json;
use super::AppState;
use crate::domains::Domain;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hostname": "go.brand.example"}))]
pub struct CreateDomain {
    /// A host name the brand controls, such as `go.brand.com`: not the tracking domain or one of its
    /// subdomains, not an address, at least two labels.
    #[schema(value_type = crate::schema::HostnameText)]
    pub hostname: String,
}

#[utoipa::path(post, path = "/v1/domains", tag = "domains", operation_id = "create_domain",
    request_body = CreateDomain, security(("api_key" = [])),
    description = "Adds a domain, `pending` until the brand has proven control of it: publish the `dns_records` (a \
        CNAME to the tracking domain, and the TXT records Cloudflare asks for). It becomes `active` once Cloudflare \
        for SaaS reports the hostname and its certificate active (checked every minute, and on `GET \
        /v1/domains/{hostname}`); only then can links use it.",
    responses((status = 201, body = Domain),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`domain_taken` (held by this or another brand), or \
            `too_many_domains`"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_hostname`, `domain_refused` (Cloudflare refused \
            it), or `invalid_body`"),
        (status = 503, body = ErrorBody, description = "`provider_unavailable`: Cloudflare could not be reached; \
            nothing was stored")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<CreateDomain>,
) -> Result<(StatusCode, axum::Json<Domain>), Error> {
    Ok((StatusCode::CREATED, axum::Json(state.domains.add(brand.id, &body.hostname).await?)))
}

#[utoipa::path(get, path = "/v1/domains", tag = "domains", operation_id = "list_domains", security(("api_key" = [])),
    responses((status = 200, body = List<Domain>, description = "the brand's domains (at most 50), newest first, \
        on one page"),
        (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, brand: Brand) -> Result<axum::Json<List<Domain>>, Error> {
    Ok(axum::Json(List { data: state.domains.list(brand.id).await?, next_cursor: None }))
}

#[utoipa::path(get, path = "/v1/domains/{hostname}", tag = "domains", operation_id = "get_domain",
    params(("hostname" = String, Path, description = "the domain")), security(("api_key" = [])),
    responses((status = 200, body = Domain, description = "the domain; a pending one is checked with Cloudflare first"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not a domain of this brand")))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(hostname): Path<String>,
) -> Result<axum::Json<Domain>, Error> {
    Ok(axum::Json(state.domains.get(brand.id, &hostname).await?))
}

#[utoipa::path(delete, path = "/v1/domains/{hostname}", tag = "domains", operation_id = "delete_domain",
    params(("hostname" = String, Path, description = "the domain")), security(("api_key" = [])),
    description = "Removes the domain (and its Cloudflare custom hostname). Refused while active links use it; \
        deleted links on it fall back to the default domain.",
    responses((status = 204, description = "removed"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a domain of this brand"),
        (status = 409, body = ErrorBody, description = "`domain_in_use`: active links use it"),
        (status = 503, body = ErrorBody, description = "`provider_unavailable`: Cloudflare could not be reached; \
            the domain is kept")))]
pub async fn delete(
    State(state): State<AppState>,
    brand: Brand,
    Path(hostname): Path<String>,
) -> Result<StatusCode, Error> {
    state.domains.remove(brand.id, &hostname).await?;
    Ok(StatusCode::NO_CONTENT)
}
