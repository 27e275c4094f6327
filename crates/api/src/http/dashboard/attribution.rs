//! `/brand/attribution`: the period's totals, clicks and revenue per day, the tables by creator, link
//! and campaign, and every order with the credit that explains it. The figures are the REST reports'
//! (`/v1/attribution`, `/v1/conversions`), computed by the same functions.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::super::attribution::AttributionParams;
use super::super::conversions::{list_conversions, ExportFilter};
use super::super::error::Error;
use super::super::AppState;
use super::links::Names;
use super::session::Session;
use super::views::{self, Section};
use super::DashError;
use crate::attribution::Status;
use crate::attribution_report::{attribution_rows, daily_totals, rate, AttributionRow, GroupBy};
use crate::conversions::{Conversion, ConversionFilter};
use crate::revenue::Figures;

/// The periods offered, in days (today included).
const PERIODS: [u64; 3] = [7, 30, 90];
const ORDERS_PER_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AttributionQuery {
    days: Option<u64>,
    orders_cursor: Option<String>,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The last `days` whole UTC days, today included: midnight-aligned, so every figure comes from the
/// rollups and none from a scan of raw clicks.
fn period(today: NaiveDate, days: u64) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = today.checked_sub_days(Days::new(days.saturating_sub(1))).unwrap_or(today);
    let end = today.checked_add_days(Days::new(1)).unwrap_or(today);
    (midnight(start), midnight(end))
}

/// The period a page or an export asks for (one of [`PERIODS`], else 30 days), and its bounds.
fn chosen_period(days: Option<u64>) -> (u64, DateTime<Utc>, DateTime<Utc>) {
    let days = days.filter(|d| PERIODS.contains(d)).unwrap_or(30);
    let (from, to) = period(Utc::now().date_naive(), days);
    (days, from, to)
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    days: Option<u64>,
    group_by: GroupBy,
}

/// `GET /brand/attribution.csv?days=&group_by=`: one of the page's reports, for its period.
pub async fn export(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ExportQuery>,
) -> Result<Response, DashError> {
    let (_, from, to) = chosen_period(query.days);
    let params = AttributionParams { group_by: query.group_by, from: Some(from), to: Some(to) };
    Ok(super::super::attribution::export_csv(&state, session.brand.id, &params).await?)
}

/// `GET /brand/attribution/orders.csv?days=`: the period's orders, as the page lists them.
pub async fn export_orders(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<AttributionQuery>,
) -> Result<Response, DashError> {
    let (_, from, to) = chosen_period(query.days);
    let filter = ExportFilter { from: Some(from), to: Some(to), ..Default::default() };
    Ok(super::super::conversions::export_csv(state, session.brand.id, filter))
}

