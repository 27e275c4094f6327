//! The attribution report: a brand's clicks, unique clicks and orders (as [`crate::revenue`] counts them)
//! over a window, per creator, link, campaign, platform or content type, and its totals per UTC day for
//! charts. Clicks come from the rollups (whole months, days and hours) and the raw clicks at the window's
//! ragged ends; orders through [`revenue::order_figures`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::reports::DayTotals;
use crate::reports::{Rollup, RollupSql, Window};
pub use crate::revenue::rate;
use crate::revenue::{self, CurrencyFigures, Figures, Scope};

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
    /// The name a query spells it with.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Creator => "creator",
            GroupBy::Link => "link",
            GroupBy::Campaign => "campaign",
            GroupBy::Platform => "platform",
            GroupBy::ContentType => "content_type",
        }
    }

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

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct AttributionRow {
    /// The creator, link or campaign id, or the platform or content type; null for links without one.
    pub key: Option<String>,
    pub clicks: i64,
    pub unique_clicks: i64,
    /// Orders that count (`verified` and `unverified`), their revenue net of refunds per currency, and
    /// `pending` orders apart.
    #[serde(flatten)]
    pub figures: Figures,
    /// conversions / clicks (0 without clicks).
    pub conversion_rate: f64,
}

type Key = Option<String>;

async fn rollup_clicks(db: &PgPool, brand: Uuid, key: &str, part: Rollup) -> Result<Vec<(Key, i64, i64)>, sqlx::Error> {
    let RollupSql { counts, bounds, .. } = part.sql();
    // Summed per link first (an index-only scan), so only one row per link meets the join.
    part.bind(
        sqlx::query_as(&format!(
            "select {key}, sum(d.clicks)::bigint, sum(d.unique_clicks)::bigint
             from (select link_id, sum(clicks) as clicks, sum(unique_clicks) as unique_clicks
                   from {counts} where brand_id = $1 and {bounds}
                   group by link_id) d
             join links l on l.id = d.link_id
             group by 1"
        )),
        brand,
    )
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

/// The brand's clicks, unique clicks, conversions and revenue in `[from, to)`, one row per group, most
/// conversions first.
pub async fn attribution_rows(
    db: &PgPool,
    brand_id: Uuid,
    group_by: GroupBy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AttributionRow>, sqlx::Error> {
    let key = group_by.key();
    // Clicks and conversions are independent: read them at the same time, on two connections.
    let split = Window { from, to: Some(to) }.split();
    let clicks = async {
        let mut parts = Vec::new();
        // No per-day breakdown here: whole months come from the monthly rollups.
        for part in split.coarse_rollups() {
            parts.extend(rollup_clicks(db, brand_id, key, part).await?);
        }
        for (f, t) in &split.raw {
            parts.extend(raw_clicks(db, brand_id, key, *f, *t).await?);
        }
        Ok::<_, sqlx::Error>(parts)
    };
    let conversions = async {
        let mut conn = db.acquire().await?;
        let per_link: Vec<LinkFigures> =
            revenue::order_figures(&mut conn, Scope::Brand(brand_id), Window { from, to: Some(to) }, "link_id").await?;
        // The links' groups, read once for the links with orders.
        let mut ids: Vec<Uuid> = per_link.iter().map(|r| r.link_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let keys: HashMap<Uuid, Key> =
            sqlx::query_as(&format!("select l.id, {key} from links l where l.brand_id = $1 and l.id = any($2)"))
                .bind(brand_id)
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        Ok::<_, sqlx::Error>(
            per_link
                .into_iter()
                .filter_map(|r| keys.get(&r.link_id).map(|key| KeyedFigures { key: key.clone(), figures: r.figures }))
                .collect::<Vec<_>>(),
        )
    };
    let (click_parts, conversions) = tokio::try_join!(clicks, conversions)?;

    let mut rows: HashMap<Key, AttributionRow> = HashMap::new();
    for (k, clicks, uniques) in click_parts {
        let row = rows.entry(k.clone()).or_insert_with(|| AttributionRow { key: k, ..Default::default() });
        row.clicks += clicks;
        row.unique_clicks += uniques;
    }
    for KeyedFigures { key, figures } in conversions {
        let row = rows.entry(key.clone()).or_insert_with(|| AttributionRow { key, ..Default::default() });
        row.figures.add(&figures);
    }
    let mut data: Vec<AttributionRow> = rows.into_values().collect();
    for row in &mut data {
        row.conversion_rate = rate(row.figures.conversions, row.clicks);
    }
    data.sort_by(|a, b| {
        b.figures.conversions.cmp(&a.figures.conversions).then(b.clicks.cmp(&a.clicks)).then(a.key.cmp(&b.key))
    });
    Ok(data)
}

/// One day's figures in one currency.
#[derive(sqlx::FromRow)]
struct DayFigures {
    day: NaiveDate,
    #[sqlx(flatten)]
    figures: CurrencyFigures,
}

/// One group's figures in one currency.
struct KeyedFigures {
    key: Key,
    figures: CurrencyFigures,
}

/// One link's figures in one currency.
#[derive(sqlx::FromRow)]
struct LinkFigures {
    link_id: Uuid,
    #[sqlx(flatten)]
    figures: CurrencyFigures,
}

/// The brand's clicks and credited revenue per UTC day in `[from, to)`, for charts. Whole days and hours
/// come from the rollups, the ragged minutes at the edges from the raw clicks, as in every report.
pub async fn daily_totals(
    db: &PgPool,
    brand_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<NaiveDate, DayTotals>, sqlx::Error> {
    let split = Window { from, to: Some(to) }.split();
    let mut days: BTreeMap<NaiveDate, DayTotals> = BTreeMap::new();
    for part in split.rollups() {
        let RollupSql { counts, day, bounds, .. } = part.sql();
        let rows: Vec<(NaiveDate, i64)> = part
            .bind(
                sqlx::query_as(&format!(
                    "select {day}, sum(clicks)::bigint from {counts} where brand_id = $1 and {bounds} group by 1"
                )),
                brand_id,
            )
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
    let mut conn = db.acquire().await?;
    let revenue: Vec<DayFigures> =
        revenue::order_figures(&mut conn, Scope::Brand(brand_id), Window { from, to: Some(to) }, "day").await?;
    for DayFigures { day, figures } in revenue {
        days.entry(day).or_default().figures.add(&figures);
    }
    Ok(days)
}
