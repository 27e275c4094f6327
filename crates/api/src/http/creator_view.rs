//! Creators' own view: read-only tokens a brand hands to a creator, and `GET /v1/me/links`.
//!
//! A creator always sees the clicks and conversions of their links; revenue only on links that share
//! it, and there the field is present, elsewhere absent (not zero, which would be a lie).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::{ContentType, Platform};

use super::auth::{bearer, Brand};
use super::error::{Error, ErrorBody, ResultExt};
use super::extract::{List, Page, Path, Query};
use super::AppState;
use crate::money::Money;
use crate::revenue::{self, CurrencyFigures, Figures};
use crate::secrets::{self, NewSecret, SecretKind};

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatorToken {
    /// Shown once; only its hash is stored.
    pub token: String,
    pub prefix: String,
    pub creator_id: Uuid,
    pub created_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/creators/{id}/tokens", tag = "creators", security(("api_key" = [])),
    responses((status = 201, body = CreatorToken), (status = 404, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    brand: Brand,
    Path(creator_id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<CreatorToken>), Error> {
    let token = NewSecret::generate(SecretKind::CreatorToken, &mut rand::thread_rng());
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "insert into creator_tokens (id, creator_id, brand_id, prefix, token_hash) values ($1, $2, $3, $4, $5)
         returning created_at",
    )
    .bind(Uuid::new_v4())
    .bind(creator_id)
    .bind(brand.id)
    .bind(&token.prefix)
    .bind(&token.hash)
    .fetch_one(&state.db)
    .await
    .on_constraint("creator_tokens_creator_fkey", || Error::NotFound("creator"))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatorToken { token: token.text, prefix: token.prefix, creator_id, created_at }),
    ))
}

/// The creator a request acts for, proven by an unrevoked creator token. It opens `/v1/me` and
/// nothing else: brand endpoints only accept API keys.
pub struct Creator {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for Creator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = bearer(parts).ok_or(Error::Unauthorized)?;
        let prefix = secrets::prefix_of(SecretKind::CreatorToken, presented).ok_or(Error::Unauthorized)?;
        let row: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
            "select creator_id, token_hash from creator_tokens where prefix = $1 and revoked_at is null",
        )
        .bind(prefix)
        .fetch_optional(&state.db)
        .await?;
        match row {
            Some((id, hash)) if secrets::verify(presented, &hash) => Ok(Creator { id }),
            _ => Err(Error::Unauthorized),
        }
    }
}

/// One of the creator's links with its totals (all time).
#[derive(Debug, Serialize, ToSchema)]
pub struct MyLink {
    pub id: Uuid,
    pub code: String,
    pub short_url: String,
    pub destination_url: String,
    pub platform: Option<Platform>,
    pub content_type: Option<ContentType>,
    pub promo_code: Option<String>,
    pub share_revenue: bool,
    pub active: bool,
    pub clicks: i64,
    pub unique_clicks: i64,
    /// Orders credited to the link that count (`verified`, `unverified`).
    pub conversions: i64,
    /// Orders credited to the link still waiting for the store's confirmation (`pending`).
    pub pending_conversions: i64,
    /// Present only when the brand shares revenue on this link: the counted orders' revenue net of
    /// refunds, per currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Vec<Money>>,
    /// Present only when the brand shares revenue on this link: the pending orders' revenue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_revenue: Option<Vec<Money>>,
}

#[derive(sqlx::FromRow)]
struct MyLinkRow {
    seq: i64,
    id: Uuid,
    code: String,
    destination_url: String,
    platform: Option<String>,
    content_type: Option<String>,
    promo_code: Option<String>,
    share_revenue: bool,
    active: bool,
    clicks: i64,
    unique_clicks: i64,
    /// The link's figures per currency, as JSON rows of [`CurrencyFigures`].
    figures: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/v1/me/links", tag = "creators", params(Page), security(("creator_token" = [])),
    responses((status = 200, body = List<MyLink>), (status = 401, body = ErrorBody)))]
pub async fn my_links(
    State(state): State<AppState>,
    creator: Creator,
    Query(page): Query<Page>,
) -> Result<axum::Json<List<MyLink>>, Error> {
    let page = page.parse()?;
    let rows: Vec<MyLinkRow> = sqlx::query_as(&format!(
        "select l.seq, l.id, l.code, l.destination_url, l.platform, l.content_type, l.promo_code, l.share_revenue,
                l.active,
                coalesce(d.clicks, 0) as clicks, coalesce(d.unique_clicks, 0) as unique_clicks, c.figures
         from links l
         left join lateral (
             select sum(clicks)::bigint as clicks, sum(unique_clicks)::bigint as unique_clicks
             from link_daily_all where link_id = l.id
         ) d on true
         left join lateral (
             select jsonb_agg(to_jsonb(per_currency)) as figures
             from (select currency, {figures} from conversions where link_id = l.id and {reported}
                   group by currency) per_currency
         ) c on true
         where l.creator_id = $1 and ($2::bigint is null or l.seq < $2)
         order by l.seq desc limit $3",
        figures = revenue::FIGURES,
        reported = revenue::REPORTED,
    ))
    .bind(creator.id)
    .bind(page.before_seq)
    .bind(page.limit + 1)
    .fetch_all(&state.db)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let figures = figures_of(r.figures);
            let link = MyLink {
                short_url: state.config.short_url(&r.code),
                id: r.id,
                code: r.code,
                destination_url: r.destination_url,
                platform: r.platform.as_deref().and_then(|p| p.parse().ok()),
                content_type: r.content_type.as_deref().and_then(|c| c.parse().ok()),
                promo_code: r.promo_code,
                share_revenue: r.share_revenue,
                active: r.active,
                clicks: r.clicks,
                unique_clicks: r.unique_clicks,
                conversions: figures.conversions,
                pending_conversions: figures.pending_conversions,
                revenue: r.share_revenue.then(|| figures.revenue.clone()),
                pending_revenue: r.share_revenue.then(|| figures.pending_revenue.clone()),
            };
            (r.seq, link)
        })
        .collect();
    Ok(axum::Json(List::from_rows(items, page)))
}

/// Adds up a link's per-currency figures, as the lateral query returns them.
fn figures_of(json: Option<serde_json::Value>) -> Figures {
    let rows: Vec<CurrencyFigures> = json.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let mut figures = Figures::default();
    for row in &rows {
        figures.add(row);
    }
    figures
}
