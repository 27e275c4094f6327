//! Splitting a report window into whole UTC days, answered from the rollups, and the partial days at
//! its edges, answered from the raw clicks. A window aligned to midnight (what date pickers send)
//! touches no raw click at all, however many millions the brand has.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};

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
    fn open_windows_take_every_day_from_the_start() {
        let w = Window { from: DateTime::<Utc>::UNIX_EPOCH, to: None };
        assert_eq!(w.split(), Split { days: Some((d("1970-01-01"), None)), raw: vec![] });
        let ragged = Window { from: t("2026-11-01T10:00:00Z"), to: None };
        assert_eq!(ragged.split().raw, vec![(t("2026-11-01T10:00:00Z"), t("2026-11-02T00:00:00Z"))]);
    }
}
