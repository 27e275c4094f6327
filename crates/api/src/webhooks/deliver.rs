//! Sending events: signed per the Standard Webhooks specification, at least once, in order per
//! endpoint, with exponential back-off and jitter for more than three days.
//!
//! A pass takes, for each enabled endpoint whose oldest pending delivery is due, a run of its pending
//! deliveries in order, and leases them (several processes may deliver: an endpoint is taken by one at a
//! time, through a row lock held only while leasing). Each run is sent in order and stops at the first
//! failure: later events of that endpoint wait behind it, so a receiver sees events in the order they
//! happened as far as retries allow. A lease that outlives its process (a crash mid-run) expires, and
//! the run is sent again: a receiver may see an event twice, and deduplicates by `webhook-id`.

use std::time::Duration as StdDuration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use std::sync::Arc;

use super::TargetPolicy;
use crate::config::Config;

/// Delays before the 2nd, 3rd, … attempt (Standard Webhooks' suggested schedule, extended so retries
/// last more than three days); after the last one fails the delivery is `failed`.
const RETRY_DELAYS_SECS: [i64; 11] =
    [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600, 12 * 3600, 12 * 3600, 12 * 3600, 12 * 3600];

/// An endpoint whose every attempt failed for this long is disabled.
pub const DISABLE_AFTER: Duration = Duration::days(5);

/// Deliveries sent per endpoint in one run, and endpoints served at once.
const RUN: i64 = 50;
const ENDPOINTS_PER_PASS: i64 = 32;

/// The delay before attempt `attempts + 1`, with up to 20% of jitter added (so receivers that failed
/// together are not retried together, and the schedule never gets shorter), or `None` when retries are
/// exhausted.
pub fn retry_delay(attempts: i32, rng: &mut impl Rng) -> Option<Duration> {
    let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
    let base = *RETRY_DELAYS_SECS.get(index)? * 1000;
    let jitter = rng.gen_range(0..=base / 5);
    Some(Duration::milliseconds(base + jitter))
}

/// The retry schedule's total length without jitter: how long a delivery is tried.
pub fn retry_span() -> Duration {
    Duration::seconds(RETRY_DELAYS_SECS.iter().sum())
}

/// What sends deliveries: an HTTP client that obeys the target policy, and the per-attempt timeout.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    policy: TargetPolicy,
    timeout: StdDuration,
    /// What rendering objects needs (the tracking domain of short URLs).
    config: Arc<Config>,
}

impl Deliverer {
    /// A deliverer with the deployment's target policy (`ALLOW_PRIVATE_TARGETS`) and timeout.
    pub fn new(config: Arc<Config>) -> anyhow::Result<Self> {
        let policy = config.target_policy();
        let timeout = config.webhook_timeout;
        Ok(Deliverer { client: policy.client(timeout)?, policy, timeout, config })
    }
}

/// `v1,<base64 of HMAC-SHA256("{id}.{timestamp}.{body}")>` with the secret's key (the base64 after
/// `whsec_`); `None` for a secret that is not one of ours.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The body every delivery of an event carries.
#[derive(Serialize)]
struct Payload<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_attributes: Option<Value>,
}

/// The JSON body of an event: `data` is the object as the REST API shows it.
pub fn render(
    config: &Config,
    id: Uuid,
    kind: &str,
    created_at: DateTime<Utc>,
    object: &Value,
    previous: Option<&Value>,
) -> String {
    let (data, previous_attributes) = if kind.starts_with("link.") {
        match crate::links::from_snapshot(object, config) {
            Ok(link) => (serde_json::to_value(&link).unwrap_or_else(|_| object.clone()), previous.cloned()),
            Err(_) => (object.clone(), previous.cloned()),
        }
    } else if kind.starts_with("conversion.") {
        match crate::conversions::from_snapshot(object) {
            Ok(conversion) => {
                let previous = previous.map(|p| match p.get("refunded_minor").and_then(Value::as_i64) {
                    Some(minor) => serde_json::json!({"refunded": crate::money::Money {
                        amount_minor: minor, currency: conversion.amount.currency.clone() }}),
                    None => p.clone(),
                });
                (serde_json::to_value(&conversion).unwrap_or_else(|_| object.clone()), previous)
            }
            Err(_) => (object.clone(), previous.cloned()),
        }
    } else {
        (object.clone(), previous.cloned())
    };
    let payload = Payload {
        id,
        kind,
        created_at: created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
        previous_attributes,
    };
    serde_json::to_string(&payload).unwrap_or_default()
}

/// One leased delivery, with what sending it needs.
#[derive(sqlx::FromRow)]
struct Leased {
    id: Uuid,
    endpoint_id: Uuid,
    attempts: i32,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<DateTime<Utc>>,
    event_id: Uuid,
    event_type: String,
    object: Value,
    previous: Option<Value>,
    event_created_at: DateTime<Utc>,
    seq: i64,
}

