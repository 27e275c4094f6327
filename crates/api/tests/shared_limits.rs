//! Rate limits shared through a real Redis (`TEST_REDIS_URL`, default the local one on 127.0.0.1:6379;
//! every test writes under a prefix of its own): several "processes" (each its own client and
//! connection) count against one quota, with the same verdicts and waits as the in-memory limiter; keys
//! expire once they would be fresh again; and a Redis that refuses connections or never answers leaves
//! each process limiting on its own, without refusing anything because of Redis.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use api::client::ClientKey;
use api::config::RedisSettings;
use api::http::dashboard::session::Refusal;
use api::http::dashboard::SignInLimits;
use api::limits::{Backend, KeyedLimiter, SharedLimits};
use governor::Quota;
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test (or test run) uses.
fn fresh_prefix() -> String {
    format!("test:{}:{}:", std::process::id(), Uuid::new_v4().simple())
}

/// One API process's view of Redis: a client and connection of its own.
fn process(url: &str, prefix: &str) -> Backend {
    let settings = RedisSettings { url: url.to_owned(), key_prefix: prefix.to_owned() };
    Backend::Shared(std::sync::Arc::new(SharedLimits::new(&settings).expect("a Redis client")))
}

/// `burst` requests at once, then one a minute: nothing refills while a test runs.
fn slow(burst: u32) -> Quota {
    Quota::with_period(Duration::from_secs(60)).expect("a period").allow_burst(NonZeroU32::new(burst).expect("burst"))
}

async fn verdicts(limiter: &KeyedLimiter<Uuid>, key: Uuid, n: usize) -> Vec<Result<(), Duration>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(limiter.check(&key).await);
    }
    out
}

#[tokio::test]
async fn two_processes_count_against_one_quota() {
    let prefix = fresh_prefix();
    let (a, b) = (process(&redis_url(), &prefix), process(&redis_url(), &prefix));
    let on_a = KeyedLimiter::<Uuid>::new("pixel:brand", slow(3), 100, &a);
    let on_b = KeyedLimiter::<Uuid>::new("pixel:brand", slow(3), 100, &b);
    let brand = Uuid::new_v4();
    let mut admitted = 0;
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &on_a } else { &on_b };
        admitted += usize::from(limiter.check(&brand).await.is_ok());
    }
    assert_eq!(admitted, 3, "one quota across both processes, not one each");
    assert!(on_a.check(&Uuid::new_v4()).await.is_ok(), "another key has its own quota");
    let other_limit = KeyedLimiter::<Uuid>::new("pixel:client", slow(3), 100, &a);
    assert!(other_limit.check(&brand).await.is_ok(), "another limit's keys are apart");
}

#[tokio::test]
async fn sign_in_attempts_on_one_email_are_counted_across_processes() {
    let prefix = fresh_prefix();
    let url = redis_url();
    let settings = [("SIGNIN_RATE_PER_SECOND", "1000"), ("REDIS_URL", url.as_str()), ("REDIS_KEY_PREFIX", &prefix)];
    let config = api::Config::from_lookup(|n| settings.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned()))
        .expect("a configuration");
    let (a, b) = (Backend::from_config(&config), Backend::from_config(&config));
    let processes = [SignInLimits::new(&config, &a), SignInLimits::new(&config, &b)];
    let client = ClientKey::from(std::net::IpAddr::from([192, 0, 2, 7]));
    // Five attempts on one email from one client, whichever process they reach; then one a minute.
    for i in 0..5 {
        assert!(processes[i % 2].admit("jess@example.com", client).await.is_ok(), "attempt {i}");
    }
    match processes[1].admit("JESS@example.com", client).await {
        Err(Refusal::TooManyAttempts { retry_after }) => {
            assert!(retry_after > Duration::from_secs(55) && retry_after <= Duration::from_secs(60), "{retry_after:?}")
        }
        other => panic!("a sixth attempt was not refused: {:?}", other.map(drop)),
    }
}

#[tokio::test]
async fn redis_gives_the_same_verdicts_and_waits_as_memory() {
    let shared = KeyedLimiter::<Uuid>::new("same", slow(3), 100, &process(&redis_url(), &fresh_prefix()));
    let memory = KeyedLimiter::<Uuid>::new("same", slow(3), 100, &Backend::Memory);
    let key = Uuid::new_v4();
    let (in_redis, in_memory) = (verdicts(&shared, key, 5).await, verdicts(&memory, key, 5).await);
    let admitted = |v: &[Result<(), Duration>]| v.iter().map(Result::is_ok).collect::<Vec<_>>();
    assert_eq!(admitted(&in_redis), [true, true, true, false, false]);
    assert_eq!(admitted(&in_redis), admitted(&in_memory));
    // Refused: until the first of the burst has been paid back, one period after the first request.
    for wait in in_redis[3..].iter().chain(&in_memory[3..]) {
        let wait = wait.expect_err("refused");
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
    }
    let (redis_wait, memory_wait) = (in_redis[4].expect_err("refused"), in_memory[4].expect_err("refused"));
    assert!(redis_wait.abs_diff(memory_wait) < Duration::from_secs(5), "{redis_wait:?} vs {memory_wait:?}");
}