/// `GET /brand/attribution?days=7|30|90`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<AttributionQuery>,
) -> Result<Response, DashError> {
    let (days, from, to) = chosen_period(query.days);
    let brand = session.brand.id;
    let (by_link, by_creator, by_campaign, per_day) = tokio::try_join!(
        attribution_rows(state.read(), brand, GroupBy::Link, from, to),
        attribution_rows(state.read(), brand, GroupBy::Creator, from, to),
        attribution_rows(state.read(), brand, GroupBy::Campaign, from, to),
        daily_totals(state.read(), brand, from, to),
    )?;
    let filter = ConversionFilter {
        from: Some(from),
        to: Some(to),
        limit: Some(ORDERS_PER_PAGE),
        cursor: query.orders_cursor.clone().filter(|c| !c.is_empty()),
        ..Default::default()
    };
    let orders = list_conversions(&state, brand, &filter).await.map_err(|e| match e {
        Error::Invalid { message, .. } => DashError::BadRequest(message),
        other => DashError::Api(other),
    })?;
    let names = Names::load(&state, brand).await?;
    let codes = link_codes(&state, brand, by_link.iter().filter_map(|r| r.key.as_deref()), &orders.data).await?;

    let mut total = AttributionRow::default();
    for row in &by_link {
        total.clicks += row.clicks;
        total.unique_clicks += row.unique_clicks;
        total.figures.merge(&row.figures);
    }
    let rate = rate(total.figures.conversions, total.clicks);
    let orders_table = conversions_table(&state, brand, &orders.data, &codes, &names).await?;
    let days_in = (0..days).filter_map(|i| from.date_naive().checked_add_days(Days::new(i))).collect::<Vec<_>>();

    let content = html! {
        div.page-head {
            h1 { "Attribution" }
            nav.periods aria-label="Period" {
                @for d in PERIODS {
                    a href=(format!("/brand/attribution?days={d}")) aria-current=[(d == days).then_some("page")] { "Last " (d) " days" }
                }
            }
        }
        p.period { (from.format("%b %-d, %Y")) " – " ((to - chrono::Duration::days(1)).format("%b %-d, %Y")) " (UTC)" }
        nav.exports aria-label="Export this period as CSV" {
            span { "Export CSV: " }
            a href=(format!("/brand/attribution/orders.csv?days={days}")) download { "Orders" }
            @for (group, label) in [("creator", "By creator"), ("link", "By link"), ("campaign", "By campaign")] {
                a href=(format!("/brand/attribution.csv?days={days}&group_by={group}")) download { (label) }
            }
        }
        ul.totals aria-label="Totals for the period" {
            li { span.label { "Clicks" } span.value data-total="clicks" { (total.clicks) } }
            li { span.label { "Unique clicks" } span.value data-total="unique_clicks" { (total.unique_clicks) } }
            li { span.label { "Conversions" } span.value data-total="conversions" { (total.figures.conversions) } }
            li { span.label { "Revenue" } span.value data-total="revenue" { (views::moneys(&total.figures.revenue)) } }
            li { span.label { "Conversion rate" } span.value data-total="conversion_rate" { (views::percent(rate)) } }
            li.pending {
                span.label { "Pending" }
                span.value data-total="pending_conversions" { (total.figures.pending_conversions) }
                span.sub data-total="pending_revenue" { (views::moneys(&total.figures.pending_revenue)) }
            }
        }
        p.hint {
            "Conversions and revenue count orders the store confirmed (verified) and, on stores without a "
            "server-side connection, orders the pixel reported (unverified). Orders the pixel reported that "
            "the store has not confirmed yet are pending, shown apart until it does; cancelled, test, disputed "
            "and never-confirmed orders count nowhere."
        }
        h2 { "Clicks and revenue per day" }
        (views::chart(&days_in, &per_day))
        h2 id="by-creator" { "By creator" }
        (report_table("Creator", &by_creator, |key| {
            let id = key.and_then(|k| Uuid::parse_str(k).ok());
            match names.creator(id) {
                Some(name) => (name.to_owned(), id.map(|i| format!("/brand/attribution/links?creator_id={i}"))),
                None => ("No creator".to_owned(), None),
            }
        }))
        h2 id="by-link" { "By link" }
        (report_table("Link", &by_link, |key| {
            let id = key.and_then(|k| Uuid::parse_str(k).ok());
            let code = id.and_then(|i| codes.get(&i)).cloned().unwrap_or_else(|| "—".to_owned());
            (code, id.map(|i| format!("/brand/attribution/links/{i}")))
        }))
        h2 id="by-campaign" { "By campaign" }
        (report_table("Campaign", &by_campaign, |key| {
            let id = key.and_then(|k| Uuid::parse_str(k).ok());
            match names.campaign(id) {
                Some(name) => (name.to_owned(), id.map(|i| format!("/brand/attribution/links?campaign_id={i}"))),
                None => ("No campaign".to_owned(), None),
            }
        }))
        h2 id="orders" { "Orders" }
        p.hint { "Every order of the period, its status and how it was credited: through a click (which one, and when) or a promo code." }
        (orders_table)
        @if let Some(next) = &orders.next_cursor {
            nav.pagination aria-label="Orders pages" {
                a href=(format!("/brand/attribution?days={days}&orders_cursor={next}#orders")) rel="next" { "More orders →" }
            }
        }
    };
    Ok(views::page("Attribution", &session, Section::Attribution, content).into_response())
}

/// The codes of the links named by report rows and orders (the brand's only).
async fn link_codes<'a>(
    state: &AppState,
    brand: Uuid,
    keys: impl Iterator<Item = &'a str>,
    orders: &[Conversion],
) -> Result<HashMap<Uuid, String>, Error> {
    let mut ids: Vec<Uuid> = keys.filter_map(|k| Uuid::parse_str(k).ok()).collect();
    ids.extend(orders.iter().filter_map(|o| o.link_id));
    let labels = crate::links::labels(state.read(), brand, &ids).await?;
    Ok(labels.into_iter().map(|(id, label)| (id, label.code)).collect())
}