/// How one attempt ended.
struct Outcome {
    id: Uuid,
    endpoint_id: Uuid,
    attempts: i32,
    delivered: bool,
    status_code: Option<i32>,
    error: Option<String>,
}

/// Sends what is due at `now`. Returns how many attempts were made.
pub async fn deliver_due(db: &PgPool, deliverer: &Deliverer, now: DateTime<Utc>) -> anyhow::Result<usize> {
    // A run may take one timeout per delivery; the lease covers that and then some.
    let lease = Duration::from_std(deliverer.timeout * u32::try_from(RUN)?)? + Duration::seconds(60);
    let leased: Vec<Leased> = sqlx::query_as(
        "with ready as (
             select e.id from webhook_endpoints e
             cross join lateral (
                 select d.next_attempt_at, d.leased_until from webhook_deliveries d
                 where d.endpoint_id = e.id and d.status = 'pending' order by d.seq limit 1) head
             where e.enabled and head.next_attempt_at <= $1 and (head.leased_until is null or head.leased_until <= $1)
             order by head.next_attempt_at
             limit $3
             for update of e skip locked),
         picked as (
             select run.id, run.seq from ready cross join lateral (
                 select d.id, d.seq from webhook_deliveries d
                 where d.endpoint_id = ready.id and d.status = 'pending' order by d.seq limit $2) run)
         update webhook_deliveries d set leased_until = $1 + $4::interval
         from picked, webhook_endpoints e, webhook_events ev
         where d.id = picked.id and e.id = d.endpoint_id and ev.id = d.event_id
         returning d.id, d.endpoint_id, d.attempts, e.url, e.secret, e.previous_secret, e.previous_secret_until,
                   ev.id as event_id, ev.type as event_type, ev.object, ev.previous,
                   ev.created_at as event_created_at, picked.seq",
    )
    .bind(now)
    .bind(RUN)
    .bind(ENDPOINTS_PER_PASS)
    .bind(lease)
    .fetch_all(db)
    .await?;
    if leased.is_empty() {
        return Ok(0);
    }
    // Runs per endpoint, in order (RETURNING keeps no order of its own).
    let mut runs: Vec<Vec<Leased>> = Vec::new();
    let mut sorted = leased;
    sorted.sort_by_key(|l| (l.endpoint_id, l.seq));
    for item in sorted {
        match runs.last_mut() {
            Some(run) if run[0].endpoint_id == item.endpoint_id => run.push(item),
            _ => runs.push(vec![item]),
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for run in runs {
        let deliverer = deliverer.clone();
        tasks.spawn(async move { send_run(&deliverer, run, now).await });
    }
    let mut outcomes = Vec::new();
    let mut untried = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (sent, rest) = done?;
        outcomes.extend(sent);
        untried.extend(rest);
    }
    let attempts = outcomes.len();
    record(db, outcomes, untried, now).await?;
    Ok(attempts)
}

/// Sends a run in order until one fails; answers the outcomes and the deliveries not tried.
async fn send_run(deliverer: &Deliverer, run: Vec<Leased>, now: DateTime<Utc>) -> (Vec<Outcome>, Vec<Uuid>) {
    let mut outcomes = Vec::with_capacity(run.len());
    let mut rest = run.into_iter();
    for item in rest.by_ref() {
        let outcome = send_one(deliverer, &item, now).await;
        let failed = !outcome.delivered;
        outcomes.push(outcome);
        if failed {
            break;
        }
    }
    (outcomes, rest.map(|l| l.id).collect())
}

async fn send_one(deliverer: &Deliverer, item: &Leased, now: DateTime<Utc>) -> Outcome {
    let id = item.event_id.to_string();
    let body = render(
        &deliverer.config,
        item.event_id,
        &item.event_type,
        item.event_created_at,
        &item.object,
        item.previous.as_ref(),
    );
    let timestamp = now.timestamp();
    let mut signatures: Vec<String> = sign(&item.secret, &id, timestamp, &body).into_iter().collect();
    if let (Some(previous), Some(until)) = (&item.previous_secret, item.previous_secret_until) {
        if until > now {
            signatures.extend(sign(previous, &id, timestamp, &body));
        }
    }
    let outcome = |delivered: bool, status_code: Option<i32>, error: Option<String>| Outcome {
        id: item.id,
        endpoint_id: item.endpoint_id,
        attempts: item.attempts + 1,
        delivered,
        status_code,
        error,
    };
    // An address written in the URL is never resolved, so the client's resolver cannot check it.
    if let Err(refused) = deliverer.policy.check_url(&item.url, true) {
        return outcome(false, None, Some(format!("refused: {refused}")));
    }
    let sent = deliverer
        .client
        .post(&item.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures.join(" "))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            outcome(true, Some(i32::from(response.status().as_u16())), None)
        }
        Ok(response) => {
            let status = response.status();
            outcome(false, Some(i32::from(status.as_u16())), Some(format!("the endpoint answered {status}")))
        }
        Err(e) => outcome(false, None, Some(describe(&e))),
    }
}

