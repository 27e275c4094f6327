//! `/v1/links`: tracking links, the heart of the product.
//!
//! Every write runs in one transaction; a link is never hard-deleted (its clicks and conversions
//! keep pointing at it), and its code is never given to another link.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use shared::{ContentType, Platform};

use super::auth::Brand;
use super::error::{Error, ErrorBody, ResultExt};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::domain::{self, PromoCode};
use crate::schema::{Cursor, DestinationUrl, PromoCodeText};

pub mod stats;

/// How many fresh codes to try before giving up; with 31^8 codes a second attempt is already rare.
const CODE_ATTEMPTS: usize = 8;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"destination_url": "https://shop.example/products/linen-shirt?color=sand",
    "platform": "instagram", "content_type": "reel", "promo_code": "JESS20", "share_revenue": true}))]
pub struct CreateLink {
    /// Absolute http(s) URL, at most 2048 characters, not on the tracking domain.
    #[schema(value_type = DestinationUrl)]
    pub destination_url: String,
    /// One of the brand's campaigns (else 404).
    pub campaign_id: Option<Uuid>,
    /// One of the brand's creators (else 404).
    pub creator_id: Option<Uuid>,
    pub platform: Option<Platform>,
    pub content_type: Option<ContentType>,
    /// Unique among the brand's active links, compared case-insensitively.
    #[schema(value_type = Option<PromoCodeText>)]
    pub promo_code: Option<String>,
    #[serde(default)]
    pub share_revenue: bool,
}

/// Any creation field but the code. An absent field is left alone; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"destination_url": "https://shop.example/products/linen-shirt?color=olive", "promo_code": null}))]
pub struct UpdateLink {
    /// Absolute http(s) URL, at most 2048 characters, not on the tracking domain; `null` leaves it alone.
    #[schema(value_type = Option<DestinationUrl>)]
    pub destination_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub campaign_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub creator_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Platform>)]
    pub platform: Option<Option<Platform>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ContentType>)]
    pub content_type: Option<Option<ContentType>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PromoCodeText>)]
    pub promo_code: Option<Option<String>>,
    pub share_revenue: Option<bool>,
}

/// Distinguishes a field sent as `null` (`Some(None)`) from one left out (`None`, via `default`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub use crate::links::{Link, LinkRow, LINK_COLUMNS};

/// The writable fields of a link, validated.
pub struct LinkFields {
    destination_url: domain::DestinationUrl,
    campaign_id: Option<Uuid>,
    creator_id: Option<Uuid>,
    platform: Option<Platform>,
    content_type: Option<ContentType>,
    promo_code: Option<PromoCode>,
    share_revenue: bool,
}

impl CreateLink {
    /// The fields, validated; or every invalid field's error, in field order (the REST API answers with
    /// the first, the dashboard shows each beside its field). Creator, campaign and promo code
    /// uniqueness are the database's to check, at insert.
    pub fn validate(&self, state: &AppState) -> Result<LinkFields, Vec<Error>> {
        let destination = parse_destination(state, &self.destination_url);
        let promo = parse_promo(self.promo_code.as_deref());
        match (destination, promo) {
            (Ok(destination_url), Ok(promo_code)) => Ok(LinkFields {
                destination_url,
                campaign_id: self.campaign_id,
                creator_id: self.creator_id,
                platform: self.platform,
                content_type: self.content_type,
                promo_code,
                share_revenue: self.share_revenue,
            }),
            (destination, promo) => Err([destination.err(), promo.err()].into_iter().flatten().collect()),
        }
    }
}

fn parse_destination(state: &AppState, raw: &str) -> Result<domain::DestinationUrl, Error> {
    domain::DestinationUrl::parse(raw, &state.config.tracking_base_url)
        .map_err(|e| Error::invalid_field("invalid_destination_url", e.to_string()))
}

fn parse_promo(raw: Option<&str>) -> Result<Option<PromoCode>, Error> {
    raw.map(|p| PromoCode::parse(p).map_err(|e| Error::invalid_field("invalid_promo_code", e))).transpose()
}

/// Maps the constraints a link write can violate to what the client did wrong. Another brand's
/// creator or campaign fails the composite foreign key exactly like a missing one: a 404 either way.
fn link_write_errors<T>(result: Result<T, sqlx::Error>) -> Result<T, Error> {
    result
        .on_constraint("links_creator_fkey", || Error::NotFound("creator"))
        .on_constraint("links_campaign_fkey", || Error::NotFound("campaign"))
        .on_constraint("links_promo_code_key", || Error::Conflict {
            code: "promo_code_taken",
            message: "another active link of this brand already uses this promo code".into(),
        })
}

