//! Shopify: brands' claims on shops and who owns them ([`shops`]), webhook signatures and their age,
//! and what a verified delivery does to orders.
//!
//! A delivery is stored with its exact body whatever happens next, so it can be replayed after a fix.
//! Its payload is parsed before the database is touched; a delivery whose payload we cannot use is kept
//! with the reason (and answered 400), one we can is recorded as processed in the same transaction as
//! the order or refund it reports. A webhook id is processed at most once: a redelivery of a processed
//! delivery changes nothing, one of a failed delivery is tried again.

pub mod payload;
pub mod shops;

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, PgPool};
use url::Url;
use uuid::Uuid;

use crate::attribution::{self, Judged, OrderReport};
use crate::money::MaxOrderValue;
use payload::{Order, PayloadError, Refund, ShopifyRefund};
pub use shops::{shop_cache, ShopCache};

/// A shop's host name, lowercase: `example.myshopify.com` (what Shopify sends in
/// `X-Shopify-Shop-Domain`), or any plain host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShopDomain(String);

/// Why a shop domain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shop_domain must be a host name like example.myshopify.com")]
pub struct ShopDomainError;

impl ShopDomain {
    /// Accepts a host name in any case, with or without a trailing dot, or an `https://host/` URL
    /// naming nothing but the host (what people paste from the browser's address bar).
    pub fn parse(input: &str) -> Result<Self, ShopDomainError> {
        let input = input.trim();
        let host = if input.contains("://") {
            let url = Url::parse(input).map_err(|_| ShopDomainError)?;
            let bare = matches!(url.scheme(), "http" | "https")
                && url.username().is_empty()
                && url.password().is_none()
                && url.port().is_none()
                && url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none();
            if !bare {
                return Err(ShopDomainError);
            }
            url.host_str().ok_or(ShopDomainError)?.to_owned()
        } else {
            input.to_owned()
        };
        let host = host.strip_suffix('.').unwrap_or(&host).to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        let label_ok = |l: &&str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let tld_ok = labels.last().is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
        if host.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
            return Err(ShopDomainError);
        }
        Ok(ShopDomain(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShopDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The secret a shop signs its webhooks with: 1 to 256 characters, kept exactly as given (it is an
/// HMAC key), so surrounding whitespace, almost always a copy-and-paste accident, is refused.
pub struct WebhookSecret(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook_secret must be 1 to 256 characters, without surrounding spaces or control characters")]
pub struct WebhookSecretError;

impl WebhookSecret {
    pub fn parse(input: &str) -> Result<Self, WebhookSecretError> {
        let ok =
            (1..=256).contains(&input.chars().count()) && input.trim() == input && !input.chars().any(char::is_control);
        if ok {
            Ok(WebhookSecret(input.to_owned()))
        } else {
            Err(WebhookSecretError)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

// Never printed, even by accident.
impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Whether `signature` (the `X-Shopify-Hmac-Sha256` header: base64 of the HMAC-SHA256 of the raw body
/// under the shop's secret) is right, compared in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Whether a delivery Shopify triggered at `triggered_at` (its `X-Shopify-Triggered-At` header, which
/// its retries keep) is older than `max_age` at `now`. A delivery stamped in the future is not: clocks
/// differ, and the stamp is not signed anyway.
pub fn too_old(triggered_at: DateTime<Utc>, now: DateTime<Utc>, max_age: chrono::Duration) -> bool {
    now.signed_duration_since(triggered_at) > max_age
}

/// Webhook topics we act on; every other topic is verified, stored and acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    OrdersCreate,
    OrdersPaid,
    OrdersCancelled,
    RefundsCreate,
    Other,
}

impl Topic {
    pub fn parse(topic: &str) -> Self {
        match topic.trim() {
            "orders/create" => Topic::OrdersCreate,
            "orders/paid" => Topic::OrdersPaid,
            "orders/cancelled" => Topic::OrdersCancelled,
            "refunds/create" => Topic::RefundsCreate,
            _ => Topic::Other,
        }
    }
}

/// One verified delivery.
pub struct Delivery<'a> {
    pub shop: &'a ShopDomain,
    pub brand_id: Uuid,
    pub webhook_id: &'a str,
    pub topic: &'a str,
    pub body: &'a [u8],
}

/// What became of a delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The order or refund was recorded.
    Processed,
    /// This webhook id was processed before; nothing changed.
    Duplicate,
    /// A topic we do not act on; stored and acknowledged.
    Ignored,
    /// The payload cannot be used; stored with this reason.
    Rejected(PayloadError),
}

/// What a delivery asks of us, decided from its topic and body alone.
enum Work {
    Order(OrderReport),
    Refund(Option<ShopifyRefund>),
    Ignore,
}

impl Work {
    /// The order the work writes, if any.
    fn order_id(&self) -> Option<&str> {
        match self {
            Work::Order(report) => Some(&report.order_id),
            Work::Refund(Some(refund)) => Some(&refund.order_id),
            Work::Refund(None) | Work::Ignore => None,
        }
    }
}

/// The rules a delivery is judged by (`MAX_ORDER_VALUE`, `CONFIRMATION_WINDOW_HOURS`).
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub max_order_value: MaxOrderValue,
    pub confirmation_window: chrono::Duration,
}

impl Rules {
    pub fn of(config: &crate::Config) -> Self {
        Rules { max_order_value: config.max_order_value, confirmation_window: config.confirmation_window }
    }
}

fn work(topic: Topic, brand_id: Uuid, body: &[u8], rules: Rules) -> Result<Work, PayloadError> {
    match topic {
        Topic::OrdersCreate | Topic::OrdersPaid | Topic::OrdersCancelled => {
            let cancels = topic == Topic::OrdersCancelled;
            Ok(Work::Order(payload::parse::<Order>(body)?.report(brand_id, cancels, rules.max_order_value)?))
        }
        Topic::RefundsCreate => Ok(Work::Refund(payload::parse::<Refund>(body)?.refund()?)),
        Topic::Other => Ok(Work::Ignore),
    }
}

/// Stores a verified delivery and does what it asks, once per webhook id.
pub async fn receive(db: &PgPool, delivery: &Delivery<'_>, rules: Rules) -> Result<Outcome, sqlx::Error> {
    let topic = Topic::parse(delivery.topic);
    let work = match work(topic, delivery.brand_id, delivery.body, rules) {
        Ok(work) => work,
        Err(rejection) => {
            let kept = record_failure(db, delivery, &rejection.0).await?;
            return Ok(if kept { Outcome::Rejected(rejection) } else { Outcome::Duplicate });
        }
    };
    // The usual `orders/create` reports a new order: created in one round trip, with its delivery stored.
    if let (Topic::OrdersCreate, Work::Order(report)) = (topic, &work) {
        match create_order(db, delivery, report, rules).await {
            Ok(true) => return Ok(Outcome::Processed),
            // Any other (a redelivery, an order the pixel or another topic reported first) changed nothing.
            Ok(false) => {}
            Err(e) => return Err(failed(db, delivery, e).await),
        }
    }
    // A delivery about an order holds the order's lock from the start of its transaction.
    let mut tx = match work.order_id() {
        Some(order_id) => attribution::begin_for_order(db, delivery.brand_id, order_id).await?,
        None => db.begin().await?,
    };
    if !claim(&mut tx, delivery).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    match apply(&mut tx, delivery.brand_id, &work, rules).await {
        Ok(Ok(())) => tx.commit().await?,
        Ok(Err(rejection)) => {
            tx.rollback().await?;
            let kept = record_failure(db, delivery, &rejection.0).await?;
            return Ok(if kept { Outcome::Rejected(rejection) } else { Outcome::Duplicate });
        }
        Err(e) => {
            // Rolled back now, not on the connection's next use: until then its claim would hold the row
            // the failure is about to be recorded in.
            if let Err(also) = tx.rollback().await {
                tracing::warn!(error = %also, "rolling back a failed Shopify delivery");
            }
            return Err(failed(db, delivery, e).await);
        }
    }
    Ok(match work {
        Work::Ignore => Outcome::Ignored,
        Work::Order(_) | Work::Refund(_) => Outcome::Processed,
    })
}

/// Keeps a delivery that failed on a database error for a replay, and answers the error: a 500, and
/// Shopify redelivers, which tries again.
async fn failed(db: &PgPool, delivery: &Delivery<'_>, e: sqlx::Error) -> sqlx::Error {
    if let Err(also) = record_failure(db, delivery, &format!("database error: {e}")).await {
        tracing::error!(error = %also, "could not keep a failed Shopify delivery");
    }
    e
}

/// Creates the order a delivery reports, with the delivery stored as processed, in one round trip
/// ([`attribution::create_order_once`]); false, with nothing written, if the order exists or the delivery
/// was processed already.
async fn create_order(db: &PgPool, d: &Delivery<'_>, report: &OrderReport, rules: Rules) -> Result<bool, sqlx::Error> {
    let bind = |args: &mut PgArguments| -> Result<(), sqlx::error::BoxDynError> {
        args.add(d.shop.as_str())?;
        args.add(d.webhook_id)?;
        args.add(d.topic)?;
        args.add(d.body)
    };
    let claim = attribution::ClaimCte {
        sql: CLAIM_IN_ORDER_STATEMENT.as_str(),
        types: &["text", "text", "text", "bytea"],
        bind: &bind,
    };
    let judged = Judged { now: chrono::Utc::now(), confirmation_window: rules.confirmation_window };
    Ok(attribution::create_order_once(db, report, judged, &attribution::Claim::Cte(&claim)).await?.is_some())
}

/// Does what a delivery asks, in its transaction. The inner error is a refund that cannot be recorded
/// yet (it names no currency and its order is unknown): kept as a failed delivery, and applied when
/// Shopify redelivers it (or at a replay) once the order is recorded.
async fn apply(
    tx: &mut PgConnection,
    brand_id: Uuid,
    work: &Work,
    rules: Rules,
) -> Result<Result<(), PayloadError>, sqlx::Error> {
    match work {
        Work::Order(report) => {
            let judged = Judged { now: chrono::Utc::now(), confirmation_window: rules.confirmation_window };
            attribution::record_order(tx, report, judged).await?;
        }
        Work::Refund(Some(refund)) => {
            let order_currency: Option<String> =
                sqlx::query_scalar("select currency from conversions where brand_id = $1 and order_id = $2")
                    .bind(brand_id)
                    .bind(&refund.order_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let (Some(own), Some(order)) = (refund.currency.as_deref(), order_currency.as_deref()) {
                if own != order {
                    return Ok(Err(PayloadError(format!(
                        "refund {}: in {own}, but its order is in {order}: it cannot be subtracted exactly",
                        refund.refund_id
                    ))));
                }
            }
            match refund.report(brand_id, order_currency.as_deref(), rules.max_order_value) {
                Ok(report) => {
                    attribution::record_refund(tx, &report).await?;
                }
                Err(rejection) => return Ok(Err(rejection)),
            }
        }
        Work::Refund(None) | Work::Ignore => {}
    }
    Ok(Ok(()))
}

/// Stores the delivery as processed, in the transaction that processes it; false when this webhook id
/// was processed already (the row is then left untouched). A failed earlier attempt is taken over.
async fn claim(tx: &mut PgConnection, d: &Delivery<'_>) -> Result<bool, sqlx::Error> {
    store(tx, d, None).await
}

/// Keeps a delivery that could not be processed, with the reason; false when this webhook id was
/// processed already (then nothing changes).
async fn record_failure(db: &PgPool, d: &Delivery<'_>, error: &str) -> Result<bool, sqlx::Error> {
    let error: String = error.chars().take(2000).collect();
    store(db, d, Some(&error)).await
}

/// Writes a delivery, processed now (`error` is `None`) or failed with `error`, unless this webhook id
/// was processed already: then nothing changes and the answer is false.
async fn store<'e>(db: impl sqlx::PgExecutor<'e>, d: &Delivery<'_>, error: Option<&str>) -> Result<bool, sqlx::Error> {
    static STORE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| store_sql(["$1", "$2", "$3", "$4", "$5", "$6::text"]));
    let row: Option<i64> = sqlx::query_scalar(&STORE)
        .bind(d.shop.as_str())
        .bind(d.brand_id)
        .bind(d.webhook_id)
        .bind(d.topic)
        .bind(d.body)
        .bind(error)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// [`store`]'s statement as a CTE of the statement that creates the delivery's order
/// ([`attribution::ClaimCte`]): `claimed` returns a row only if the delivery was not processed before.
static CLAIM_IN_ORDER_STATEMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("claimed as ({})", store_sql(["$21", "$1", "$22", "$23", "$24", "null::text"]))
});

/// The statement that writes a delivery unless its webhook id was processed already (a failed earlier
/// attempt is taken over), returning its id if it did; over the parameters named, in order: the shop, the
/// brand, the webhook id, the topic, the body and the error (processed now when it is null).
fn store_sql([shop, brand, webhook_id, topic, body, error]: [&str; 6]) -> String {
    format!(
        "insert into shopify_deliveries (shop_domain, brand_id, webhook_id, topic, body, processed_at, error)
         values ({shop}, {brand}, {webhook_id}, {topic}, {body}, case when {error} is null then now() end, {error})
         on conflict (shop_domain, webhook_id) do update
             set brand_id = excluded.brand_id, topic = excluded.topic, body = excluded.body,
                 attempts = shopify_deliveries.attempts + 1, last_received_at = now(),
                 processed_at = excluded.processed_at, error = excluded.error
             where shopify_deliveries.processed_at is null
         returning id"
    )
}

/// How a replay went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub processed: usize,
    pub still_failing: usize,
}

/// Processes again every stored delivery that failed, oldest first, from our own copy of its body
/// (after a fix, without waiting for Shopify's redeliveries, which stop after a few hours).
pub async fn replay_failed(db: &PgPool, rules: Rules) -> Result<Replay, sqlx::Error> {
    let failed: Vec<(String, Uuid, String, String, Vec<u8>)> = sqlx::query_as(
        "select shop_domain, brand_id, webhook_id, topic, body from shopify_deliveries
         where processed_at is null order by id",
    )
    .fetch_all(db)
    .await?;
    let mut replay = Replay::default();
    for (shop, brand_id, webhook_id, topic, body) in failed {
        let shop = ShopDomain(shop);
        let delivery = Delivery { shop: &shop, brand_id, webhook_id: &webhook_id, topic: &topic, body: &body };
        match receive(db, &delivery, rules).await? {
            Outcome::Rejected(_) => replay.still_failing += 1,
            Outcome::Processed | Outcome::Ignored | Outcome::Duplicate => replay.processed += 1,
        }
    }
    Ok(replay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_domains_are_normalised() {
        for (input, expected) in [
            ("Example.MyShopify.com", "example.myshopify.com"),
            (" example.myshopify.com. ", "example.myshopify.com"),
            ("https://example.myshopify.com/", "example.myshopify.com"),
            ("https://Shop.Example.co.uk", "shop.example.co.uk"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(ShopDomain::parse(input).map(|d| d.to_string()).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn anything_but_a_host_is_refused() {
        for bad in [
            "",
            "localhost",
            "example..myshopify.com",
            "-shop.myshopify.com",
            "shop_1.myshopify.com",
            "shop.myshopify.com/admin",
            "https://shop.myshopify.com/admin",
            "https://user@shop.myshopify.com/",
            "https://shop.myshopify.com:8443/",
            "ftp://shop.myshopify.com/",
            "127.0.0.1",
            "shop.myshopify.com?x=1",
            "bücher.example",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert_eq!(ShopDomain::parse(bad), Err(ShopDomainError), "{bad}");
        }
    }

    #[test]
    fn secrets_are_kept_exactly_and_never_printed() {
        let secret = WebhookSecret::parse("shpss_0123456789abcdef").unwrap();
        assert_eq!(secret.expose(), "shpss_0123456789abcdef");
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
        for bad in ["", " padded", "padded\n", "tab\tinside", &"x".repeat(257)] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad:?}");
        }
        assert!(WebhookSecret::parse(&"é".repeat(256)).is_ok());
    }

    #[test]
    fn signatures_verify_only_for_the_exact_body_and_secret() {
        // Computed independently: printf '{"id":1}' | openssl dgst -sha256 -hmac secret -binary | base64
        let signature = "A971iWIMgT8Zj9A9eWfikrFj7wQ16/Qwcc4OlRl2PLc=";
        assert!(verify_signature(b"secret", br#"{"id":1}"#, signature));
        assert!(!verify_signature(b"secret", br#"{"id":1} "#, signature));
        assert!(!verify_signature(b"Secret", br#"{"id":1}"#, signature));
        assert!(!verify_signature(b"secret", br#"{"id":1}"#, "not base64!"));
        assert!(!verify_signature(b"secret", br#"{"id":1}"#, ""));
        assert!(!verify_signature(b"secret", br#"{"id":1}"#, &signature[..20]));
    }
}
