//! Signed statements over HTTP: a creator asks for one (`POST /v1/me/statements`), anyone checks one
//! (`POST /v1/statements/verify`, the public pages `/statements/{id}` and `/verify`, or offline with the
//! keys at `/.well-known/statement-keys`), and the brand revokes one. The rules are
//! [`crate::statements`]'s.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Multipart, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use governor::Quota;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Brand;
use super::creator_view::Creator;
use super::dashboard::session::{self, Realm};
use super::dashboard::views::{moneys, shell};
use super::error::{Error, ErrorBody};
use super::extract::{Client, List, Page, Path, Query};
use super::json;
use super::AppState;
use crate::client::ClientKey;
use crate::limits::{Backend, KeyedLimiter};
use crate::money::Money;
use crate::statements::{self, Document, Invalid, IssueError, Jwk, Statement, StatementInfo, Verdict};
use utoipa::IntoParams;

/// Most clients the verification limit remembers at once.
const MAX_LIMITED_CLIENTS: u64 = 100_000;

/// Verifications per client address (`STATEMENT_VERIFY_RATE_PER_CLIENT`, burst twice that), for the
/// REST endpoint and the public form alike: each one costs a signature check and a query.
pub struct VerifyLimits(KeyedLimiter<ClientKey>);

impl VerifyLimits {
    pub fn new(per_client: std::num::NonZeroU32, backend: &Backend) -> Arc<Self> {
        let burst = per_client.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(1));
        let quota = Quota::per_second(per_client).allow_burst(burst);
        Arc::new(VerifyLimits(KeyedLimiter::new("statements:verify", quota, MAX_LIMITED_CLIENTS, backend)))
    }

    async fn check(&self, client: &ClientKey) -> Result<(), Error> {
        self.0.check(client).await.map_err(|retry_after| Error::RateLimited { retry_after })
    }
}

impl From<IssueError> for Error {
    fn from(e: IssueError) -> Self {
        match e {
            e @ IssueError::Unavailable => Error::Invalid {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "statements_unavailable",
                message: e.to_string(),
            },
            IssueError::NotFound => Error::NotFound("brand"),
            IssueError::InvalidPeriod(message) => Error::invalid_field("invalid_period", message),
            IssueError::Database(db) => Error::Database(db),
            IssueError::Internal(e) => Error::Internal(e),
        }
    }
}

/// What a statement covers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"brand_id": "0b9a6a1e-4a7c-4d1e-9a3f-2c8e1f7b6d5a",
    "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}))]
pub struct IssueStatement {
    /// The brand whose links the statement covers: the creator token's brand.
    pub brand_id: Uuid,
    /// Inclusive start (RFC 3339, from 1970-01-01T00:00:00Z).
    pub from: DateTime<Utc>,
    /// Exclusive end (RFC 3339): after `from`, and not in the future.
    pub to: DateTime<Utc>,
}

/// The stored text of a statement, served as is.
fn document_response(status: StatusCode, text: String) -> Response {
    (status, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], text).into_response()
}

#[utoipa::path(post, path = "/v1/me/statements", tag = "creators", operation_id = "issue_statement",
    security(("creator_token" = []), ("creator_session" = [])),
    request_body = IssueStatement,
    responses((status = 201, body = Document, description = "the signed statement, exactly as stored and served at \
            `/statements/{id}.json`"),
        (status = 400, body = ErrorBody, description = "malformed JSON"),
        (status = 401, body = ErrorBody, description = "a missing, revoked or expired creator token (or no portal \
            session)"),
        (status = 404, body = ErrorBody, description = "`brand_id` is not the brand of the token's creator (or no \
            creator of the portal account at that brand)"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody, description = "a body that is not JSON"),
        (status = 422, body = ErrorBody, description = "`invalid_period` (`from` not before `to`, `to` in the \
            future, a date out of range), or an unknown field"),
        (status = 503, body = ErrorBody, description = "`statements_unavailable`: no signing key is configured")))]
pub async fn issue(
    State(state): State<AppState>,
    issuer: Issuer,
    json::Json(request): json::Json<IssueStatement>,
) -> Result<Response, Error> {
    let in_range = |t| crate::reports::in_range(t).map_err(|e| Error::invalid_field("invalid_period", e.to_string()));
    let (from, to) = (in_range(request.from)?, in_range(request.to)?);
    let creator_id = match issuer {
        Issuer::Creator(id) => id,
        Issuer::Account(account_id) => {
            crate::creator_accounts::membership(&state.db, account_id, request.brand_id)
                .await?
                .ok_or(Error::NotFound("brand"))?
                .creator_id
        }
    };
    let issued = statements::issue(&state.db, &state.config, creator_id, request.brand_id, from, to).await?;
    Ok(document_response(StatusCode::CREATED, issued.document))
}

