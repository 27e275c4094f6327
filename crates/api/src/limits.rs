//! Rate limits: one limiter type ([`KeyedLimiter`]) with two backends.
//!
//! - **In memory** (always there): one process's share of the traffic, with bounded memory whatever
//!   the keys: a hostile client choosing a new key per request costs at most `max_keys` entries. Each
//!   key gets its own GCRA limiter (`governor`) in a `moka` cache that forgets a key once it has been
//!   idle for as long as its burst takes to refill: by then its limiter is indistinguishable from a
//!   fresh one, so forgetting it changes nothing. Beyond `max_keys` live keys the cache evicts the keys
//!   it judges least useful (TinyLFU: rarely seen keys first); an evicted key simply starts fresh, and
//!   the limits that do not depend on the client (per brand, global) still hold.
//! - **Shared through Redis** (`REDIS_URL`, [`shared`]): the same GCRA, computed by one atomic script
//!   on Redis' clock, so every API process counts against one quota. Keys expire when they would be
//!   fresh again, so Redis holds only the keys in use. When Redis fails or is slow, the request is
//!   counted in memory instead (per process, as without Redis) and a warning is logged at most once a
//!   minute: a Redis outage never refuses traffic.

pub mod shared;

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

pub use shared::SharedLimits;

/// Where the limits are counted: in this process only, or shared with every process through Redis
/// (with this process's memory as the fallback).
#[derive(Clone, Default)]
pub enum Backend {
    #[default]
    Memory,
    Shared(Arc<SharedLimits>),
}

impl Backend {
    /// Redis when `REDIS_URL` is set, else memory.
    pub fn from_config(config: &crate::Config) -> Self {
        match &config.redis {
            None => Backend::Memory,
            Some(settings) => match SharedLimits::new(settings) {
                Ok(shared) => Backend::Shared(Arc::new(shared)),
                // The URL was checked when the configuration was read; should the client still refuse
                // it, the limits hold per process rather than not at all.
                Err(e) => {
                    tracing::error!(error = %e, "the Redis client cannot be built: rate limits are per process");
                    Backend::Memory
                }
            },
        }
    }
}

/// A rate-limit key as bytes that mean the same in every process (and every build): what the shared
/// backend stores, digested.
pub trait LimitKey {
    /// Appends the key, each part length-prefixed so that two different keys never read the same.
    fn write_key(&self, out: &mut Vec<u8>);
}

fn write_part(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl LimitKey for () {
    fn write_key(&self, _: &mut Vec<u8>) {}
}

impl LimitKey for uuid::Uuid {
    fn write_key(&self, out: &mut Vec<u8>) {
        write_part(out, self.as_bytes());
    }
}

impl LimitKey for String {
    fn write_key(&self, out: &mut Vec<u8>) {
        write_part(out, self.as_bytes());
    }
}

impl LimitKey for u32 {
    fn write_key(&self, out: &mut Vec<u8>) {
        write_part(out, &self.to_be_bytes());
    }
}

impl LimitKey for Vec<u8> {
    fn write_key(&self, out: &mut Vec<u8>) {
        write_part(out, self);
    }
}

impl LimitKey for &str {
    fn write_key(&self, out: &mut Vec<u8>) {
        write_part(out, self.as_bytes());
    }
}

impl<A: LimitKey, B: LimitKey> LimitKey for (A, B) {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.0.write_key(out);
        self.1.write_key(out);
    }
}

