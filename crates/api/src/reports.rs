//! Splitting a report window into whole UTC days, answered from the rollups, and the partial days at
//! its edges, answered from the raw clicks. A window aligned to midnight (what date pickers send)
//! touches no raw click at all, however many millions the brand has.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use serde::{de, Deserialize, Deserializer};

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

/// Where each part of a window is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Whole days `[start, end)` (end `None`: no upper bound), read from the daily rollups.
    pub days: Option<(NaiveDate, Option<NaiveDate>)>,
    /// Time ranges `[from, to)` read from raw clicks.
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

impl Window {
    pub fn split(&self) -> Split {
        let first = ceil_day(self.from);
        let mut raw = Vec::new();
        match self.to {
            None => {
                if self.from < midnight(first) {
                    raw.push((self.from, midnight(first)));
                }
                Split { days: Some((first, None)), raw }
            }
            Some(to) => {
                let end = to.date_naive();
                if first < end {
                    if self.from < midnight(first) {
                        raw.push((self.from, midnight(first)));
                    }
                    if midnight(end) < to {
                        raw.push((midnight(end), to));
                    }
                    Split { days: Some((first, Some(end))), raw }
                } else {
                    if self.from < to {
                        raw.push((self.from, to));
                    }
                    Split { days: None, raw }
                }
            }
        }
    }

    /// The window's upper bound for queries that need one (conversions): open means now.
    pub fn to_or(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.to.unwrap_or(now)
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

    #[test]
    fn aligned_windows_read_only_rollups() {
        let w = Window { from: t("2026-11-01T00:00:00Z"), to: Some(t("2026-11-08T00:00:00Z")) };
        assert_eq!(w.split(), Split { days: Some((d("2026-11-01"), Some(d("2026-11-08")))), raw: vec![] });
    }

    #[test]
    fn ragged_edges_are_read_raw() {
        let w = Window { from: t("2026-11-01T10:00:00Z"), to: Some(t("2026-11-08T06:00:00Z")) };
        assert_eq!(
            w.split(),
            Split {
                days: Some((d("2026-11-02"), Some(d("2026-11-08")))),
                raw: vec![
                    (t("2026-11-01T10:00:00Z"), t("2026-11-02T00:00:00Z")),
                    (t("2026-11-08T00:00:00Z"), t("2026-11-08T06:00:00Z"))
                ],
            }
        );
    }

    #[test]
    fn windows_within_a_day_are_all_raw() {
        let w = Window { from: t("2026-11-01T10:00:00Z"), to: Some(t("2026-11-02T06:00:00Z")) };
        assert_eq!(w.split(), Split { days: None, raw: vec![(t("2026-11-01T10:00:00Z"), t("2026-11-02T06:00:00Z"))] });
        let empty = Window { from: t("2026-11-01T10:00:00Z"), to: Some(t("2026-11-01T10:00:00Z")) };
        assert_eq!(empty.split(), Split { days: None, raw: vec![] });
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
        assert_eq!(split.raw, vec![(t("9999-12-31T00:00:00Z"), LATEST)]);
        let open = Window { from: LATEST, to: None };
        assert_eq!(open.split().days, Some((NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap(), None)));
    }

    #[test]
    fn open_windows_take_every_day_from_the_start() {
        let w = Window { from: DateTime::<Utc>::UNIX_EPOCH, to: None };
        assert_eq!(w.split(), Split { days: Some((d("1970-01-01"), None)), raw: vec![] });
        let ragged = Window { from: t("2026-11-01T10:00:00Z"), to: None };
        assert_eq!(ragged.split().raw, vec![(t("2026-11-01T10:00:00Z"), t("2026-11-02T00:00:00Z"))]);
    }
}
