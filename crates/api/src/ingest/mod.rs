//! Storing click batches from the edge: exactly once per click id, no IP, no user-agent string.
//!
//! Every event of a batch ends in exactly one place. Valid events are stored (or counted as
//! duplicates, or as clicks of links we do not know). An event refused *for good*, because nothing
//! any deploy could do makes it valid, is `rejected`: the batch is still acknowledged and the event is
//! gone. An event refused for a reason a later deploy or time itself can cure is `retry_later`: the
//! rest of the batch is stored and committed all the same, but the answer is not a 2xx, so the queue
//! delivers the event again and, if it never becomes acceptable, keeps it in its dead-letter queue
//! instead of losing it. What is curable:
//!
//! - an event version newer than the one this API reads (`v` above [`CLICK_EVENT_VERSION`]): a worker
//!   deployed before the API that reads it;
//! - a timestamp more than [`MAX_CLOCK_SKEW`] ahead of our clock, however far: either the edge's clock
//!   runs ahead (the click becomes acceptable as time passes) or ours runs behind (a server that booted
//!   with a wrong clock would otherwise throw every click away until someone fixed it).
//!
//! Everything else is final: not a JSON object, a missing or older `v`, a field that does not parse or
//! validate, a timestamp out of range, or one older than the ingestion horizon (`CLICK_MAX_AGE_DAYS`,
//! 14 days by default; an age only grows, and a click that old was not delivered by the queue, whose
//! messages live 4 days at most, but replayed or forged).

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::{ClickEvent, CLICK_EVENT_VERSION};

use crate::partitions::{self, Table};

pub mod ua;

/// Most clicks one batch may carry (the queue delivers at most 100).
pub const MAX_BATCH: usize = 1000;

/// How far ahead of our clock an edge timestamp may be before the click waits for a later delivery.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(10);

/// What happened to a batch. Every click is in exactly one of stored, duplicates, unknown_links,
/// rejected and retry_later.
#[derive(Debug, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct IngestSummary {
    pub received: usize,
    /// Newly stored.
    pub stored: u64,
    /// Already stored before (a redelivered batch), or repeated within this batch.
    pub duplicates: u64,
    /// Naming no link we know (or a code that does not match its link); counted and logged, not stored.
    pub unknown_links: u64,
    /// Events that can never be valid click events, with their index in the batch: dropped for good.
    pub rejected: Vec<Rejected>,
    /// Events this API cannot take yet (a newer event version, a clock ahead of ours), with their index:
    /// not stored, to be delivered again. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_later: Vec<Rejected>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub error: String,
}

/// The clock and horizon a batch is judged by (passed in, so tests can pin them).
#[derive(Debug, Clone, Copy)]
pub struct Horizon {
    pub now: DateTime<Utc>,
    /// `CLICK_MAX_AGE_DAYS`: older clicks are rejected.
    pub max_age: Duration,
}

/// Why one event was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing will ever make it valid.
    Malformed(String),
    /// A later deploy, or time, can make it acceptable: deliver it again.
    RetryLater(String),
}

/// The events of a batch, sorted by what becomes of them.
#[derive(Debug, Default)]
pub struct Parsed {
    pub valid: Vec<ClickEvent>,
    pub rejected: Vec<Rejected>,
    pub retry_later: Vec<Rejected>,
}

/// Just the version of an event, read before anything else: a newer layout may differ in every
/// other field.
#[derive(Deserialize)]
struct Versioned {
    v: Option<serde_json::Value>,
}

/// Judges one event (see the module's documentation for what is curable).
pub fn classify(raw: &RawValue, horizon: Horizon) -> Result<ClickEvent, Refusal> {
    let versioned: Versioned =
        serde_json::from_str(raw.get()).map_err(|_| Refusal::Malformed("a click event is a JSON object".into()))?;
    if let Some(v) = versioned.v.as_ref().and_then(serde_json::Value::as_u64) {
        if v > u64::from(CLICK_EVENT_VERSION) {
            return Err(Refusal::RetryLater(format!(
                "click event version {v} is newer than this API reads ({CLICK_EVENT_VERSION})"
            )));
        }
    }
    let event = serde_json::from_str::<ClickEvent>(raw.get()).map_err(|e| Refusal::Malformed(e.to_string()))?;
    event.validate().map_err(|e| Refusal::Malformed(e.to_string()))?;
    let at = DateTime::from_timestamp_millis(event.occurred_at_ms)
        .ok_or_else(|| Refusal::Malformed("occurred_at_ms is out of range".into()))?;
    if at > horizon.now + MAX_CLOCK_SKEW {
        let ahead = (at - horizon.now).num_seconds();
        return Err(Refusal::RetryLater(format!(
            "occurred_at_ms is {ahead} s ahead of this server's clock (more than {} min)",
            MAX_CLOCK_SKEW.num_minutes()
        )));
    }
    if at < horizon.now - horizon.max_age {
        return Err(Refusal::Malformed(format!(
            "occurred_at_ms is older than the {}-day ingestion horizon",
            horizon.max_age.num_days()
        )));
    }
    Ok(event)
}

