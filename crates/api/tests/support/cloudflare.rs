//! A local stand-in for Cloudflare's Workers KV bulk API: it checks the documented request shape
//! (paths, bearer token, JSON bodies) and can be told to fail: everything, one poisoned key, after
//! applying a batch (an unknown outcome), or by applying and answering only when released.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;

pub const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
pub const NAMESPACE: &str = "fedcba9876543210fedcba9876543210";
pub const TOKEN: &str = "cf-test-token";

#[derive(Default)]
pub struct Kv {
    pub values: BTreeMap<String, String>,
    /// While set, every request fails with a 500 and Cloudflare's error envelope.
    pub failing: bool,
    /// Keys to report in `unsuccessful_keys` once.
    pub unsuccessful_once: Vec<String>,
    /// Keys whose batches are refused whole with a 400, as Cloudflare refuses a value it cannot store.
    pub poisoned: Vec<String>,
    /// How many of the next requests are applied and then answered with a 502: their sender cannot
    /// tell that they landed.
    pub apply_then_fail: usize,
    /// The next request waits for this to be notified before it is applied and answered (once): a
    /// sender whose timeout passes meanwhile gives up, and the write lands afterwards all the same.
    pub hold_once: Option<Arc<Notify>>,
    pub requests: usize,
    /// The keys of every batch applied, in order, writes as `put:key`, deletes as `delete:key`.
    pub applied: Vec<Vec<String>>,
}

#[derive(Clone)]
pub struct StandIn {
    pub kv: Arc<Mutex<Kv>>,
    pub base: String,
}

impl StandIn {
    pub async fn start() -> Self {
        let kv = Arc::new(Mutex::new(Kv::default()));
        let app = Router::new()
            .route("/client/v4/accounts/{account}/storage/kv/namespaces/{namespace}/bulk", put(bulk_write))
            .route("/client/v4/accounts/{account}/storage/kv/namespaces/{namespace}/bulk/delete", post(bulk_delete))
            .with_state(kv.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/client/v4", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn { kv, base }
    }

    pub fn set_failing(&self, failing: bool) {
        self.kv.lock().unwrap().failing = failing;
    }

    pub fn values(&self) -> BTreeMap<String, String> {
        self.kv.lock().unwrap().values.clone()
    }

    /// Changes the stand-in's settings.
    pub fn set(&self, change: impl FnOnce(&mut Kv)) {
        change(&mut self.kv.lock().unwrap());
    }

    pub fn sink(&self) -> api::sync::CloudflareKv {
        api::sync::CloudflareKv::new(&self.base.parse().unwrap(), ACCOUNT, NAMESPACE, TOKEN.into()).unwrap()
    }
}

fn envelope_error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(
            json!({"success": false, "errors": [{"code": 10000, "message": message}], "messages": [], "result": null}),
        ),
    )
}

/// What every request must carry, as Cloudflare documents it.
fn check(headers: &HeaderMap, account: &str, namespace: &str) -> Result<(), (StatusCode, Json<Value>)> {
    if (account, namespace) != (ACCOUNT, NAMESPACE) {
        return Err(envelope_error(StatusCode::NOT_FOUND, "namespace not found"));
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return Err(envelope_error(StatusCode::UNAUTHORIZED, "Authentication error"));
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return Err(envelope_error(StatusCode::BAD_REQUEST, "expected application/json"));
    }
    Ok(())
}

fn ok(count: usize, unsuccessful: Vec<String>) -> (StatusCode, Json<Value>) {
    (
        StatusCode::OK,
        Json(json!({"success": true, "errors": [], "messages": [],
                    "result": {"successful_key_count": count - unsuccessful.len(), "unsuccessful_keys": unsuccessful}})),
    )
}

/// Checks a request's shape, counts it, and fails it while the stand-in is told to.
fn admit<'a>(
    kv: &'a Mutex<Kv>,
    headers: &HeaderMap,
    account: &str,
    namespace: &str,
) -> Result<std::sync::MutexGuard<'a, Kv>, (StatusCode, Json<Value>)> {
    check(headers, account, namespace)?;
    let mut guard = kv.lock().unwrap();
    guard.requests += 1;
    if guard.failing {
        return Err(envelope_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
    }
    Ok(guard)
}