/// Who asks for a statement: a creator token (one creator record), or a session of the creators' portal
/// (an account: its creator record at the requested brand).
pub enum Issuer {
    Creator(Uuid),
    Account(Uuid),
}

impl FromRequestParts<AppState> for Issuer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION) {
            return Creator::from_request_parts(parts, state).await.map(|creator| Issuer::Creator(creator.id));
        }
        // A portal session, sent by a page of this site (a JSON body, which no plain form can send, is
        // required as well).
        if session::from_this_site(&parts.headers, state) {
            if let Some(found) = session::find(parts, state, Realm::Creator).await? {
                return Ok(Issuer::Account(found.id));
            }
        }
        Err(Error::Unauthorized)
    }
}

/// The keys statements are signed with: the current one and retired ones.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

#[utoipa::path(get, path = "/.well-known/statement-keys", tag = "statements", operation_id = "statement_keys",
    responses((status = 200, body = KeySet, description = "every key a statement of this service may be signed \
        with (a JWK set, RFC 8037): the current key and retired ones")))]
pub async fn keys(State(state): State<AppState>) -> Response {
    let cache = [(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"))];
    (cache, axum::Json(KeySet { keys: state.config.statement_keys.jwks() })).into_response()
}

/// What checking a statement found.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Verification {
    pub valid: bool,
    /// Why not: `malformed`, `unknown_key`, `bad_signature` or `revoked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    /// When the brand revoked it (`reason` = `revoked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&Verdict> for Verification {
    fn from(verdict: &Verdict) -> Self {
        match verdict {
            Verdict::Valid { statement_id, issued_at } => Verification {
                valid: true,
                statement_id: Some(statement_id.clone()),
                issued_at: Some(issued_at.clone()),
                ..Default::default()
            },
            Verdict::Invalid(why) => Verification { reason: Some(why.as_str().to_owned()), ..Default::default() },
            Verdict::Revoked { statement_id, revoked_at } => Verification {
                reason: Some("revoked".into()),
                statement_id: Some(statement_id.clone()),
                revoked_at: Some(*revoked_at),
                ..Default::default()
            },
        }
    }
}

#[utoipa::path(post, path = "/v1/statements/verify", tag = "statements", operation_id = "verify_statement",
    request_body(content = Object, content_type = "application/json",
        description = "a statement document, as issued (see `Document`); any JSON object is checked"),
    responses((status = 200, body = Verification, description = "`valid`, or why not"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "a body that is not JSON"),
        (status = 422, body = ErrorBody, description = "`invalid_body`: the JSON is not an object"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many verifications from this client address",
            headers(("Retry-After" = u64, description = "whole seconds until a request would pass (at least 1)")))))]
pub async fn verify(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Verification>, Error> {
    state.statement_verify_limits.check(&client).await?;
    if !json::is_json(&headers) {
        return Err(Error::Invalid {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "a body must be application/json".into(),
        });
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::bad_request("unreadable_body", rejection.body_text()),
    })?;
    let document: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::bad_request("malformed_json", format!("the body is not JSON: {e}")))?;
    if !document.is_object() {
        return Err(Error::invalid_field("invalid_body", "a statement document is a JSON object"));
    }
    let (verdict, _) = statements::verify(&state.db, &state.config.statement_keys, &document).await?;
    Ok(axum::Json(Verification::from(&verdict)))
}

/// Why the brand revokes a statement; the body is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "orders cancelled after the statement was issued"}))]
pub struct RevokeStatement {
    /// At most 500 characters; kept with the statement.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub id: String,
    pub revoked_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/statements/{id}/revoke", tag = "statements", operation_id = "revoke_statement",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "the statement")),
    request_body(content = Option<RevokeStatement>, content_type = "application/json",
        description = "optional: a reason"),
    responses((status = 200, body = Revoked, description = "revoked; revoking again keeps the first time and reason"),
        (status = 400, body = ErrorBody, description = "malformed JSON"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not one of this brand's statements"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody, description = "a body that is not JSON"),
        (status = 422, body = ErrorBody, description = "`invalid_reason` (over 500 characters), or an unknown field")))]