/// Parses and judges each event on its own, so one bad event never costs the others.
pub fn parse_batch(events: &[Box<RawValue>], horizon: Horizon) -> Parsed {
    let mut parsed = Parsed { valid: Vec::with_capacity(events.len()), ..Parsed::default() };
    for (index, raw) in events.iter().enumerate() {
        match classify(raw, horizon) {
            Ok(event) => parsed.valid.push(event),
            Err(Refusal::Malformed(error)) => parsed.rejected.push(Rejected { index, error }),
            Err(Refusal::RetryLater(error)) => parsed.retry_later.push(Rejected { index, error }),
        }
    }
    parsed
}

/// A click ready for the `clicks` table.
struct Row {
    id: Uuid,
    link_id: Uuid,
    code: String,
    occurred_at: DateTime<Utc>,
    visitor_id: Uuid,
    new_visitor: bool,
    bot: bool,
    country: Option<String>,
    referrer_host: Option<String>,
    device_type: Option<&'static str>,
    browser: Option<String>,
    os: Option<String>,
    source: &'static str,
}

/// Classifies the user agents (CPU work, so off the async runtime) and drops the strings.
fn to_rows(events: Vec<ClickEvent>, classifier: &ua::Classifier) -> Vec<Row> {
    events
        .into_iter()
        .map(|e| {
            let classified = e.user_agent.as_deref().map(|ua| classifier.classify(ua));
            Row {
                id: e.click_id.as_uuid(),
                link_id: e.link_id,
                code: e.code.to_string(),
                occurred_at: DateTime::from_timestamp_millis(e.occurred_at_ms).unwrap_or_default(),
                visitor_id: e.visitor_id.as_uuid(),
                new_visitor: e.new_visitor,
                bot: e.bot,
                country: e.country,
                referrer_host: e.referrer_host,
                device_type: classified.as_ref().map(|c| c.device_type),
                browser: classified.as_ref().map(|c| c.browser.clone()),
                os: classified.as_ref().map(|c| c.os.clone()),
                source: e.source.as_str(),
            }
        })
        .collect()
}

