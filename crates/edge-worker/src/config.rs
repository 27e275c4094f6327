//! The worker's settings, read from vars and secrets on each request (they are plain strings in the
//! environment; reading them costs nothing worth caching).

/// Default and minimum KV cache TTL in seconds. Cloudflare refuses a smaller `cacheTtl`.
pub const MIN_KV_CACHE_TTL_SECS: u64 = 60;

/// `KV_CACHE_TTL`: how long an edge location may serve a link record (or its absence) from its cache.
/// Unset, unparsable or below the minimum means the minimum: a longer TTL is a deliberate choice.
pub fn kv_cache_ttl(raw: Option<&str>) -> u64 {
    raw.and_then(|s| s.trim().parse::<u64>().ok()).map_or(MIN_KV_CACHE_TTL_SECS, |ttl| ttl.max(MIN_KV_CACHE_TTL_SECS))
}

/// A secret counts as set only when it is not empty: an empty token would let an empty guess in.
pub fn non_empty(secret: Option<String>) -> Option<String> {
    secret.filter(|s| !s.is_empty())
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
    fn empty_secrets_are_unset() {
        assert_eq!(non_empty(Some(String::new())), None);
        assert_eq!(non_empty(None), None);
        assert_eq!(non_empty(Some("t".into())), Some("t".into()));
    }
}
