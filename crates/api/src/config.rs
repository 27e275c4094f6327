//! Settings, read once from the environment at start-up. Every variable has a documented default
//! (see `.env.example`), so `api serve` runs on a fresh machine with none set.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use anyhow::{bail, Context};
use url::Url;

use crate::money::MaxOrderValue;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/tracking_links";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_TRACKING_BASE_URL: &str = "https://trk.creatorscore.io";

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the PostgreSQL database (created at start-up if missing).
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS`: pool size (default 16).
    pub database_max_connections: u32,
    /// `BIND_ADDR`: where the HTTP server listens.
    pub bind_addr: SocketAddr,
    /// `TRACKING_BASE_URL`: the public origin of the edge; short links are this plus `/` plus the code.
    pub tracking_base_url: Url,
    /// `EDGE_INGEST_TOKEN`: the bearer token the edge's queue consumer presents to `/internal/clicks`.
    /// Unset: click ingestion refuses everything.
    pub edge_ingest_token: Option<String>,
    /// `KV_SINK` and its settings: where link records are pushed.
    pub kv_sink: KvSinkConfig,
    /// `PIXEL_RATE_PER_PIXEL`: pixel events per second one pixel may send to this process (burst: twice).
    pub pixel_rate_per_pixel: NonZeroU32,
    /// `PIXEL_RATE_PER_CLIENT`: pixel events per second one client address may send per pixel (burst: twice).
    pub pixel_rate_per_client: NonZeroU32,
    /// `TRUST_FORWARDED_FOR`: take the client address from `X-Forwarded-For` (behind a trusted proxy only).
    pub trust_forwarded_for: bool,
    /// `DASHBOARD_SECURE_COOKIES`: whether the dashboard's cookies are `Secure` (and `__Host-` prefixed).
    pub dashboard_secure_cookies: SecureCookies,
    /// `MAX_ORDER_VALUE`: the largest order (or refund) amount accepted, in major units (default 1,000,000).
    pub max_order_value: MaxOrderValue,
    /// `CONFIRMATION_WINDOW_HOURS`: how long an order only the pixel reported, on a brand with a server-side
    /// source, stays `pending` before it is `unconfirmed` (default 72).
    pub confirmation_window: chrono::Duration,
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
        Ok(Config {
            database_url: get("DATABASE_URL", DEFAULT_DATABASE_URL),
            database_max_connections: max_connections
                .parse()
                .with_context(|| format!("DATABASE_MAX_CONNECTIONS={max_connections:?} is not a number"))?,
            bind_addr: bind_addr.parse().with_context(|| format!("BIND_ADDR={bind_addr:?} is not host:port"))?,
            tracking_base_url: parse_base_url(&get("TRACKING_BASE_URL", DEFAULT_TRACKING_BASE_URL))?,
            edge_ingest_token: lookup("EDGE_INGEST_TOKEN").filter(|t| !t.is_empty()),
            kv_sink: kv_sink(&lookup)?,
            pixel_rate_per_pixel: parse_number("PIXEL_RATE_PER_PIXEL", &get("PIXEL_RATE_PER_PIXEL", "2000"))?,
            pixel_rate_per_client: parse_number("PIXEL_RATE_PER_CLIENT", &get("PIXEL_RATE_PER_CLIENT", "20"))?,
            trust_forwarded_for: matches!(get("TRUST_FORWARDED_FOR", "false").as_str(), "true" | "1" | "yes"),
            dashboard_secure_cookies: match get("DASHBOARD_SECURE_COOKIES", "auto").as_str() {
                "auto" => SecureCookies::Auto,
                "true" | "1" | "yes" => SecureCookies::Always,
                "false" | "0" | "no" => SecureCookies::Never,
                other => bail!("DASHBOARD_SECURE_COOKIES={other:?} must be auto, true or false"),
            },
            max_order_value: MaxOrderValue(parse_positive("MAX_ORDER_VALUE", &get("MAX_ORDER_VALUE", "1000000"))?),
            confirmation_window: confirmation_window(&get("CONFIRMATION_WINDOW_HOURS", "72"))?,
        })
    }

    /// `https://trk.creatorscore.io/abcd2345`.
    pub fn short_url(&self, code: &str) -> String {
        format!("{}/{code}", self.tracking_base_url.as_str().trim_end_matches('/'))
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

/// `CONFIRMATION_WINDOW_HOURS`: 1 hour to 10 years.
fn confirmation_window(raw: &str) -> anyhow::Result<chrono::Duration> {
    let hours: i64 = parse_positive("CONFIRMATION_WINDOW_HOURS", raw)?;
    if hours > 87_600 {
        bail!("CONFIRMATION_WINDOW_HOURS={raw:?} must be at most 87600 (ten years)");
    }
    Ok(chrono::Duration::hours(hours))
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
            token: required("KV_SYNC_TOKEN")?,
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

fn parse_base_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("TRACKING_BASE_URL={raw:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("TRACKING_BASE_URL={raw:?} must be an http(s) origin");
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
}
