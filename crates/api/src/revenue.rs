//! The one place that says which orders count in a report, and how their money adds up.
//!
//! Every report (`/v1/attribution`, link stats, the creators' view, the dashboards) counts `verified`
//! and `unverified` orders in `conversions` and `revenue`, and `pending` ones apart in
//! `pending_conversions` and `pending_revenue`; `unconfirmed`, `disputed`, `cancelled` and `test` orders
//! are counted nowhere (they stay listed in `/v1/conversions`). Revenue is net of refunds, never below
//! zero, one entry per currency. Reports read orders through [`order_figures`] (whole days and hours from
//! the order rollups, the ragged minutes from the orders themselves), which builds its SQL from
//! [`FIGURES`] and [`REPORTED`], and fold the rows into [`Figures`]; none of them names a status itself.
//!
//! Amounts are bounded ([`crate::money::MaxOrderValue`]), so no sum of them can overflow a 64-bit total
//! before billions of orders.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::attribution::Status;
use crate::money::Money;

/// The statuses counted in `conversions` and `revenue`.
pub const COUNTED: [Status; 2] = [Status::Verified, Status::Unverified];

/// The status counted apart, in `pending_conversions` and `pending_revenue`.
pub const PENDING: Status = Status::Pending;

/// A `where` condition over order rows (unqualified columns) keeping those any report counts.
pub const REPORTED: &str = "status in ('verified', 'unverified', 'pending')";

/// Aggregate columns over order rows (unqualified columns `status`, `orders`, `net_minor`: a raw order
/// from [`ORDERS`] is one order, a rollup row many), to be grouped by `currency` (and whatever the report
/// groups by): `conversions`, `revenue`, `pending_conversions`, `pending_revenue`, in minor units.
pub const FIGURES: &str = "coalesce(sum(orders) filter (where status in ('verified', 'unverified')), 0)::bigint
         as conversions,
     coalesce(sum(net_minor) filter (where status in ('verified', 'unverified')), 0)::bigint as revenue,
     coalesce(sum(orders) filter (where status = 'pending'), 0)::bigint as pending_conversions,
     coalesce(sum(net_minor) filter (where status = 'pending'), 0)::bigint as pending_revenue";

/// Credited orders one by one, in the columns the order rollups have (`brand_id`, `link_id`, `day`,
/// `currency`, `status`, `orders`, `net_minor`) and their time (`occurred_at`): what reports read for the
/// minutes of a window the rollups do not answer. Net amounts are `order_net_minor`'s, the function the
/// rollups are built with (migration 0020).
pub const ORDERS: &str = "(select brand_id, link_id, occurred_at, (occurred_at at time zone 'UTC')::date as day,
            currency, status, 1::bigint as orders, order_net_minor(amount_minor, refunded_minor) as net_minor
     from conversions where link_id is not null) orders";

/// One currency's figures, as [`FIGURES`] computes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, sqlx::FromRow)]
pub struct CurrencyFigures {
    pub currency: String,
    pub conversions: i64,
    pub revenue: i64,
    pub pending_conversions: i64,
    pub pending_revenue: i64,
}

/// What a report says about orders: counted ones and pending ones, revenue per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Figures {
    /// Orders that count: `verified` and `unverified`.
    pub conversions: i64,
    /// Their revenue net of refunds, one entry per currency.
    pub revenue: Vec<Money>,
    /// Orders only the pixel reported, still waiting for the store's confirmation (`pending`).
    pub pending_conversions: i64,
    /// Their revenue, one entry per currency.
    pub pending_revenue: Vec<Money>,
}

impl Figures {
    /// The figures of per-currency rows.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a CurrencyFigures>) -> Self {
        let mut figures = Figures::default();
        for row in rows {
            figures.add(row);
        }
        figures
    }

    /// Adds one currency's figures (rows of one report may come per currency in any order).
    pub fn add(&mut self, row: &CurrencyFigures) {
        self.conversions += row.conversions;
        self.pending_conversions += row.pending_conversions;
        if row.conversions > 0 {
            add_money(&mut self.revenue, &row.currency, row.revenue);
        }
        if row.pending_conversions > 0 {
            add_money(&mut self.pending_revenue, &row.currency, row.pending_revenue);
        }
    }

    /// Adds another report's figures.
    pub fn merge(&mut self, other: &Figures) {
        self.conversions += other.conversions;
        self.pending_conversions += other.pending_conversions;
        for m in &other.revenue {
            add_money(&mut self.revenue, &m.currency, m.amount_minor);
        }
        for m in &other.pending_revenue {
            add_money(&mut self.pending_revenue, &m.currency, m.amount_minor);
        }
    }
}

/// Adds an amount to a per-currency list kept sorted by currency.
pub fn add_money(list: &mut Vec<Money>, currency: &str, amount_minor: i64) {
    match list.binary_search_by(|m| m.currency.as_str().cmp(currency)) {
        Ok(i) => list[i].amount_minor = list[i].amount_minor.saturating_add(amount_minor),
        Err(i) => list.insert(i, Money { amount_minor, currency: currency.to_owned() }),
    }
}

/// Whose orders a report reads.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One link's.
    Link(uuid::Uuid),
    /// Every link's of a brand.
    Brand(uuid::Uuid),
    /// The brand's links among these.
    Links(uuid::Uuid, &'a [uuid::Uuid]),
}

