//! Helpers the end-to-end tests share: starting processes and waiting for them.
//!
//! Every process a test starts binds port 0 and the test reads the port it got from its output (the
//! API's `listening addr=` lines, wrangler's `Ready on`), so no port is ever picked free, released and
//! taken by another process before the one it was meant for binds it. The one port that must be known
//! before its process starts (the API's internal listener, which the worker posts to, while the API needs
//! the worker's URL) is picked with [`free_port`], and a start that lost it is started again on a new one
//! (see [`stack::start`]).

pub mod api;
pub mod receiver;
pub mod replica;
pub mod stack;
pub mod wrangler;

use std::net::TcpListener;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A loopback port that was free a moment ago. Another process may take it before it is used: only for
/// a start that detects a lost port and starts again on a new one (an address already in use).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Polls `probe` every 100 ms until it gives a value, or panics after `limit` naming `what`.
/// The limit only bounds a hung run; nothing is asserted about how long it took.
pub fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        sleep(Duration::from_millis(100));
    }
}

/// A blocking HTTP client that returns every response as it is: no redirects followed (the tests look
/// at the 302s themselves), no error for 4xx/5xx, no default user agent.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(ureq::config::AutoHeaderValue::None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}
