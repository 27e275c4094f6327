//! Rate limits kept in memory, one process's share of the traffic, with bounded memory whatever the
//! keys: a hostile client choosing a new key per request costs at most `max_keys` entries.
//!
//! Each key gets its own GCRA limiter (`governor`) in a `moka` cache that forgets a key once it has been
//! idle for as long as its burst takes to refill: by then its limiter is indistinguishable from a fresh
//! one, so forgetting it changes nothing. Beyond `max_keys` live keys the cache evicts the keys it
//! judges least useful (TinyLFU: rarely seen keys first); an evicted key simply starts fresh, and the
//! limits that do not depend on the client (per brand, global) still hold.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Requests per key, with memory bounded by `max_keys`.
pub struct KeyedLimiter<K> {
    quota: Quota,
    clock: DefaultClock,
    buckets: moka::sync::Cache<K, Arc<DefaultDirectRateLimiter>>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyedLimiter<K> {
    pub fn new(quota: Quota, max_keys: u64) -> Self {
        let idle = quota.burst_size_replenished_in().max(Duration::from_millis(1));
        KeyedLimiter {
            quota,
            clock: DefaultClock::default(),
            buckets: moka::sync::Cache::builder().max_capacity(max_keys).time_to_idle(idle).build(),
        }
    }

    /// Counts a request of `key`: `Err` with how long until one would pass when the key is over its quota.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let bucket =
            self.buckets.get_with_by_ref(key, || Arc::new(RateLimiter::direct_with_clock(self.quota, &self.clock)));
        bucket.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// How many keys are remembered (after pending evictions and expiries are applied).
    pub fn key_count(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }
}

/// A limit shared by every caller (a global sign-in rate, say).
pub struct GlobalLimiter {
    clock: DefaultClock,
    limiter: DefaultDirectRateLimiter,
}

impl GlobalLimiter {
    pub fn new(quota: Quota) -> Self {
        let clock = DefaultClock::default();
        GlobalLimiter { limiter: RateLimiter::direct_with_clock(quota, &clock), clock }
    }

    /// Counts a request: `Err` with how long until one would pass when over the quota.
    pub fn check(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
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

    #[test]
    fn each_key_has_its_own_quota() {
        let limits = KeyedLimiter::new(per_second(1).allow_burst(NonZeroU32::new(2).unwrap()), 100);
        assert!(limits.check(&"a").is_ok());
        assert!(limits.check(&"a").is_ok());
        let wait = limits.check(&"a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limits.check(&"b").is_ok(), "another key is not affected");
    }

    #[test]
    fn memory_stays_bounded_however_many_keys_are_used() {
        let limits = KeyedLimiter::new(per_second(1), 1_000);
        for key in 0..20_000u32 {
            let _ = limits.check(&key);
        }
        let count = limits.key_count();
        assert!(count <= 1_000, "{count} keys remembered");
    }

    #[test]
    fn a_key_idle_until_its_burst_refilled_is_forgotten() {
        // One request per 20 ms, burst 1: fresh again 20 ms after its last request.
        let limits = KeyedLimiter::new(Quota::with_period(Duration::from_millis(20)).unwrap(), 1_000);
        for key in 0..100u32 {
            assert!(limits.check(&key).is_ok());
        }
        assert_eq!(limits.key_count(), 100);
        let deadline = Instant::now() + Duration::from_secs(5);
        while limits.key_count() > 0 {
            assert!(Instant::now() < deadline, "{} keys still remembered", limits.key_count());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_global_limit_counts_every_caller() {
        let global = GlobalLimiter::new(per_second(1).allow_burst(NonZeroU32::new(3).unwrap()));
        assert!((0..3).all(|_| global.check().is_ok()));
        assert!(global.check().is_err());
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