/// Stores valid events in one statement, with the rollups reports read (first clicks per visitor and
/// link; the batch's hourly counts and breakdowns as delta rows, folded into the hourly and daily rollups
/// by `rollups::run`), and queues
/// the orders that name a newly stored human click for re-attribution. Returns
/// (known, inserted): clicks whose link exists, and of those the ones not stored before.
///
/// Nothing here updates a row another batch may update too (the deltas are appended), so concurrent
/// batches of the same hot link never wait for each other's commits.
async fn insert(db: &PgPool, rows: &[Row]) -> Result<(i64, i64), sqlx::Error> {
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query_as(
        "with input as (
             select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::uuid[], $6::bool[],
                                  $7::bool[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                                  $13::text[])
               as t(id, link_id, code, occurred_at, visitor_id, new_visitor, bot, country, referrer_host,
                    device_type, browser, os, source)
         ), known as (
             select input.*, links.brand_id from input
             join links on links.id = input.link_id and links.code = input.code
         ), inserted as (
             insert into clicks (id, link_id, brand_id, occurred_at, visitor_id, new_visitor, bot, country,
                                 referrer_host, device_type, browser, os, source)
             select id, link_id, brand_id, occurred_at, visitor_id, new_visitor, bot, country, referrer_host,
                    device_type, browser, os, source
             from known order by id
             -- A redelivery carries the same id and time: the partitioned table's key.
             on conflict (id, occurred_at) do nothing
             returning id, link_id, brand_id, occurred_at, visitor_id, bot, country, device_type, browser, os, source,
                       date_bin('1 hour', occurred_at, timestamptz '2000-01-01 00:00:00+00') as hour
         ), firsts as (
             insert into link_visitors (link_id, visitor_id, brand_id, first_click_at)
             select distinct on (link_id, visitor_id) link_id, visitor_id, brand_id, occurred_at
             from inserted where not bot
             order by link_id, visitor_id, occurred_at
             on conflict (link_id, visitor_id) do nothing
             returning link_id, brand_id, date_bin('1 hour', first_click_at, timestamptz '2000-01-01 00:00:00+00') as hour
         ), hourly as (
             insert into link_hourly_delta (link_id, hour, brand_id, clicks, unique_clicks, bot_clicks)
             select link_id, hour, brand_id, sum(clicks), sum(uniques), sum(bots) from (
                 select link_id, hour, brand_id, (not bot)::int as clicks, 0 as uniques, bot::int as bots from inserted
                 union all
                 select link_id, hour, brand_id, 0, 1, 0 from firsts
             ) counted
             group by link_id, hour, brand_id
         ), dims as (
             insert into link_hourly_dims_delta (link_id, hour, dimension, value, clicks)
             select link_id, hour, d.dimension, coalesce(d.value, 'unknown'), count(*)
             from inserted
             cross join lateral (values (0::smallint, country), (1::smallint, device_type), (2::smallint, browser),
                                        (3::smallint, os), (4::smallint, source)) as d(dimension, value)
             -- The source is counted for QR scans only: a link's other clicks are its clicks less its scans.
             where not bot and (d.dimension <> 4 or d.value <> 'link')
             group by 1, 2, 3, 4
         ), reattribute as (
             insert into reattribution_queue (brand_id, order_id)
             select distinct r.brand_id, r.order_id
             from inserted i join order_refs r on r.cs_ref_id = i.id and r.brand_id = i.brand_id
             where not i.bot
             on conflict do nothing
         )
         select (select count(*) from known), (select count(*) from inserted)",
    )
    .bind(column!(id))
    .bind(column!(link_id))
    .bind(column!(code))
    .bind(column!(occurred_at))
    .bind(column!(visitor_id))
    .bind(column!(new_visitor))
    .bind(column!(bot))
    .bind(column!(country))
    .bind(column!(referrer_host))
    .bind(column!(device_type))
    .bind(column!(browser))
    .bind(column!(os))
    .bind(column!(source))
    .fetch_one(db)
    .await
}

/// Whether a failed statement may simply be run again (a deadlock or serialization failure: the
/// statement was rolled back whole).
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// Whether a statement failed because a row's time falls in no partition of its table.
fn is_missing_partition(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("23514") && db.message().starts_with("no partition of relation"))
}

