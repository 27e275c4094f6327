//! What one link did over a window: clicks, unique clicks, bots, orders as reports count them, per day
//! and per country, device, browser and OS.
//!
//! Whole UTC days come from the rollups kept at ingest (`link_daily_all`, `link_daily_dims_all`), whole hours
//! at the window's edges from the hourly ones (`link_hourly_all`, `link_hourly_dims_all`), the ragged minutes
//! left from the raw clicks, so the answer is exact and its cost does not grow with
//! the link's history. Unique clicks are first clicks: a visitor's first human click on the link.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::reports::{Rollup, RollupSql, Window};
use crate::revenue::{self, CurrencyFigures, Figures, Scope};

#[derive(Debug, Serialize, ToSchema)]
pub struct DayCount {
    pub date: NaiveDate,
    pub clicks: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStats {
    /// Human clicks (bots excluded).
    pub clicks: i64,
    /// Visitors whose first human click on this link fell in the window.
    pub unique_clicks: i64,
    /// Clicks by bots and link-preview crawlers, left out of every other count.
    pub bot_clicks: i64,
    /// Orders credited to this link that count (`verified`, `unverified`), their revenue net of refunds
    /// per currency, and `pending` orders apart.
    #[serde(flatten)]
    pub figures: Figures,
    /// conversions / clicks (0 when there are no clicks).
    pub conversion_rate: f64,
    pub by_day: Vec<DayCount>,
    pub by_country: BTreeMap<String, i64>,
    pub by_device: BTreeMap<String, i64>,
    pub by_browser: BTreeMap<String, i64>,
    pub by_os: BTreeMap<String, i64>,
    /// Human clicks by where they came from: `link` (the short link itself) or `qr` (a scan of its QR code);
    /// a source without clicks is left out, as in the other breakdowns.
    pub by_source: BTreeMap<String, i64>,
}

/// Counts accumulated over the parts of a window.
#[derive(Default)]
struct Tally {
    clicks: i64,
    unique_clicks: i64,
    bot_clicks: i64,
    by_day: BTreeMap<NaiveDate, i64>,
    /// Country, device type, browser, OS, source.
    dims: [BTreeMap<String, i64>; 5],
}

impl Tally {
    fn add_dims(&mut self, rows: Vec<(i16, String, i64)>) {
        for (dimension, value, count) in rows {
            if let Some(map) = usize::try_from(dimension).ok().and_then(|d| self.dims.get_mut(d)) {
                *map.entry(value).or_default() += count;
            }
        }
    }

    /// Adds a part of the window the rollups answer.
    async fn add_rollup(&mut self, conn: &mut PgConnection, link: Uuid, part: Rollup) -> Result<(), sqlx::Error> {
        let RollupSql { counts, dims, day, bounds, .. } = part.sql();
        let rows = format!("link_id = $1 and {bounds}");
        let (clicks, unique, bots): (i64, i64, i64) = part
            .bind(
                sqlx::query_as(&format!(
                    "select coalesce(sum(clicks), 0)::bigint, coalesce(sum(unique_clicks), 0)::bigint,
                            coalesce(sum(bot_clicks), 0)::bigint
                     from {counts} where {rows}"
                )),
                link,
            )
            .fetch_one(&mut *conn)
            .await?;
        self.clicks += clicks;
        self.unique_clicks += unique;
        self.bot_clicks += bots;
        let days: Vec<(NaiveDate, i64)> = part
            .bind(
                sqlx::query_as(&format!(
                    "select {day}, sum(clicks)::bigint from {counts} where {rows} group by 1 having sum(clicks) > 0"
                )),
                link,
            )
            .fetch_all(&mut *conn)
            .await?;
        for (day, n) in days {
            *self.by_day.entry(day).or_default() += n;
        }
        let dims = part
            .bind(
                sqlx::query_as(&format!(
                    "select dimension, value, sum(clicks)::bigint from {dims} where {rows} group by 1, 2"
                )),
                link,
            )
            .fetch_all(&mut *conn)
            .await?;
        self.add_dims(dims);
        Ok(())
    }

