//! `/v1/links`: tracking links, the heart of the product. The rules are [`crate::links`]'s; this is
//! their REST adapter (and the links' CSV export).

use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use shared::{ContentType, Platform};

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::links;

pub mod bulk;
pub mod qr;
pub mod stats;

pub use crate::links::{CreateLink, Link, LinkRow, UpdateLink};

#[utoipa::path(post, path = "/v1/links", tag = "links", operation_id = "create_link", request_body = CreateLink,
    security(("api_key" = [])),
    responses((status = 201, body = Link),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the creator or campaign is not the brand's, or the domain is \
            not one of its active domains"),
        (status = 409, body = ErrorBody, description = "`promo_code_taken`"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_destination_url`, `invalid_promo_code`, `invalid_domain` (not a host name), \
            `invalid_utm`, `invalid_expired_url`, or \
            `invalid_body` (a missing, mistyped or unknown field)")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<CreateLink>,
) -> Result<(StatusCode, axum::Json<Link>), Error> {
    let fields = body.validate(&state.config).map_err(|e| Error::from(links::bulk::first_error(e)))?;
    let link = links::create(&state.db, &state.config, &state.codes, brand.id, &fields).await?;
    Ok((StatusCode::CREATED, axum::Json(link)))
}

#[utoipa::path(get, path = "/v1/links", tag = "links", operation_id = "list_links", params(links::LinkFilter, Page),
    security(("api_key" = [])),
    responses((status = 200, body = List<Link>, description = "the brand's links matching the filters, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, or `invalid_query` (a \
            malformed filter)"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<links::LinkFilter>,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<Link>>, Error> {
    let page = page.parse()?;
    let rows = links::list(state.read(), &state.config, brand.id, &filter, page.before_seq, page.limit + 1).await?;
    Ok(axum::Json(List::from_rows(rows, page)))
}

#[utoipa::path(get, path = "/v1/links/{id}", tag = "links", operation_id = "get_link",
    params(("id" = Uuid, Path, description = "the link")), security(("api_key" = [])),
    responses((status = 200, body = Link, description = "the link, deleted ones included (`active: false`)"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not a link of this brand")))]
pub async fn get(State(state): State<AppState>, brand: Brand, Path(id): Path<Uuid>) -> Result<axum::Json<Link>, Error> {
    // One link by id reads the primary: a link just created (or changed) is found at once.
    Ok(axum::Json(links::get(&state.db, &state.config, brand.id, id).await?))
}

#[utoipa::path(patch, path = "/v1/links/{id}", tag = "links", operation_id = "update_link", request_body = UpdateLink,
    params(("id" = Uuid, Path, description = "the link")), security(("api_key" = [])),
    responses((status = 200, body = Link),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a link of this brand, or the creator, campaign or domain is not \
            the brand's"),
        (status = 409, body = ErrorBody, description = "`promo_code_taken`, or `link_deleted` (a deleted link \
            cannot be changed)"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_destination_url`, `invalid_promo_code`, `invalid_domain` (not a host name), \
            `invalid_utm`, `invalid_expired_url`, or \
            `invalid_body` (a mistyped or unknown field)")))]
pub async fn update(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateLink>,
) -> Result<axum::Json<Link>, Error> {
    Ok(axum::Json(links::update(&state.db, &state.config, brand.id, id, &body).await?))
}

#[utoipa::path(delete, path = "/v1/links/{id}", tag = "links", operation_id = "delete_link",
    params(("id" = Uuid, Path, description = "the link")), security(("api_key" = [])),
    description = "Soft delete: the link is deactivated (`active: false`, `deleted_at` set) and stops redirecting, \
        but it, its clicks and its conversions stay readable.",
    responses((status = 204, description = "deactivated (also when it already was)"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a link of this brand")))]
pub async fn delete(State(state): State<AppState>, brand: Brand, Path(id): Path<Uuid>) -> Result<StatusCode, Error> {
    links::deactivate(&state.db, brand.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

const EXPORT_COLUMNS: [&str; 31] = [
    "id",
    "code",
    "short_url",
    "destination_url",
    "campaign_id",
    "creator_id",
    "creator_name",
    "platform",
    "content_type",
    "promo_code",
    "share_revenue",
    "active",
    "created_at",
    "deleted_at",
    "clicks",
    "unique_clicks",
    "currency",
    "conversions",
    "revenue",
    "pending_conversions",
    "pending_revenue",
    "conversion_rate",
    // Added after the figures, so the columns before them keep their places.
    "domain",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "expires_at",
    "expired_url",
    "destination_status",
];

#[utoipa::path(get, path = "/v1/links.csv", tag = "links", operation_id = "export_links", params(links::LinkFilter),
    security(("api_key" = [])),
    description = "Every link matching the filters, newest first, with its all-time figures, then its domain, UTM \
        tags, expiry and destination status, as CSV (RFC 4180, UTF-8, header row), streamed. Orders count as in every report; a link with orders in several currencies has one row \
        per currency, its clicks on the first. Cells a spreadsheet would run as formulas start with `'`.",
    responses((status = 200, content_type = "text/csv", body = String, description = "the CSV file"),
        (status = 400, body = ErrorBody, description = "`invalid_query`: a malformed filter"),
        (status = 401, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<links::LinkFilter>,
) -> axum::response::Response {
    export_csv(state, brand.id, filter)
}

/// The links export, for the REST API and the dashboard alike.
pub fn export_csv(state: AppState, brand_id: Uuid, filter: links::LinkFilter) -> axum::response::Response {
    let pages = super::csv::paged(move |before: Option<i64>| {
        let (state, filter) = (state.clone(), filter.clone());
        async move { export_page(&state, brand_id, &filter, before).await }
    });
    super::csv::download("links.csv", &EXPORT_COLUMNS, pages)
}

/// One page of the links export before `before` (a sequence number), and where the next one starts.
async fn export_page(
    state: &AppState,
    brand_id: Uuid,
    filter: &links::LinkFilter,
    before: Option<i64>,
) -> Result<(super::csv::Rows, Option<i64>), Error> {
    use super::csv::{amount, instant, text};
    let limit = super::extract::MAX_LIMIT;
    let page = links::list(state.read(), &state.config, brand_id, filter, before, limit).await?;
    let next = if page.len() as i64 == limit { page.last().map(|(seq, _)| *seq) } else { None };
    let page: Vec<Link> = page.into_iter().map(|(_, link)| link).collect();
    let ids: Vec<Uuid> = page.iter().map(|l| l.id).collect();
    let totals = crate::revenue::link_totals(state.read(), brand_id, &ids).await?;
    let labels = crate::links::labels(state.read(), brand_id, &ids).await?;
    let mut rows = Vec::with_capacity(page.len());
    for link in page {
        let total = totals.get(&link.id).cloned().unwrap_or_default();
        let fixed = vec![
            link.id.to_string(),
            link.code.clone(),
            link.short_url.clone(),
            link.destination_url.clone(),
            text(link.campaign_id),
            text(link.creator_id),
            text(labels.get(&link.id).and_then(|l| l.creator_name.clone())),
            text(link.platform.map(Platform::as_str)),
            text(link.content_type.map(ContentType::as_str)),
            text(link.promo_code.clone()),
            link.share_revenue.to_string(),
            link.active.to_string(),
            instant(Some(link.created_at)),
            instant(link.deleted_at),
        ];
        let settings = [
            text(link.domain.clone()),
            text(link.utm_source.clone()),
            text(link.utm_medium.clone()),
            text(link.utm_campaign.clone()),
            text(link.utm_term.clone()),
            text(link.utm_content.clone()),
            instant(link.expires_at),
            text(link.expired_url.clone()),
            text(link.destination_status.map(|s| s.as_str())),
        ];
        let conversions: i64 = total.per_currency.iter().map(|f| f.conversions).sum();
        let rate = crate::revenue::rate(conversions, total.clicks);
        let per_currency =
            if total.per_currency.is_empty() { vec![None] } else { total.per_currency.iter().map(Some).collect() };
        for (i, figures) in per_currency.into_iter().enumerate() {
            let mut row = fixed.clone();
            let money = |minor: i64, f: &crate::revenue::CurrencyFigures| {
                amount(&crate::money::Money { amount_minor: minor, currency: f.currency.clone() })
            };
            let first = i == 0;
            row.extend([
                if first { total.clicks.to_string() } else { String::new() },
                if first { total.unique_clicks.to_string() } else { String::new() },
                text(figures.map(|f| f.currency.clone())),
                figures.map_or_else(|| "0".to_owned(), |f| f.conversions.to_string()),
                text(figures.map(|f| money(f.revenue, f))),
                figures.map_or_else(|| "0".to_owned(), |f| f.pending_conversions.to_string()),
                text(figures.map(|f| money(f.pending_revenue, f))),
                if first { format!("{rate:.4}") } else { String::new() },
            ]);
            row.extend(settings.iter().cloned());
            rows.push(row);
        }
    }
    Ok((rows, next))
}