fn report_table(
    what: &str,
    rows: &[AttributionRow],
    label: impl Fn(Option<&str>) -> (String, Option<String>),
) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "Nothing in this period." }
        } @else {
            div.table-scroll {
                table.report {
                    thead { tr {
                        th scope="col" { (what) } th.num scope="col" { "Clicks" } th.num scope="col" { "Unique clicks" }
                        th.num scope="col" { "Conversions" } th.num scope="col" { "Revenue" } th.num scope="col" { "Conversion rate" }
                        th.num scope="col" { "Pending" }
                    } }
                    tbody {
                        @for row in rows {
                            @let (name, href) = label(row.key.as_deref());
                            tr {
                                th scope="row" { @if let Some(href) = href { a href=(href) { (name) } } @else { (name) } }
                                td.num { (row.clicks) } td.num { (row.unique_clicks) } td.num { (row.figures.conversions) }
                                td.num { (views::moneys(&row.figures.revenue)) } td.num { (views::percent(row.conversion_rate)) }
                                td.num { (pending(&row.figures)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Orders with their credit: the method, the credited click and when it happened, the link and its
/// creator. Click times are read for the brand's own clicks only.
pub async fn conversions_table(
    state: &AppState,
    brand: Uuid,
    orders: &[Conversion],
    codes: &HashMap<Uuid, String>,
    names: &Names,
) -> Result<Markup, Error> {
    let click_ids: Vec<Uuid> = orders.iter().filter_map(|o| o.click_id.as_deref()?.parse().ok()).collect();
    let click_times = crate::conversions::click_times(state.read(), brand, &click_ids).await?;
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    Ok(html! {
        @if orders.is_empty() {
            p.empty { "No orders." }
        } @else {
            div.table-scroll {
                table.orders {
                    thead { tr {
                        th scope="col" { "Order" } th scope="col" { "Status" } th scope="col" { "Placed" }
                        th.num scope="col" { "Net amount" } th scope="col" { "Credited to" } th scope="col" { "How" }
                    } }
                    tbody {
                        @for o in orders {
                            tr data-order-id=(o.order_id) data-status=(o.status) {
                                th scope="row" { (o.order_id) }
                                td { (status_badge(o)) }
                                td { (when(o.occurred_at)) }
                                td.num { (views::money(&o.net))
                                    @if o.refunded.amount_minor > 0 {
                                        br; small { "refunded " (views::money(&o.refunded)) }
                                    } }
                                td {
                                    @match o.link_id {
                                        Some(id) => {
                                            a href=(format!("/brand/attribution/links/{id}")) { (codes.get(&id).map_or("link", String::as_str)) }
                                            @if let Some(creator) = names.creator(o.creator_id) { br; small { (creator) } }
                                        }
                                        None => { "Nobody" }
                                    }
                                }
                                td.credit {
                                    @match (o.method.as_deref(), o.click_id.as_deref()) {
                                        (Some("click"), Some(click)) => {
                                            "Click " code title=(click) { (click.get(..8).unwrap_or(click)) }
                                            @if let Some(t) = click.parse::<Uuid>().ok().and_then(|c| click_times.get(&c)) { " at " (when(*t)) }
                                        }
                                        (Some("promo_code"), _) => {
                                            "Promo code"
                                            @if !o.discount_codes.is_empty() { " " code { (o.discount_codes.join(", ")) } }
                                        }
                                        _ => { "Not credited" }
                                    }
                                    @if let Some(t) = o.credited_at { br; small { "credited " (when(t)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// "3 · $12.00", or a dash without pending orders.
fn pending(figures: &Figures) -> String {
    if figures.pending_conversions == 0 {
        return "—".to_owned();
    }
    format!("{} · {}", figures.pending_conversions, views::moneys(&figures.pending_revenue))
}

/// An order's status as a badge, with what it means for the figures.
fn status_badge(o: &Conversion) -> Markup {
    let (label, meaning) = match o.status {
        Status::Verified => ("Verified", "Confirmed by the store; counted."),
        Status::Unverified => {
            ("Unverified", "Reported by the pixel on a store without a server-side connection; counted.")
        }
        Status::Pending => ("Pending", "Reported by the pixel; counted apart until the store confirms it."),
        Status::Unconfirmed => ("Unconfirmed", "The store never confirmed it within the window; not counted."),
        Status::Disputed => ("Disputed", "Claimed by different visitors; not counted until the store confirms it."),
        Status::Cancelled => ("Cancelled", "Cancelled by the store; not counted."),
        Status::Test => ("Test", "A test order; not counted."),
    };
    html! {
        span class=(format!("status status-{}", o.status)) title=(meaning) { (label) }
        @if let (Status::Pending, Some(by)) = (o.status, o.confirm_by) {
            br; small { "until " (by.format("%Y-%m-%d %H:%M UTC")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_whole_days_ending_tonight() {
        let today: NaiveDate = "2026-11-25".parse().unwrap();
        let (from, to) = period(today, 7);
        assert_eq!(from, "2026-11-19T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(to, "2026-11-26T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }
}