/// A transport failure in a sentence (the refusal of a private address included).
fn describe(error: &reqwest::Error) -> String {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<super::Refused>() {
            return format!("refused: {refused}");
        }
        cause = e.source();
    }
    if error.is_timeout() {
        "no answer within the timeout".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// Stores what the attempts did, releases what was not tried, and settles the endpoints: a success ends
/// an endpoint's failing streak, a failure starts one, and a streak of [`DISABLE_AFTER`] disables it.
async fn record(db: &PgPool, outcomes: Vec<Outcome>, untried: Vec<Uuid>, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    let mut attempts = Vec::new();
    let mut codes = Vec::new();
    let mut errors = Vec::new();
    let mut next = Vec::new();
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    for o in &outcomes {
        ids.push(o.id);
        attempts.push(o.attempts);
        codes.push(o.status_code);
        errors.push(o.error.clone());
        if o.delivered {
            statuses.push("delivered".to_owned());
            next.push(now);
            succeeded.push(o.endpoint_id);
        } else {
            match retry_delay(o.attempts, &mut rand::thread_rng()) {
                Some(delay) => {
                    statuses.push("pending".to_owned());
                    next.push(now + delay);
                }
                None => {
                    statuses.push("failed".to_owned());
                    next.push(now);
                }
            }
            failed.push(o.endpoint_id);
        }
    }
    let mut tx = db.begin().await?;
    sqlx::query(
        "update webhook_deliveries d
         set status = o.status, attempts = o.attempts, last_status_code = o.code, last_error = o.error,
             last_attempt_at = $7, next_attempt_at = o.next, leased_until = null,
             delivered_at = case when o.status = 'delivered' then $7 else d.delivered_at end
         from unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::text[], $6::timestamptz[])
             as o(id, status, attempts, code, error, next)
         where d.id = o.id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&attempts)
    .bind(&codes)
    .bind(&errors)
    .bind(&next)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("update webhook_deliveries set leased_until = null where id = any($1)")
        .bind(&untried)
        .execute(&mut *tx)
        .await?;
    sqlx::query("update webhook_endpoints set failing_since = null where id = any($1) and failing_since is not null")
        .bind(&succeeded)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update webhook_endpoints
         set failing_since = coalesce(failing_since, $2),
             enabled = enabled and coalesce(failing_since, $2) > $2 - $3::interval,
             disabled_reason = case when enabled and coalesce(failing_since, $2) <= $2 - $3::interval
                                    then 'failing' else disabled_reason end,
             disabled_at = case when enabled and coalesce(failing_since, $2) <= $2 - $3::interval
                                then $2 else disabled_at end,
             updated_at = now()
         where id = any($1) and not (id = any($4))",
    )
    .bind(&failed)
    .bind(now)
    .bind(DISABLE_AFTER)
    .bind(&succeeded)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for o in outcomes.iter().filter(|o| !o.delivered) {
        tracing::info!(delivery = %o.id, endpoint = %o.endpoint_id, attempts = o.attempts,
                       error = o.error.as_deref().unwrap_or(""), "webhook delivery failed");
    }
    Ok(())
}

/// Delivers what is due until `stop`: right away while there is work, else every `idle`.
pub async fn run(db: PgPool, deliverer: Deliverer, idle: StdDuration, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        // Stopping abandons a pass in flight: its leases expire and another pass sends those again.
        let pass = tokio::select! {
            pass = deliver_due(&db, &deliverer, Utc::now()) => pass,
            _ = stop.changed() => return,
        };
        match pass {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "delivering webhooks failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter_for_more_than_three_days() {
        let mut rng = rand::thread_rng();
        assert!(retry_span() > Duration::days(3));
        let first = retry_delay(1, &mut rng).unwrap();
        assert!(first >= Duration::seconds(5) && first <= Duration::seconds(6));
        let mut previous = Duration::zero();
        for attempts in 1..=11 {
            let base = Duration::seconds(RETRY_DELAYS_SECS[attempts - 1]);
            let delay = retry_delay(attempts as i32, &mut rng).unwrap();
            assert!(delay >= base && delay <= base * 6 / 5);
            assert!(base >= previous);
            previous = base;
        }
        assert_eq!(retry_delay(12, &mut rng), None);
        assert_eq!(retry_delay(0, &mut rng), None);
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(sign("not-a-secret", "id", 1, "{}"), None);
    }
}