/// The orders of `scope` credited in `window`, as reports count them, grouped by `group` (columns of the
/// order rows: `link_id`, `day`) and currency: rows `R` with the group's columns and the
/// [`CurrencyFigures`], one per group, currency and part of the window, for the caller to add up. Whole
/// days and hours are read from the order rollups, only the minutes at the window's ragged ends from the
/// orders themselves.
pub async fn order_figures<R>(
    conn: &mut sqlx::PgConnection,
    scope: Scope<'_>,
    window: crate::reports::Window,
    group: &str,
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let (filter, id) = match scope {
        Scope::Link(link) => ("link_id = $1", link),
        Scope::Brand(brand) | Scope::Links(brand, _) => ("brand_id = $1", brand),
    };
    let links = match scope {
        Scope::Links(..) => " and link_id = any($4)",
        _ => "",
    };
    let group = if group.is_empty() { String::new() } else { format!("{group}, ") };
    let mut rows = Vec::new();
    for part in window.split().parts() {
        let crate::reports::OrdersSql { table, bounds } = part.orders();
        let sql = format!(
            "select {group}currency, {FIGURES} from {table}
             where {filter}{links} and {bounds} and {REPORTED} group by {group}currency"
        );
        let query = part.bind(sqlx::query_as::<_, R>(&sql), id);
        let query = match scope {
            Scope::Links(_, links) => query.bind(links),
            _ => query,
        };
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Conversions per click: `conversions / clicks`, 0 without clicks.
pub fn rate(conversions: i64, clicks: i64) -> f64 {
    if clicks > 0 {
        conversions as f64 / clicks as f64
    } else {
        0.0
    }
}

/// Whether an order of this status counts in `conversions` and `revenue`.
pub fn counts(status: Status) -> bool {
    COUNTED.contains(&status)
}

/// The lateral joins that give a `links l` row its all-time totals: `clicks` and `unique_clicks` from the
/// monthly rollups, and `figures`, its orders as every report counts them, from the order rollups (a JSON
/// array of [`CurrencyFigures`], null without any; read it with [`figures_of`]).
pub fn link_totals_lateral() -> String {
    format!(
        "left join lateral (
             select coalesce(sum(clicks), 0)::bigint as clicks, coalesce(sum(unique_clicks), 0)::bigint as unique_clicks
             from link_monthly_all where link_id = l.id
         ) d on true
         left join lateral (
             select jsonb_agg(to_jsonb(per_currency)) as figures
             from (select currency, {FIGURES} from order_daily_all where link_id = l.id and {REPORTED}
                   group by currency) per_currency
         ) c on true"
    )
}

/// The per-currency rows [`link_totals_lateral`] returns as `figures`.
pub fn currency_rows(json: Option<serde_json::Value>) -> Vec<CurrencyFigures> {
    json.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}

/// Adds up a link's per-currency figures, as [`link_totals_lateral`] returns them.
pub fn figures_of(json: Option<serde_json::Value>) -> Figures {
    Figures::from_rows(&currency_rows(json))
}

/// A link's all-time totals.
#[derive(Debug, Clone, Default)]
pub struct LinkTotals {
    pub clicks: i64,
    pub unique_clicks: i64,
    /// One row per currency of its counted and pending orders.
    pub per_currency: Vec<CurrencyFigures>,
}

/// The all-time totals of the brand's links among `ids`.
pub async fn link_totals(
    db: &sqlx::PgPool,
    brand_id: uuid::Uuid,
    ids: &[uuid::Uuid],
) -> Result<std::collections::HashMap<uuid::Uuid, LinkTotals>, sqlx::Error> {
    let rows: Vec<(uuid::Uuid, i64, i64, Option<serde_json::Value>)> = sqlx::query_as(&format!(
        "select l.id, d.clicks, d.unique_clicks, c.figures from links l {lateral}
         where l.brand_id = $1 and l.id = any($2)",
        lateral = link_totals_lateral()
    ))
    .bind(brand_id)
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, clicks, unique_clicks, figures)| {
            (id, LinkTotals { clicks, unique_clicks, per_currency: currency_rows(figures) })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(currency: &str, conversions: i64, revenue: i64, pending: i64, pending_revenue: i64) -> CurrencyFigures {
        CurrencyFigures {
            currency: currency.into(),
            conversions,
            revenue,
            pending_conversions: pending,
            pending_revenue,
        }
    }

    #[test]
    fn figures_add_up_per_currency_and_pending_stays_apart() {
        let mut f = Figures::default();
        f.add(&row("USD", 2, 5000, 1, 700));
        f.add(&row("EUR", 0, 0, 1, 300));
        f.add(&row("USD", 1, 100, 0, 0));
        assert_eq!(f.conversions, 3);
        assert_eq!(f.revenue, vec![Money { amount_minor: 5100, currency: "USD".into() }]);
        assert_eq!(f.pending_conversions, 2);
        assert_eq!(
            f.pending_revenue,
            vec![
                Money { amount_minor: 300, currency: "EUR".into() },
                Money { amount_minor: 700, currency: "USD".into() }
            ]
        );
    }

    #[test]
    fn the_sql_and_the_rust_agree_on_what_counts() {
        for status in Status::ALL {
            let quoted = format!("'{status}'");
            let in_counted = FIGURES.split("filter").nth(1).is_some_and(|clause| clause.contains(&quoted));
            assert_eq!(in_counted, counts(status), "{status}");
            assert_eq!(REPORTED.contains(&quoted), counts(status) || status == PENDING, "{status}");
        }
    }
}
