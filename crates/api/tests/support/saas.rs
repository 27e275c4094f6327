//! A local stand-in for Cloudflare for SaaS custom hostnames (`/zones/{zone}/custom_hostnames`): it checks
//! the documented request shapes (bearer token, JSON body with `hostname` and `ssl.method`/`ssl.type`) and
//! answers in Cloudflare's envelope. A hostname stays pending, with its ownership and certificate TXT
//! records, until the test says its DNS was published ([`SaasStandIn::publish_dns`]).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
pub const TOKEN: &str = "cf-saas-test-token";

#[derive(Debug, Clone)]
pub struct Hostname {
    pub hostname: String,
    pub active: bool,
    pub ssl_method: String,
}

#[derive(Default)]
pub struct Zone {
    pub hostnames: BTreeMap<String, Hostname>,
    /// Every request, as `METHOD path`.
    pub requests: Vec<String>,
    next_id: u64,
}

#[derive(Clone)]
pub struct SaasStandIn {
    pub zone: Arc<Mutex<Zone>>,
    pub base: String,
}

type Reply = (StatusCode, Json<Value>);

fn error(status: StatusCode, code: i64, message: &str) -> Reply {
    (
        status,
        Json(json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})),
    )
}

fn result(id: &str, h: &Hostname) -> Value {
    let status = if h.active { "active" } else { "pending" };
    let ssl_status = if h.active { "active" } else { "pending_validation" };
    json!({
        "id": id,
        "hostname": h.hostname,
        "status": status,
        "ssl": {
            "id": format!("ssl-{id}"), "type": "dv", "method": h.ssl_method, "status": ssl_status,
            "validation_records": if h.active { json!([]) } else {
                json!([{"txt_name": format!("_acme-challenge.{}", h.hostname), "txt_value": format!("acme-{id}")}])
            },
            "settings": {}, "bundle_method": "ubiquitous", "wildcard": false
        },
        "ownership_verification": {"type": "txt", "name": format!("_cf-custom-hostname.{}", h.hostname), "value": format!("owner-{id}")},
        "verification_errors": if h.active { json!([]) } else { json!(["custom hostname does not CNAME to this zone."]) },
        "created_at": "2026-12-06T00:00:00Z"
    })
}

fn ok(value: Value) -> Reply {
    (StatusCode::OK, Json(json!({"success": true, "errors": [], "messages": [], "result": value})))
}

fn check(headers: &HeaderMap, zone: &str, needs_json: bool) -> Result<(), Reply> {
    if zone != ZONE {
        return Err(error(
            StatusCode::NOT_FOUND,
            7003,
            "Could not route to /zones, perhaps your object identifier is invalid?",
        ));
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return Err(error(StatusCode::UNAUTHORIZED, 10000, "Authentication error"));
    }
    if needs_json && headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return Err(error(StatusCode::BAD_REQUEST, 1400, "expected application/json"));
    }
    Ok(())
}

async fn create(
    State(zone): State<Arc<Mutex<Zone>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Reply {
    if let Err(e) = check(&headers, &id, true) {
        return e;
    }
    let mut zone = zone.lock().unwrap();
    zone.requests.push("POST custom_hostnames".into());
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, 1400, "invalid JSON");
    };
    let (Some(hostname), Some(method), Some("dv")) =
        (body["hostname"].as_str(), body["ssl"]["method"].as_str(), body["ssl"]["type"].as_str())
    else {
        return error(StatusCode::BAD_REQUEST, 1407, "hostname, ssl.method and ssl.type (dv) are required");
    };
    if !["http", "txt", "email"].contains(&method) {
        return error(StatusCode::BAD_REQUEST, 1407, "ssl.method must be http, txt or email");
    }
    if zone.hostnames.values().any(|h| h.hostname == hostname) {
        return error(StatusCode::CONFLICT, 1406, "Duplicate custom hostname found.");
    }
    zone.next_id += 1;
    let id = format!("0d89c70d-ad9f-4843-b99f-{:012x}", zone.next_id);
    let h = Hostname { hostname: hostname.to_owned(), active: false, ssl_method: method.to_owned() };
    let answer = result(&id, &h);
    zone.hostnames.insert(id, h);
    (StatusCode::CREATED, Json(json!({"success": true, "errors": [], "messages": [], "result": answer})))
}

async fn read(
    State(zone): State<Arc<Mutex<Zone>>>,
    Path((zone_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    if let Err(e) = check(&headers, &zone_id, false) {
        return e;
    }
    let mut zone = zone.lock().unwrap();
    zone.requests.push(format!("GET custom_hostnames/{id}"));
    match zone.hostnames.get(&id) {
        Some(h) => ok(result(&id, h)),
        None => error(StatusCode::NOT_FOUND, 1436, "The custom hostname was not found."),
    }
}

async fn remove(
    State(zone): State<Arc<Mutex<Zone>>>,
    Path((zone_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    if let Err(e) = check(&headers, &zone_id, false) {
        return e;
    }
    let mut zone = zone.lock().unwrap();
    zone.requests.push(format!("DELETE custom_hostnames/{id}"));
    match zone.hostnames.remove(&id) {
        Some(_) => ok(json!({"id": id})),
        None => error(StatusCode::NOT_FOUND, 1436, "The custom hostname was not found."),
    }
}

impl SaasStandIn {
    pub async fn start() -> Self {
        let zone = Arc::new(Mutex::new(Zone::default()));
        let app = Router::new()
            .route("/client/v4/zones/{zone}/custom_hostnames", post(create))
            .route("/client/v4/zones/{zone}/custom_hostnames/{id}", get(read).delete(remove))
            .with_state(zone.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/client/v4", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        SaasStandIn { zone, base }
    }

    /// The settings that point the API at this stand-in.
    pub fn settings(&self) -> [(&'static str, String); 3] {
        [("CF_API_BASE", self.base.clone()), ("CF_ZONE_ID", ZONE.to_owned()), ("CF_API_TOKEN", TOKEN.to_owned())]
    }

    /// The brand published its DNS records: the hostname and its certificate become active.
    pub fn publish_dns(&self, hostname: &str) {
        let mut zone = self.zone.lock().unwrap();
        let h = zone.hostnames.values_mut().find(|h| h.hostname == hostname).expect("a custom hostname");
        h.active = true;
    }

    pub fn hostnames(&self) -> Vec<String> {
        self.zone.lock().unwrap().hostnames.values().map(|h| h.hostname.clone()).collect()
    }

    pub fn requests(&self) -> Vec<String> {
        self.zone.lock().unwrap().requests.clone()
    }
}
