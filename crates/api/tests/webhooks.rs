//! Outbound webhooks against real local HTTP receivers: what is sent, how it is signed (checked with the
//! Standard Webhooks algorithm written here on its own), in what order, what happens when a receiver
//! fails, recovers, times out or keeps failing, secret rotation, and the targets that are refused.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use api::http::AppState;
use api::webhooks::{self, Deliverer};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use hmac::{Hmac, Mac};

use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::PgPool;
use support::{Api, Click};

use uuid::Uuid;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signatures: Vec<String>,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A local HTTP receiver. It answers `status` (200 unless told otherwise), after `delay_ms`.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (r, s, d) = (received.clone(), status.clone(), delay_ms.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (r, s, d) = (r.clone(), s.clone(), d.clone());
                async move {
                    let delay = d.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    }
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    r.lock().unwrap().push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signatures: header("webhook-signature").split(' ').map(str::to_owned).collect(),
                        body: String::from_utf8(body.to_vec()).unwrap(),
                    });
                    StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url: format!("http://{addr}/hook"), received, status, delay_ms }
    }

    fn got(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn types(&self) -> Vec<String> {
        self.got().iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect()
    }
}

/// Standard Webhooks' verification, written from the specification: the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` keyed with the base64-decoded part of the secret after `whsec_`, base64,
/// as one of the space-separated `v1,` signatures.
fn verifies(secret: &str, received: &Received) -> bool {
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(received.id.as_bytes());
    mac.update(b".");
    mac.update(received.timestamp.as_bytes());
    mac.update(b".");
    mac.update(received.body.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    received.signatures.iter().any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// An API whose webhooks may reach local receivers over http, with a one-second delivery timeout.
async fn dev_api(pool: PgPool) -> (Api, Deliverer) {
    let config = support::config(&[("ALLOW_PRIVATE_TARGETS", "true"), ("WEBHOOK_TIMEOUT_SECONDS", "1")]);
    let deliverer = Deliverer::new(Arc::new(config.clone())).unwrap();
    (Api::with_state(AppState::new(pool, config)).await, deliverer)
}

async fn subscribe(api: &Api, url: &str, events: &[&str]) -> Value {
    api.create("/v1/webhooks", json!({"url": url, "events": events})).await
}

/// Runs delivery passes at `now` until nothing more is due then.
async fn deliver(api: &Api, deliverer: &Deliverer, now: DateTime<Utc>) -> usize {
    let mut total = 0;
    loop {
        let n = webhooks::deliver_due(&api.pool, deliverer, now).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn link_and_order_events_arrive_signed_in_order_as_the_rest_api_shows_the_objects(pool: PgPool) {
    let (api, deliverer) = dev_api(pool).await;
    let receiver = Receiver::start().await;
    let endpoint = subscribe(&api, &receiver.url, &webhooks::EVENT_TYPES).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(api.get(&format!("/v1/webhooks/{}", endpoint["id"].as_str().unwrap())).await.body.get("secret"), None);

    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let link_id = link["id"].as_str().unwrap();
    api.patch(&format!("/v1/links/{link_id}"), json!({"promo_code": "JESS20"})).await;
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::minutes(5))]).await[0];
    let order = api.report_order("1001", 12_999, Some(click), &[]).await;
    let refund = json!({"refund_id": "r-1", "amount": {"amount_minor": 2_500, "currency": "USD"},
        "occurred_at": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)});
    assert_eq!(api.post("/v1/conversions/1001/refunds", refund).await.status, StatusCode::CREATED);
    assert_eq!(api.post("/v1/conversions/1001/cancel", json!({})).await.status, StatusCode::OK);
    assert_eq!(api.delete(&format!("/v1/links/{link_id}")).await.status, StatusCode::NO_CONTENT);
    assert!(receiver.got().is_empty(), "nothing is sent on a request's path");

    deliver(&api, &deliverer, Utc::now()).await;
    assert_eq!(
        receiver.types(),
        [
            "link.created",
            "link.updated",
            "conversion.created",
            "conversion.refunded",
            "conversion.status_changed",
            "link.deactivated"
        ]
    );
    let got = receiver.got();
    for received in &got {
        assert!(verifies(&secret, received), "signature of {}", received.body);
        let event = received.json();
        assert_eq!(event["id"], received.id, "webhook-id is the event's id");
        assert!(DateTime::parse_from_rfc3339(event["created_at"].as_str().unwrap()).is_ok());
        let ts: i64 = received.timestamp.parse().unwrap();
        assert!((Utc::now().timestamp() - ts).abs() < 60);
    }
    // `data` is the object as the REST API shows it at that moment.
    let created = got[0].json();
    assert_eq!(created["data"], link);
    assert_eq!(got[1].json()["data"]["promo_code"], "JESS20");
    assert_eq!(got[2].json()["data"], order);
    assert_eq!(got[2].json()["data"]["method"], "click");
    let refunded = got[3].json();
    assert_eq!(refunded["data"]["refunded"], json!({"amount_minor": 2_500, "currency": "USD"}));
    assert_eq!(refunded["previous_attributes"], json!({"refunded": {"amount_minor": 0, "currency": "USD"}}));
    let cancelled = got[4].json();
    assert_eq!(cancelled["data"]["status"], "cancelled");
    assert_eq!(cancelled["previous_attributes"], json!({"status": "verified"}));
    let deactivated = got[5].json();
    assert_eq!(deactivated["data"], api.get(&format!("/v1/links/{link_id}")).await.body);
    assert_eq!(deactivated["data"]["active"], false);

    // Delivered once: another pass sends nothing, and the deliveries say so.
    assert_eq!(deliver(&api, &deliverer, Utc::now() + Duration::days(1)).await, 0);
    let deliveries = api.get(&format!("/v1/webhooks/{}/deliveries", endpoint["id"].as_str().unwrap())).await.body;
    let rows = deliveries["data"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1 && d["last_status_code"] == 200));
    assert_eq!(rows[0]["event_type"], "link.deactivated", "newest first");
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_endpoint_gets_only_the_events_it_subscribed_to_and_other_brands_get_none(pool: PgPool) {
    let (api, deliverer) = dev_api(pool).await;
    let other = api.other_brand().await;
    let (orders, links, others) = (Receiver::start().await, Receiver::start().await, Receiver::start().await);
    subscribe(&api, &orders.url, &["conversion.created"]).await;
    let links_endpoint = subscribe(&api, &links.url, &["link.created"]).await;
    subscribe(&other, &others.url, &webhooks::EVENT_TYPES).await;
    api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    api.report_order("2001", 5_000, None, &[]).await;
    // A paused endpoint is sent nothing, and events of the pause are not queued for it; what was queued
    // before waits, and goes once it is enabled again.
    let id = links_endpoint["id"].as_str().unwrap();
    api.patch(&format!("/v1/webhooks/{id}"), json!({"enabled": false})).await;
    api.create("/v1/links", json!({"destination_url": "https://shop.example/b"})).await;
    deliver(&api, &deliverer, Utc::now()).await;
    assert_eq!(orders.types(), ["conversion.created"]);
    assert!(links.got().is_empty());
    api.patch(&format!("/v1/webhooks/{id}"), json!({"enabled": true})).await;
    deliver(&api, &deliverer, Utc::now()).await;
    assert_eq!(links.types(), ["link.created"]);
    assert_eq!(links.got()[0].json()["data"]["destination_url"], "https://shop.example/");
    assert!(others.got().is_empty());
    // Another brand sees nothing of this brand's endpoints.
    assert_eq!(other.get(&format!("/v1/webhooks/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get(&format!("/v1/webhooks/{id}/deliveries")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        other.patch(&format!("/v1/webhooks/{id}"), json!({"enabled": true})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(other.delete(&format!("/v1/webhooks/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get("/v1/webhooks").await.body["data"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_receiver_that_fails_then_recovers_gets_every_event_in_order(pool: PgPool) {
    let (api, deliverer) = dev_api(pool).await;
    let receiver = Receiver::start().await;
    let endpoint = subscribe(&api, &receiver.url, &["link.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    receiver.status.store(503, Ordering::SeqCst);
    let mut codes = Vec::new();
    for i in 0..5 {
        codes.push(
            api.create("/v1/links", json!({"destination_url": format!("https://shop.example/{i}")})).await["code"]
                .clone(),
        );
    }
    let start = Utc::now();
    // The first event fails; the others wait behind it.
    assert_eq!(deliver(&api, &deliverer, start).await, 1);
    assert_eq!(receiver.got().len(), 1);
    assert_eq!(deliver(&api, &deliverer, start + Duration::seconds(2)).await, 0, "not due before its back-off");
    let endpoint_now = api.get(&format!("/v1/webhooks/{id}")).await.body;
    assert!(endpoint_now["failing_since"].is_string());
    // Still failing at the second attempt (5–6 s later).
    assert_eq!(deliver(&api, &deliverer, start + Duration::seconds(7)).await, 1);
    receiver.status.store(200, Ordering::SeqCst);
    // Back: the third attempt (5–6 min later) succeeds, and the rest follow in order.
    assert_eq!(deliver(&api, &deliverer, start + Duration::minutes(7)).await, 5);
    let got = receiver.got();
    let delivered: Vec<Value> = got[2..].iter().map(|r| r.json()["data"]["code"].clone()).collect();
    assert_eq!(delivered, codes);
    assert_eq!(got[0].id, got[2].id, "a retry is the same message");
    assert_eq!(got[0].body, got[2].body, "with the same body");
    let endpoint_now = api.get(&format!("/v1/webhooks/{id}")).await.body;
    assert_eq!(endpoint_now["failing_since"], Value::Null);
    let deliveries = api.get(&format!("/v1/webhooks/{id}/deliveries")).await.body;
    let first = deliveries["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((first["attempts"].as_i64(), first["status"].as_str()), (Some(3), Some("delivered")));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(pool: PgPool) {
    let (api, deliverer) = dev_api(pool).await;
    let receiver = Receiver::start().await;
    let endpoint = subscribe(&api, &receiver.url, &["link.created"]).await;
    receiver.delay_ms.store(3_000, Ordering::SeqCst);
    api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let start = Utc::now();
    assert_eq!(deliver(&api, &deliverer, start).await, 1);
    let deliveries = api.get(&format!("/v1/webhooks/{}/deliveries", endpoint["id"].as_str().unwrap())).await.body;
    let delivery = &deliveries["data"][0];
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["last_status_code"], Value::Null);
    assert_eq!(delivery["last_error"], "no answer within the timeout");
    receiver.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(deliver(&api, &deliverer, start + Duration::seconds(7)).await, 1);
    let deliveries = api.get(&format!("/v1/webhooks/{}/deliveries", endpoint["id"].as_str().unwrap())).await.body;
    assert_eq!(deliveries["data"][0]["status"], "delivered");
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_endpoint_failing_for_five_days_is_disabled_and_a_failed_delivery_can_be_retried(pool: PgPool) {
    let (api, deliverer) = dev_api(pool).await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let endpoint = subscribe(&api, &receiver.url, &["link.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let start = Utc::now();
    // Every attempt of the schedule, each soon after it is due: retried for over three days, then failed.
    let mut now = start;
    let mut attempts = 0;
    while now < start + Duration::days(4) {
        attempts += deliver(&api, &deliverer, now).await;
        now += Duration::minutes(10);
    }
    assert_eq!(attempts, 12);
    let deliveries = api.get(&format!("/v1/webhooks/{id}/deliveries")).await.body;
    let delivery = deliveries["data"][0].clone();
    assert_eq!((delivery["status"].as_str(), delivery["attempts"].as_i64()), (Some("failed"), Some(12)));
    assert_eq!(delivery["last_status_code"], 500);
    assert!(
        DateTime::parse_from_rfc3339(delivery["last_attempt_at"].as_str().unwrap()).unwrap()
            > start + Duration::days(3)
    );
    assert_eq!(api.get(&format!("/v1/webhooks/{id}")).await.body["enabled"], true, "four days of failure");

    // A retry asked for by hand: one more attempt, which fails after the fifth day: the endpoint is disabled.
    let delivery_id = delivery["id"].as_str().unwrap();
    let retried = api.post(&format!("/v1/webhooks/{id}/deliveries/{delivery_id}/retry"), json!({})).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED);
    assert_eq!(retried.body["status"], "pending");
    assert_eq!(deliver(&api, &deliverer, start + Duration::days(5) + Duration::hours(1)).await, 1);
    let disabled = api.get(&format!("/v1/webhooks/{id}")).await.body;
    assert_eq!((disabled["enabled"].as_bool(), disabled["disabled_reason"].as_str()), (Some(false), Some("failing")));
    // Disabled: new events are not queued for it.
    api.create("/v1/links", json!({"destination_url": "https://shop.example/2"})).await;
    assert_eq!(api.count("webhook_deliveries").await, 1);

    // Enabled again once the receiver is fixed: a retry now succeeds.
    receiver.status.store(200, Ordering::SeqCst);
    let enabled = api.patch(&format!("/v1/webhooks/{id}"), json!({"enabled": true})).await.body;
    assert_eq!((enabled["enabled"].as_bool(), enabled["disabled_reason"].clone()), (Some(true), Value::Null));
    api.post(&format!("/v1/webhooks/{id}/deliveries/{delivery_id}/retry"), json!({})).await;
    assert_eq!(deliver(&api, &deliverer, Utc::now()).await, 1);
    assert_eq!(api.get(&format!("/v1/webhooks/{id}/deliveries")).await.body["data"][0]["status"], "delivered");
    let other = api.other_brand().await;
    let foreign = other.post(&format!("/v1/webhooks/{id}/deliveries/{delivery_id}/retry"), json!({})).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_rotated_secret_signs_next_to_the_new_one_for_a_day(pool: PgPool) {
    let (api, deliverer) = dev_api(pool).await;
    let receiver = Receiver::start().await;
    let endpoint = subscribe(&api, &receiver.url, &["link.created"]).await;
    let id = endpoint["id"].as_str().unwrap();
    let old = endpoint["secret"].as_str().unwrap().to_owned();
    let rotated = api.post(&format!("/v1/webhooks/{id}/rotate-secret"), json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    deliver(&api, &deliverer, Utc::now()).await;
    let during = receiver.got()[0].clone();
    assert_eq!(during.signatures.len(), 2);
    assert!(verifies(&old, &during) && verifies(&new, &during));

    api.create("/v1/links", json!({"destination_url": "https://shop.example/2"})).await;
    deliver(&api, &deliverer, Utc::now() + Duration::hours(25)).await;
    let after = receiver.got()[1].clone();
    assert_eq!(after.signatures.len(), 1);
    assert!(verifies(&new, &after) && !verifies(&old, &after));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_test_event_goes_to_its_endpoint_alone(pool: PgPool) {
    let (api, deliverer) = dev_api(pool).await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let endpoint = subscribe(&api, &a.url, &["conversion.created"]).await;
    subscribe(&api, &b.url, &["conversion.created"]).await;
    let sent = api.post(&format!("/v1/webhooks/{}/test", endpoint["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    deliver(&api, &deliverer, Utc::now()).await;
    assert_eq!(a.types(), ["webhook.test"]);
    assert_eq!(a.got()[0].json()["data"]["endpoint_id"], endpoint["id"]);
    assert!(verifies(endpoint["secret"].as_str().unwrap(), &a.got()[0]));
    assert!(b.got().is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn private_targets_and_plain_http_are_refused_when_saved_and_when_delivered(pool: PgPool) {
    let api = Api::new(pool).await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url.clone(),                                  // plain http
        receiver.url.replace("http://", "https://"),           // loopback address
        "https://localhost/hook".to_owned(),                   // a name that resolves to 127.0.0.1
        "https://169.254.169.254/latest/meta-data".to_owned(), // cloud metadata
        "https://10.0.0.8/hook".to_owned(),
        "https://[::1]/hook".to_owned(),
        "https://[::ffff:127.0.0.1]/hook".to_owned(),
        "https://user:pass@hooks.example.com/".to_owned(),
        "ftp://hooks.example.com/".to_owned(),
    ] {
        let response = api.post("/v1/webhooks", json!({"url": url, "events": ["link.created"]})).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(response.error_code(), "invalid_url", "{url}");
    }
    let bad_events =
        api.post("/v1/webhooks", json!({"url": "https://hooks.example.com/", "events": ["link.exploded"]})).await;
    assert_eq!(bad_events.error_code(), "invalid_events");
    let no_events = api.post("/v1/webhooks", json!({"url": "https://hooks.example.com/", "events": []})).await;
    assert_eq!(no_events.error_code(), "invalid_events");
    // 2,048 characters that normalising makes 2,049 (an empty path becomes `/`): refused, not stored.
    let long = format!("https://hooks.example.com?{}", "0".repeat(2048 - 26));
    assert_eq!(long.len(), 2048);
    let too_long = api.post("/v1/webhooks", json!({"url": long, "events": ["link.created"]})).await;
    assert_eq!((too_long.status, too_long.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_url"));

    // A name that resolved elsewhere when it was saved and resolves to loopback now: refused at delivery.
    let endpoint = subscribe(&api, "https://hooks.example.com/in", &["link.created"]).await;
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    sqlx::query("update webhook_endpoints set url = $1 where id = $2")
        .bind(format!("https://localhost:{port}/hook"))
        .bind(Uuid::parse_str(endpoint["id"].as_str().unwrap()).unwrap())
        .execute(&api.pool)
        .await
        .unwrap();
    api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let strict = Deliverer::new(Arc::new(support::config(&[("WEBHOOK_TIMEOUT_SECONDS", "1")]))).unwrap();
    assert_eq!(deliver(&api, &strict, Utc::now()).await, 1);
    let deliveries = api.get(&format!("/v1/webhooks/{}/deliveries", endpoint["id"].as_str().unwrap())).await.body;
    let error = deliveries["data"][0]["last_error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("refused:"), "{error}");
    assert!(receiver.got().is_empty());
    // And an address written in the URL is refused without any lookup.
    sqlx::query("update webhook_endpoints set url = $1")
        .bind(format!("https://127.0.0.1:{port}/hook"))
        .execute(&api.pool)
        .await
        .unwrap();
    api.post(
        &format!(
            "/v1/webhooks/{}/deliveries/{}/retry",
            endpoint["id"].as_str().unwrap(),
            deliveries["data"][0]["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;
    deliver(&api, &strict, Utc::now()).await;
    assert!(receiver.got().is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn endpoints_are_validated_listed_changed_and_removed(pool: PgPool) {
    let (api, _) = dev_api(pool).await;
    let receiver = Receiver::start().await;
    let created = api
        .create(
            "/v1/webhooks",
            json!({"url": receiver.url, "events": ["link.created", "link.created"], "description": " payouts "}),
        )
        .await;
    assert_eq!(created["events"], json!(["link.created"]));
    assert_eq!(created["description"], "payouts");
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();
    let changed =
        api.patch(&format!("/v1/webhooks/{id}"), json!({"events": ["conversion.refunded"], "description": ""})).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body["events"], json!(["conversion.refunded"]));
    assert_eq!(changed.body["description"], Value::Null);
    let paused = api.patch(&format!("/v1/webhooks/{id}"), json!({"enabled": false})).await.body;
    assert_eq!((paused["enabled"].as_bool(), paused["disabled_reason"].as_str()), (Some(false), Some("manual")));
    let unknown = api.patch(&format!("/v1/webhooks/{id}"), json!({"colour": "red"})).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    for _ in 1..webhooks::MAX_ENDPOINTS {
        subscribe(&api, &receiver.url, &["link.created"]).await;
    }
    let too_many = api.post("/v1/webhooks", json!({"url": receiver.url, "events": ["link.created"]})).await;
    assert_eq!((too_many.status, too_many.error_code()), (StatusCode::CONFLICT, "too_many_endpoints"));
    assert_eq!(api.get("/v1/webhooks").await.body["data"].as_array().unwrap().len(), 20);
    assert_eq!(api.delete(&format!("/v1/webhooks/{id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/v1/webhooks/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.delete(&format!("/v1/webhooks/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/v1/webhooks/not-a-uuid").await.status, StatusCode::NOT_FOUND);
}
