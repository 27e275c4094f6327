//! `GET /v1/links/{id}/stats`: what one link did over a window.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::super::auth::Brand;
use super::super::error::{Error, ErrorBody};
use super::super::extract::{Path, Query};
use super::super::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// Inclusive start (RFC 3339); default: the beginning of time.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end (RFC 3339); default: now.
    pub to: Option<DateTime<Utc>>,
}

impl Window {
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
        let from = self.from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = self.to.unwrap_or(now);
        if from > to {
            return Err(Error::bad_request("invalid_window", "from must not be after to"));
        }
        Ok((from, to))
    }
}

/// An amount of money in minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayCount {
    pub date: NaiveDate,
    pub clicks: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStats {
    /// Human clicks (bots excluded).
    pub clicks: i64,
    /// Distinct visitors among the human clicks.
    pub unique_clicks: i64,
    /// Clicks by bots and link-preview crawlers, left out of every other count.
    pub bot_clicks: i64,
    /// Orders credited to this link.
    pub conversions: i64,
    /// Credited revenue net of refunds, one entry per currency.
    pub revenue: Vec<Money>,
    /// conversions / clicks (0 when there are no clicks).
    pub conversion_rate: f64,
    pub by_day: Vec<DayCount>,
    pub by_country: BTreeMap<String, i64>,
    pub by_device: BTreeMap<String, i64>,
    pub by_browser: BTreeMap<String, i64>,
    pub by_os: BTreeMap<String, i64>,
}

#[derive(sqlx::FromRow)]
struct Totals {
    clicks: i64,
    unique_clicks: i64,
    bot_clicks: i64,
}

#[utoipa::path(get, path = "/v1/links/{id}/stats", tag = "links", params(Window), security(("api_key" = [])),
    responses((status = 200, body = LinkStats), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Query(window): Query<Window>,
) -> Result<axum::Json<LinkStats>, Error> {
    let (from, to) = window.resolve(Utc::now())?;
    let mut conn = state.db.acquire().await?;
    super::find(&mut conn, brand.id, id, false).await?;

    let totals = sqlx::query_as::<_, Totals>(
        "select count(*) filter (where not bot) as clicks,
                count(distinct visitor_id) filter (where not bot) as unique_clicks,
                count(*) filter (where bot) as bot_clicks
         from clicks where link_id = $1 and occurred_at >= $2 and occurred_at < $3",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?;

    let by_day = sqlx::query_as::<_, (NaiveDate, i64)>(
        "select (occurred_at at time zone 'UTC')::date as day, count(*)
         from clicks where link_id = $1 and occurred_at >= $2 and occurred_at < $3 and not bot
         group by day order by day",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(date, clicks)| DayCount { date, clicks })
    .collect();

    let mut breakdowns = [BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new()];
    let rows = sqlx::query_as::<_, (i32, Option<String>, i64)>(
        "select dimension, value, count(*) from (
             select unnest(array[0, 1, 2, 3]) as dimension,
                    unnest(array[country, device_type, browser, os]) as value
             from clicks where link_id = $1 and occurred_at >= $2 and occurred_at < $3 and not bot
         ) d group by dimension, value",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    for (dimension, value, count) in rows {
        if let Some(map) = usize::try_from(dimension).ok().and_then(|d| breakdowns.get_mut(d)) {
            map.insert(value.unwrap_or_else(|| "unknown".to_owned()), count);
        }
    }
    let [by_country, by_device, by_browser, by_os] = breakdowns;

    let (conversions, revenue) = conversions_of(&mut conn, id, from, to).await?;
    let conversion_rate = if totals.clicks > 0 { conversions as f64 / totals.clicks as f64 } else { 0.0 };

    Ok(axum::Json(LinkStats {
        clicks: totals.clicks,
        unique_clicks: totals.unique_clicks,
        bot_clicks: totals.bot_clicks,
        conversions,
        revenue,
        conversion_rate,
        by_day,
        by_country,
        by_device,
        by_browser,
        by_os,
    }))
}

/// Orders credited to the link in the window, and their revenue net of refunds per currency.
async fn conversions_of(
    conn: &mut sqlx::PgConnection,
    link_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(i64, Vec<Money>), Error> {
    let rows = sqlx::query_as::<_, (String, i64, i64)>(
        "select currency, count(*), sum(greatest(amount_minor - refunded_minor, 0))::bigint
         from conversions where link_id = $1 and occurred_at >= $2 and occurred_at < $3
         group by currency order by currency",
    )
    .bind(link_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let conversions = rows.iter().map(|(_, n, _)| n).sum();
    let revenue = rows.into_iter().map(|(currency, _, amount_minor)| Money { amount_minor, currency }).collect();
    Ok((conversions, revenue))
}