fn is_code_collision(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.constraint() == Some("links_code_key"))
}

#[utoipa::path(post, path = "/v1/links", tag = "links", operation_id = "create_link", request_body = CreateLink,
    security(("api_key" = [])),
    responses((status = 201, body = Link),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the creator or campaign is not the brand's"),
        (status = 409, body = ErrorBody, description = "`promo_code_taken`"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_destination_url`, `invalid_promo_code`, or \
            `invalid_body` (a missing, mistyped or unknown field)")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    Json(body): Json<CreateLink>,
) -> Result<(StatusCode, axum::Json<Link>), Error> {
    let fields = body.validate(&state).map_err(first_error)?;
    Ok((StatusCode::CREATED, axum::Json(create_link(&state, brand.id, &fields).await?)))
}

/// The first of a list of validation errors (never empty: `validate` fails with at least one).
fn first_error(errors: Vec<Error>) -> Error {
    errors.into_iter().next().unwrap_or_else(|| anyhow::anyhow!("validation failed without an error").into())
}

/// Creates the brand's link with a fresh code (drawing again on the rare collision). Another brand's
/// creator or campaign is a 404, a promo code in use a 409.
pub async fn create_link(state: &AppState, brand_id: Uuid, fields: &LinkFields) -> Result<Link, Error> {
    for _ in 0..CODE_ATTEMPTS {
        let code = (state.codes)();
        match insert_link(&state.db, brand_id, code.as_str(), fields).await {
            Ok(row) => return row.into_link(&state.config).map_err(Error::from),
            Err(e) if is_code_collision(&e) => {
                tracing::info!(code = %code, "tracking code collision, drawing another");
            }
            Err(e) => return link_write_errors(Err(e)),
        }
    }
    Err(anyhow::anyhow!("no free tracking code after {CODE_ATTEMPTS} attempts").into())
}

/// Inserts the link and its sync record in one statement (so one implicit transaction and one round
/// trip): both are written or neither is.
async fn insert_link(db: &PgPool, brand_id: Uuid, code: &str, f: &LinkFields) -> Result<LinkRow, sqlx::Error> {
    sqlx::query_as::<_, LinkRow>(&format!(
        "with link as (
             insert into links (id, brand_id, code, destination_url, campaign_id, creator_id, platform, content_type,
                                promo_code, share_revenue)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             returning {LINK_COLUMNS}
         ), sync as (
             insert into link_sync_outbox (link_id, version) select id, version from link
         ), event as (
             -- Only brands with an endpoint pay for the event (a probe of a small index otherwise).
             select emit_webhook_event($2, 'link.created', to_jsonb(link), null) from link
             where exists (select 1 from webhook_endpoints where brand_id = $2 and enabled)
         )
         -- The event is a query, run only when read: the join reads it.
         select link.* from link left join event on true"
    ))
    .bind(Uuid::new_v4())
    .bind(brand_id)
    .bind(code)
    .bind(f.destination_url.as_str())
    .bind(f.campaign_id)
    .bind(f.creator_id)
    .bind(f.platform.map(Platform::as_str))
    .bind(f.content_type.map(ContentType::as_str))
    .bind(f.promo_code.as_ref().map(PromoCode::as_str))
    .bind(f.share_revenue)
    .fetch_one(db)
    .await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkFilter {
    pub campaign_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub platform: Option<Platform>,
    pub content_type: Option<ContentType>,
    /// `true`: only active links; `false`: only deleted ones.
    pub active: Option<bool>,
    /// At most this many links (1–200, default 50; else 400 `invalid_limit`).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<Cursor>)]
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/links", tag = "links", operation_id = "list_links", params(LinkFilter),
    security(("api_key" = [])),
    responses((status = 200, body = List<Link>, description = "the brand's links matching the filters, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, or `invalid_query` (a \
            malformed filter)"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<LinkFilter>,
) -> Result<axum::Json<List<Link>>, Error> {
    Ok(axum::Json(list_links(&state, brand.id, &filter).await?))
}

/// One page of the brand's links matching `filter`, newest first.
pub async fn list_links(state: &AppState, brand_id: Uuid, filter: &LinkFilter) -> Result<List<Link>, Error> {
    let page = Page { limit: filter.limit, cursor: filter.cursor.clone() }.parse()?;
    // Only the filters given become conditions, so the planner sees a query it can match to an index.
    let mut query: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("select {LINK_COLUMNS} from links where brand_id = "));
    query.push_bind(brand_id);
    if let Some(id) = filter.campaign_id {
        query.push(" and campaign_id = ").push_bind(id);
    }
    if let Some(id) = filter.creator_id {
        query.push(" and creator_id = ").push_bind(id);
    }
    if let Some(platform) = filter.platform {
        query.push(" and platform = ").push_bind(platform.as_str());
    }
    if let Some(content_type) = filter.content_type {
        query.push(" and content_type = ").push_bind(content_type.as_str());
    }
    if let Some(active) = filter.active {
        query.push(" and active = ").push_bind(active);
    }
    if let Some(seq) = page.before_seq {
        query.push(" and seq < ").push_bind(seq);
    }
    query.push(" order by seq desc limit ").push_bind(page.limit + 1);
    let rows = query.build_query_as::<LinkRow>().fetch_all(&state.db).await?;
    let rows = rows.into_iter().map(|r| Ok((r.seq, r.into_link(&state.config)?))).collect::<Result<Vec<_>, Error>>()?;
    Ok(List::from_rows(rows, page))
}

/// The brand's link with this id, locked for update when `for_update` is set.
pub async fn find(conn: &mut PgConnection, brand_id: Uuid, id: Uuid, for_update: bool) -> Result<LinkRow, Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as::<_, LinkRow>(&format!("select {LINK_COLUMNS} from links where id = $1 and brand_id = $2{lock}"))
        .bind(id)
        .bind(brand_id)
        .fetch_optional(conn)
        .await?
        .ok_or(Error::NotFound("link"))
}

#[utoipa::path(get, path = "/v1/links/{id}", tag = "links", operation_id = "get_link",
    params(("id" = Uuid, Path, description = "the link")), security(("api_key" = [])),
    responses((status = 200, body = Link, description = "the link, deleted ones included (`active: false`)"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "not a link of this brand")))]
pub async fn get(State(state): State<AppState>, brand: Brand, Path(id): Path<Uuid>) -> Result<axum::Json<Link>, Error> {
    Ok(axum::Json(get_link(&state, brand.id, id).await?))
}

/// The brand's link with this id; another brand's is a 404 like a missing one.
pub async fn get_link(state: &AppState, brand_id: Uuid, id: Uuid) -> Result<Link, Error> {
    let mut conn = state.db.acquire().await?;
    Ok(find(&mut conn, brand_id, id, false).await?.into_link(&state.config)?)
}

#[utoipa::path(patch, path = "/v1/links/{id}", tag = "links", operation_id = "update_link", request_body = UpdateLink,
    params(("id" = Uuid, Path, description = "the link")), security(("api_key" = [])),
    responses((status = 200, body = Link),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a link of this brand, or the creator or campaign is not \
            the brand's"),
        (status = 409, body = ErrorBody, description = "`promo_code_taken`, or `link_deleted` (a deleted link \
            cannot be changed)"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_destination_url`, `invalid_promo_code`, or \
            `invalid_body` (a mistyped or unknown field)")))]
pub async fn update(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateLink>,
) -> Result<axum::Json<Link>, Error> {
    let destination = body.destination_url.as_deref().map(|u| parse_destination(&state, u)).transpose()?;
    let promo = body.promo_code.as_ref().map(|p| parse_promo(p.as_deref())).transpose()?;

    let mut tx = state.db.begin().await?;
    let current = find(&mut tx, brand.id, id, true).await?;
    if !current.active {
        return Err(Error::Conflict { code: "link_deleted", message: "a deleted link cannot be changed".into() });
    }
    let platform = match body.platform {
        Some(p) => p,
        None => current.platform.as_deref().map(str::parse).transpose().map_err(anyhow::Error::from)?,
    };
    let content_type = match body.content_type {
        Some(c) => c,
        None => current.content_type.as_deref().map(str::parse).transpose().map_err(anyhow::Error::from)?,
    };
    let promo_code = match promo {
        Some(p) => p,
        None => current.promo_code.as_deref().map(PromoCode::parse).transpose().map_err(anyhow::Error::msg)?,
    };
    let fields = LinkFields {
        destination_url: match destination {
            Some(d) => d,
            None => domain::DestinationUrl::parse(&current.destination_url, &state.config.tracking_base_url)
                .map_err(anyhow::Error::from)?,
        },
        campaign_id: body.campaign_id.unwrap_or(current.campaign_id),
        creator_id: body.creator_id.unwrap_or(current.creator_id),
        platform,
        content_type,
        promo_code,
        share_revenue: body.share_revenue.unwrap_or(current.share_revenue),
    };
    let row = link_write_errors(
        sqlx::query_as::<_, LinkRow>(&format!(
            "update links set destination_url = $3, campaign_id = $4, creator_id = $5, platform = $6,
                 content_type = $7, promo_code = $8, share_revenue = $9, version = version + 1, updated_at = now()
             where id = $1 and brand_id = $2
             returning {LINK_COLUMNS}"
        ))
        .bind(id)
        .bind(brand.id)
        .bind(fields.destination_url.as_str())
        .bind(fields.campaign_id)
        .bind(fields.creator_id)
        .bind(fields.platform.map(Platform::as_str))
        .bind(fields.content_type.map(ContentType::as_str))
        .bind(fields.promo_code.as_ref().map(PromoCode::as_str))
        .bind(fields.share_revenue)
        .fetch_one(&mut *tx)
        .await,
    )?;
    crate::links::record_change(&mut tx, brand.id, &row, "link.updated").await?;
    tx.commit().await?;
    Ok(axum::Json(row.into_link(&state.config)?))
}

#[utoipa::path(delete, path = "/v1/links/{id}", tag = "links", operation_id = "delete_link",
    params(("id" = Uuid, Path, description = "the link")), security(("api_key" = [])),
    description = "Soft delete: the link is deactivated (`active: false`, `deleted_at` set) and stops redirecting, \
        but it, its clicks and its conversions stay readable.",
    responses((status = 204, description = "deactivated (also when it already was)"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a link of this brand")))]
pub async fn delete(State(state): State<AppState>, brand: Brand, Path(id): Path<Uuid>) -> Result<StatusCode, Error> {
    deactivate(&state.db, brand.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Soft-deletes the brand's link: inactive, `deleted_at` set, the edge told; clicks and conversions
/// stay. Deactivating an inactive link changes nothing and is not an error.
pub async fn deactivate(db: &PgPool, brand_id: Uuid, id: Uuid) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    let current = find(&mut tx, brand_id, id, true).await?;
    if current.active {
        let row = sqlx::query_as::<_, LinkRow>(&format!(
            "update links set active = false, deleted_at = now(), version = version + 1, updated_at = now()
             where id = $1 returning {LINK_COLUMNS}"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        crate::links::record_change(&mut tx, brand_id, &row, "link.deactivated").await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Which links an export holds: the list's filters, every matching link.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkExportFilter {
    pub campaign_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub platform: Option<Platform>,
    pub content_type: Option<ContentType>,
    /// `true`: only active links; `false`: only deleted ones.
    pub active: Option<bool>,
}

const EXPORT_COLUMNS: [&str; 22] = [
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
];

#[utoipa::path(get, path = "/v1/links.csv", tag = "links", operation_id = "export_links", params(LinkExportFilter),
    security(("api_key" = [])),
    description = "Every link matching the filters, newest first, with its all-time figures, as CSV (RFC 4180, UTF-8, \
        header row), streamed. Orders count as in every report; a link with orders in several currencies has one row \
        per currency, its clicks on the first. Cells a spreadsheet would run as formulas start with `'`.",
    responses((status = 200, content_type = "text/csv", body = String, description = "the CSV file"),
        (status = 400, body = ErrorBody, description = "`invalid_query`: a malformed filter"),
        (status = 401, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<LinkExportFilter>,
) -> axum::response::Response {
    export_csv(state, brand.id, filter)
}

/// The links export, for the REST API and the dashboard alike.
pub fn export_csv(state: AppState, brand_id: Uuid, filter: LinkExportFilter) -> axum::response::Response {
    let pages = super::csv::paged(move |cursor: Option<String>| {
        let (state, filter) = (state.clone(), filter.clone());
        async move { export_page(&state, brand_id, filter, cursor).await }
    });
    super::csv::download("links.csv", &EXPORT_COLUMNS, pages)
}

/// One page of the links export at `cursor`, and the next page's cursor.
async fn export_page(
    state: &AppState,
    brand_id: Uuid,
    filter: LinkExportFilter,
    cursor: Option<String>,
) -> Result<(super::csv::Rows, Option<String>), Error> {
    use super::csv::{amount, instant, text};
    let LinkExportFilter { campaign_id, creator_id, platform, content_type, active } = filter;
    let list_filter = LinkFilter {
        campaign_id,
        creator_id,
        platform,
        content_type,
        active,
        limit: Some(super::extract::MAX_LIMIT),
        cursor,
    };
    let page = list_links(state, brand_id, &list_filter).await?;
    let ids: Vec<Uuid> = page.data.iter().map(|l| l.id).collect();
    let totals = crate::revenue::link_totals(&state.db, brand_id, &ids).await?;
    let labels = crate::links::labels(&state.db, brand_id, &ids).await?;
    let mut rows = Vec::with_capacity(page.data.len());
    for link in page.data {
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
        let conversions: i64 = total.per_currency.iter().map(|f| f.conversions).sum();
        let rate = super::attribution::rate(conversions, total.clicks);
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
            rows.push(row);
        }
    }
    Ok((rows, page.next_cursor))
}