    async fn add_raw(
        &mut self,
        conn: &mut PgConnection,
        link: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        const RANGE: &str = "link_id = $1 and occurred_at >= $2 and occurred_at < $3";
        let (clicks, bots): (i64, i64) = sqlx::query_as(&format!(
            "select count(*) filter (where not bot), count(*) filter (where bot) from clicks where {RANGE}"
        ))
        .bind(link)
        .bind(from)
        .bind(to)
        .fetch_one(&mut *conn)
        .await?;
        let unique: i64 = sqlx::query_scalar(
            "select count(*) from link_visitors where link_id = $1 and first_click_at >= $2 and first_click_at < $3",
        )
        .bind(link)
        .bind(from)
        .bind(to)
        .fetch_one(&mut *conn)
        .await?;
        self.clicks += clicks;
        self.bot_clicks += bots;
        self.unique_clicks += unique;
        let days: Vec<(NaiveDate, i64)> = sqlx::query_as(&format!(
            "select (occurred_at at time zone 'UTC')::date, count(*) from clicks where {RANGE} and not bot group by 1"
        ))
        .bind(link)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?;
        for (day, n) in days {
            *self.by_day.entry(day).or_default() += n;
        }
        let dims = sqlx::query_as(&format!(
            "select d.dimension, coalesce(d.value, 'unknown'), count(*) from clicks
             cross join lateral (values (0::smallint, country), (1::smallint, device_type), (2::smallint, browser),
                                        (3::smallint, os), (4::smallint, source)) as d(dimension, value)
             where {RANGE} and not bot and (d.dimension <> 4 or d.value <> 'link') group by 1, 2"
        ))
        .bind(link)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?;
        self.add_dims(dims);
        Ok(())
    }
}

/// The stats of one link (whose brand the caller has already checked).
pub async fn link_stats(conn: &mut PgConnection, link: Uuid, window: Window) -> Result<LinkStats, sqlx::Error> {
    let figures = conversions_of(conn, link, window.from, window.to_or(Utc::now())).await?;
    link_stats_with(conn, link, window, figures).await
}

/// The stats of one link with its orders' `figures` over the window, which the caller has read already
/// (a report over several links reads their orders in one query).
pub async fn link_stats_with(
    conn: &mut PgConnection,
    link: Uuid,
    window: Window,
    figures: Figures,
) -> Result<LinkStats, sqlx::Error> {
    let split = window.split();
    let mut tally = Tally::default();
    for part in split.rollups() {
        tally.add_rollup(conn, link, part).await?;
    }
    for (from, to) in split.raw {
        tally.add_raw(conn, link, from, to).await?;
    }
    let conversion_rate = revenue::rate(figures.conversions, tally.clicks);
    let [by_country, by_device, by_browser, by_os, mut by_source] = tally.dims;
    // Only scans are counted by source (see ingestion): the link's other human clicks came from the link.
    let scans: i64 = by_source.values().sum();
    if tally.clicks > scans {
        by_source.insert("link".to_owned(), tally.clicks - scans);
    }
    Ok(LinkStats {
        clicks: tally.clicks,
        unique_clicks: tally.unique_clicks,
        bot_clicks: tally.bot_clicks,
        figures,
        conversion_rate,
        by_day: tally.by_day.into_iter().map(|(date, clicks)| DayCount { date, clicks }).collect(),
        by_country,
        by_device,
        by_browser,
        by_os,
        by_source,
    })
}

/// Orders credited to the link in the window, as reports count them.
pub async fn conversions_of(
    conn: &mut PgConnection,
    link_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Figures, sqlx::Error> {
    let rows: Vec<CurrencyFigures> =
        revenue::order_figures(conn, Scope::Link(link_id), Window { from, to: Some(to) }, "").await?;
    Ok(Figures::from_rows(&rows))
}
