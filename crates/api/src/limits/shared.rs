//! The shared backend of the rate limits: every API process counts against one quota kept in Redis.
//!
//! One Lua script does what `governor` does in memory (GCRA: a theoretical arrival time per key, the
//! same emission interval and burst, the same wait when refused), atomically, on Redis' own clock, so
//! processes whose clocks disagree still agree on the limit and no read-modify-write race exists. A
//! key expires when it would be fresh again (at its theoretical arrival time), so Redis holds only the
//! keys in use: at most the burst's refill time (plus one interval) after a key's last admitted
//! request.
//!
//! Redis is never allowed to refuse traffic: a command that fails, or takes longer than
//! [`COMMAND_TIMEOUT`], is answered by the caller's in-memory limiter instead, and after a failure
//! Redis is left alone for [`PAUSE_AFTER_FAILURE`] (every request meanwhile is counted in memory), so
//! an outage costs one slow request per pause, not one per request. A warning is logged when Redis
//! fails (at most one a minute) and a line when it answers again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::Quota;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::config::RedisSettings;

/// The longest a limit waits for Redis before counting in memory instead.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// How long Redis is left alone after it failed (requests are counted in memory meanwhile).
pub const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// At most one warning about Redis failing per this period.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// GCRA as `governor` computes it, in microseconds.
/// KEYS[1]: the key; ARGV[1]: the emission interval T; ARGV[2]: the tolerance, T × burst.
/// Answers 0 when the request is admitted, else the microseconds until one would be.
const GCRA: &str = r"
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local stored = redis.call('GET', KEYS[1])
local tat = now + t
if stored then
  tat = tonumber(stored)
end
local earliest = tat - tau
if now < earliest then
  return earliest - now
end
local next_tat = math.max(tat, now) + t
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return 0
";

/// A quota as the script takes it: the emission interval and the tolerance, in whole microseconds (the
/// interval rounded up, so a limit is never looser than in memory; at least 1 µs).
pub fn gcra_micros(quota: Quota) -> (u64, u64) {
    let t = u64::try_from(quota.replenish_interval().as_nanos().div_ceil(1000)).unwrap_or(u64::MAX).max(1);
    (t, t.saturating_mul(u64::from(quota.burst_size().get())))
}

/// Whether Redis is being used, and when it was last complained about.
#[derive(Debug, Default)]
struct Health {
    /// Redis failed: counted in memory until then.
    paused_until: Option<Instant>,
    /// Failing now (for the line logged when it answers again).
    failing: bool,
    last_warning: Option<Instant>,
}

/// The Redis side of the limits, shared by every limiter of a process.
pub struct SharedLimits {
    client: redis::Client,
    /// Connected on first use (and reconnected by the manager), so a process starts whether or not
    /// Redis answers.
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    script: redis::Script,
    health: Mutex<Health>,
}

impl SharedLimits {
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        Ok(SharedLimits {
            client: redis::Client::open(settings.url.as_str())?,
            connection: OnceCell::new(),
            prefix: settings.key_prefix.clone(),
            script: redis::Script::new(GCRA),
            health: Mutex::new(Health::default()),
        })
    }

    /// The Redis key of `digest` under the limit `name`.
    pub fn key(&self, name: &str, digest: &str) -> String {
        format!("{}limit:{name}:{digest}", self.prefix)
    }

    /// Counts a request against `quota` in Redis: `Some` verdict (as `governor` gives it), or `None`
    /// when Redis failed, is slow, or is paused after a failure: the caller counts in memory then.
    pub async fn check(&self, name: &str, digest: &str, quota: Quota) -> Option<Result<(), Duration>> {
        if self.paused() {
            return None;
        }
        let key = self.key(name, digest);
        let outcome = match tokio::time::timeout(COMMAND_TIMEOUT, self.run(&key, quota)).await {
            Ok(Ok(wait_micros)) => Ok(wait_micros),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", COMMAND_TIMEOUT.as_millis())),
        };
        match outcome {
            Ok(wait_micros) => {
                self.answered();
                Some(if wait_micros == 0 { Ok(()) } else { Err(Duration::from_micros(wait_micros)) })
            }
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    async fn run(&self, key: &str, quota: Quota) -> redis::RedisResult<u64> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    // A failed connection is retried by the next request after the pause, not here.
                    .set_number_of_retries(0);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        let (t, tau) = gcra_micros(quota);
        self.script.key(key).arg(t).arg(tau).invoke_async(&mut connection.clone()).await
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // The state is a few plain fields, valid whatever a panicking holder left half done.
        self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn paused(&self) -> bool {
        self.health().paused_until.is_some_and(|until| Instant::now() < until)
    }

    fn answered(&self) {
        let mut health = self.health();
        health.paused_until = None;
        if std::mem::take(&mut health.failing) {
            tracing::info!("Redis answers again: rate limits are shared by every process");
        }
    }

    fn failed(&self, error: &str) {
        let now = Instant::now();
        let mut health = self.health();
        health.paused_until = Some(now + PAUSE_AFTER_FAILURE);
        health.failing = true;
        if health.last_warning.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
            health.last_warning = Some(now);
            tracing::warn!(
                error,
                "Redis failed: rate limits are counted per process until it answers (this warning is repeated at most once a minute)"
            );
        }
    }
}
