//! A tiny local HTTP server that records every request it gets: the stand-in for an API endpoint
//! (the edge worker's queue consumer posts click batches to it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, `GET`, ...
    pub method: String,
    /// Path and query.
    pub url: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Statuses to answer the next requests with, in order; 200 once empty.
    script: VecDeque<u16>,
}

/// Records requests on `127.0.0.1:<free port>` until dropped. Answers `200 {"ok":true}` unless told
/// otherwise with [`Receiver::answer_next_with`].
pub struct Receiver {
    port: u16,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts the server on a free loopback port.
    pub fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("start the receiver"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let thread = {
            let (server, state) = (Arc::clone(&server), Arc::clone(&state));
            std::thread::spawn(move || serve(&server, &state))
        };
        Receiver { port, state, server, thread: Some(thread) }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next requests with these statuses, in order, then 200 again.
    pub fn answer_next_with(&self, statuses: &[u16]) {
        self.lock().script.extend(statuses);
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Waits until `probe` finds what it looks for in the requests received so far. The probe sees a
    /// snapshot, so it may call back into the receiver.
    pub fn wait_for<T>(&self, what: &str, limit: Duration, mut probe: impl FnMut(&[Received]) -> Option<T>) -> T {
        crate::wait_until(what, limit, || probe(&self.received()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn serve(server: &tiny_http::Server, state: &Mutex<State>) {
    for mut request in server.incoming_requests() {
        let mut body = Vec::new();
        let _ = request.as_reader().read_to_end(&mut body);
        let headers = request
            .headers()
            .iter()
            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_owned()))
            .collect();
        let status = {
            let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let status = state.script.pop_front().unwrap_or(200);
            state.received.push(Received {
                method: request.method().as_str().to_owned(),
                url: request.url().to_owned(),
                headers,
                body,
                status,
            });
            status
        };
        let json = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("a valid header");
        let response = tiny_http::Response::from_string(format!("{{\"ok\":{}}}", status < 300))
            .with_status_code(status)
            .with_header(json);
        let _ = request.respond(response);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long a test waits, at most, for the edge's queue consumer to deliver (batches leave after
/// `max_batch_timeout`, 5 s; retries come right after).
pub const DELIVERY_LIMIT: Duration = Duration::from_secs(90);