/// Whether a batch holding `keys` is refused whole for a poisoned key.
fn poisoned(kv: &Kv, keys: &[&str]) -> Option<(StatusCode, Json<Value>)> {
    let bad = keys.iter().find(|key| kv.poisoned.iter().any(|p| p == *key))?;
    Some(envelope_error(StatusCode::BAD_REQUEST, &format!("could not store the value of {bad}")))
}

/// Applies a checked batch: at once, or once released when the stand-in was told to hold it (in a task
/// of its own, so the write lands even when the sender gave up and closed the connection). The answer
/// is then `answer`, or a 502 while `apply_then_fail` lasts.
async fn apply_and_answer(
    kv: Arc<Mutex<Kv>>,
    apply: impl FnOnce(&mut Kv) -> (StatusCode, Json<Value>) + Send + 'static,
) -> (StatusCode, Json<Value>) {
    let hold = kv.lock().unwrap().hold_once.take();
    let landed = tokio::spawn(async move {
        if let Some(hold) = hold {
            hold.notified().await;
        }
        let mut kv = kv.lock().unwrap();
        let answer = apply(&mut kv);
        if kv.apply_then_fail > 0 {
            kv.apply_then_fail -= 1;
            return envelope_error(StatusCode::BAD_GATEWAY, "bad gateway");
        }
        answer
    });
    landed.await.unwrap()
}

async fn bulk_write(
    State(kv): State<Arc<Mutex<Kv>>>,
    Path((account, namespace)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let (pairs, parsed) = match check_write(&kv, &headers, &account, &namespace, &body) {
        Ok(checked) => checked,
        Err(e) => return e,
    };
    apply_and_answer(kv, move |kv| {
        let unsuccessful = std::mem::take(&mut kv.unsuccessful_once);
        let mut applied = Vec::new();
        for (key, value) in parsed {
            if !unsuccessful.contains(&key) {
                applied.push(format!("put:{key}"));
                kv.values.insert(key, value);
            }
        }
        kv.applied.push(applied);
        ok(pairs, unsuccessful)
    })
    .await
}

/// An answer of the stand-in.
type Reply = (StatusCode, Json<Value>);

/// A bulk write's pairs (and how many), once the request is admitted and its body checked.
fn check_write(
    kv: &Mutex<Kv>,
    headers: &HeaderMap,
    account: &str,
    namespace: &str,
    body: &str,
) -> Result<(usize, Vec<(String, String)>), Reply> {
    let guard = admit(kv, headers, account, namespace)?;
    let Ok(Value::Array(pairs)) = serde_json::from_str::<Value>(body) else {
        return Err(envelope_error(StatusCode::BAD_REQUEST, "body must be an array"));
    };
    if pairs.is_empty() || pairs.len() > 10_000 {
        return Err(envelope_error(StatusCode::BAD_REQUEST, "between 1 and 10,000 pairs"));
    }
    let mut parsed = Vec::new();
    for pair in &pairs {
        let (Some(key), Some(value)) = (pair["key"].as_str(), pair["value"].as_str()) else {
            return Err(envelope_error(StatusCode::BAD_REQUEST, "each pair needs string key and value"));
        };
        if key.is_empty() || key.len() > 512 {
            return Err(envelope_error(StatusCode::BAD_REQUEST, "key length"));
        }
        parsed.push((key.to_owned(), value.to_owned()));
    }
    let keys: Vec<&str> = parsed.iter().map(|(key, _)| key.as_str()).collect();
    if let Some(refused) = poisoned(&guard, &keys) {
        return Err(refused);
    }
    Ok((pairs.len(), parsed))
}

async fn bulk_delete(
    State(kv): State<Arc<Mutex<Kv>>>,
    Path((account, namespace)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let keys = {
        let guard = match admit(&kv, &headers, &account, &namespace) {
            Ok(kv) => kv,
            Err(e) => return e,
        };
        let Ok(keys) = serde_json::from_str::<Vec<String>>(&body) else {
            return envelope_error(StatusCode::BAD_REQUEST, "body must be an array of keys");
        };
        if let Some(refused) = poisoned(&guard, &keys.iter().map(String::as_str).collect::<Vec<_>>()) {
            return refused;
        }
        keys
    };
    apply_and_answer(kv, move |kv| {
        for key in &keys {
            kv.values.remove(key);
        }
        kv.applied.push(keys.iter().map(|key| format!("delete:{key}")).collect());
        ok(keys.len(), Vec::new())
    })
    .await
}