/// The key as Redis sees it: a SHA-256 digest (128 bits, hex), so that neither client addresses nor
/// emails are written out in Redis and every key has the same short length.
fn digest(key: &impl LimitKey) -> String {
    let mut bytes = Vec::with_capacity(64);
    key.write_key(&mut bytes);
    Sha256::digest(&bytes)[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Requests per key: counted through Redis when the backend is shared (and Redis answers), else in
/// this process's memory, bounded by `max_keys`.
pub struct KeyedLimiter<K> {
    /// The limit's name, part of its keys in Redis (`pixel:brand`, `signin:client`, ...).
    name: &'static str,
    quota: Quota,
    clock: DefaultClock,
    buckets: moka::sync::Cache<K, Arc<DefaultDirectRateLimiter>>,
    shared: Option<Arc<SharedLimits>>,
}

/// One limit shared by every caller (a global sign-in rate, say): a limiter with a single key.
pub type GlobalLimiter = KeyedLimiter<()>;

impl<K: LimitKey + Hash + Eq + Clone + Send + Sync + 'static> KeyedLimiter<K> {
    pub fn new(name: &'static str, quota: Quota, max_keys: u64, backend: &Backend) -> Self {
        let idle = quota.burst_size_replenished_in().max(Duration::from_millis(1));
        KeyedLimiter {
            name,
            quota,
            clock: DefaultClock::default(),
            buckets: moka::sync::Cache::builder().max_capacity(max_keys).time_to_idle(idle).build(),
            shared: match backend {
                Backend::Memory => None,
                Backend::Shared(shared) => Some(Arc::clone(shared)),
            },
        }
    }

    /// Counts a request of `key`: `Err` with how long until one would pass when the key is over its quota.
    pub async fn check(&self, key: &K) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            if let Some(verdict) = shared.check(self.name, &digest(key), self.quota).await {
                return verdict;
            }
        }
        self.check_in_memory(key)
    }

    fn check_in_memory(&self, key: &K) -> Result<(), Duration> {
        let bucket =
            self.buckets.get_with_by_ref(key, || Arc::new(RateLimiter::direct_with_clock(self.quota, &self.clock)));
        bucket.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// How many keys this process remembers (after pending evictions and expiries are applied).
    pub fn key_count(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }
}

/// Whole seconds to put in `Retry-After` for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Instant;

    use super::*;

    fn per_second(n: u32) -> Quota {
        Quota::per_second(NonZeroU32::new(n).unwrap())
    }

    #[tokio::test]
    async fn each_key_has_its_own_quota() {
        let limits =
            KeyedLimiter::new("test", per_second(1).allow_burst(NonZeroU32::new(2).unwrap()), 100, &Backend::Memory);
        assert!(limits.check(&"a").await.is_ok());
        assert!(limits.check(&"a").await.is_ok());
        let wait = limits.check(&"a").await.unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limits.check(&"b").await.is_ok(), "another key is not affected");
    }

    #[tokio::test]
    async fn memory_stays_bounded_however_many_keys_are_used() {
        let limits = KeyedLimiter::new("test", per_second(1), 1_000, &Backend::Memory);
        for key in 0..20_000u32 {
            let _ = limits.check(&key).await;
        }
        let count = limits.key_count();
        assert!(count <= 1_000, "{count} keys remembered");
    }

    #[tokio::test]
    async fn a_key_idle_until_its_burst_refilled_is_forgotten() {
        // One request per 20 ms, burst 1: fresh again 20 ms after its last request.
        let limits =
            KeyedLimiter::new("test", Quota::with_period(Duration::from_millis(20)).unwrap(), 1_000, &Backend::Memory);
        for key in 0..100u32 {
            assert!(limits.check(&key).await.is_ok());
        }
        assert_eq!(limits.key_count(), 100);
        let deadline = Instant::now() + Duration::from_secs(5);
        while limits.key_count() > 0 {
            assert!(Instant::now() < deadline, "{} keys still remembered", limits.key_count());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_global_limit_counts_every_caller() {
        let global =
            GlobalLimiter::new("test", per_second(1).allow_burst(NonZeroU32::new(3).unwrap()), 1, &Backend::Memory);
        for _ in 0..3 {
            assert!(global.check(&()).await.is_ok());
        }
        assert!(global.check(&()).await.is_err());
    }

    #[test]
    fn keys_are_digested_alike_everywhere_and_never_collide_across_parts() {
        let (a, b) = ("ab".to_owned(), "c".to_owned());
        let (c, d) = ("a".to_owned(), "bc".to_owned());
        assert_ne!(digest(&(a.clone(), b.clone())), digest(&(c, d)));
        assert_eq!(digest(&(a.clone(), b.clone())), digest(&(a, b)));
        // What another process (or another build) computes for the same key.
        assert_eq!(digest(&()), "e3b0c44298fc1c149afbf4c8996fb924");
        assert_eq!(digest(&"x").len(), 32);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }
}
