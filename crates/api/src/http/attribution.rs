//! `GET /v1/attribution` (totals per creator, link, campaign, platform or content type) and
//! `GET /v1/conversions` (every order, with the credit that explains it).

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Query};
use super::AppState;
use crate::money::Money;
use crate::reports::Window;

/// What attribution rows are grouped by.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Creator,
    Link,
    Campaign,
    Platform,
    ContentType,
}

impl GroupBy {
    /// The grouping expression over `links l`. A fixed string per variant: never built from input.
    fn key(self) -> &'static str {
        match self {
            GroupBy::Creator => "l.creator_id::text",
            GroupBy::Link => "l.id::text",
            GroupBy::Campaign => "l.campaign_id::text",
            GroupBy::Platform => "l.platform",
            GroupBy::ContentType => "l.content_type",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttributionParams {
    pub group_by: GroupBy,
    /// Inclusive start (RFC 3339); default: 30 days before `to`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end (RFC 3339); default: now.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct AttributionRow {
    /// The creator, link or campaign id, or the platform or content type; null for links without one.
    pub key: Option<String>,
    pub clicks: i64,
    pub unique_clicks: i64,
    pub conversions: i64,
    /// Credited revenue net of refunds, per currency.
    pub revenue: Vec<Money>,
    /// conversions / clicks (0 without clicks).
    pub conversion_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attribution {
    pub group_by: GroupBy,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub data: Vec<AttributionRow>,
}

type Key = Option<String>;

async fn rollup_clicks(
    db: &PgPool,
    brand: Uuid,
    key: &str,
    start: NaiveDate,
    end: Option<NaiveDate>,
) -> Result<Vec<(Key, i64, i64)>, sqlx::Error> {
    // Summed per link first (an index-only scan), so only one row per link meets the join.
    sqlx::query_as(&format!(
        "select {key}, sum(d.clicks)::bigint, sum(d.unique_clicks)::bigint
         from (select link_id, sum(clicks) as clicks, sum(unique_clicks) as unique_clicks
               from link_daily_all where brand_id = $1 and day >= $2 and ($3::date is null or day < $3)
               group by link_id) d
         join links l on l.id = d.link_id
         group by 1"
    ))
    .bind(brand)
    .bind(start)
    .bind(end)
    .fetch_all(db)
    .await
}

async fn raw_clicks(
    db: &PgPool,
    brand: Uuid,
    key: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Key, i64, i64)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select key, sum(clicks)::bigint, sum(uniques)::bigint from (
             select {key} as key, count(*) as clicks, 0 as uniques
             from clicks c join links l on l.id = c.link_id
             where c.brand_id = $1 and c.occurred_at >= $2 and c.occurred_at < $3 and not c.bot group by 1
             union all
             select {key}, 0, count(*)
             from link_visitors v join links l on l.id = v.link_id
             where v.brand_id = $1 and v.first_click_at >= $2 and v.first_click_at < $3 group by 1
         ) parts group by key"
    ))
    .bind(brand)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

#[utoipa::path(get, path = "/v1/attribution", tag = "attribution", params(AttributionParams), security(("api_key" = [])),
    responses((status = 200, body = Attribution), (status = 400, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    brand: Brand,
    Query(params): Query<AttributionParams>,
) -> Result<axum::Json<Attribution>, Error> {
    let to = params.to.unwrap_or_else(Utc::now);
    let from = params.from.unwrap_or(to - Duration::days(30));
    let data = attribution_rows(&state.db, brand.id, params.group_by, from, to).await?;
    Ok(axum::Json(Attribution { group_by: params.group_by, from, to, data }))
}

/// The brand's clicks, unique clicks, conversions and revenue in `[from, to)`, one row per group, most
/// conversions first.
pub async fn attribution_rows(
    db: &PgPool,
    brand_id: Uuid,
    group_by: GroupBy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AttributionRow>, Error> {
    if from > to {
        return Err(Error::bad_request("invalid_window", "from must not be after to"));
    }
    let key = group_by.key();
    // Clicks and conversions are independent: read them at the same time, on two connections.
    let split = Window { from, to: Some(to) }.split();
    let clicks = async {
        let mut parts = Vec::new();
        if let Some((start, end)) = split.days {
            parts.extend(rollup_clicks(db, brand_id, key, start, end).await?);
        }
        for (f, t) in &split.raw {
            parts.extend(raw_clicks(db, brand_id, key, *f, *t).await?);
        }
        Ok::<_, sqlx::Error>(parts)
    };
    let conversions_sql = format!(
        "select {key}, c.currency, sum(c.n)::bigint, sum(c.net)::bigint
         from (select link_id, currency, count(*) as n, sum(greatest(amount_minor - refunded_minor, 0)) as net
               from conversions where brand_id = $1 and occurred_at >= $2 and occurred_at < $3 and link_id is not null
               group by link_id, currency) c
         join links l on l.id = c.link_id
         group by 1, 2 order by 2"
    );
    let conversions =
        sqlx::query_as::<_, (Key, String, i64, i64)>(&conversions_sql).bind(brand_id).bind(from).bind(to).fetch_all(db);
    let (click_parts, conversions) = tokio::try_join!(clicks, conversions)?;

    let mut rows: HashMap<Key, AttributionRow> = HashMap::new();
    for (k, clicks, uniques) in click_parts {
        let row = rows.entry(k.clone()).or_insert_with(|| AttributionRow { key: k, ..Default::default() });
        row.clicks += clicks;
        row.unique_clicks += uniques;
    }
    for (k, currency, count, amount_minor) in conversions {
        let row = rows.entry(k.clone()).or_insert_with(|| AttributionRow { key: k, ..Default::default() });
        row.conversions += count;
        row.revenue.push(Money { amount_minor, currency });
    }
    let mut data: Vec<AttributionRow> = rows.into_values().collect();
    for row in &mut data {
        row.conversion_rate = if row.clicks > 0 { row.conversions as f64 / row.clicks as f64 } else { 0.0 };
    }
    data.sort_by(|a, b| b.conversions.cmp(&a.conversions).then(b.clicks.cmp(&a.clicks)).then(a.key.cmp(&b.key)));
    Ok(data)
}

/// One UTC day of a brand's activity: human clicks, and revenue credited net of refunds per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub clicks: i64,
    pub revenue: Vec<Money>,
}

/// The brand's clicks and credited revenue per UTC day in `[from, to)`, for charts. Whole days come from
/// the rollups, partial days at the edges from the raw clicks, as in every report.
pub async fn daily_totals(
    db: &PgPool,
    brand_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<NaiveDate, DayTotals>, Error> {
    let split = Window { from, to: Some(to) }.split();
    let mut days: BTreeMap<NaiveDate, DayTotals> = BTreeMap::new();
    if let Some((start, end)) = split.days {
        let rows: Vec<(NaiveDate, i64)> = sqlx::query_as(
            "select day, sum(clicks)::bigint from link_daily_all
             where brand_id = $1 and day >= $2 and ($3::date is null or day < $3) group by day",
        )
        .bind(brand_id)
        .bind(start)
        .bind(end)
        .fetch_all(db)
        .await?;
        for (day, clicks) in rows {
            days.entry(day).or_default().clicks += clicks;
        }
    }
    for (f, t) in &split.raw {
        let rows: Vec<(NaiveDate, i64)> = sqlx::query_as(
            "select (occurred_at at time zone 'UTC')::date, count(*) from clicks
             where brand_id = $1 and occurred_at >= $2 and occurred_at < $3 and not bot group by 1",
        )
        .bind(brand_id)
        .bind(f)
        .bind(t)
        .fetch_all(db)
        .await?;
        for (day, clicks) in rows {
            days.entry(day).or_default().clicks += clicks;
        }
    }
    let revenue: Vec<(NaiveDate, String, i64)> = sqlx::query_as(
        "select (occurred_at at time zone 'UTC')::date, currency, sum(greatest(amount_minor - refunded_minor, 0))::bigint
         from conversions where brand_id = $1 and occurred_at >= $2 and occurred_at < $3 and link_id is not null
         group by 1, 2 order by 2",
    )
    .bind(brand_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    for (day, currency, amount_minor) in revenue {
        days.entry(day).or_default().revenue.push(Money { amount_minor, currency });
    }
    Ok(days)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversionFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub creator_id: Option<Uuid>,
    pub link_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One order and the credit that explains its revenue.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Conversion {
    pub order_id: String,
    /// The order's amount as reported (Shopify's, once Shopify reported it).
    #[sqlx(skip)]
    pub amount: Option<Money>,
    /// Refunded so far.
    #[sqlx(skip)]
    pub refunded: Option<Money>,
    /// What is credited: amount minus refunds, never below zero.
    #[sqlx(skip)]
    pub net: Option<Money>,
    /// The credited link; null when the order credits nobody.
    pub link_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    /// `click` or `promo_code`; null when nobody is credited.
    pub method: Option<String>,
    /// The credited click, for `click` credits.
    pub click_id: Option<String>,
    /// When the order was placed.
    pub occurred_at: DateTime<Utc>,
    /// When the current credit was decided.
    pub credited_at: Option<DateTime<Utc>>,
    /// Who reported the order first: `pixel` or `shopify`.
    pub source: String,
    /// Discount codes the order carried.
    pub discount_codes: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct ConversionRow {
    seq: i64,
    amount_minor: i64,
    refunded_minor: i64,
    currency: String,
    click_uuid: Option<Uuid>,
    #[sqlx(flatten)]
    conversion: Conversion,
}

#[utoipa::path(get, path = "/v1/conversions", tag = "attribution", params(ConversionFilter), security(("api_key" = [])),
    responses((status = 200, body = List<Conversion>), (status = 400, body = ErrorBody)))]
pub async fn conversions(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<ConversionFilter>,
) -> Result<axum::Json<List<Conversion>>, Error> {
    Ok(axum::Json(list_conversions(&state.db, brand.id, &filter).await?))
}

/// One page of the brand's orders matching `filter`, newest first, each with its credit.
pub async fn list_conversions(
    db: &PgPool,
    brand_id: Uuid,
    filter: &ConversionFilter,
) -> Result<List<Conversion>, Error> {
    let page = Page { limit: filter.limit, cursor: filter.cursor.clone() }.parse()?;
    let rows: Vec<ConversionRow> = sqlx::query_as(
        "select c.seq, c.order_id, c.amount_minor, c.refunded_minor, c.currency, c.link_id, l.creator_id, c.method,
                c.click_id as click_uuid, null::text as click_id, c.occurred_at, c.credited_at, c.source,
                c.discount_codes
         from conversions c left join links l on l.id = c.link_id
         where c.brand_id = $1
           and ($2::timestamptz is null or c.occurred_at >= $2) and ($3::timestamptz is null or c.occurred_at < $3)
           and ($4::uuid is null or l.creator_id = $4) and ($5::uuid is null or c.link_id = $5)
           and ($6::bigint is null or c.seq < $6)
         order by c.seq desc limit $7",
    )
    .bind(brand_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.creator_id)
    .bind(filter.link_id)
    .bind(page.before_seq)
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let money = |amount_minor: i64| Some(Money { amount_minor, currency: r.currency.clone() });
            let mut c = r.conversion;
            c.amount = money(r.amount_minor);
            c.refunded = money(r.refunded_minor);
            c.net = money((r.amount_minor - r.refunded_minor).max(0));
            c.click_id = r.click_uuid.map(|u| u.simple().to_string());
            (r.seq, c)
        })
        .collect();
    Ok(List::from_rows(items, page))
}
