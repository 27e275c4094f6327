//! What one creator's links did for one brand over a period, per link and per day: the figures of the
//! creators' portal and of signed statements.
//!
//! Clicks, unique clicks and orders per link are [`crate::links::stats::link_stats`]'s over the period
//! (whole days from the rollups, the ragged edges from raw clicks), which counts orders as
//! [`crate::revenue`] says: the same numbers `/v1/attribution?group_by=link` gives the brand for the same
//! window. Revenue is the creator's to see only on links that share it: [`LinkFigures::revenue`] and the
//! totals' revenue leave the other links out, and so do the days' figures.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::{ContentType, Platform};

use crate::config::Config;
use crate::money::Money;
use crate::reports::{DayTotals, Window};
use crate::revenue::{self, CurrencyFigures, Figures};

/// One of the creator's links over the period.
#[derive(Debug, Clone)]
pub struct LinkFigures {
    pub id: Uuid,
    pub code: String,
    pub short_url: String,
    pub platform: Option<String>,
    pub content_type: Option<String>,
    pub share_revenue: bool,
    pub active: bool,
    pub clicks: i64,
    pub unique_clicks: i64,
    /// Every figure of its orders, revenue included: show revenue through [`LinkFigures::revenue`].
    figures: Figures,
}

impl LinkFigures {
    pub fn conversions(&self) -> i64 {
        self.figures.conversions
    }

    pub fn pending_conversions(&self) -> i64 {
        self.figures.pending_conversions
    }

    /// The counted orders' revenue net of refunds, only where the link shares revenue.
    pub fn revenue(&self) -> Option<&[Money]> {
        self.share_revenue.then_some(self.figures.revenue.as_slice())
    }

    /// The pending orders' revenue, only where the link shares revenue.
    pub fn pending_revenue(&self) -> Option<&[Money]> {
        self.share_revenue.then_some(self.figures.pending_revenue.as_slice())
    }
}

/// The sums over the creator's links; revenue only from links that share it (`None` when none does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub clicks: i64,
    pub unique_clicks: i64,
    pub conversions: i64,
    pub pending_conversions: i64,
    pub revenue: Option<Vec<Money>>,
    pub pending_revenue: Option<Vec<Money>>,
}

/// A creator's links at a brand over `[from, to)`.
#[derive(Debug, Clone)]
pub struct CreatorReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Oldest link first; deleted links only when they did something in the period.
    pub links: Vec<LinkFigures>,
    /// Human clicks and orders per UTC day (revenue only from links that share it); days without either
    /// are left out.
    pub by_day: BTreeMap<NaiveDate, DayTotals>,
}

impl CreatorReport {
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for link in &self.links {
            totals.clicks += link.clicks;
            totals.unique_clicks += link.unique_clicks;
            totals.conversions += link.conversions();
            totals.pending_conversions += link.pending_conversions();
            if let Some(revenue) = link.revenue() {
                let sum = totals.revenue.get_or_insert_with(Vec::new);
                revenue.iter().for_each(|m| revenue::add_money(sum, &m.currency, m.amount_minor));
            }
            if let Some(pending) = link.pending_revenue() {
                let sum = totals.pending_revenue.get_or_insert_with(Vec::new);
                pending.iter().for_each(|m| revenue::add_money(sum, &m.currency, m.amount_minor));
            }
        }
        totals
    }
}

/// One link's orders of one day in one currency.
#[derive(sqlx::FromRow)]
struct DayRow {
    link_id: Uuid,
    day: NaiveDate,
    #[sqlx(flatten)]
    figures: CurrencyFigures,
}

