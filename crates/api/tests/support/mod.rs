//! Drives the real router (no socket) against a fresh PostgreSQL database per test.
#![allow(dead_code)]

pub mod browser;
pub mod cloudflare;
pub mod saas;

use api::http::{self, AppState};
use api::Config;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

pub struct Api {
    pub router: Router,
    /// The internal listener's router (`/internal/*`), which the public `router` never serves.
    pub internal: Router,
    pub pool: PgPool,
    pub state: AppState,
    pub brand_id: Uuid,
    pub key: String,
    pub pixel_id: String,
}

/// The edge's ingest token every test API accepts (shared tokens are at least 32 bytes).
pub const EDGE_TOKEN: &str = "edge-test-token-0123456789abcdefghij";

/// A configuration with defaults, the test edge token, and these overrides. Clicks are accepted up to
/// ten years back (`CLICK_MAX_AGE_DAYS`), because tests build history months long through ingestion;
/// the default horizon is tested on its own in `ingest.rs`.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        overrides
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| (name == "EDGE_INGEST_TOKEN").then(|| EDGE_TOKEN.to_owned()))
            .or_else(|| (name == "CLICK_MAX_AGE_DAYS").then(|| "3650".to_owned()))
    })
    .unwrap()
}

/// A click event as the edge sends it.
pub struct Click<'a> {
    pub link: &'a Value,
    pub visitor: Uuid,
    pub at: DateTime<Utc>,
    pub bot: bool,
    pub country: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl<'a> Click<'a> {
    pub fn new(link: &'a Value, visitor: Uuid, at: DateTime<Utc>) -> Self {
        Click { link, visitor, at, bot: false, country: None, user_agent: None }
    }

    /// The event JSON, with a fresh click id (returned too).
    pub fn event(&self) -> (Uuid, Value) {
        let id = Uuid::new_v4();
        let mut event = json!({
            "v": 1, "click_id": id.simple().to_string(), "code": self.link["code"], "link_id": self.link["id"],
            "occurred_at_ms": self.at.timestamp_millis(), "visitor_id": self.visitor.simple().to_string(),
            "new_visitor": true, "bot": self.bot,
        });
        if let Some(c) = self.country {
            event["country"] = json!(c);
        }
        if let Some(ua) = self.user_agent {
            event["user_agent"] = json!(ua);
        }
        (id, event)
    }
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl Response {
    /// The stable error code of an error answer.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl Api {
    pub async fn new(pool: PgPool) -> Self {
        Self::with_state(AppState::new(pool, config(&[]))).await
    }

    pub async fn with_state(state: AppState) -> Self {
        let brand = api::brands::create_brand(&state.db, "Acme").await.unwrap();
        Self::serving(state, brand.brand_id, brand.api_key, brand.pixel_id)
    }

    /// A brand's view of the API that `state` serves.
    fn serving(state: AppState, brand_id: Uuid, key: String, pixel_id: String) -> Self {
        Api {
            router: http::router(state.clone()),
            internal: http::internal_router(state.clone()),
            pool: state.db.clone(),
            state,
            brand_id,
            key,
            pixel_id,
        }
    }

    /// A second brand on the same database and router.
    pub async fn other_brand(&self) -> Self {
        let brand = api::brands::create_brand(&self.pool, "Other").await.unwrap();
        Api {
            router: self.router.clone(),
            internal: self.internal.clone(),
            pool: self.pool.clone(),
            state: self.state.clone(),
            brand_id: brand.brand_id,
            key: brand.api_key,
            pixel_id: brand.pixel_id,
        }
    }

    /// The same brand and key, served by another process on the same database: a state and routers of
    /// its own (its own caches), as a second `api serve` has.
    pub fn another_process(&self) -> Self {
        let state = AppState::new(self.pool.clone(), config(&[]));
        Self::serving(state, self.brand_id, self.key.clone(), self.pixel_id.clone())
    }

    /// A request to the public router.
    pub async fn send(&self, method: Method, uri: &str, auth: Option<&str>, body: Option<Body>) -> Response {
        Self::send_to(&self.router, method, uri, auth, body).await
    }

    /// A request to the internal listener's router.
    pub async fn send_internal(&self, method: Method, uri: &str, auth: Option<&str>, body: Option<Body>) -> Response {
        Self::send_to(&self.internal, method, uri, auth, body).await
    }

    async fn send_to(router: &Router, method: Method, uri: &str, auth: Option<&str>, body: Option<Body>) -> Response {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = auth {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                b
            }
            None => Body::empty(),
        };
        let response = router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Response { status, body }
    }

    pub async fn get(&self, uri: &str) -> Response {
        self.send(Method::GET, uri, Some(&self.key), None).await
    }

    pub async fn post(&self, uri: &str, json: Value) -> Response {
        self.send(Method::POST, uri, Some(&self.key), Some(Body::from(json.to_string()))).await
    }

    pub async fn patch(&self, uri: &str, json: Value) -> Response {
        self.send(Method::PATCH, uri, Some(&self.key), Some(Body::from(json.to_string()))).await
    }

    pub async fn delete(&self, uri: &str) -> Response {
        self.send(Method::DELETE, uri, Some(&self.key), None).await
    }

    /// Creates something and returns its JSON, failing the test unless the answer is 201.
    pub async fn create(&self, uri: &str, json: Value) -> Value {
        let response = self.post(uri, json).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// Posts click events through `/internal/clicks`, as the edge does; returns the summary.
    pub async fn ingest(&self, events: Vec<Value>) -> Value {
        let body = Body::from(json!({ "clicks": events }).to_string());
        let response = self.send_internal(Method::POST, "/internal/clicks", Some(EDGE_TOKEN), Some(body)).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        response.body
    }

    /// Records clicks and returns their ids.
    pub async fn click(&self, clicks: &[Click<'_>]) -> Vec<Uuid> {
        let (ids, events): (Vec<Uuid>, Vec<Value>) = clicks.iter().map(Click::event).unzip();
        let summary = self.ingest(events).await;
        assert_eq!(summary["stored"], ids.len(), "{summary}");
        ids
    }

    /// Runs the background re-attribution of orders that name newly ingested clicks, as the server's
    /// task does; returns how many orders it re-attributed.
    pub async fn reattribute(&self) -> usize {
        api::attribution::reattribute_queued(&self.pool, 500).await.unwrap()
    }

    /// Reports a USD order placed a minute ago through the Conversions API (a fresh `Idempotency-Key`),
    /// naming `cs_ref` and `discount_codes`; returns the order, failing the test unless the answer is 201.
    pub async fn report_order(&self, order_id: &str, amount_minor: i64, cs_ref: Option<Uuid>, codes: &[&str]) -> Value {
        let mut body = json!({"order_id": order_id, "amount": {"amount_minor": amount_minor, "currency": "USD"},
            "occurred_at": (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(), "discount_codes": codes});
        if let Some(click) = cs_ref {
            body["cs_ref"] = json!(click.simple().to_string());
        }
        self.report_conversion(&body).await
    }

    /// Reports an order through the Conversions API under a fresh `Idempotency-Key`; returns the order,
    /// failing the test unless the answer is 201.
    pub async fn report_conversion(&self, body: &Value) -> Value {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/conversions")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", Uuid::new_v4().to_string())
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&self.pool).await.unwrap()
    }
}

/// Waits (up to 10 s, polling) until `sql`, a boolean query, answers true; `what` names it in the failure.
pub async fn until(pool: &PgPool, what: &str, sql: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sqlx::query_scalar::<_, bool>(sql).fetch_one(pool).await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// How many order-creating session functions (`attribution::create_order_once`) exist, in any session.
pub async fn session_functions(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname like 'pg\\_temp\\_%' and p.proname like 'cs\\_create\\_order\\_%'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A pool of a role with every right on the tables but not TEMPORARY on the test database (PostgreSQL
/// grants it to PUBLIC by default, so it is revoked from PUBLIC): it cannot create session functions.
pub struct WithoutTemporary {
    pub pool: PgPool,
    role: String,
    admin: PgPool,
}

impl WithoutTemporary {
    pub async fn new(admin: &PgPool) -> Self {
        let role = format!("cs_no_temp_{}", Uuid::new_v4().simple());
        let database: String = sqlx::query_scalar("select current_database()").fetch_one(admin).await.unwrap();
        for statement in [
            format!("create role {role} login"),
            format!("revoke temporary on database \"{database}\" from public"),
            format!("grant usage on schema public to {role}"),
            format!("grant select, insert, update, delete on all tables in schema public to {role}"),
            format!("grant usage, select on all sequences in schema public to {role}"),
        ] {
            sqlx::query(&statement).execute(admin).await.unwrap();
        }
        let options = admin.connect_options().as_ref().clone().username(&role);
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_with(options).await.unwrap();
        WithoutTemporary { pool, role, admin: admin.clone() }
    }

    /// Closes the pool and drops the role (roles outlive the test's database).
    pub async fn drop(self) {
        self.pool.close().await;
        sqlx::query(&format!("drop owned by {}", self.role)).execute(&self.admin).await.unwrap();
        sqlx::query(&format!("drop role {}", self.role)).execute(&self.admin).await.unwrap();
    }
}