pub async fn revoke(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Revoked>, Error> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::bad_request("unreadable_body", rejection.body_text()),
    })?;
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeStatement::default()
    } else if json::is_json(&headers) {
        json::from_bytes::<Option<RevokeStatement>>(&body)?.unwrap_or_default()
    } else {
        return Err(Error::Invalid {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "a body must be application/json".into(),
        });
    };
    if request.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(Error::invalid_field("invalid_reason", "reason must be at most 500 characters"));
    }
    let revoked_at = statements::revoke(&state.db, brand.id, &id, request.reason.as_deref())
        .await?
        .ok_or(Error::NotFound("statement"))?;
    Ok(axum::Json(Revoked { id, revoked_at }))
}

/// Which statements to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementFilter {
    /// Only this creator's statements.
    pub creator_id: Option<Uuid>,
}

#[utoipa::path(get, path = "/v1/statements", tag = "statements", operation_id = "list_statements",
    params(StatementFilter, Page), security(("api_key" = [])),
    responses((status = 200, body = List<StatementInfo>, description = "the brand's statements, newest first, \
            revoked ones included"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, or `invalid_query` (a \
            malformed `creator_id`)"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<StatementFilter>,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<StatementInfo>>, Error> {
    let page = page.parse()?;
    let rows = statements::list(state.read(), brand.id, filter.creator_id, page.before_seq, page.limit + 1).await?;
    Ok(axum::Json(List::from_rows(rows, page)))
}

// ---- Public pages ----

/// A page answer with the dashboard's headers applied by the router.
fn page(status: StatusCode, title: &str, content: Markup) -> Response {
    (status, shell(title, html! { main id="main" { (content) } })).into_response()
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Statement not found",
        html! { h1 { "Statement not found" } p { "No statement has this address." } p { a href="/verify" { "Verify a statement" } } },
    )
}

fn money(list: &[Money]) -> String {
    if list.is_empty() {
        "0".into()
    } else {
        moneys(list)
    }
}

/// The statement's contents: who, when, and the figures.
fn statement_view(statement: &Statement) -> Markup {
    let shares = statement.totals.revenue.is_some();
    let revenue = |r: &Option<Vec<Money>>| r.as_deref().map_or_else(|| "not shared".to_owned(), money);
    html! {
        dl {
            dt { "Brand" } dd { (statement.brand.name) }
            dt { "Creator" } dd {
                (statement.creator.name)
                @if let Some(handle) = &statement.creator.handle { " (" (handle) ")" }
            }
            dt { "Period" } dd { (statement.period.from) " to " (statement.period.to) " (end excluded)" }
            dt { "Issued" } dd { (statement.issued_at) " by " (statement.issuer) }
            dt { "Statement" } dd { code { (statement.id) } " · key " code { (statement.kid) } }
        }
        div.table-scroll {
            table {
                caption.visually-hidden { "Figures per tracking link" }
                thead { tr {
                    th scope="col" { "Link" } th scope="col" { "Platform" } th scope="col" { "Content" }
                    th.num scope="col" { "Clicks" } th.num scope="col" { "Unique clicks" }
                    th.num scope="col" { "Conversions" }
                    @if shares { th.num scope="col" { "Revenue" } }
                } }
                tbody {
                    @for link in &statement.links {
                        tr {
                            th scope="row" { (link.short_url) }
                            td { (link.platform.as_deref().unwrap_or("—")) }
                            td { (link.content_type.as_deref().unwrap_or("—")) }
                            td.num { (link.clicks) } td.num { (link.unique_clicks) } td.num { (link.conversions) }
                            @if shares { td.num { (revenue(&link.revenue)) } }
                        }
                    }
                }
                tfoot { tr {
                    th scope="row" colspan="3" { "Totals" }
                    td.num { (statement.totals.clicks) } td.num { (statement.totals.unique_clicks) }
                    td.num { (statement.totals.conversions) }
                    @if shares { td.num { (revenue(&statement.totals.revenue)) } }
                } }
            }
        }
        @if shares { p.hint { "Revenue is net of refunds, and shown only for links whose revenue the brand shares." } }
    }
}