/// The report of a creator's links at the brand over `[from, to)` (the caller has checked the creator is
/// the brand's and the one asking).
pub async fn report(
    db: &PgPool,
    config: &Config,
    brand_id: Uuid,
    creator_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<CreatorReport, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        code: String,
        domain: Option<String>,
        platform: Option<String>,
        content_type: Option<String>,
        share_revenue: bool,
        active: bool,
        deleted: bool,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select id, code, domain, platform, content_type, share_revenue, active and deleted_at is null as active,
                deleted_at is not null as deleted
         from links where brand_id = $1 and creator_id = $2 order by seq",
    )
    .bind(brand_id)
    .bind(creator_id)
    .fetch_all(db)
    .await?;
    let mut conn = db.acquire().await?;
    let window = Window { from, to: Some(to) };
    // The orders of all the creator's links, per link and day, read once: the links' figures and the days'.
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let days: Vec<DayRow> =
        revenue::order_figures(&mut conn, revenue::Scope::Links(brand_id, &ids), window, "link_id, day").await?;
    let mut per_link: HashMap<Uuid, Figures> = HashMap::new();
    for row in &days {
        per_link.entry(row.link_id).or_default().add(&row.figures);
    }
    let mut links = Vec::with_capacity(rows.len());
    let mut by_day: BTreeMap<NaiveDate, DayTotals> = BTreeMap::new();
    for row in rows {
        let figures = per_link.remove(&row.id).unwrap_or_default();
        let stats = crate::links::stats::link_stats_with(&mut conn, row.id, window, figures).await?;
        let idle = stats.clicks == 0
            && stats.unique_clicks == 0
            && stats.figures.conversions == 0
            && stats.figures.pending_conversions == 0;
        // A deleted link is listed only for what it did in the period.
        if row.deleted && idle {
            continue;
        }
        for day in &stats.by_day {
            by_day.entry(day.date).or_default().clicks += day.clicks;
        }
        links.push(LinkFigures {
            short_url: config.link_url(row.domain.as_deref(), &row.code),
            id: row.id,
            code: row.code,
            platform: row.platform,
            content_type: row.content_type,
            share_revenue: row.share_revenue,
            active: row.active,
            clicks: stats.clicks,
            unique_clicks: stats.unique_clicks,
            figures: stats.figures,
        });
    }
    let shares: HashMap<Uuid, bool> = links.iter().map(|l| (l.id, l.share_revenue)).collect();
    for DayRow { link_id, day, figures } in days {
        let totals = &mut by_day.entry(day).or_default().figures;
        if shares.get(&link_id).copied().unwrap_or(false) {
            totals.add(&figures);
        } else {
            totals.conversions += figures.conversions;
            totals.pending_conversions += figures.pending_conversions;
        }
    }
    Ok(CreatorReport { from, to, links, by_day })
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
    domain: Option<String>,
    destination_url: String,
    platform: Option<String>,
    content_type: Option<String>,
    promo_code: Option<String>,
    share_revenue: bool,
    active: bool,
    clicks: i64,
    unique_clicks: i64,
    /// The link's figures per currency, as JSON rows of [`crate::revenue::CurrencyFigures`].
    figures: Option<serde_json::Value>,
}

/// The creator's links, newest first, each with its all-time totals and its sequence number (the list's
/// cursor): at most `limit` links before `before_seq`. Revenue only on links that share it.
pub async fn my_links(
    db: &PgPool,
    config: &Config,
    creator_id: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, MyLink)>, sqlx::Error> {
    let rows: Vec<MyLinkRow> = sqlx::query_as(&format!(
        "select l.seq, l.id, l.code, l.domain, l.destination_url, l.platform, l.content_type, l.promo_code, l.share_revenue,
                l.active,
                d.clicks, d.unique_clicks, c.figures
         from links l {lateral}
         where l.creator_id = $1 and ($2::bigint is null or l.seq < $2)
         order by l.seq desc limit $3",
        lateral = revenue::link_totals_lateral(),
    ))
    .bind(creator_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let figures = revenue::figures_of(r.figures);
            let link = MyLink {
                short_url: config.link_url(r.domain.as_deref(), &r.code),
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
        .collect())
}
