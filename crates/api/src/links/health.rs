//! Destination health: whether a link's destination still answers. A broken destination burns a paid
//! post, so each active link's destination is checked when the link is created, when its destination
//! changes (both make the check due at once: the column's default, and [`super::update`]) and then daily.
//!
//! A check asks with `HEAD` (and with `GET` when `HEAD` gets an error answer: some servers refuse it),
//! follows at most [`MAX_REDIRECTS`] redirects itself, and gives up after the checker's timeout (10 s
//! in production) for the whole check. Every URL on the way is held to the outbound [`TargetPolicy`]:
//! loopback, private and link-local addresses are refused unless `ALLOW_PRIVATE_TARGETS=true`. 2xx is
//! `ok`; an error status, too many redirects or a redirect to nowhere is `broken` (with the status);
//! no answer at all is `unreachable`.
//!
//! Background passes ([`run_due`]) claim due links (several API processes may run), check at most one
//! link per destination host at a time with a pause between them, store what they found and when the
//! next check is due (a day later, spread over an hour by link id so daily checks do not bunch up), and
//! emit `link.destination_broken` when a link that was fine (or never checked) stops being fine. A health
//! result is not a change of the link: its version, its KV record and `link.updated` stay as they were.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, LOCATION, USER_AGENT};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;
use url::Url;
use uuid::Uuid;

use super::{DestinationStatus, LINK_COLUMNS};
use crate::config::Config;
use crate::webhooks::{Refused, TargetPolicy};

/// The most redirects one check follows; one more is `broken`.
pub const MAX_REDIRECTS: usize = 5;

/// How long one check may take in production, redirects included.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause between two checks of one destination host.
pub const HOST_GAP: Duration = Duration::from_secs(1);

/// The event emitted when a destination stops answering successfully.
pub const BROKEN_EVENT: &str = "link.destination_broken";

/// Sent with every check: a browser-like agent (some shops refuse unknown ones) that says what it is.
pub const CHECK_USER_AGENT: &str = concat!(
    "Mozilla/5.0 (compatible; CreatorScore-LinkCheck/",
    env!("CARGO_PKG_VERSION"),
    "; checks that tracking links' destinations answer)"
);

/// How long a claimed link is withheld from other passes while it is checked. A process that stops
/// mid-pass leaves its claims due again after this.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: DestinationStatus,
    /// The last HTTP status answered: the 2xx for `ok`, the error or last redirect status for `broken`,
    /// none for `unreachable`.
    pub http_status: Option<i32>,
}

impl Outcome {
    fn ok(status: StatusCode) -> Self {
        Outcome { status: DestinationStatus::Ok, http_status: Some(i32::from(status.as_u16())) }
    }

    fn broken(status: StatusCode) -> Self {
        Outcome { status: DestinationStatus::Broken, http_status: Some(i32::from(status.as_u16())) }
    }

    fn unreachable() -> Self {
        Outcome { status: DestinationStatus::Unreachable, http_status: None }
    }
}

/// Checks destinations: the HTTP client, the target policy, the timeout and how load is spread.
#[derive(Clone)]
pub struct Checker {
    client: reqwest::Client,
    policy: TargetPolicy,
    timeout: Duration,
    host_gap: Duration,
    per_host: usize,
    hosts_at_once: usize,
}

