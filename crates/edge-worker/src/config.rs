//! The worker's settings, read from vars and secrets (plain strings in the environment). They are read
//! where they are used, except [`bot_management`], which every click needs and the glue keeps per isolate.

/// Default and minimum KV cache TTL in seconds. Cloudflare refuses a smaller `cacheTtl`.
pub const MIN_KV_CACHE_TTL_SECS: u64 = 60;

/// `KV_CACHE_TTL`: how long an edge location may serve a link record (or its absence) from its cache.
/// Unset, unparsable or below the minimum means the minimum: a longer TTL is a deliberate choice.
pub fn kv_cache_ttl(raw: Option<&str>) -> u64 {
    raw.and_then(|s| s.trim().parse::<u64>().ok()).map_or(MIN_KV_CACHE_TTL_SECS, |ttl| ttl.max(MIN_KV_CACHE_TTL_SECS))
}

/// `CF_BOT_MANAGEMENT`: whether the zone has Cloudflare Bot Management, whose verdict arrives in
/// `request.cf.botManagement`. A click reads `request.cf` only when this is on or the `CF-IPCountry`
/// header is missing: the runtime builds that object from JSON on first access, which cost a click
/// about a fifth of its CPU with a production-sized `cf` (bench/edge.sh with `CF_BLOB=1`). `true`, `1`,
/// `yes` or `on`, in any case, turn it on; anything else, or unset, is off.
pub fn bot_management(raw: Option<&str>) -> bool {
    raw.is_some_and(|v| ["true", "1", "yes", "on"].iter().any(|on| v.trim().eq_ignore_ascii_case(on)))
}

/// The default tracking domain when `TRACKING_HOSTS` is unset.
pub const DEFAULT_TRACKING_HOST: &str = "trk.creatorscore.io";

/// `TRACKING_HOSTS`: the deployment's own tracking domains, comma-separated (default
/// [`DEFAULT_TRACKING_HOST`]). Every link is served on these; any other host is a brand's own domain,
/// which serves only its links.
pub fn default_hosts(raw: Option<&str>) -> Vec<String> {
    let hosts: Vec<String> =
        raw.unwrap_or_default().split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
    if hosts.is_empty() {
        vec![DEFAULT_TRACKING_HOST.to_owned()]
    } else {
        hosts
    }
}

/// A secret counts as set only when it is not empty: an empty token would let an empty guess in.
pub fn non_empty(secret: Option<String>) -> Option<String> {
    secret.filter(|s| !s.is_empty())
}

/// The shortest shared token accepted (`EDGE_INGEST_TOKEN`, `KV_SYNC_TOKEN`), as in the API: 32 bytes.
pub const MIN_SHARED_TOKEN_BYTES: usize = 32;

/// A shared token that is set but shorter than [`MIN_SHARED_TOKEN_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTooShort {
    pub name: &'static str,
    pub bytes: usize,
}

impl std::fmt::Display for TokenTooShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {} bytes long; a shared token must be at least {MIN_SHARED_TOKEN_BYTES} bytes",
            self.name, self.bytes
        )
    }
}

/// A shared token: `Ok(None)` when unset or empty, an error (never naming the value) when too short.
pub fn shared_token(name: &'static str, secret: Option<String>) -> Result<Option<String>, TokenTooShort> {
    match non_empty(secret) {
        Some(token) if token.len() < MIN_SHARED_TOKEN_BYTES => Err(TokenTooShort { name, bytes: token.len() }),
        token => Ok(token),
    }
}

/// Default of `QUEUE_RETRY_MAX_DELAY`, in seconds.
pub const DEFAULT_QUEUE_RETRY_MAX_DELAY_SECS: u32 = 600;
/// The longest retry delay Cloudflare Queues accept (12 hours).
pub const QUEUE_RETRY_DELAY_LIMIT_SECS: u32 = 43_200;

/// `QUEUE_RETRY_MAX_DELAY`: the longest wait, in seconds, before a click the API did not take is
/// delivered again (see [`crate::consumer::retry_delay_seconds`]). Unset or unparsable means the
/// default, 600; at most 12 hours; `0` retries at once (local tests only: an outage then burns every
/// retry within seconds).
pub fn queue_retry_max_delay(raw: Option<&str>) -> u32 {
    raw.and_then(|s| s.trim().parse::<u32>().ok())
        .map_or(DEFAULT_QUEUE_RETRY_MAX_DELAY_SECS, |secs| secs.min(QUEUE_RETRY_DELAY_LIMIT_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kv_cache_ttl_defaults_to_and_never_goes_below_sixty_seconds() {
        assert_eq!(kv_cache_ttl(None), 60);
        assert_eq!(kv_cache_ttl(Some("")), 60);
        assert_eq!(kv_cache_ttl(Some("soon")), 60);
        assert_eq!(kv_cache_ttl(Some("10")), 60);
        assert_eq!(kv_cache_ttl(Some("300")), 300);
    }

    #[test]
    fn bot_management_is_on_only_when_said_so() {
        for on in ["true", "TRUE", " 1 ", "yes", "On"] {
            assert!(bot_management(Some(on)), "{on}");
        }
        for off in ["false", "0", "", "no", "off", "enabled please"] {
            assert!(!bot_management(Some(off)), "{off}");
        }
        assert!(!bot_management(None));
    }

    #[test]
    fn shared_tokens_shorter_than_32_bytes_are_refused_without_showing_them() {
        let long = "t".repeat(32);
        assert_eq!(shared_token("KV_SYNC_TOKEN", Some(long.clone())), Ok(Some(long)));
        assert_eq!(shared_token("KV_SYNC_TOKEN", None), Ok(None));
        assert_eq!(shared_token("KV_SYNC_TOKEN", Some(String::new())), Ok(None));
        let short = shared_token("EDGE_INGEST_TOKEN", Some("secret-but-short".into())).unwrap_err();
        assert_eq!(short, TokenTooShort { name: "EDGE_INGEST_TOKEN", bytes: 16 });
        let message = short.to_string();
        assert!(message.contains("EDGE_INGEST_TOKEN") && message.contains("at least 32 bytes"), "{message}");
        assert!(!message.contains("secret-but-short"));
    }

    #[test]
    fn the_retry_ceiling_defaults_to_ten_minutes_and_stays_within_cloudflares_limit() {
        assert_eq!(queue_retry_max_delay(None), 600);
        assert_eq!(queue_retry_max_delay(Some("soon")), 600);
        assert_eq!(queue_retry_max_delay(Some(" 0 ")), 0);
        assert_eq!(queue_retry_max_delay(Some("120")), 120);
        assert_eq!(queue_retry_max_delay(Some("86400")), 43_200);
    }

    #[test]
    fn empty_secrets_are_unset() {
        assert_eq!(non_empty(Some(String::new())), None);
        assert_eq!(non_empty(None), None);
        assert_eq!(non_empty(Some("t".into())), Some("t".into()));
    }
}
