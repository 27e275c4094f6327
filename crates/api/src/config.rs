//! Settings, read once from the environment at start-up. Every variable has a documented default
//! (see `.env.example`), so `api serve` runs on a fresh machine with none set.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};

use anyhow::{bail, Context};
use url::Url;

use crate::client::ClientIpSource;
use crate::money::MaxOrderValue;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/tracking_links";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_INTERNAL_BIND_ADDR: &str = "127.0.0.1:8081";
/// The shortest shared token accepted (`EDGE_INGEST_TOKEN`, `KV_SYNC_TOKEN`): 32 bytes, 256 bits when random.
pub const MIN_SHARED_TOKEN_BYTES: usize = 32;
pub const DEFAULT_TRACKING_BASE_URL: &str = "https://trk.creatorscore.io";
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:8080";

/// The API's settings. Its `Debug` shows where the API listens and the origins it serves, never a database
/// URL (which can hold a password), a token or a key.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`: the PostgreSQL database (created at start-up if missing).
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS`: pool size (default 16; the read replica's pool has as many again).
    pub database_max_connections: u32,
    /// `DATABASE_READ_URL`: a streaming replica of `DATABASE_URL` that reports and lists read from (falling
    /// back to the primary while it does not answer). Unset: everything reads from the primary.
    pub database_read_url: Option<String>,
    /// `DATABASE_READ_MAX_LAG_SECS`: how far behind the primary the replica may be before reports and lists
    /// read from the primary instead (default 30 seconds).
    pub database_read_max_lag: std::time::Duration,
    /// `BIND_ADDR`: where the HTTP server listens.
    pub bind_addr: SocketAddr,
    /// `INTERNAL_BIND_ADDR`: where `/internal/*` (click ingestion) is served, and nowhere else; loopback by
    /// default. Never the same address as `BIND_ADDR`.
    pub internal_bind_addr: SocketAddr,
    /// `TRACKING_BASE_URL`: the public origin of the edge; short links are this plus `/` plus the code.
    pub tracking_base_url: Url,
    /// `EDGE_INGEST_TOKEN`: the bearer token the edge's queue consumer presents to `/internal/clicks`.
    /// Unset: click ingestion refuses everything.
    pub edge_ingest_token: Option<String>,
    /// `CLICK_MAX_AGE_DAYS`: clicks older than this are rejected at ingestion (default 14, beyond the
    /// queue's retention of 4 days).
    pub click_max_age: chrono::Duration,
    /// `KV_SINK` and its settings: where link records are pushed.
    pub kv_sink: KvSinkConfig,
    /// `KV_RECONCILE_EVERY_MINUTES`: how often links changed in the last day are pushed to KV again
    /// (default 60; `0` turns it off).
    pub kv_reconcile_every: Option<std::time::Duration>,
    /// `PIXEL_RATE_PER_PIXEL`: pixel events per second one pixel may send to this process (burst: twice).
    pub pixel_rate_per_pixel: NonZeroU32,
    /// `PIXEL_RATE_PER_CLIENT`: pixel events per second one client address may send per pixel (burst: twice).
    pub pixel_rate_per_client: NonZeroU32,
    /// `CLIENT_IP_SOURCE` and `TRUSTED_PROXY_HOPS` (or the older `TRUST_FORWARDED_FOR`): where the client
    /// address the pixel and sign-in limits count comes from.
    pub client_ip_source: ClientIpSource,
    /// `SIGNIN_MAX_CONCURRENT_HASHES`: sign-ins hashing a password at once (19 MiB each); default: the CPUs.
    pub signin_max_concurrent_hashes: NonZeroUsize,
    /// `SIGNIN_RATE_PER_SECOND`: sign-in attempts per second across all clients (burst: twice; default 10).
    pub signin_rate_per_second: NonZeroU32,
    /// `DASHBOARD_SECURE_COOKIES`: whether the dashboard's cookies are `Secure` (and `__Host-` prefixed).
    pub dashboard_secure_cookies: SecureCookies,
    /// `MAX_ORDER_VALUE`: the largest order (or refund) amount accepted, in major units (default 1,000,000).
    pub max_order_value: MaxOrderValue,
    /// `CONFIRMATION_WINDOW_HOURS`: how long an order only the pixel reported, on a brand with a server-side
    /// source, stays `pending` before it is `unconfirmed` (default 72).
    pub confirmation_window: chrono::Duration,
    /// `SHOPIFY_MAX_DELIVERY_AGE_HOURS`: Shopify deliveries whose `X-Shopify-Triggered-At` is older than this
    /// are refused (default 48: Shopify's retries keep the first attempt's time and last 4 hours).
    pub shopify_max_delivery_age: chrono::Duration,
    /// `SHOPIFY_WEBHOOK_CONCURRENCY`: Shopify deliveries handled at once; beyond it, 503 (default 64).
    pub shopify_webhook_concurrency: usize,
    /// `RETAIN_SHOPIFY_BODIES_DAYS`, `RETAIN_OUTBOX_DAYS`, `RETAIN_PAGE_VIEWS_DAYS`,
    /// `RETAIN_WEBHOOK_DELIVERIES_DAYS`: how long processed Shopify delivery bodies, finished KV outbox rows,
    /// pixel page views and ended webhook deliveries are kept (30, 7, 90, 30 days).
    pub retention: crate::retention::Retention,
    /// `CLICKS_RETENTION_MONTHS`: raw clicks are kept this many whole months, then dropped a month at a
    /// time (the rollups stay); unset, for ever. 1 to 1200, and longer than `CLICK_MAX_AGE_DAYS`.
    pub clicks_retention_months: Option<u32>,
    /// `ALLOW_PRIVATE_TARGETS`: a development setting; `true` lets webhooks (and destination checks) reach
    /// plain http, loopback, private and link-local addresses. Default `false`.
    pub allow_private_targets: bool,
    /// `DESTINATION_CHECKS`: whether this process checks links' destinations in the background (default
    /// `true`; see `links::health`).
    pub destination_checks: bool,
    /// `WEBHOOK_TIMEOUT_SECONDS`: how long an outbound webhook delivery waits for a 2xx (default 10).
    pub webhook_timeout: std::time::Duration,
    /// `CF_ZONE_ID` (with `CF_API_TOKEN` and `CF_API_BASE`): the Cloudflare for SaaS zone whose custom
    /// hostnames prove brands' domains. Unset: domains stay pending until `api domain activate`.
    pub custom_hostnames: Option<CustomHostnamesConfig>,
    /// `PUBLIC_BASE_URL`: the API's own public origin (default `http://127.0.0.1:8080`): the `issuer` of
    /// signed statements.
    pub public_base_url: Url,
    /// `STATEMENT_SIGNING_KEY` (`<kid>:<base64url Ed25519 seed>`) and `STATEMENT_RETIRED_KEYS`
    /// (comma-separated `<kid>:<base64url public key>`): the keys of signed statements. Without a
    /// signing key, statements cannot be issued (503 `statements_unavailable`).
    pub statement_keys: crate::statements::StatementKeys,
    /// `STATEMENT_VERIFY_RATE_PER_CLIENT`: statement verifications per second one client address may ask
    /// for (burst: twice; default 5).
    pub statement_verify_rate_per_client: NonZeroU32,
    /// `REDIS_URL` (with `REDIS_KEY_PREFIX`): where every process's rate limits are counted together.
    /// Unset: each process counts its own, in memory.
    pub redis: Option<RedisSettings>,
}

/// The Redis that shared rate limits are counted in.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `REDIS_URL`: `redis://[user:password@]host[:port][/db]` or `unix:///path/to/socket`.
    pub url: String,
    /// `REDIS_KEY_PREFIX` (default `tl:`): the start of every key written, so several deployments (or
    /// test runs) can share one Redis.
    pub key_prefix: String,
}

/// The URL may carry a password: it is never printed.
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings").field("url", &"<set>").field("key_prefix", &self.key_prefix).finish()
    }
}

pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tl:";

/// Cloudflare for SaaS settings for brands' custom domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomHostnamesConfig {
    pub api_base: Url,
    pub zone_id: String,
    pub token: String,
}

/// `DASHBOARD_SECURE_COOKIES`: `auto` (default), `true` or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureCookies {
    /// Secure, except for requests addressed to a loopback host (`127.0.0.1`, `localhost`, `[::1]`),
    /// which local development serves over plain http. Production sits behind TLS, so its cookies are
    /// Secure without any setting.
    Auto,
    Always,
    Never,
}

/// `KV_SINK`: `none` (default; links never reach an edge), `worker` or `cloudflare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvSinkConfig {
    None,
    /// `KV_SYNC_URL` (the worker's origin) and `KV_SYNC_TOKEN`.
    Worker {
        url: Url,
        token: String,
    },
    /// `CF_API_BASE` (default Cloudflare's v4 API), `CF_ACCOUNT_ID`, `CF_KV_NAMESPACE_ID`, `CF_API_TOKEN`.
    Cloudflare {
        api_base: Url,
        account_id: String,
        namespace_id: String,
        token: String,
    },
}

pub const DEFAULT_CF_API_BASE: &str = "https://api.cloudflare.com/client/v4";

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind_addr", &self.bind_addr)
            .field("internal_bind_addr", &self.internal_bind_addr)
            .field("tracking_base_url", &self.tracking_base_url.as_str())
            .field("read_replica", &self.database_read_url.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests can pass their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get =
            |name: &str, default: &str| lookup(name).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned());
        let bind_addr = get("BIND_ADDR", DEFAULT_BIND_ADDR);
        let max_connections = get("DATABASE_MAX_CONNECTIONS", "16");
        let click_max_age = click_max_age(&get("CLICK_MAX_AGE_DAYS", "14"))?;
        Ok(Config {
            database_url: get("DATABASE_URL", DEFAULT_DATABASE_URL),
            database_max_connections: max_connections
                .parse()
                .with_context(|| format!("DATABASE_MAX_CONNECTIONS={max_connections:?} is not a number"))?,
            database_read_url: lookup("DATABASE_READ_URL").filter(|v| !v.is_empty()),
            database_read_max_lag: read_max_lag(&get("DATABASE_READ_MAX_LAG_SECS", "30"))?,
            bind_addr: bind_addr.parse().with_context(|| format!("BIND_ADDR={bind_addr:?} is not host:port"))?,
            tracking_base_url: parse_base_url(&get("TRACKING_BASE_URL", DEFAULT_TRACKING_BASE_URL))?,
            internal_bind_addr: internal_bind_addr(&get("INTERNAL_BIND_ADDR", DEFAULT_INTERNAL_BIND_ADDR), &bind_addr)?,
            edge_ingest_token: lookup("EDGE_INGEST_TOKEN")
                .filter(|t| !t.is_empty())
                .map(|t| shared_token("EDGE_INGEST_TOKEN", t))
                .transpose()?,
            click_max_age,
            clicks_retention_months: clicks_retention_months(lookup("CLICKS_RETENTION_MONTHS"), click_max_age)?,
            kv_sink: kv_sink(&lookup)?,
            kv_reconcile_every: kv_reconcile_every(&get("KV_RECONCILE_EVERY_MINUTES", "60"))?,
            pixel_rate_per_pixel: parse_number("PIXEL_RATE_PER_PIXEL", &get("PIXEL_RATE_PER_PIXEL", "2000"))?,
            pixel_rate_per_client: parse_number("PIXEL_RATE_PER_CLIENT", &get("PIXEL_RATE_PER_CLIENT", "20"))?,
            client_ip_source: client_ip_source(&lookup)?,
            signin_max_concurrent_hashes: max_concurrent_hashes(lookup("SIGNIN_MAX_CONCURRENT_HASHES"))?,
            signin_rate_per_second: parse_number("SIGNIN_RATE_PER_SECOND", &get("SIGNIN_RATE_PER_SECOND", "10"))?,
            dashboard_secure_cookies: match get("DASHBOARD_SECURE_COOKIES", "auto").as_str() {
                "auto" => SecureCookies::Auto,
                "true" | "1" | "yes" => SecureCookies::Always,
                "false" | "0" | "no" => SecureCookies::Never,
                other => bail!("DASHBOARD_SECURE_COOKIES={other:?} must be auto, true or false"),
            },
            max_order_value: MaxOrderValue(parse_positive("MAX_ORDER_VALUE", &get("MAX_ORDER_VALUE", "1000000"))?),
            confirmation_window: confirmation_window(&get("CONFIRMATION_WINDOW_HOURS", "72"))?,
            shopify_max_delivery_age: shopify_max_delivery_age(&get("SHOPIFY_MAX_DELIVERY_AGE_HOURS", "48"))?,
            shopify_webhook_concurrency: shopify_webhook_concurrency(&get("SHOPIFY_WEBHOOK_CONCURRENCY", "64"))?,
            retention: crate::retention::Retention {
                shopify_bodies: retention_days("RETAIN_SHOPIFY_BODIES_DAYS", &get("RETAIN_SHOPIFY_BODIES_DAYS", "30"))?,
                outbox: retention_days("RETAIN_OUTBOX_DAYS", &get("RETAIN_OUTBOX_DAYS", "7"))?,
                page_views: retention_days("RETAIN_PAGE_VIEWS_DAYS", &get("RETAIN_PAGE_VIEWS_DAYS", "90"))?,
                webhook_deliveries: retention_days(
                    "RETAIN_WEBHOOK_DELIVERIES_DAYS",
                    &get("RETAIN_WEBHOOK_DELIVERIES_DAYS", "30"),
                )?,
            },
            allow_private_targets: match get("ALLOW_PRIVATE_TARGETS", "false").as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => bail!("ALLOW_PRIVATE_TARGETS={other:?} must be true or false"),
            },
            destination_checks: match get("DESTINATION_CHECKS", "true").as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => bail!("DESTINATION_CHECKS={other:?} must be true or false"),
            },
            webhook_timeout: std::time::Duration::from_secs(parse_positive::<u64>(
                "WEBHOOK_TIMEOUT_SECONDS",
                &get("WEBHOOK_TIMEOUT_SECONDS", "10"),
            )?),
            custom_hostnames: custom_hostnames(&lookup)?,
            public_base_url: parse_origin("PUBLIC_BASE_URL", &get("PUBLIC_BASE_URL", DEFAULT_PUBLIC_BASE_URL))?,
            statement_keys: crate::statements::StatementKeys::parse(
                lookup("STATEMENT_SIGNING_KEY").as_deref(),
                lookup("STATEMENT_RETIRED_KEYS").as_deref(),
            )?,
            statement_verify_rate_per_client: parse_number(
                "STATEMENT_VERIFY_RATE_PER_CLIENT",
                &get("STATEMENT_VERIFY_RATE_PER_CLIENT", "5"),
            )?,
            redis: redis_settings(&lookup)?,
        })
    }

    /// `https://trk.creatorscore.io/abcd2345`.
    /// Where brands' domains are proven.
    pub fn domain_provider(&self) -> anyhow::Result<crate::domains::Provider> {
        Ok(match &self.custom_hostnames {
            None => crate::domains::Provider::Manual,
            Some(cf) => crate::domains::Provider::Cloudflare(crate::domains::CustomHostnames::new(
                &cf.api_base,
                &cf.zone_id,
                cf.token.clone(),
            )?),
        })
    }

    /// Where outbound requests may go.
    pub fn target_policy(&self) -> crate::webhooks::TargetPolicy {
        crate::webhooks::TargetPolicy { allow_private: self.allow_private_targets }
    }

    pub fn short_url(&self, code: &str) -> String {
        format!("{}/{code}", self.tracking_base_url.as_str().trim_end_matches('/'))
    }

    /// A link's short URL: on its custom domain (always https) when it has one, else [`Config::short_url`].
    pub fn link_url(&self, domain: Option<&str>, code: &str) -> String {
        match domain {
            Some(domain) => format!("https://{domain}/{code}"),
            None => self.short_url(code),
        }
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, raw: &str) -> anyhow::Result<T> {
    raw.parse().map_err(|_| anyhow::anyhow!("{name}={raw:?} is not a positive number"))
}

/// A whole number from 1 to 1,000,000,000,000 (beyond that, a limit or a window means nothing).
fn parse_positive<T: TryFrom<u64>>(name: &str, raw: &str) -> anyhow::Result<T> {
    raw.parse::<u64>()
        .ok()
        .filter(|n| (1..=1_000_000_000_000).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| anyhow::anyhow!("{name}={raw:?} must be a whole number from 1 to 1000000000000"))
}

/// `DATABASE_READ_MAX_LAG_SECS`: 1 second to a day.
fn read_max_lag(raw: &str) -> anyhow::Result<std::time::Duration> {
    let secs: u64 = parse_positive("DATABASE_READ_MAX_LAG_SECS", raw)?;
    if secs > 86_400 {
        bail!("DATABASE_READ_MAX_LAG_SECS={raw:?} must be at most 86400 (a day)");
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// `CONFIRMATION_WINDOW_HOURS`: 1 hour to 10 years.
fn confirmation_window(raw: &str) -> anyhow::Result<chrono::Duration> {
    let hours: i64 = parse_positive("CONFIRMATION_WINDOW_HOURS", raw)?;
    if hours > 87_600 {
        bail!("CONFIRMATION_WINDOW_HOURS={raw:?} must be at most 87600 (ten years)");
    }
    Ok(chrono::Duration::hours(hours))
}

/// A `RETAIN_*_DAYS` setting: 1 to 36,500 days (a hundred years: as good as for ever).
fn retention_days(name: &str, raw: &str) -> anyhow::Result<chrono::Duration> {
    let days: i64 = parse_positive(name, raw)?;
    if days > 36_500 {
        bail!("{name}={raw:?} must be at most 36500 days");
    }
    Ok(chrono::Duration::days(days))
}

/// `SIGNIN_MAX_CONCURRENT_HASHES`: 1 to 1024, by default the number of CPUs.
fn max_concurrent_hashes(raw: Option<String>) -> anyhow::Result<NonZeroUsize> {
    match raw.filter(|v| !v.is_empty()) {
        None => Ok(std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)),
        Some(raw) => raw
            .parse::<NonZeroUsize>()
            .ok()
            .filter(|n| n.get() <= 1024)
            .with_context(|| format!("SIGNIN_MAX_CONCURRENT_HASHES={raw:?} must be a whole number from 1 to 1024")),
    }
}

/// `CLIENT_IP_SOURCE` = `peer` (default) | `x-forwarded-for` | `cf-connecting-ip`, with `TRUSTED_PROXY_HOPS`
/// (default 1) for `x-forwarded-for`. `TRUST_FORWARDED_FOR=true`, the older setting, still means
/// `x-forwarded-for` (with `TRUSTED_PROXY_HOPS`); set together, the two must agree.
fn client_ip_source(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<ClientIpSource> {
    let hops = lookup("TRUSTED_PROXY_HOPS").filter(|v| !v.is_empty()).unwrap_or_else(|| "1".to_owned());
    let trusted_hops = hops
        .parse::<NonZeroU8>()
        .ok()
        .filter(|n| n.get() <= 16)
        .with_context(|| format!("TRUSTED_PROXY_HOPS={hops:?} must be a whole number from 1 to 16"))?;
    let legacy = match lookup("TRUST_FORWARDED_FOR").unwrap_or_default().as_str() {
        "" | "false" | "0" | "no" => false,
        "true" | "1" | "yes" => true,
        other => bail!("TRUST_FORWARDED_FOR={other:?} must be true or false"),
    };
    let source = match lookup("CLIENT_IP_SOURCE").unwrap_or_default().as_str() {
        "" if legacy => ClientIpSource::XForwardedFor { trusted_hops },
        "" | "peer" => ClientIpSource::Peer,
        "x-forwarded-for" => ClientIpSource::XForwardedFor { trusted_hops },
        "cf-connecting-ip" => ClientIpSource::CfConnectingIp,
        other => bail!("CLIENT_IP_SOURCE={other:?} must be peer, x-forwarded-for or cf-connecting-ip"),
    };
    if legacy && !matches!(source, ClientIpSource::XForwardedFor { .. }) {
        bail!("TRUST_FORWARDED_FOR=true means CLIENT_IP_SOURCE=x-forwarded-for; set only CLIENT_IP_SOURCE");
    }
    Ok(source)
}

/// `SHOPIFY_WEBHOOK_CONCURRENCY`: 1 to 10,000.
fn shopify_webhook_concurrency(raw: &str) -> anyhow::Result<usize> {
    let limit: usize = parse_positive("SHOPIFY_WEBHOOK_CONCURRENCY", raw)?;
    if limit > 10_000 {
        bail!("SHOPIFY_WEBHOOK_CONCURRENCY={raw:?} must be at most 10000");
    }
    Ok(limit)
}

/// `SHOPIFY_MAX_DELIVERY_AGE_HOURS`: 1 hour to 30 days.
fn shopify_max_delivery_age(raw: &str) -> anyhow::Result<chrono::Duration> {
    let hours: i64 = parse_positive("SHOPIFY_MAX_DELIVERY_AGE_HOURS", raw)?;
    if hours > 720 {
        bail!("SHOPIFY_MAX_DELIVERY_AGE_HOURS={raw:?} must be at most 720 (thirty days)");
    }
    Ok(chrono::Duration::hours(hours))
}

/// `INTERNAL_BIND_ADDR`: any `host:port` but the public listener's own (port 0, "any free port", is
/// never the same address).
fn internal_bind_addr(raw: &str, public: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = raw.parse().with_context(|| format!("INTERNAL_BIND_ADDR={raw:?} is not host:port"))?;
    if addr.port() != 0 && public.parse::<SocketAddr>().is_ok_and(|public| public == addr) {
        bail!(
            "INTERNAL_BIND_ADDR={raw:?} must differ from BIND_ADDR: /internal/* is never served on the public listener"
        );
    }
    Ok(addr)
}

/// A token shared with another service, refused when shorter than [`MIN_SHARED_TOKEN_BYTES`] (its value
/// is never printed).
fn shared_token(name: &str, token: String) -> anyhow::Result<String> {
    if token.len() < MIN_SHARED_TOKEN_BYTES {
        bail!(
            "{name} is {} bytes long; a shared token must be at least {MIN_SHARED_TOKEN_BYTES} bytes \
             (make one with `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'`)",
            token.len()
        );
    }
    Ok(token)
}

/// `CLICK_MAX_AGE_DAYS`: 1 day to 10 years.
fn click_max_age(raw: &str) -> anyhow::Result<chrono::Duration> {
    let days: i64 = parse_positive("CLICK_MAX_AGE_DAYS", raw)?;
    if days > 3650 {
        bail!("CLICK_MAX_AGE_DAYS={raw:?} must be at most 3650 (ten years)");
    }
    Ok(chrono::Duration::days(days))
}

/// `CLICKS_RETENTION_MONTHS`: unset (or empty) keeps raw clicks for ever; else 1 to 1200 months, and
/// more than `CLICK_MAX_AGE_DAYS` even in the shortest months (28 days each), so that ingestion never
/// accepts a click dated in a month retention has dropped.
fn clicks_retention_months(raw: Option<String>, click_max_age: chrono::Duration) -> anyhow::Result<Option<u32>> {
    let Some(raw) = raw.filter(|v| !v.is_empty()) else { return Ok(None) };
    let months: u32 = raw.parse().ok().filter(|m| (1..=1200).contains(m)).ok_or_else(|| {
        anyhow::anyhow!("CLICKS_RETENTION_MONTHS={raw:?} must be a whole number of months from 1 to 1200")
    })?;
    if chrono::Duration::days(28 * i64::from(months)) <= click_max_age {
        bail!(
            "CLICKS_RETENTION_MONTHS={raw:?} keeps clicks less long than CLICK_MAX_AGE_DAYS ({} days) accepts them; \
             raise it or lower CLICK_MAX_AGE_DAYS",
            click_max_age.num_days()
        );
    }
    Ok(Some(months))
}

fn kv_sink(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<KvSinkConfig> {
    let required = |name: &str| {
        lookup(name).filter(|v| !v.is_empty()).with_context(|| format!("{name} must be set for this KV_SINK"))
    };
    let url = |name: &str, raw: String| Url::parse(&raw).with_context(|| format!("{name}={raw:?} is not a URL"));
    match lookup("KV_SINK").as_deref().unwrap_or("none") {
        "" | "none" => Ok(KvSinkConfig::None),
        "worker" => Ok(KvSinkConfig::Worker {
            url: url("KV_SYNC_URL", required("KV_SYNC_URL")?)?,
            token: shared_token("KV_SYNC_TOKEN", required("KV_SYNC_TOKEN")?)?,
        }),
        "cloudflare" => Ok(KvSinkConfig::Cloudflare {
            api_base: url("CF_API_BASE", lookup("CF_API_BASE").unwrap_or_else(|| DEFAULT_CF_API_BASE.to_owned()))?,
            account_id: required("CF_ACCOUNT_ID")?,
            namespace_id: required("CF_KV_NAMESPACE_ID")?,
            token: required("CF_API_TOKEN")?,
        }),
        other => bail!("KV_SINK={other:?} must be none, worker or cloudflare"),
    }
}

/// `REDIS_URL` and `REDIS_KEY_PREFIX`. A URL the client cannot use refuses to start, naming the variable
/// but not its value (it may hold a password).
fn redis_settings(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<RedisSettings>> {
    let Some(url) = lookup("REDIS_URL").filter(|v| !v.is_empty()) else { return Ok(None) };
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("redis" | "unix" | "redis+unix") => {}
        Some("rediss") => {
            bail!("REDIS_URL: TLS (rediss://) is not built in; reach Redis over redis:// or a local TLS tunnel")
        }
        _ => bail!("REDIS_URL must be a redis:// or unix:// URL"),
    }
    if redis::Client::open(url.as_str()).is_err() {
        bail!("REDIS_URL is not a Redis URL the client can use (redis://[user:password@]host[:port][/db])");
    }
    let key_prefix =
        lookup("REDIS_KEY_PREFIX").filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_REDIS_KEY_PREFIX.to_owned());
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.' | '/');
    if key_prefix.len() > 64 || !key_prefix.chars().all(fits) {
        bail!("REDIS_KEY_PREFIX={key_prefix:?} must be at most 64 of A-Z a-z 0-9 : _ - . /");
    }
    Ok(Some(RedisSettings { url, key_prefix }))
}

fn custom_hostnames(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<CustomHostnamesConfig>> {
    let Some(zone_id) = lookup("CF_ZONE_ID").filter(|v| !v.is_empty()) else { return Ok(None) };
    let token = lookup("CF_API_TOKEN").filter(|v| !v.is_empty()).context("CF_API_TOKEN must be set with CF_ZONE_ID")?;
    let raw = lookup("CF_API_BASE").filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_CF_API_BASE.to_owned());
    let api_base = Url::parse(&raw).with_context(|| format!("CF_API_BASE={raw:?} is not a URL"))?;
    Ok(Some(CustomHostnamesConfig { api_base, zone_id, token }))
}

/// `KV_RECONCILE_EVERY_MINUTES`: 0 (off) to 1440 (a day: the reconciliation looks one day back, so a
/// longer period would leave changes it never sees again).
fn kv_reconcile_every(raw: &str) -> anyhow::Result<Option<std::time::Duration>> {
    match raw.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(minutes @ 1..=1440) => Ok(Some(std::time::Duration::from_secs(minutes * 60))),
        _ => bail!("KV_RECONCILE_EVERY_MINUTES={raw:?} must be a whole number from 0 (off) to 1440"),
    }
}

fn parse_base_url(raw: &str) -> anyhow::Result<Url> {
    parse_origin("TRACKING_BASE_URL", raw)
}

fn parse_origin(name: &str, raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("{name}={raw:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{name}={raw:?} must be an http(s) origin");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.bind_addr.to_string(), DEFAULT_BIND_ADDR);
        assert_eq!(config.tracking_base_url.host_str(), Some("trk.creatorscore.io"));
        assert_eq!(config.short_url("abcd2345"), "https://trk.creatorscore.io/abcd2345");
    }

    #[test]
    fn debug_output_never_shows_a_password_or_a_token() {
        let secrets = [
            ("DATABASE_URL", "postgres://app:db-password-1@db.internal/tracking_links"),
            ("DATABASE_READ_URL", "postgres://app:db-password-2@replica.internal/tracking_links"),
            ("EDGE_INGEST_TOKEN", "edge-token-0123456789abcdefghijklmnop"),
            ("REDIS_URL", "redis://:redis-password-3@redis.internal:6379"),
        ];
        let config =
            Config::from_lookup(|n| secrets.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())).unwrap();
        let shown = format!("{config:?}");
        for secret in ["db-password-1", "db-password-2", "edge-token-0123", "redis-password-3"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("bind_addr"), "{shown}");
    }

    #[test]
    fn the_replica_may_lag_30_seconds_unless_told_otherwise() {
        let lag = |raw: &str| {
            Config::from_lookup(|n| (n == "DATABASE_READ_MAX_LAG_SECS").then(|| raw.to_owned()))
                .map(|c| c.database_read_max_lag)
        };
        assert_eq!(Config::from_lookup(|_| None).unwrap().database_read_max_lag, std::time::Duration::from_secs(30));
        assert_eq!(lag("5").unwrap(), std::time::Duration::from_secs(5));
        assert_eq!(lag("86400").unwrap(), std::time::Duration::from_secs(86_400));
        for bad in ["0", "-1", "soon", "1.5", "86401"] {
            let err = lag(bad).unwrap_err().to_string();
            assert!(err.contains("DATABASE_READ_MAX_LAG_SECS"), "{bad}: {err}");
        }
    }

    #[test]
    fn reads_use_the_primary_unless_a_replica_is_named() {
        assert_eq!(Config::from_lookup(|_| None).unwrap().database_read_url, None);
        let empty = Config::from_lookup(|n| (n == "DATABASE_READ_URL").then(String::new)).unwrap();
        assert_eq!(empty.database_read_url, None);
        let url = "postgres://postgres@127.0.0.1:5433/tracking_links";
        let set = Config::from_lookup(|n| (n == "DATABASE_READ_URL").then(|| url.to_owned())).unwrap();
        assert_eq!(set.database_read_url.as_deref(), Some(url));
    }

    #[test]
    fn bad_values_are_reported_by_name() {
        let err = Config::from_lookup(|n| (n == "BIND_ADDR").then(|| "nope".to_owned())).unwrap_err();
        assert!(err.to_string().contains("BIND_ADDR"));
        let err = Config::from_lookup(|n| (n == "TRACKING_BASE_URL").then(|| "ftp://x".to_owned())).unwrap_err();
        assert!(err.to_string().contains("TRACKING_BASE_URL"));
    }

    #[test]
    fn order_limits_and_the_confirmation_window_are_configurable() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.max_order_value, MaxOrderValue(1_000_000));
        assert_eq!(config.confirmation_window, chrono::Duration::hours(72));
        let set = Config::from_lookup(|n| match n {
            "MAX_ORDER_VALUE" => Some("500".into()),
            "CONFIRMATION_WINDOW_HOURS" => Some("24".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((set.max_order_value, set.confirmation_window), (MaxOrderValue(500), chrono::Duration::hours(24)));
        for bad in ["0", "-1", "1.5", "lots", "99999999999999999999"] {
            let err = Config::from_lookup(|n| (n == "MAX_ORDER_VALUE").then(|| bad.to_owned())).unwrap_err();
            assert!(err.to_string().contains("MAX_ORDER_VALUE"), "{bad}");
        }
    }

    #[test]
    fn the_client_address_source_is_configured_and_the_older_setting_still_works() {
        let source = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Config::from_lookup(move |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
                .map(|c| c.client_ip_source)
        };
        let hops = |n| ClientIpSource::XForwardedFor { trusted_hops: NonZeroU8::new(n).unwrap() };
        assert_eq!(source(&[]).unwrap(), ClientIpSource::Peer);
        assert_eq!(source(&[("TRUST_FORWARDED_FOR", "true")]).unwrap(), hops(1));
        assert_eq!(
            source(&[("TRUST_FORWARDED_FOR", "false"), ("TRUSTED_PROXY_HOPS", "2")]).unwrap(),
            ClientIpSource::Peer
        );
        assert_eq!(source(&[("CLIENT_IP_SOURCE", "x-forwarded-for"), ("TRUSTED_PROXY_HOPS", "2")]).unwrap(), hops(2));
        assert_eq!(
            source(&[("CLIENT_IP_SOURCE", "x-forwarded-for"), ("TRUST_FORWARDED_FOR", "true")]).unwrap(),
            hops(1)
        );
        assert_eq!(source(&[("CLIENT_IP_SOURCE", "cf-connecting-ip")]).unwrap(), ClientIpSource::CfConnectingIp);
        for bad in [
            &[("CLIENT_IP_SOURCE", "forwarded")][..],
            &[("CLIENT_IP_SOURCE", "peer"), ("TRUST_FORWARDED_FOR", "true")],
            &[("CLIENT_IP_SOURCE", "cf-connecting-ip"), ("TRUST_FORWARDED_FOR", "true")],
            &[("TRUST_FORWARDED_FOR", "maybe")],
            &[("TRUSTED_PROXY_HOPS", "0")],
            &[("TRUSTED_PROXY_HOPS", "17")],
        ] {
            assert!(source(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sign_in_bounds_default_to_the_cpus_and_ten_a_second() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.signin_max_concurrent_hashes, std::thread::available_parallelism().unwrap());
        assert_eq!(config.signin_rate_per_second.get(), 10);
        let set = Config::from_lookup(|n| match n {
            "SIGNIN_MAX_CONCURRENT_HASHES" => Some("3".into()),
            "SIGNIN_RATE_PER_SECOND" => Some("50".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((set.signin_max_concurrent_hashes.get(), set.signin_rate_per_second.get()), (3, 50));
        let err = Config::from_lookup(|n| (n == "SIGNIN_MAX_CONCURRENT_HASHES").then(|| "0".into())).unwrap_err();
        assert!(err.to_string().contains("SIGNIN_MAX_CONCURRENT_HASHES"));
    }

    #[test]
    fn the_internal_listener_is_apart_and_loopback_by_default() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.internal_bind_addr.to_string(), DEFAULT_INTERNAL_BIND_ADDR);
        assert!(config.internal_bind_addr.ip().is_loopback());
        let same = Config::from_lookup(|n| (n == "INTERNAL_BIND_ADDR").then(|| DEFAULT_BIND_ADDR.to_owned()));
        assert!(format!("{:#}", same.unwrap_err()).contains("INTERNAL_BIND_ADDR"));
        let both_ephemeral =
            Config::from_lookup(|n| matches!(n, "BIND_ADDR" | "INTERNAL_BIND_ADDR").then(|| "127.0.0.1:0".into()));
        assert_eq!(both_ephemeral.unwrap().internal_bind_addr.port(), 0);
        assert!(Config::from_lookup(|n| (n == "INTERNAL_BIND_ADDR").then(|| "internal".into())).is_err());
    }

    #[test]
    fn shared_tokens_shorter_than_32_bytes_are_refused_by_name() {
        let long = "k".repeat(MIN_SHARED_TOKEN_BYTES);
        let short = "k".repeat(MIN_SHARED_TOKEN_BYTES - 1);
        let with = |name: &'static str, token: &str| {
            let token = token.to_owned();
            Config::from_lookup(move |n| match n {
                "KV_SINK" => Some("worker".into()),
                "KV_SYNC_URL" => Some("http://127.0.0.1:8787".into()),
                "KV_SYNC_TOKEN" => Some(if name == "KV_SYNC_TOKEN" { token.clone() } else { "s".repeat(32) }),
                n if n == name => Some(token.clone()),
                _ => None,
            })
        };
        for name in ["EDGE_INGEST_TOKEN", "KV_SYNC_TOKEN"] {
            assert!(with(name, &long).is_ok(), "{name}");
            let err = format!("{:#}", with(name, &short).unwrap_err());
            assert!(err.contains(name) && err.contains("at least 32 bytes"), "{err}");
            assert!(!err.contains(&short), "the token itself is never printed: {err}");
        }
        // Unset (or empty) is not short: ingestion is then refused, and the worker sink needs its token.
        assert_eq!(
            Config::from_lookup(|n| (n == "EDGE_INGEST_TOKEN").then(String::new)).unwrap().edge_ingest_token,
            None
        );
    }

    #[test]
    fn raw_clicks_are_kept_for_ever_unless_a_retention_in_months_is_set() {
        let months = |v: &str, age: &str| {
            Config::from_lookup(|n| match n {
                "CLICKS_RETENTION_MONTHS" => Some(v.to_string()),
                "CLICK_MAX_AGE_DAYS" => Some(age.to_string()),
                _ => None,
            })
        };
        assert_eq!(Config::from_lookup(|_| None).unwrap().clicks_retention_months, None);
        assert_eq!(months("", "14").unwrap().clicks_retention_months, None);
        assert_eq!(months("1", "14").unwrap().clicks_retention_months, Some(1));
        assert_eq!(months("1200", "14").unwrap().clicks_retention_months, Some(1200));
        for bad in ["0", "1201", "-1", "a year"] {
            let err = months(bad, "14").unwrap_err();
            assert!(err.to_string().contains("CLICKS_RETENTION_MONTHS"), "{bad}: {err}");
        }
        // A month of 28 days could drop clicks ingestion still accepts at 28 days old.
        let err = months("1", "28").unwrap_err().to_string();
        assert!(err.contains("CLICKS_RETENTION_MONTHS") && err.contains("CLICK_MAX_AGE_DAYS"), "{err}");
        assert_eq!(months("2", "28").unwrap().clicks_retention_months, Some(2));
    }

    #[test]
    fn the_click_horizon_defaults_to_fourteen_days() {
        assert_eq!(Config::from_lookup(|_| None).unwrap().click_max_age, chrono::Duration::days(14));
        let set = Config::from_lookup(|n| (n == "CLICK_MAX_AGE_DAYS").then(|| "30".into())).unwrap();
        assert_eq!(set.click_max_age, chrono::Duration::days(30));
        for bad in ["0", "3651", "two weeks"] {
            let err = Config::from_lookup(|n| (n == "CLICK_MAX_AGE_DAYS").then(|| bad.into())).unwrap_err();
            assert!(err.to_string().contains("CLICK_MAX_AGE_DAYS"), "{bad}");
        }
    }

    #[test]
    fn shopify_settings_have_defaults_and_bounds() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(
            (config.shopify_max_delivery_age, config.shopify_webhook_concurrency),
            (chrono::Duration::hours(48), 64)
        );
        let set = Config::from_lookup(|n| match n {
            "SHOPIFY_MAX_DELIVERY_AGE_HOURS" => Some("1".into()),
            "SHOPIFY_WEBHOOK_CONCURRENCY" => Some("8".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((set.shopify_max_delivery_age, set.shopify_webhook_concurrency), (chrono::Duration::hours(1), 8));
        for (name, bad) in [
            ("SHOPIFY_MAX_DELIVERY_AGE_HOURS", "0"),
            ("SHOPIFY_MAX_DELIVERY_AGE_HOURS", "721"),
            ("SHOPIFY_WEBHOOK_CONCURRENCY", "0"),
            ("SHOPIFY_WEBHOOK_CONCURRENCY", "10001"),
        ] {
            let err = Config::from_lookup(|n| (n == name).then(|| bad.to_owned())).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={bad}");
        }
    }

    #[test]
    fn destination_checks_run_unless_turned_off() {
        assert!(Config::from_lookup(|_| None).unwrap().destination_checks);
        let with = |raw: &'static str| Config::from_lookup(move |n| (n == "DESTINATION_CHECKS").then(|| raw.into()));
        assert!(!with("false").unwrap().destination_checks);
        assert!(with("true").unwrap().destination_checks);
        assert!(format!("{:#}", with("daily").unwrap_err()).contains("DESTINATION_CHECKS"));
    }

    #[test]
    fn kv_sinks_need_their_settings() {
        assert_eq!(Config::from_lookup(|_| None).unwrap().kv_sink, KvSinkConfig::None);
        let err = Config::from_lookup(|n| (n == "KV_SINK").then(|| "worker".to_owned())).unwrap_err();
        assert!(format!("{err:#}").contains("KV_SYNC_URL"));
        let cf = Config::from_lookup(|n| match n {
            "KV_SINK" => Some("cloudflare".into()),
            "CF_ACCOUNT_ID" => Some("acc".into()),
            "CF_KV_NAMESPACE_ID" => Some("ns".into()),
            "CF_API_TOKEN" => Some("tok".into()),
            _ => None,
        })
        .unwrap();
        assert!(
            matches!(cf.kv_sink, KvSinkConfig::Cloudflare { ref api_base, .. } if api_base.as_str().starts_with("https://api.cloudflare.com/"))
        );
        assert!(Config::from_lookup(|n| (n == "KV_SINK").then(|| "s3".to_owned())).is_err());
    }

    #[test]
    fn statement_settings_default_to_no_signing_key_and_bad_values_are_named() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert!(config.statement_keys.current.is_none());
        assert_eq!(config.public_base_url.as_str(), "http://127.0.0.1:8080/");
        let key = crate::statements::generate_key(chrono::Utc::now());
        let set = Config::from_lookup(|n| (n == "STATEMENT_SIGNING_KEY").then(|| key.setting.clone())).unwrap();
        assert_eq!(set.statement_keys.current.map(|k| k.kid), Some(key.kid.clone()));
        for (name, bad) in [
            ("STATEMENT_SIGNING_KEY", "sk_1:tooshort"),
            ("STATEMENT_RETIRED_KEYS", "sk_1"),
            ("PUBLIC_BASE_URL", "api.example"),
            ("STATEMENT_VERIFY_RATE_PER_CLIENT", "0"),
        ] {
            let err = Config::from_lookup(|n| (n == name).then(|| bad.to_owned())).unwrap_err();
            assert!(format!("{err:#}").contains(name), "{name}={bad}: {err:#}");
        }
    }

    #[test]
    fn shared_limits_need_a_redis_url_whose_password_is_never_printed() {
        assert_eq!(Config::from_lookup(|_| None).unwrap().redis, None);
        let with = |vars: &'static [(&'static str, &'static str)]| {
            Config::from_lookup(move |n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned()))
        };
        let set = with(&[("REDIS_URL", "redis://:hunter2hunter2@10.0.0.5:6380/2")]).unwrap();
        let redis = set.redis.clone().expect("settings");
        assert_eq!((redis.url.as_str(), redis.key_prefix.as_str()), ("redis://:hunter2hunter2@10.0.0.5:6380/2", "tl:"));
        assert!(!format!("{set:?}").contains("hunter2"), "the password is not in the settings' Debug");
        let prefixed = with(&[("REDIS_URL", "redis://127.0.0.1"), ("REDIS_KEY_PREFIX", "e2e:42:")]).unwrap();
        assert_eq!(prefixed.redis.map(|r| r.key_prefix), Some("e2e:42:".to_owned()));
        for bad in [
            &[("REDIS_URL", "http://127.0.0.1:6379")][..],
            &[("REDIS_URL", "127.0.0.1:6379")],
            &[("REDIS_URL", "rediss://:hunter2hunter2@cache.example:6380")],
            &[("REDIS_URL", "redis://127.0.0.1"), ("REDIS_KEY_PREFIX", "with space")],
        ] {
            let err = format!("{:#}", with(bad).unwrap_err());
            assert!(err.contains("REDIS_"), "{bad:?}: {err}");
            assert!(!err.contains("hunter2"), "the password is never printed: {err}");
        }
    }

    #[test]
    fn kv_reconciliation_runs_hourly_unless_set_or_turned_off() {
        use std::time::Duration;
        assert_eq!(Config::from_lookup(|_| None).unwrap().kv_reconcile_every, Some(Duration::from_secs(3600)));
        let with =
            |raw: &'static str| Config::from_lookup(move |n| (n == "KV_RECONCILE_EVERY_MINUTES").then(|| raw.into()));
        assert_eq!(with("15").unwrap().kv_reconcile_every, Some(Duration::from_secs(900)));
        assert_eq!(with("0").unwrap().kv_reconcile_every, None);
        for bad in ["-1", "1441", "hourly", "1.5"] {
            assert!(format!("{:#}", with(bad).unwrap_err()).contains("KV_RECONCILE_EVERY_MINUTES"), "{bad}");
        }
    }
}
