//! Storing click batches from the edge: exactly once per click id, no IP, no user-agent string.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::ClickEvent;

pub mod ua;

/// Most clicks one batch may carry (the queue delivers at most 100).
pub const MAX_BATCH: usize = 1000;

/// How far ahead of our clock an edge timestamp may be before we call it malformed.
const MAX_CLOCK_SKEW: Duration = Duration::minutes(10);

/// What happened to a batch. Every click is in exactly one of stored, duplicates, unknown_links and rejected.
#[derive(Debug, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct IngestSummary {
    pub received: usize,
    /// Newly stored.
    pub stored: u64,
    /// Already stored before (a redelivered batch), or repeated within this batch.
    pub duplicates: u64,
    /// Naming no link we know (or a code that does not match its link); counted and logged, not stored.
    pub unknown_links: u64,
    /// Events that are not valid click events, with their index in the batch.
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub error: String,
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
}

/// Parses and validates each event on its own, so one malformed event never costs the others.
pub fn parse_batch(events: &[Box<RawValue>], now: DateTime<Utc>) -> (Vec<ClickEvent>, Vec<Rejected>) {
    let mut valid = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for (index, raw) in events.iter().enumerate() {
        let parsed = serde_json::from_str::<ClickEvent>(raw.get())
            .map_err(|e| e.to_string())
            .and_then(|event| event.validate().map(|()| event).map_err(|e| e.to_string()))
            .and_then(|event| match DateTime::from_timestamp_millis(event.occurred_at_ms) {
                Some(at) if at <= now + MAX_CLOCK_SKEW => Ok(event),
                _ => Err("occurred_at_ms is out of range".to_owned()),
            });
        match parsed {
            Ok(event) => valid.push(event),
            Err(error) => rejected.push(Rejected { index, error }),
        }
    }
    (valid, rejected)
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
            }
        })
        .collect()
}

/// Stores valid events in one statement, with the rollups reports read (first clicks per visitor and
/// link; the batch's daily counts and breakdowns as delta rows, folded in by `rollups::run`), and queues
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
                                  $7::bool[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
               as t(id, link_id, code, occurred_at, visitor_id, new_visitor, bot, country, referrer_host,
                    device_type, browser, os)
         ), known as (
             select input.*, links.brand_id from input
             join links on links.id = input.link_id and links.code = input.code
         ), inserted as (
             insert into clicks (id, link_id, brand_id, occurred_at, visitor_id, new_visitor, bot, country,
                                 referrer_host, device_type, browser, os)
             select id, link_id, brand_id, occurred_at, visitor_id, new_visitor, bot, country, referrer_host,
                    device_type, browser, os
             from known order by id
             on conflict (id) do nothing
             returning id, link_id, brand_id, occurred_at, visitor_id, bot, country, device_type, browser, os,
                       (occurred_at at time zone 'UTC')::date as day
         ), firsts as (
             insert into link_visitors (link_id, visitor_id, brand_id, first_click_at)
             select distinct on (link_id, visitor_id) link_id, visitor_id, brand_id, occurred_at
             from inserted where not bot
             order by link_id, visitor_id, occurred_at
             on conflict (link_id, visitor_id) do nothing
             returning link_id, brand_id, (first_click_at at time zone 'UTC')::date as day
         ), daily as (
             insert into link_daily_delta (link_id, day, brand_id, clicks, unique_clicks, bot_clicks)
             select link_id, day, brand_id, sum(clicks), sum(uniques), sum(bots) from (
                 select link_id, day, brand_id, (not bot)::int as clicks, 0 as uniques, bot::int as bots from inserted
                 union all
                 select link_id, day, brand_id, 0, 1, 0 from firsts
             ) counted
             group by link_id, day, brand_id
         ), dims as (
             insert into link_daily_dims_delta (link_id, day, dimension, value, clicks)
             select link_id, day, d.dimension, coalesce(d.value, 'unknown'), count(*)
             from inserted
             cross join lateral (values (0::smallint, country), (1::smallint, device_type), (2::smallint, browser),
                                        (3::smallint, os)) as d(dimension, value)
             where not bot
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
    .fetch_one(db)
    .await
}

/// Whether a failed statement may simply be run again (a deadlock or serialization failure: the
/// statement was rolled back whole).
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// Validates, classifies and stores one batch; returns only after the commit.
pub async fn store_batch(db: &PgPool, events: &[Box<RawValue>]) -> anyhow::Result<IngestSummary> {
    let (valid, rejected) = parse_batch(events, Utc::now());
    for r in &rejected {
        tracing::warn!(index = r.index, error = %r.error, "rejected a malformed click event");
    }
    // Repeats inside one batch count as duplicates, like repeats across batches.
    let mut seen = HashSet::with_capacity(valid.len());
    let unique: Vec<ClickEvent> = valid.into_iter().filter(|e| seen.insert(e.click_id)).collect();
    let in_batch_repeats = (events.len() - rejected.len() - unique.len()) as u64;
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
    };
    tracing::info!(
        received = summary.received,
        stored = summary.stored,
        duplicates = summary.duplicates,
        unknown_links = summary.unknown_links,
        rejected = summary.rejected.len(),
        "click batch stored"
    );
    Ok(summary)
}
