//! A small per-isolate cache of link records, in front of KV.
//!
//! A popular link is clicked many times a second in the same isolate; each KV read, even one served
//! from the edge location's cache, is a subrequest that costs time and CPU. Records are kept for
//! [`LINK_CACHE_TTL_MS`], so a change made through the API reaches every visitor at most that long after
//! KV's own `cacheTtl` has expired. Only found records are kept: an unknown code is cheap to look up
//! again, and keeping misses would let a scan of random codes fill the cache.

use std::collections::HashMap;

use shared::{Code, LinkRecord, StoredLink};

use crate::click::Target;

/// How long an isolate serves a record without asking KV again.
pub const LINK_CACHE_TTL_MS: i64 = 10_000;

/// Most records one isolate keeps (a few hundred bytes each).
pub const LINK_CACHE_CAPACITY: usize = 4_096;

/// What a value read from KV means for a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A link to redirect to: its record, with the destination parsed and checked (worth caching).
    Found(Box<Target>),
    /// The tombstone of a deactivated link: answered like an unknown code.
    Deleted,
    /// A value this worker cannot serve, and why (to log): answered like an unknown code.
    Unusable(String),
}

/// Reads a KV value into what a visit needs. The destination is checked here, once per read (the
/// isolate then caches the [`Target`]), so a click on a cached link pays nothing for it.
pub fn parse_stored(json: &str) -> Stored {
    match StoredLink::from_json(json) {
        Ok(StoredLink::Live(link)) => match Target::new(*link) {
            Ok(target) => Stored::Found(Box::new(target)),
            Err(e) => Stored::Unusable(format!("destination refused: {e}")),
        },
        Ok(StoredLink::Deleted(_)) => Stored::Deleted,
        Err(e) => Stored::Unusable(e.to_string()),
    }
}

/// Link records (or what the worker makes of them, `V`) by code, each with the time after which it must
/// be read again.
#[derive(Debug)]
pub struct LinkCache<V = LinkRecord> {
    entries: HashMap<Code, (i64, V)>,
    capacity: usize,
    ttl_ms: i64,
}

impl<V> Default for LinkCache<V> {
    fn default() -> Self {
        LinkCache::new(LINK_CACHE_CAPACITY, LINK_CACHE_TTL_MS)
    }
}

impl<V> LinkCache<V> {
    /// An empty cache of at most `capacity` records, each kept for `ttl_ms`.
    pub fn new(capacity: usize, ttl_ms: i64) -> Self {
        LinkCache { entries: HashMap::new(), capacity, ttl_ms }
    }

    /// The record of `code`, if it was read less than the TTL ago.
    pub fn get(&self, code: Code, now_ms: i64) -> Option<&V> {
        self.entries.get(&code).filter(|(expires_at, _)| now_ms < *expires_at).map(|(_, link)| link)
    }

    /// Keeps a record just read from KV.
    pub fn insert(&mut self, code: Code, link: V, now_ms: i64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&code) {
            self.entries.retain(|_, (expires_at, _)| now_ms < *expires_at);
            if self.entries.len() >= self.capacity {
                // Still full of live records: start over rather than track recency on the hot path.
                self.entries.clear();
            }
        }
        self.entries.insert(code, (now_ms + self.ttl_ms, link));
    }

    /// Forgets a code whose record this isolate just wrote or deleted through the sync route.
    pub fn forget(&mut self, code: Code) {
        self.entries.remove(&code);
    }

    /// How many records are kept (live or expired).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn code(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    fn link(n: u128) -> LinkRecord {
        LinkRecord::new(Uuid::from_u128(n), format!("https://shop.example/{n}"), 1)
    }

    fn stored(destination: &str) -> Stored {
        parse_stored(&LinkRecord::new(Uuid::from_u128(7), destination.into(), 2).to_json())
    }

    #[test]
    fn a_stored_record_with_an_http_destination_is_found_with_its_destination_parsed() {
        let Stored::Found(target) = stored("https://shop.example/p?a=1") else { panic!("not found") };
        assert_eq!(target.link.version, 2);
        assert_eq!(*target, Target::new(target.link.clone()).unwrap());
    }

    #[test]
    fn a_stored_record_that_would_redirect_to_javascript_or_with_credentials_is_unusable() {
        for destination in ["javascript:alert(1)", "data:text/html,x", "https://user:pw@shop.example/", "nope"] {
            assert!(
                matches!(stored(destination), Stored::Unusable(why) if why.contains("destination")),
                "{destination}"
            );
        }
    }

    #[test]
    fn tombstones_are_deleted_links_and_garbage_is_unusable() {
        assert_eq!(parse_stored(&shared::LinkTombstone::new(5).to_json()), Stored::Deleted);
        assert!(matches!(parse_stored("stale"), Stored::Unusable(_)));
        assert!(matches!(parse_stored(r#"{"v":9}"#), Stored::Unusable(_)));
    }

    #[test]
    fn a_record_is_served_until_its_ttl_has_passed() {
        let mut cache = LinkCache::new(8, 1_000);
        cache.insert(code("abcdefgh"), link(1), 5_000);
        assert_eq!(cache.get(code("abcdefgh"), 5_000), Some(&link(1)));
        assert_eq!(cache.get(code("abcdefgh"), 5_999), Some(&link(1)));
        assert_eq!(cache.get(code("abcdefgh"), 6_000), None);
        assert_eq!(cache.get(code("k7m2p9qr"), 5_000), None);
    }

    #[test]
    fn a_newer_read_replaces_the_record_and_its_ttl() {
        let mut cache = LinkCache::new(8, 1_000);
        cache.insert(code("abcdefgh"), link(1), 0);
        cache.insert(code("abcdefgh"), link(2), 900);
        assert_eq!(cache.get(code("abcdefgh"), 1_500), Some(&link(2)));
    }

    #[test]
    fn forgotten_codes_are_read_again() {
        let mut cache = LinkCache::new(8, 1_000);
        cache.insert(code("abcdefgh"), link(1), 0);
        cache.forget(code("abcdefgh"));
        assert_eq!(cache.get(code("abcdefgh"), 1), None);
    }

    #[test]
    fn a_full_cache_drops_expired_records_first_and_never_grows_past_its_capacity() {
        let mut cache = LinkCache::new(2, 1_000);
        cache.insert(code("aaaaaaaa"), link(1), 0);
        cache.insert(code("bbbbbbbb"), link(2), 500);
        cache.insert(code("cccccccc"), link(3), 1_200); // aaaaaaaa has expired: only it goes
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(code("bbbbbbbb"), 1_200), Some(&link(2)));
        assert_eq!(cache.get(code("cccccccc"), 1_200), Some(&link(3)));
        cache.insert(code("dddddddd"), link(4), 1_300); // all live: start over
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(code("dddddddd"), 1_300), Some(&link(4)));
    }
}