#[tokio::test]
async fn a_fast_quota_refills_in_redis_as_in_memory() {
    // Two a second, burst one: refused right after a request, admitted again half a second later.
    let quota = Quota::per_second(NonZeroU32::new(2).expect("2")).allow_burst(NonZeroU32::MIN);
    let limiter = KeyedLimiter::<Uuid>::new("fast", quota, 100, &process(&redis_url(), &fresh_prefix()));
    let key = Uuid::new_v4();
    assert!(limiter.check(&key).await.is_ok());
    let wait = limiter.check(&key).await.expect_err("burst of one");
    assert!(wait <= Duration::from_millis(500), "{wait:?}");
    tokio::time::sleep(wait).await;
    assert!(limiter.check(&key).await.is_ok(), "admitted once the wait it was told has passed");
}

#[tokio::test]
async fn keys_expire_once_they_would_be_fresh_again() {
    let prefix = fresh_prefix();
    let backend = process(&redis_url(), &prefix);
    let Backend::Shared(shared) = &backend else { unreachable!("a shared backend") };
    let limiter = KeyedLimiter::<Uuid>::new("ttl", slow(3), 100, &backend);
    assert!(limiter.check(&Uuid::new_v4()).await.is_ok());
    let mut redis = redis::Client::open(redis_url()).expect("client").get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with(&format!("{prefix}limit:ttl:")), "{keys:?}");
    assert!(!keys[0].contains('-'), "the key is a digest, not the id: {keys:?}");
    // One request of a burst of three, one a minute: fresh again in two minutes (governor's first
    // arrival counts one interval ahead).
    let ttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query_async(&mut redis).await.unwrap();
    assert!(ttl > 115_000 && ttl <= 120_000, "{ttl} ms");
    let _ = shared;

    // A key of a 20 ms quota is gone within moments.
    let quick =
        KeyedLimiter::<Uuid>::new("quick", Quota::with_period(Duration::from_millis(20)).unwrap(), 100, &backend);
    assert!(quick.check(&Uuid::new_v4()).await.is_ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}limit:quick:*")).query_async(&mut redis).await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{left:?} still in Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback port bound by a socket that does not listen: connections to it are refused, and no
/// other process can take it while the socket is held.
fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind("127.0.0.1:0".parse().expect("an address")).expect("bind");
    let port = socket.local_addr().expect("its address").port();
    (socket, port)
}

/// Checks until refused against a quota of two; answers how many were admitted and how long it took.
async fn admitted_on_its_own(backend: &Backend) -> (usize, Duration) {
    let limiter = KeyedLimiter::<Uuid>::new("fallback", slow(2), 100, backend);
    let key = Uuid::new_v4();
    let started = Instant::now();
    let verdicts = verdicts(&limiter, key, 6).await;
    assert!(verdicts[2..].iter().all(Result::is_err), "the in-memory limit holds: {verdicts:?}");
    (verdicts.iter().filter(|v| v.is_ok()).count(), started.elapsed())
}

#[tokio::test]
async fn a_redis_refusing_connections_leaves_each_process_limiting_on_its_own() {
    let (_held, port) = refusing_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = fresh_prefix();
    // Two processes, each with its own in-memory quota: two admitted by each.
    for backend in [process(&url, &prefix), process(&url, &prefix)] {
        let (admitted, took) = admitted_on_its_own(&backend).await;
        assert_eq!(admitted, 2);
        // One failed connection, then Redis is left alone: no request waits on it again for a while.
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_one_timeout_then_memory_limits() {
    // Accepts connections (the kernel does) and never answers a command.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://127.0.0.1:{}", silent.local_addr().expect("address").port());
    let backend = process(&url, &fresh_prefix());
    let (admitted, took) = admitted_on_its_own(&backend).await;
    assert_eq!(admitted, 2);
    // The first check waits out the command timeout; the others are counted in memory at once.
    let timeout = api::limits::shared::COMMAND_TIMEOUT;
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout * 4 + Duration::from_secs(2), "{took:?}");
}
