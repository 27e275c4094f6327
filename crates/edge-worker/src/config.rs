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
    fn empty_secrets_are_unset() {
        assert_eq!(non_empty(Some(String::new())), None);
        assert_eq!(non_empty(None), None);
        assert_eq!(non_empty(Some("t".into())), Some("t".into()));
    }
}
