//! Splitting a report window into whole UTC days, answered from the daily rollups, whole UTC hours at its
//! edges, answered from the hourly rollups, and the minutes left at its two ragged ends, answered from the
//! raw clicks and orders. A window aligned to midnight (what date pickers send) touches no raw click or
//! order at all, and no window touches more than two partial hours of them, however many millions the
//! brand has.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{de, Deserialize, Deserializer};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::Postgres;
use uuid::Uuid;

/// The earliest instant a report window or a list filter accepts: nothing this system records is older
/// than the Unix epoch.
pub const EARLIEST: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;

/// The latest instant a report window or a list filter accepts: the end of year 9999, the last year
/// RFC 3339 can write. chrono parses years up to ±262,143, which PostgreSQL cannot store (its
/// timestamps begin in 4713 BC) and date arithmetic near them overflows; inside `EARLIEST..=LATEST`
/// every computation on a window (30 days back, the next midnight) stays far from both limits.
pub const LATEST: DateTime<Utc> = match DateTime::from_timestamp(253_402_300_799, 999_999_999) {
    Some(t) => t,
    None => DateTime::<Utc>::MAX_UTC,
};

/// Why an instant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is out of range: dates must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z")]
pub struct OutOfRange(pub String);

/// `t`, if it lies in `EARLIEST..=LATEST`.
pub fn in_range(t: DateTime<Utc>) -> Result<DateTime<Utc>, OutOfRange> {
    if (EARLIEST..=LATEST).contains(&t) {
        Ok(t)
    } else {
        Err(OutOfRange(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
    }
}

/// Deserializes an optional RFC 3339 instant (a query's `from` or `to`), refusing one outside
/// `EARLIEST..=LATEST`, so no handler ever computes with, or sends PostgreSQL, a date it cannot hold.
/// Use with `#[serde(default, deserialize_with = "crate::reports::optional_instant")]`.
pub fn optional_instant<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<DateTime<Utc>>::deserialize(deserializer)?.map(in_range).transpose().map_err(de::Error::custom)
}

/// One UTC day of activity (a brand's, a creator's): human clicks, and the day's orders as reports count
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub clicks: i64,
    pub figures: crate::revenue::Figures,
}

/// A report window, `[from, to)`; `to = None` is open-ended (everything up to now, today included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

/// Where each part of a window is read from: the parts are disjoint and together cover the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Whole days `[start, end)` (end `None`: no upper bound), read from the daily rollups.
    pub days: Option<(NaiveDate, Option<NaiveDate>)>,
    /// Whole hours `[from, to)` (both on the hour), read from the hourly rollups: at most one range
    /// before the days and one after them.
    pub hours: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Time ranges `[from, to)` shorter than an hour, read from raw clicks: at most one at each end.
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The first midnight at or after `t`.
fn ceil_day(t: DateTime<Utc>) -> NaiveDate {
    let day = t.date_naive();
    if midnight(day) == t {
        day
    } else {
        day.checked_add_days(Days::new(1)).unwrap_or(day)
    }
}

/// The first day of a month at or after `day` (`None` past the last month chrono holds).
fn ceil_month(day: NaiveDate) -> Option<NaiveDate> {
    if day.day() == 1 {
        Some(day)
    } else {
        day.with_day(1)?.checked_add_months(Months::new(1))
    }
}

/// The last full hour at or before `t`.
fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).and_then(|t| t.with_second(0)).and_then(|t| t.with_minute(0)).unwrap_or(t)
}

/// The first full hour at or after `t` (`t` itself at the very end of the range, where none follows).
fn ceil_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_hour(t);
    if floor == t {
        t
    } else {
        floor.checked_add_signed(chrono::Duration::hours(1)).unwrap_or(t)
    }
}

impl Split {
    /// `[from, to)`, which lies within one day's edge: whole hours in the middle, raw minutes around them.
    fn edge(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        if from >= to {
            return;
        }
        let (first, last) = (ceil_hour(from), floor_hour(to));
        if first < last {
            if from < first {
                self.raw.push((from, first));
            }
            self.hours.push((first, last));
            if last < to {
                self.raw.push((last, to));
            }
        } else {
            self.raw.push((from, to));
        }
    }
}