impl Checker {
    /// A checker holding URLs to `policy`, giving each check `timeout` in all; one second between
    /// checks of a host, at most 10 links of one host per pass, 8 hosts at once.
    pub fn new(policy: TargetPolicy, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Checker {
            client: policy.client(timeout)?,
            policy,
            timeout,
            host_gap: HOST_GAP,
            per_host: 10,
            hosts_at_once: 8,
        })
    }

    /// The production checker: the configured target policy and a 10 s timeout.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Self::new(config.target_policy(), CHECK_TIMEOUT)
    }

    /// The pause between two checks of one host.
    pub fn with_host_gap(mut self, gap: Duration) -> Self {
        self.host_gap = gap;
        self
    }

    /// The most links of one host a pass checks; the others stay due for the next pass.
    pub fn with_per_host(mut self, per_host: usize) -> Self {
        self.per_host = per_host.max(1);
        self
    }

    /// Checks one destination.
    pub async fn check(&self, url: &str) -> Outcome {
        tokio::time::timeout(self.timeout, self.follow(url)).await.unwrap_or_else(|_| Outcome::unreachable())
    }

    async fn follow(&self, raw: &str) -> Outcome {
        let Ok(mut url) = self.policy.check_url(raw, false) else { return Outcome::unreachable() };
        let mut method = Method::HEAD;
        let mut redirects = 0;
        loop {
            let Ok(mut response) = self.send(method.clone(), &url).await else { return Outcome::unreachable() };
            // Servers that do not do HEAD answer 405 or 501, and some answer 403 or 404 instead: ask again
            // with GET, and keep to GET from here on.
            if method == Method::HEAD && (response.status().is_client_error() || response.status().is_server_error()) {
                method = Method::GET;
                let Ok(again) = self.send(method.clone(), &url).await else { return Outcome::unreachable() };
                response = again;
            }
            let status = response.status();
            if status.is_success() {
                return Outcome::ok(status);
            }
            if !status.is_redirection() || redirects == MAX_REDIRECTS {
                return Outcome::broken(status);
            }
            let next = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| url.join(location).ok());
            let Some(next) = next else { return Outcome::broken(status) };
            url = match self.policy.check_url(next.as_str(), false) {
                Ok(next) => next,
                Err(Refused::Private(_)) => return Outcome::unreachable(),
                // Not http(s), or credentials: not somewhere a visitor's browser would land.
                Err(_) => return Outcome::broken(status),
            };
            redirects += 1;
        }
    }

    /// One request; a GET's body is never read.
    async fn send(&self, method: Method, url: &Url) -> reqwest::Result<reqwest::Response> {
        self.client
            .request(method, url.clone())
            .header(USER_AGENT, CHECK_USER_AGENT)
            .header(ACCEPT, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
            .send()
            .await
    }
}

/// The lowercase host of a destination: checks of one host are spread out.
fn host_of(url: &str) -> String {
    Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default()
}

/// When the check after one made at `now` is due: a day later, plus up to an hour chosen by the link's
/// id, so that links created together are not checked together every day.
pub fn next_due(link_id: Uuid, now: DateTime<Utc>) -> DateTime<Utc> {
    let spread = (link_id.as_u128() % 3600) as i64;
    now + chrono::Duration::hours(24) + chrono::Duration::seconds(spread)
}

/// A link claimed for a check.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: Uuid,
    pub brand_id: Uuid,
    /// The destination as it was claimed: the result is stored only if it is still the link's.
    pub destination_url: String,
    /// When the check was due (restored when a pass leaves the link for the next one).
    pub due_at: DateTime<Utc>,
}