/// The verdict, announced first.
fn verdict_view(verdict: &Verdict) -> Markup {
    match verdict {
        Verdict::Valid { issued_at, .. } => html! {
            p.notice role="status" { strong { "Valid" } ": signed by the issuer on " (issued_at) " and not revoked." }
        },
        Verdict::Revoked { revoked_at, .. } => html! {
            p.alert role="status" { strong { "Not valid" } " — Revoked on "
                (revoked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) " by the brand." }
        },
        Verdict::Invalid(why) => {
            let why = match why {
                Invalid::Malformed => "this is not a statement document.",
                Invalid::UnknownKey => "it names a signing key this service never published.",
                Invalid::BadSignature => "the signature does not match: the statement was changed after it was signed.",
            };
            html! { p.alert role="status" { strong { "Not valid" } ": " (why) } }
        }
    }
}

/// `GET /statements/{id}` (the page) and `GET /statements/{id}.json` (the stored document, to download).
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, Error> {
    let (id, json) = match id.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (id.as_str(), false),
    };
    let Some(stored) = statements::find(&state.db, id).await? else { return Ok(not_found()) };
    if json {
        let disposition = HeaderValue::from_str(&format!("attachment; filename=\"statement-{}.json\"", stored.id))
            .unwrap_or(HeaderValue::from_static("attachment"));
        return Ok((
            [(CONTENT_TYPE, HeaderValue::from_static("application/json")), (CONTENT_DISPOSITION, disposition)],
            stored.document,
        )
            .into_response());
    }
    let document: Value = serde_json::from_str(&stored.document).map_err(anyhow::Error::from)?;
    let (verdict, statement) = statements::verify(&state.db, &state.config.statement_keys, &document).await?;
    let Some(statement) = statement else {
        // Stored by this service, but its key is no longer published: say so rather than hide it.
        return Ok(page(StatusCode::OK, "Statement", html! { h1 { "Statement" } (verdict_view(&verdict)) }));
    };
    let changed = statements::figures_changed(&state.db, &state.config, &stored, &statement).await?;
    let title = format!("Statement for {}", statement.creator.name);
    Ok(page(
        StatusCode::OK,
        &title,
        html! {
            h1 { (title) }
            (verdict_view(&verdict))
            @if changed {
                p.alert { "Figures have changed since this statement was issued (a refund or cancellation); the \
                    signature still proves what it said on " (statement.issued_at) "." }
            }
            (statement_view(&statement))
            p.actions {
                a href=(format!("/statements/{}.json", stored.id)) download { "Download JSON" }
                a href="/verify" { "Verify another statement" }
            }
        },
    ))
}

fn verify_form(pasted: &str) -> Markup {
    html! {
        form method="post" action="/verify" enctype="multipart/form-data" {
            div.field {
                label for="document" { "Paste a statement (JSON)" }
                textarea id="document" name="document" rows="10" { (pasted) }
            }
            div.field {
                label for="file" { "Or choose a statement file" }
                input id="file" name="file" type="file" accept="application/json,.json";
            }
            button.primary type="submit" { "Verify" }
        }
        p.hint { "Keys: " a href="/.well-known/statement-keys" { "/.well-known/statement-keys" } }
    }
}

/// `GET /verify`: a form to check a statement.
pub async fn verify_page() -> Response {
    page(StatusCode::OK, "Verify a statement", html! { h1 { "Verify a statement" } (verify_form("")) })
}

/// `POST /verify`: the statement pasted or uploaded, its verdict and its figures.
pub async fn verify_submit(
    State(state): State<AppState>,
    Client(client): Client,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, Error> {
    state.statement_verify_limits.check(&client).await?;
    let mut pasted = String::new();
    let mut file = Vec::new();
    if let Ok(mut multipart) = multipart {
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or_default().to_owned();
            let Ok(bytes) = field.bytes().await else {
                return Err(Error::PayloadTooLarge);
            };
            match name.as_str() {
                "document" => pasted = String::from_utf8_lossy(&bytes).into_owned(),
                "file" => file = bytes.to_vec(),
                _ => {}
            }
        }
    }
    let text = if file.iter().all(u8::is_ascii_whitespace) { pasted.as_bytes().to_vec() } else { file };
    let verdict_and_statement = match serde_json::from_slice::<Value>(&text) {
        Ok(document) => Some(statements::verify(&state.db, &state.config.statement_keys, &document).await?),
        Err(_) => None,
    };
    let (verdict, statement) = verdict_and_statement.unwrap_or((Verdict::Invalid(Invalid::Malformed), None));
    Ok(page(
        StatusCode::OK,
        "Verify a statement",
        html! {
            h1 { "Verify a statement" }
            (verdict_view(&verdict))
            @if let Some(statement) = &statement { (statement_view(statement)) }
            h2 { "Verify another" }
            (verify_form(""))
        },
    ))
}