impl Window {
    pub fn split(&self) -> Split {
        let first = ceil_day(self.from);
        let mut split = Split { days: None, hours: Vec::new(), raw: Vec::new() };
        match self.to {
            None => {
                split.edge(self.from, midnight(first));
                split.days = Some((first, None));
            }
            Some(to) => {
                let end = to.date_naive();
                if first < end {
                    split.edge(self.from, midnight(first));
                    split.edge(midnight(end), to);
                    split.days = Some((first, Some(end)));
                } else {
                    split.edge(self.from, to);
                }
            }
        }
        split
    }

    /// The window's upper bound for queries that need one (conversions): open means now.
    pub fn to_or(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.to.unwrap_or(now)
    }
}

/// A part of a window the rollups answer: whole UTC days `[start, end)` (no end: every day from the start),
/// whole calendar months `[start, end)` given by their first days (only from [`Split::coarse_rollups`]), or
/// whole UTC hours `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollup {
    Days(NaiveDate, Option<NaiveDate>),
    Months(NaiveDate, Option<NaiveDate>),
    Hours(DateTime<Utc>, DateTime<Utc>),
}

/// What a query over one [`Rollup`] reads: the views of counts, of breakdowns and of orders, a row's UTC
/// day, and the condition on its bounds (`$2`, `$3`; `$1` is left for the link or brand the caller filters
/// by).
pub struct RollupSql {
    pub counts: &'static str,
    pub dims: &'static str,
    pub orders: &'static str,
    pub day: &'static str,
    pub bounds: &'static str,
}

impl Rollup {
    pub fn sql(self) -> RollupSql {
        match self {
            Rollup::Days(..) => RollupSql {
                counts: "link_daily_all",
                dims: "link_daily_dims_all",
                orders: "order_daily_all",
                day: "day",
                bounds: "day >= $2 and ($3::date is null or day < $3)",
            },
            // A month's row is dated its first day, so it answers the same bounds as that month's days;
            // breakdowns and orders are read from the days of those months.
            Rollup::Months(..) => RollupSql {
                counts: "link_monthly_all",
                dims: "link_daily_dims_all",
                orders: "order_daily_all",
                day: "day",
                bounds: "day >= $2 and ($3::date is null or day < $3)",
            },
            Rollup::Hours(..) => RollupSql {
                counts: "link_hourly_all",
                dims: "link_hourly_dims_all",
                orders: "order_hourly_all",
                day: "(hour at time zone 'UTC')::date",
                bounds: "hour >= $2 and hour < $3",
            },
        }
    }

    /// Binds `$1` (the link or brand) and the bounds.
    pub fn bind<'q, O>(
        self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
        id: Uuid,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        let query = query.bind(id);
        match self {
            Rollup::Days(start, end) | Rollup::Months(start, end) => query.bind(start).bind(end),
            Rollup::Hours(from, to) => query.bind(from).bind(to),
        }
    }
}

/// Any part of a window: one the rollups answer, or minutes `[from, to)` at a ragged end, read raw.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Rollup(Rollup),
    Raw(DateTime<Utc>, DateTime<Utc>),
}

/// Where a query reads one [`Part`]'s orders: rows with `brand_id`, `link_id`, `day` (UTC), `currency`,
/// `status`, `orders` and `net_minor`, and the condition on the part's bounds (`$2`, `$3`).
pub struct OrdersSql {
    pub table: &'static str,
    pub bounds: &'static str,
}

impl Part {
    pub fn orders(self) -> OrdersSql {
        match self {
            Part::Rollup(rollup) => {
                let RollupSql { orders, bounds, .. } = rollup.sql();
                OrdersSql { table: orders, bounds }
            }
            Part::Raw(..) => {
                OrdersSql { table: crate::revenue::ORDERS, bounds: "occurred_at >= $2 and occurred_at < $3" }
            }
        }
    }

    /// Binds `$1` (the link or brand) and the bounds.
    pub fn bind<'q, O>(
        self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
        id: Uuid,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        match self {
            Part::Rollup(rollup) => rollup.bind(query, id),
            Part::Raw(from, to) => query.bind(id).bind(from).bind(to),
        }
    }
}