/// Validates, classifies and stores one batch; returns only after the commit. Events to retry later
/// are listed in the summary; the caller answers so that they are delivered again.
pub async fn store_batch(db: &PgPool, events: &[Box<RawValue>], horizon: Horizon) -> anyhow::Result<IngestSummary> {
    let Parsed { valid, rejected, retry_later } = parse_batch(events, horizon);
    for r in &rejected {
        tracing::warn!(index = r.index, error = %r.error, "rejected a malformed click event");
    }
    for r in &retry_later {
        tracing::warn!(index = r.index, error = %r.error, "a click event to retry later");
    }
    // Repeats inside one batch count as duplicates, like repeats across batches.
    let mut seen = HashSet::with_capacity(valid.len());
    let unique: Vec<ClickEvent> = valid.into_iter().filter(|e| seen.insert(e.click_id)).collect();
    let in_batch_repeats = (events.len() - rejected.len() - retry_later.len() - unique.len()) as u64;
    let candidates = unique.len();

    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Row>> {
        Ok(to_rows(unique, ua::Classifier::global()?))
    })
    .await??;
    let mut attempt = 0;
    let (known, inserted) = loop {
        attempt += 1;
        match insert(db, &rows).await {
            Err(e) if attempt < 5 && is_transient(&e) => tracing::info!(error = %e, attempt, "retrying click batch"),
            // A click dated in a month that has no partition yet: the month is created and the batch
            // stored again (the failed statement stored nothing).
            Err(e) if attempt < 5 && is_missing_partition(&e) => {
                let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.occurred_at).collect();
                let created = partitions::create_missing(&mut *db.acquire().await?, Table::Clicks, &times).await?;
                tracing::warn!(?created, "clicks dated in a month without a partition: created it");
            }
            other => break other?,
        }
    };
    let (known, inserted) = (u64::try_from(known)?, u64::try_from(inserted)?);
    // Orders reported before their click arrived were queued for re-attribution by the same statement;
    // `attribution::run_reattribution` credits them, without holding this batch's answer.
    let unknown_links = candidates as u64 - known;
    if unknown_links > 0 {
        tracing::warn!(unknown_links, "clicks for links we do not know were dropped");
    }
    let summary = IngestSummary {
        received: events.len(),
        stored: inserted,
        duplicates: known - inserted + in_batch_repeats,
        unknown_links,
        rejected,
        retry_later,
    };
    tracing::info!(
        received = summary.received,
        stored = summary.stored,
        duplicates = summary.duplicates,
        unknown_links = summary.unknown_links,
        rejected = summary.rejected.len(),
        retry_later = summary.retry_later.len(),
        "click batch stored"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_780_000_000_000;

    fn horizon() -> Horizon {
        Horizon { now: DateTime::from_timestamp_millis(NOW_MS).unwrap(), max_age: Duration::days(14) }
    }

    fn event(v: serde_json::Value, occurred_at_ms: i64) -> Box<RawValue> {
        let json = serde_json::json!({
            "v": v, "click_id": "7f0c2d4e9a3b4c5d8e6f1a2b3c4d5e6f", "code": "k7m2p9qr",
            "link_id": "00000000-0000-0000-0000-000000000007", "occurred_at_ms": occurred_at_ms,
            "visitor_id": "1a2b3c4d5e6f4a8b9c0d1e2f3a4b5c6d", "new_visitor": true, "bot": false,
        });
        RawValue::from_string(json.to_string()).unwrap()
    }

    fn judged(raw: &RawValue) -> Result<(), Refusal> {
        classify(raw, horizon()).map(drop)
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn a_current_event_within_the_clock_and_the_horizon_is_valid() {
        assert_eq!(judged(&event(1.into(), NOW_MS)), Ok(()));
        assert_eq!(judged(&event(1.into(), NOW_MS + MAX_CLOCK_SKEW.num_milliseconds())), Ok(()));
        assert_eq!(judged(&event(1.into(), NOW_MS - Duration::days(14).num_milliseconds())), Ok(()));
    }

    #[test]
    fn a_newer_event_version_is_retried_whatever_its_other_fields() {
        assert!(matches!(judged(&event(2.into(), NOW_MS)), Err(Refusal::RetryLater(e)) if e.contains("version 2")));
        assert!(matches!(judged(&raw(r#"{"v": 7, "layout": "unknown"}"#)), Err(Refusal::RetryLater(_))));
    }

    #[test]
    fn a_clock_ahead_of_ours_is_retried_however_far() {
        for ahead in [MAX_CLOCK_SKEW + Duration::milliseconds(1), Duration::days(1), Duration::days(3650)] {
            let refusal = judged(&event(1.into(), NOW_MS + ahead.num_milliseconds()));
            assert!(matches!(refusal, Err(Refusal::RetryLater(ref e)) if e.contains("ahead")), "{ahead}: {refusal:?}");
        }
    }

    #[test]
    fn what_no_deploy_can_cure_is_rejected() {
        let too_old = NOW_MS - (Duration::days(14) + Duration::milliseconds(1)).num_milliseconds();
        let cases = [
            event(1.into(), too_old),
            event(1.into(), i64::MAX),
            event(0.into(), NOW_MS),
            event(serde_json::json!("2"), NOW_MS),
            event(serde_json::json!(1.5), NOW_MS),
            event(serde_json::json!(-3), NOW_MS),
            raw(r#"{"click_id": "x"}"#),
            raw(r#""a string""#),
            raw("[1]"),
            raw("null"),
        ];
        for case in &cases {
            assert!(matches!(judged(case), Err(Refusal::Malformed(_))), "{}: {:?}", case.get(), judged(case));
        }
        let old = judged(&event(1.into(), too_old));
        assert!(matches!(old, Err(Refusal::Malformed(ref e)) if e.contains("14-day ingestion horizon")), "{old:?}");
    }

    #[test]
    fn a_batch_is_sorted_by_index_into_valid_rejected_and_retry_later() {
        let batch =
            vec![event(1.into(), NOW_MS), event(2.into(), NOW_MS), raw("{}"), event(1.into(), NOW_MS + 3_600_000)];
        let parsed = parse_batch(&batch, horizon());
        assert_eq!(parsed.valid.len(), 1);
        assert_eq!(parsed.rejected.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2]);
        assert_eq!(parsed.retry_later.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 3]);
    }
}