/// Claims at most `limit` active links whose check is due at `now`, longest due first: they are held
/// from other passes (in this process or another) for a lease, and become due again if no result is
/// stored before it ends.
pub async fn claim(db: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as::<_, Due>(
        "update links l set destination_check_due_at = $2
         from (select id, destination_check_due_at from links
               where active and destination_check_due_at <= $1
               order by destination_check_due_at limit $3
               for update skip locked) d
         where l.id = d.id
         returning l.id, l.brand_id, l.destination_url, d.destination_check_due_at as due_at",
    )
    .bind(now)
    .bind(now + CLAIM_LEASE)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Gives claimed links back unchecked: due when they were.
async fn release(db: &PgPool, links: &[Due]) -> Result<(), sqlx::Error> {
    if links.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = links.iter().map(|d| d.id).collect();
    let due: Vec<DateTime<Utc>> = links.iter().map(|d| d.due_at).collect();
    sqlx::query(
        "update links l set destination_check_due_at = r.due
         from unnest($1::uuid[], $2::timestamptz[]) as r (id, due)
         where l.id = r.id and l.active",
    )
    .bind(&ids)
    .bind(&due)
    .execute(db)
    .await?;
    Ok(())
}

/// Stores what the check of a claimed link found at `now`, and when the next check is due; emits
/// `link.destination_broken` when the link was `ok` or never checked and now is not. Nothing is stored
/// when the link changed its destination or was deactivated meanwhile (that change wins; a new
/// destination is due at once). Returns whether the result was stored.
pub async fn record(db: &PgPool, due: &Due, outcome: Outcome, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let previous: Option<(Option<String>,)> = sqlx::query_as(
        "select destination_status from links where id = $1 and active and destination_url = $2 for update",
    )
    .bind(due.id)
    .bind(&due.destination_url)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((previous,)) = previous else { return Ok(false) };
    sqlx::query(
        "update links set destination_status = $2, destination_http_status = $3, destination_checked_at = $4,
             destination_check_due_at = $5
         where id = $1",
    )
    .bind(due.id)
    .bind(outcome.status.as_str())
    .bind(outcome.http_status)
    .bind(now)
    .bind(next_due(due.id, now))
    .execute(&mut *tx)
    .await?;
    let was_fine = matches!(previous.as_deref(), None | Some("ok"));
    if was_fine && outcome.status != DestinationStatus::Ok {
        // Like every link event: the row as stored, only for brands with an enabled endpoint.
        sqlx::query(&format!(
            "select emit_webhook_event($2, $3,
                 (select to_jsonb(l) from (select {LINK_COLUMNS} from links where id = $1) l),
                 jsonb_build_object('destination_status', $4::text))
             where exists (select 1 from webhook_endpoints where brand_id = $2 and enabled)"
        ))
        .bind(due.id)
        .bind(due.brand_id)
        .bind(BROKEN_EVENT)
        .bind(previous.as_deref())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// One pass at `now`: claims at most `limit` due links and checks them, several hosts at once but one
/// link of a host at a time with the checker's pause between them; links beyond the checker's share per
/// host are left due for the next pass. Returns how many links were checked.
pub async fn run_due(db: &PgPool, checker: &Checker, now: DateTime<Utc>, limit: i64) -> Result<usize, sqlx::Error> {
    let claimed = claim(db, now, limit).await?;
    let mut by_host: BTreeMap<String, Vec<Due>> = BTreeMap::new();
    let mut later = Vec::new();
    for due in claimed {
        let links = by_host.entry(host_of(&due.destination_url)).or_default();
        if links.len() < checker.per_host {
            links.push(due);
        } else {
            later.push(due);
        }
    }
    release(db, &later).await?;
    let checked = futures_util::stream::iter(by_host.into_values().map(|links| check_host(db, checker, now, links)))
        .buffer_unordered(checker.hosts_at_once)
        .fold(0, |total, n| async move { total + n })
        .await;
    Ok(checked)
}

/// Checks one host's links one after the other.
async fn check_host(db: &PgPool, checker: &Checker, now: DateTime<Utc>, links: Vec<Due>) -> usize {
    let mut checked = 0;
    for (i, due) in links.iter().enumerate() {
        if i > 0 && !checker.host_gap.is_zero() {
            tokio::time::sleep(checker.host_gap).await;
        }
        let outcome = checker.check(&due.destination_url).await;
        match record(db, due, outcome, now).await {
            Ok(_) => checked += 1,
            // The claim's lease ends and the link is checked again.
            Err(e) => tracing::warn!(link_id = %due.id, error = %e, "storing a destination check failed"),
        }
        if outcome.status != DestinationStatus::Ok {
            tracing::info!(link_id = %due.id, status = outcome.status.as_str(), http_status = outcome.http_status,
                "destination check failed");
        }
    }
    checked
}

/// The most links one pass claims.
const PASS_LIMIT: i64 = 100;

/// Checks due destinations every `every` until `stop` (a pass in progress is abandoned; its claims
/// become due again when their lease ends).
pub async fn run(db: PgPool, checker: Checker, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            result = run_due(&db, &checker, Utc::now(), PASS_LIMIT) => match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(links = n, "destinations checked"),
                Err(e) => tracing::warn!(error = %e, "checking destinations failed; trying again"),
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
