//! Two real `api` processes on one PostgreSQL database, sharing their rate limits through the local Redis
//! (127.0.0.1:6379, or `E2E_REDIS_URL`; every run writes under a key prefix of its own): a pixel's limit is
//! held across both, not once per process; and with Redis on a port that refuses connections, both keep
//! answering and each limits on its own. The second process runs `api serve --no-background`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::api::{ApiOptions, ApiProcess, Brand};
use e2e::http;
use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
use serde_json::{json, Value};

fn redis_url() -> String {
    std::env::var("E2E_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test run uses.
fn fresh_prefix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("e2e:{}:{nanos}:", std::process::id())
}

/// A pixel's limit of one event a second, bursts of two; its clients' limit far above it.
fn options(redis_url: &str, prefix: &str, serve_args: &[&str]) -> ApiOptions {
    let env = [
        ("REDIS_URL", redis_url),
        ("REDIS_KEY_PREFIX", prefix),
        ("PIXEL_RATE_PER_PIXEL", "1"),
        ("PIXEL_RATE_PER_CLIENT", "1000"),
    ];
    ApiOptions {
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        serve_args: serve_args.iter().map(|a| a.to_string()).collect(),
        ..ApiOptions::default()
    }
}

/// One page view; answers whether it was accepted (202) or refused as rate limited (429, in the JSON
/// error shape). Anything else fails the test.
fn page_view(api: &ApiProcess, brand: &Brand) -> bool {
    let body = json!({"pixel_id": brand.pixel_id, "event": "page_view"}).to_string();
    let mut response = http()
        .post(api.url("/v1/pixel/events"))
        .header("Content-Type", "text/plain;charset=UTF-8")
        .send(body)
        .expect("the API answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    match status {
        202 => true,
        429 => {
            let error: Value = serde_json::from_str(&text).expect("a JSON error");
            assert_eq!(error["error"]["code"], "rate_limited", "{text}");
            false
        }
        other => panic!("pixel event answered {other}: {text}\n{}", api.logs()),
    }
}

/// `n` page views sent alternately to each process; answers how many each accepted and how long it took.
fn alternate(apis: [&ApiProcess; 2], brand: &Brand, n: usize) -> ([usize; 2], Duration) {
    let started = Instant::now();
    let mut accepted = [0; 2];
    for i in 0..n {
        accepted[i % 2] += usize::from(page_view(apis[i % 2], brand));
    }
    (accepted, started.elapsed())
}

/// The most a limit of one a second with bursts of two can admit over `elapsed`.
fn at_most(elapsed: Duration) -> usize {
    2 + elapsed.as_secs() as usize
}

#[test]
fn a_pixels_limit_holds_across_two_processes_sharing_redis() {
    let prefix = fresh_prefix();
    let first = ApiProcess::start(options(&redis_url(), &prefix, &[]));
    let brand = first.create_brand("Shared limits");
    let second = first.start_beside(options(&redis_url(), &prefix, &["--no-background"]));
    let ([on_first, on_second], elapsed) = alternate([&first, &second], &brand, 20);
    let total = on_first + on_second;
    // One process's limit in all: a burst of two (and one more per second the run took), where two
    // processes counting apart would have admitted two each.
    assert!(total >= 2 && total <= at_most(elapsed), "{on_first} + {on_second} accepted in {elapsed:?}");
    assert_eq!(first.sql_scalar("select count(*) from pixel_events"), total.to_string());
    assert!(second.logs().contains("rate limits are shared through Redis"), "{}", second.logs());
    // The second process only answers requests.
    assert!(second.logs().contains("--no-background: this process only answers requests"), "{}", second.logs());
    for task in ["rollup folding started", "retention started"] {
        assert!(first.logs().contains(task), "{task}: {}", first.logs());
        assert!(!second.logs().contains(task), "{task}: {}", second.logs());
    }
}

/// A loopback port bound by a socket that does not listen: connections to it are refused, and no other
/// process can take it while the socket is held.
fn refusing_port() -> (OwnedFd, u16) {
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).expect("a socket");
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
    let port = getsockname::<SockaddrIn>(fd.as_raw_fd()).expect("its address").port();
    (fd, port)
}

#[test]
fn with_redis_refusing_connections_each_process_serves_and_limits_on_its_own() {
    let (_held, port) = refusing_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = fresh_prefix();
    let first = ApiProcess::start(options(&url, &prefix, &[]));
    let brand = first.create_brand("Redis down");
    let second = first.start_beside(options(&url, &prefix, &["--no-background"]));
    let (accepted, elapsed) = alternate([&first, &second], &brand, 20);
    for (api, accepted) in [(&first, accepted[0]), (&second, accepted[1])] {
        // Each process's own limit: its burst of two, whatever the other admitted.
        assert!(accepted >= 2 && accepted <= at_most(elapsed), "{accepted} accepted in {elapsed:?}");
        let warnings = api.logs().matches("Redis failed: rate limits are counted per process").count();
        // Said, and not once per request: at most once a minute.
        assert!(warnings >= 1 && warnings <= 1 + elapsed.as_secs() as usize / 60, "{warnings}: {}", api.logs());
        assert_eq!(http().get(api.url("/readyz")).call().expect("an answer").status(), 200);
    }
}