impl Split {
    /// The parts the rollups answer: the days, then the hours.
    pub fn rollups(&self) -> impl Iterator<Item = Rollup> + '_ {
        self.days
            .map(|(start, end)| Rollup::Days(start, end))
            .into_iter()
            .chain(self.hours.iter().map(|&(from, to)| Rollup::Hours(from, to)))
    }

    /// Like [`Split::rollups`], with the whole calendar months among the days read from the monthly
    /// rollups, for reports that add the window up without a per-day breakdown (a month's `day` is its
    /// first day): the days before the first whole month, the months, the days after them, then the hours.
    pub fn coarse_rollups(&self) -> Vec<Rollup> {
        let mut parts = Vec::new();
        if let Some((start, end)) = self.days {
            let first = ceil_month(start);
            let last = match end {
                Some(end) => end.with_day(1).map(Some),
                None => Some(None),
            };
            match (first, last) {
                (Some(first), Some(last)) if last.is_none_or(|last| first < last) => {
                    if start < first {
                        parts.push(Rollup::Days(start, Some(first)));
                    }
                    parts.push(Rollup::Months(first, last));
                    if let (Some(last), Some(end)) = (last, end) {
                        if last < end {
                            parts.push(Rollup::Days(last, Some(end)));
                        }
                    }
                }
                _ => parts.push(Rollup::Days(start, end)),
            }
        }
        parts.extend(self.hours.iter().map(|&(from, to)| Rollup::Hours(from, to)));
        parts
    }

    /// Every part: the rollups' days and hours, then the raw minutes.
    pub fn parts(&self) -> impl Iterator<Item = Part> + '_ {
        self.rollups().map(Part::Rollup).chain(self.raw.iter().map(|&(from, to)| Part::Raw(from, to)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn split(days: Option<(&str, Option<&str>)>, hours: &[(&str, &str)], raw: &[(&str, &str)]) -> Split {
        Split {
            days: days.map(|(a, b)| (d(a), b.map(d))),
            hours: hours.iter().map(|(a, b)| (t(a), t(b))).collect(),
            raw: raw.iter().map(|(a, b)| (t(a), t(b))).collect(),
        }
    }

    #[test]
    fn aligned_windows_read_only_daily_rollups() {
        let w = Window { from: t("2026-11-01T00:00:00Z"), to: Some(t("2026-11-08T00:00:00Z")) };
        assert_eq!(w.split(), split(Some(("2026-11-01", Some("2026-11-08"))), &[], &[]));
    }

    #[test]
    fn whole_hours_at_the_edges_come_from_hourly_rollups() {
        let w = Window { from: t("2026-11-01T10:00:00Z"), to: Some(t("2026-11-08T06:00:00Z")) };
        assert_eq!(
            w.split(),
            split(
                Some(("2026-11-02", Some("2026-11-08"))),
                &[("2026-11-01T10:00:00Z", "2026-11-02T00:00:00Z"), ("2026-11-08T00:00:00Z", "2026-11-08T06:00:00Z")],
                &[]
            )
        );
    }

    #[test]
    fn only_ragged_minutes_are_read_raw() {
        let w = Window { from: t("2026-11-01T10:17:05Z"), to: Some(t("2026-11-08T06:42:00Z")) };
        assert_eq!(
            w.split(),
            split(
                Some(("2026-11-02", Some("2026-11-08"))),
                &[("2026-11-01T11:00:00Z", "2026-11-02T00:00:00Z"), ("2026-11-08T00:00:00Z", "2026-11-08T06:00:00Z")],
                &[("2026-11-01T10:17:05Z", "2026-11-01T11:00:00Z"), ("2026-11-08T06:00:00Z", "2026-11-08T06:42:00Z")]
            )
        );
        // The last 24 hours, from a ragged minute: two raw pieces under an hour each.
        let day = Window { from: t("2026-11-07T06:42:30Z"), to: Some(t("2026-11-08T06:42:30Z")) };
        let parts = day.split();
        assert_eq!(parts.days, None);
        assert_eq!(parts.hours, vec![(t("2026-11-07T07:00:00Z"), t("2026-11-08T06:00:00Z"))]);
        assert_eq!(parts.raw.len(), 2);
    }

    #[test]
    fn windows_within_an_hour_are_all_raw() {
        let w = Window { from: t("2026-11-01T10:05:00Z"), to: Some(t("2026-11-01T10:55:00Z")) };
        assert_eq!(w.split(), split(None, &[], &[("2026-11-01T10:05:00Z", "2026-11-01T10:55:00Z")]));
        let across = Window { from: t("2026-11-01T10:05:00Z"), to: Some(t("2026-11-01T11:55:00Z")) };
        assert_eq!(across.split(), split(None, &[], &[("2026-11-01T10:05:00Z", "2026-11-01T11:55:00Z")]));
        let empty = Window { from: t("2026-11-01T10:00:00Z"), to: Some(t("2026-11-01T10:00:00Z")) };
        assert_eq!(empty.split(), split(None, &[], &[]));
    }

    proptest::proptest! {
        /// Every instant of a window is read from exactly one part; hour ranges are on the hour, raw ones
        /// shorter than two hours (a ragged end, or a window within two hours), and there are at most two of each.
        #[test]
        fn the_parts_cover_the_window_exactly(from in 0i64..4_000_000_000, len in 0i64..20_000_000, probe in 0.0f64..1.0) {
            let from = DateTime::from_timestamp(from, 0).unwrap();
            let to = from + chrono::Duration::seconds(len);
            let parts = Window { from, to: Some(to) }.split();
            proptest::prop_assert!(parts.hours.len() <= 2 && parts.raw.len() <= 2);
            for (a, b) in &parts.hours {
                proptest::prop_assert!(a < b && floor_hour(*a) == *a && floor_hour(*b) == *b);
            }
            for (a, b) in &parts.raw {
                proptest::prop_assert!(a < b && *b - *a < chrono::Duration::hours(2));
            }
            let covering = |at: DateTime<Utc>| {
                let in_days = parts.days.is_some_and(|(s, e)| midnight(s) <= at && e.is_none_or(|e| at < midnight(e)));
                let in_ranges = |r: &Vec<(DateTime<Utc>, DateTime<Utc>)>| r.iter().filter(|(a, b)| *a <= at && at < *b).count();
                usize::from(in_days) + in_ranges(&parts.hours) + in_ranges(&parts.raw)
            };
            if len > 0 {
                let at = from + chrono::Duration::seconds((len as f64 * probe) as i64);
                let at = at.min(to - chrono::Duration::seconds(1));
                proptest::prop_assert_eq!(covering(at), 1, "{} in {:?}", at, parts);
            }
            proptest::prop_assert_eq!(covering(to), 0);
            if from > DateTime::<Utc>::UNIX_EPOCH {
                proptest::prop_assert_eq!(covering(from - chrono::Duration::seconds(1)), 0);
            }
        }
    }

    #[test]
    fn instants_from_1970_to_the_end_of_9999_are_accepted() {
        for ok in ["1970-01-01T00:00:00Z", "2026-11-01T10:00:00+02:00", "9999-12-31T23:59:59.999999999Z"] {
            assert_eq!(in_range(t(ok)), Ok(t(ok)), "{ok}");
        }
        for bad in [
            "1969-12-31T23:59:59.999999999Z",
            "+10000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-00:01",
            "-262143-01-05T00:00:00Z",
            "+262142-12-31T23:59:59Z",
        ] {
            assert!(in_range(t(bad)).is_err(), "{bad}");
        }
        assert!(in_range(DateTime::<Utc>::MIN_UTC).is_err());
        assert!(in_range(DateTime::<Utc>::MAX_UTC).is_err());
        assert_eq!(LATEST, t("9999-12-31T23:59:59.999999999Z"));
    }

    #[test]
    fn windows_at_the_edges_of_the_range_split_without_overflow() {
        let all = Window { from: EARLIEST, to: Some(LATEST) };
        let split = all.split();
        assert_eq!(split.days, Some((d("1970-01-01"), Some(d("9999-12-31")))));
        assert_eq!(split.hours, vec![(t("9999-12-31T00:00:00Z"), t("9999-12-31T23:00:00Z"))]);
        assert_eq!(split.raw, vec![(t("9999-12-31T23:00:00Z"), LATEST)]);
        let open = Window { from: LATEST, to: None };
        assert_eq!(open.split().days, Some((NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap(), None)));
    }

    #[test]
    fn whole_months_among_the_days_come_from_the_monthly_rollups() {
        use Rollup::{Days as D, Hours as H, Months as M};
        let coarse = |from: &str, to: Option<&str>| Window { from: t(from), to: to.map(t) }.split().coarse_rollups();
        assert_eq!(
            coarse("2026-08-17T00:00:00Z", Some("2026-12-05T09:00:00Z")),
            vec![
                D(d("2026-08-17"), Some(d("2026-09-01"))),
                M(d("2026-09-01"), Some(d("2026-12-01"))),
                D(d("2026-12-01"), Some(d("2026-12-05"))),
                H(t("2026-12-05T00:00:00Z"), t("2026-12-05T09:00:00Z")),
            ]
        );
        // Aligned to months: nothing but months.
        assert_eq!(
            coarse("2026-01-01T00:00:00Z", Some("2026-03-01T00:00:00Z")),
            vec![M(d("2026-01-01"), Some(d("2026-03-01")))]
        );
        // No whole month: days as before.
        assert_eq!(
            coarse("2026-11-03T00:00:00Z", Some("2026-12-02T00:00:00Z")),
            vec![D(d("2026-11-03"), Some(d("2026-12-02")))]
        );
        // All time: months from 1970, then this month's days.
        assert_eq!(
            coarse("1970-01-01T00:00:00Z", Some("2026-12-05T00:00:00Z")),
            vec![M(d("1970-01-01"), Some(d("2026-12-01"))), D(d("2026-12-01"), Some(d("2026-12-05")))]
        );
        // Open-ended: every month from the first whole one.
        assert_eq!(
            coarse("2026-11-15T00:00:00Z", None),
            vec![D(d("2026-11-15"), Some(d("2026-12-01"))), M(d("2026-12-01"), None)]
        );
        // At the end of the accepted range, without overflow.
        let ten_thousand = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        assert_eq!(
            Window { from: t("9999-12-02T00:00:00Z"), to: None }.split().coarse_rollups(),
            vec![D(d("9999-12-02"), Some(ten_thousand)), M(ten_thousand, None)]
        );
        assert_eq!(
            Window { from: EARLIEST, to: Some(LATEST) }.split().coarse_rollups(),
            vec![
                M(d("1970-01-01"), Some(d("9999-12-01"))),
                D(d("9999-12-01"), Some(d("9999-12-31"))),
                H(t("9999-12-31T00:00:00Z"), t("9999-12-31T23:00:00Z")),
            ]
        );
    }

    proptest::proptest! {
        /// The coarse parts cover exactly the days the daily parts do: every day in one part.
        #[test]
        fn coarse_parts_cover_the_same_days(from in 0i64..4_000_000_000, len in 0i64..200_000_000, probe in 0.0f64..1.0) {
            let from = DateTime::from_timestamp(from, 0).unwrap();
            let to = from + chrono::Duration::seconds(len);
            let split = Window { from, to: Some(to) }.split();
            let coarse = split.coarse_rollups();
            let day = from.date_naive() + Days::new((len as f64 * probe / 86_400.0) as u64);
            let in_days = split.days.is_some_and(|(s, e)| s <= day && e.is_none_or(|e| day < e));
            let covering = coarse.iter().filter(|part| match **part {
                Rollup::Days(s, e) | Rollup::Months(s, e) => s <= day && e.is_none_or(|e| day < e),
                Rollup::Hours(..) => false,
            }).count();
            proptest::prop_assert_eq!(covering, usize::from(in_days), "{} in {:?}", day, coarse);
            for part in &coarse {
                if let Rollup::Months(s, e) = part {
                    proptest::prop_assert!(s.day() == 1 && e.is_none_or(|e| e.day() == 1 && *s < e));
                }
            }
        }
    }

    #[test]
    fn open_windows_take_every_day_from_the_start() {
        let w = Window { from: DateTime::<Utc>::UNIX_EPOCH, to: None };
        assert_eq!(w.split(), split(Some(("1970-01-01", None)), &[], &[]));
        let ragged = Window { from: t("2026-11-01T10:30:00Z"), to: None };
        assert_eq!(ragged.split().hours, vec![(t("2026-11-01T11:00:00Z"), t("2026-11-02T00:00:00Z"))]);
        assert_eq!(ragged.split().raw, vec![(t("2026-11-01T10:30:00Z"), t("2026-11-01T11:00:00Z"))]);
    }
}
