//! `GET /v1/attribution`: totals per creator, link, campaign, platform or content type. Which orders
//! count, and how, is [`crate::revenue`]'s to say.

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::Query;
use super::AppState;
use crate::attribution_report::{attribution_rows, AttributionRow, GroupBy};
use crate::money::Money;
use crate::reports::EARLIEST;
use crate::schema::Instant;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttributionParams {
    pub group_by: GroupBy,
    /// Inclusive start (RFC 3339, from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z; else 400
    /// `invalid_query`); default: 30 days before `to`. Not after `to`, or after now when `to` is left out
    /// (else 400 `invalid_window`).
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    #[param(value_type = Option<Instant>)]
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end (RFC 3339, same range as `from`); default: now.
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    #[param(value_type = Option<Instant>)]
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attribution {
    pub group_by: GroupBy,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub data: Vec<AttributionRow>,
}

#[utoipa::path(get, path = "/v1/attribution", tag = "attribution", operation_id = "attribution_report",
    params(AttributionParams), security(("api_key" = [])),
    responses((status = 200, body = Attribution),
        (status = 400, body = ErrorBody, description = "`invalid_query` (a malformed or out-of-range date, an unknown \
            `group_by`), `invalid_window` (`from` after `to`)"),
        (status = 401, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    brand: Brand,
    Query(params): Query<AttributionParams>,
) -> Result<axum::Json<Attribution>, Error> {
    Ok(axum::Json(attribution(&state, brand.id, &params).await?))
}

/// The report the parameters ask for: `to` defaults to now, `from` to 30 days before `to`.
async fn attribution(state: &AppState, brand_id: Uuid, params: &AttributionParams) -> Result<Attribution, Error> {
    let to = params.to.unwrap_or_else(Utc::now);
    // `to` is in the accepted range, so 30 days before it is a date PostgreSQL holds too.
    let from = params.from.unwrap_or_else(|| to.checked_sub_signed(Duration::days(30)).unwrap_or(EARLIEST));
    if from > to {
        return Err(Error::bad_request("invalid_window", "from must not be after to"));
    }
    let data = attribution_rows(state.read(), brand_id, params.group_by, from, to).await?;
    Ok(Attribution { group_by: params.group_by, from, to, data })
}

const EXPORT_COLUMNS: [&str; 12] = [
    "group_by",
    "key",
    "from",
    "to",
    "clicks",
    "unique_clicks",
    "conversions",
    "pending_conversions",
    "conversion_rate",
    "currency",
    "revenue",
    "pending_revenue",
];

#[utoipa::path(get, path = "/v1/attribution.csv", tag = "attribution", operation_id = "export_attribution",
    params(AttributionParams), security(("api_key" = [])),
    description = "The attribution report as CSV (RFC 4180, UTF-8, header row): the same groups, window and figures \
        as `GET /v1/attribution`. A group with revenue in several currencies has one row per currency, its counts on \
        the first. Cells a spreadsheet would run as formulas start with `'`.",
    responses((status = 200, content_type = "text/csv", body = String, description = "the CSV file"),
        (status = 400, body = ErrorBody, description = "`invalid_query`, `invalid_window`"),
        (status = 401, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    brand: Brand,
    Query(params): Query<AttributionParams>,
) -> Result<axum::response::Response, Error> {
    export_csv(&state, brand.id, &params).await
}

/// The attribution export, for the REST API and the dashboard alike.
pub async fn export_csv(
    state: &AppState,
    brand_id: Uuid,
    params: &AttributionParams,
) -> Result<axum::response::Response, Error> {
    use super::csv::{amount, instant};
    let report = attribution(state, brand_id, params).await?;
    let group_by = report.group_by.as_str();
    let (from, to) = (instant(Some(report.from)), instant(Some(report.to)));
    let mut rows = Vec::new();
    for row in report.data {
        let mut currencies: Vec<&str> = row.figures.revenue.iter().map(|m| m.currency.as_str()).collect();
        for m in &row.figures.pending_revenue {
            if !currencies.contains(&m.currency.as_str()) {
                currencies.push(&m.currency);
            }
        }
        currencies.sort_unstable();
        let find = |list: &[Money], currency: &str| {
            list.iter().find(|m| m.currency == currency).map(amount).unwrap_or_else(|| "0".to_owned())
        };
        let lines: Vec<Option<&str>> =
            if currencies.is_empty() { vec![None] } else { currencies.into_iter().map(Some).collect() };
        for (i, currency) in lines.into_iter().enumerate() {
            let first = i == 0;
            let counts = |n: i64| if first { n.to_string() } else { String::new() };
            rows.push(vec![
                group_by.to_owned(),
                row.key.clone().unwrap_or_default(),
                from.clone(),
                to.clone(),
                counts(row.clicks),
                counts(row.unique_clicks),
                counts(row.figures.conversions),
                counts(row.figures.pending_conversions),
                if first { format!("{:.4}", row.conversion_rate) } else { String::new() },
                currency.unwrap_or_default().to_owned(),
                currency.map(|c| find(&row.figures.revenue, c)).unwrap_or_default(),
                currency.map(|c| find(&row.figures.pending_revenue, c)).unwrap_or_default(),
            ]);
        }
    }
    let filename = format!("attribution-{group_by}.csv");
    Ok(super::csv::download(&filename, &EXPORT_COLUMNS, futures_util::stream::once(async move { Ok(rows) })))
}
