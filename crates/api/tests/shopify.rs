//! Shopify: connecting a shop, verified order and refund webhooks, and the credit they give.
//!
//! Payloads are shaped like Shopify's documented ones (`tests/fixtures/shopify/`), signed here with a
//! known secret exactly as Shopify signs them: base64 of the HMAC-SHA256 of the raw body.

mod support;

use api::http::AppState;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::PgPool;
use support::{session_functions, until, Api, Click, WithoutTemporary};
use tower::ServiceExt;
use uuid::Uuid;

const SHOP: &str = "northwind-linen.myshopify.com";
const SECRET: &str = "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";
/// The click id written in the fixtures; tests put a real click's id in its place.
const FIXTURE_CLICK: &str = "5f0c6a3e9b2d4c1fa7e8d9c0b1a2f3e4";

const PROMO_ORDER: &str = "5730101924011";
const LANDING_ORDER: &str = "5730101956779";
const NOTE_ORDER: &str = "5730101989547";

fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/fixtures/shopify/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture whose cs_ref names this click.
fn fixture_with_click(name: &str, click: Uuid) -> String {
    let text = fixture(name);
    assert!(text.contains(FIXTURE_CLICK), "{name} carries no cs_ref");
    text.replace(FIXTURE_CLICK, &click.simple().to_string())
}

/// A fixture with some fields changed (re-serialised, as a different delivery would be).
fn fixture_patched(name: &str, patch: Value) -> String {
    let mut body: Value = serde_json::from_str(&fixture(name)).unwrap();
    body.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
    body.to_string()
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A delivery as Shopify makes it; each part can be left out or spoiled.
struct Delivery {
    shop: Option<String>,
    topic: Option<String>,
    webhook_id: Option<String>,
    signature: Option<String>,
    /// `X-Shopify-Triggered-At`: now, unless a test says otherwise.
    triggered_at: Option<String>,
    body: Vec<u8>,
}

/// A time as Shopify writes it in `X-Shopify-Triggered-At`.
fn shopify_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Delivery {
    /// Signed with the test secret, with a fresh webhook id.
    fn new(topic: &str, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        Delivery {
            shop: Some(SHOP.to_owned()),
            topic: Some(topic.to_owned()),
            webhook_id: Some(Uuid::new_v4().to_string()),
            signature: Some(sign(SECRET, &body)),
            triggered_at: Some(shopify_time(Utc::now())),
            body,
        }
    }

    fn id(mut self, webhook_id: &str) -> Self {
        self.webhook_id = Some(webhook_id.to_owned());
        self
    }

    async fn send(&self, api: &Api) -> support::Response {
        let response = api.router.clone().oneshot(self.request()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        support::Response { status, body }
    }

    fn request(&self) -> Request<Body> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/webhooks/shopify")
            .header("content-type", "application/json")
            .header("x-shopify-api-version", "2025-07");
        for (name, value) in [
            ("x-shopify-shop-domain", &self.shop),
            ("x-shopify-topic", &self.topic),
            ("x-shopify-webhook-id", &self.webhook_id),
            ("x-shopify-hmac-sha256", &self.signature),
            ("x-shopify-triggered-at", &self.triggered_at),
        ] {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        request.body(Body::from(self.body.clone())).unwrap()
    }
}

async fn deliver(api: &Api, topic: &str, body: impl Into<Vec<u8>>) -> support::Response {
    Delivery::new(topic, body).send(api).await
}

/// Delivers and insists it was processed.
async fn processed(api: &Api, topic: &str, body: impl Into<Vec<u8>>) {
    let response = deliver(api, topic, body).await;
    assert_eq!((response.status, &response.body), (StatusCode::OK, &json!({"status": "processed"})));
}

async fn connect(api: &Api, shop: &str, secret: &str) -> support::Response {
    let body = json!({"shop_domain": shop, "webhook_secret": secret}).to_string();
    api.send(Method::PUT, "/v1/integrations/shopify", Some(&api.key), Some(Body::from(body))).await
}

/// A brand with the test shop connected (its claim pending until a delivery proves it).
async fn shop_api(pool: PgPool) -> Api {
    let api = Api::new(pool).await;
    assert_eq!(connect(&api, SHOP, SECRET).await.status, StatusCode::OK);
    api
}

/// A brand whose claim on the test shop a first delivery (a topic we do not act on) has proven, so the
/// shop is the brand's server-side source from the start.
async fn proven_shop_api(pool: PgPool) -> Api {
    let api = shop_api(pool).await;
    let response = deliver(&api, "shop/update", r#"{"id": 690933842, "name": "Northwind Linen"}"#).await;
    assert_eq!((response.status, response.body), (StatusCode::OK, json!({"status": "ignored"})));
    api
}

async fn conversions(api: &Api) -> Vec<Value> {
    let response = api.get("/v1/conversions").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["data"].as_array().unwrap().clone()
}

async fn the_conversion(api: &Api) -> Value {
    let all = conversions(api).await;
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

fn usd(amount_minor: i64) -> Value {
    json!({"amount_minor": amount_minor, "currency": "USD"})
}

async fn purchase(api: &Api, order_id: &str, value: &str, cs_ref: Uuid) {
    let body = json!({"pixel_id": api.pixel_id, "event": "purchase", "order_id": order_id, "value": value,
        "currency": "USD", "cs_ref": cs_ref.simple().to_string()});
    let response = api.send(Method::POST, "/v1/pixel/events", None, Some(Body::from(body.to_string()))).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A click an hour before the fixtures' first order.
async fn click_on(api: &Api, link: &Value) -> Uuid {
    api.click(&[Click::new(link, Uuid::new_v4(), at("2026-11-20T18:00:00Z"))]).await[0]
}

/// From before the fixtures' orders to after now (pixel purchases happen now).
fn window() -> String {
    let to = (Utc::now() + Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!("from=2026-11-01T00:00:00Z&to={to}")
}

async fn link_conversions(api: &Api, link: &Value) -> Value {
    let uri = format!("/v1/links/{}/stats?{}", link["id"].as_str().unwrap(), window());
    let stats = api.get(&uri).await.body;
    json!({"conversions": stats["conversions"], "revenue": stats["revenue"]})
}

async fn delivery_rows(api: &Api) -> Vec<(String, String, bool, Option<String>, i32)> {
    sqlx::query_as(
        "select webhook_id, topic, processed_at is not null, error, attempts from shopify_deliveries order by id",
    )
    .fetch_all(&api.pool)
    .await
    .unwrap()
}

// --- Connecting shops -------------------------------------------------------------------------------

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn connecting_a_shop_normalises_its_domain_and_never_shows_the_secret(pool: PgPool) {
    let api = Api::new(pool).await;
    let response = connect(&api, "https://Northwind-Linen.MyShopify.com/", SECRET).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["shop_domain"], SHOP);
    assert!(response.body["connected_at"].as_str().unwrap().parse::<DateTime<Utc>>().is_ok());
    assert!(!response.body.to_string().contains(SECRET));

    let list = api.get("/v1/integrations/shopify").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["data"][0]["shop_domain"], SHOP);
    assert_eq!(list.body["next_cursor"], Value::Null);
    assert!(!list.body.to_string().contains(SECRET));

    // Shopify's header is matched whatever its case.
    let mut delivery = Delivery::new("orders/create", fixture("orders_create_promo.json"));
    delivery.shop = Some("Northwind-Linen.myshopify.com".into());
    assert_eq!(delivery.send(&api).await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn invalid_shop_domains_and_secrets_are_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    for (shop, secret, code) in [
        ("not a domain", SECRET, "invalid_shop_domain"),
        ("localhost", SECRET, "invalid_shop_domain"),
        ("https://northwind-linen.myshopify.com/admin", SECRET, "invalid_shop_domain"),
        (SHOP, "", "invalid_webhook_secret"),
        (SHOP, " padded ", "invalid_webhook_secret"),
        (SHOP, &"s".repeat(257), "invalid_webhook_secret"),
    ] {
        let response = connect(&api, shop, secret).await;
        assert_eq!((response.status, response.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{shop:?}");
    }
    assert_eq!(connect(&api, SHOP, &"s".repeat(256)).await.status, StatusCode::OK);
    let missing = api
        .send(
            Method::PUT,
            "/v1/integrations/shopify",
            Some(&api.key),
            Some(Body::from(json!({"shop_domain": SHOP}).to_string())),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn reconnecting_replaces_the_secret_and_another_brands_claim_waits_for_proof(pool: PgPool) {
    let api = shop_api(pool).await;
    let first = api.get("/v1/integrations/shopify").await.body["data"][0]["connected_at"].clone();
    let rotated = "shpss_rotated_0a1b2c3d4e5f";
    let again = connect(&api, SHOP, rotated).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["connected_at"], first);
    assert_eq!(again.body["status"], "pending");

    // Another brand's claim is answered like any claim: it waits for a delivery its secret verifies.
    let other = api.other_brand().await;
    let theirs = connect(&other, "NORTHWIND-LINEN.myshopify.com", "theirs").await;
    assert_eq!((theirs.status, theirs.body["status"].clone()), (StatusCode::OK, json!("pending")));
    assert_eq!(other.get("/v1/integrations/shopify").await.body["data"].as_array().unwrap().len(), 1);

    let body = fixture("orders_create_promo.json");
    assert_eq!(deliver(&api, "orders/create", body.clone()).await.status, StatusCode::UNAUTHORIZED);
    let mut delivery = Delivery::new("orders/create", body);
    delivery.signature = Some(sign(rotated, &delivery.body));
    assert_eq!(delivery.send(&api).await.status, StatusCode::OK);
    assert_eq!(api.get("/v1/integrations/shopify").await.body["data"][0]["status"], "active");
    // The other brand's secret signed nothing: its claim ended.
    assert!(other.get("/v1/integrations/shopify").await.body["data"].as_array().unwrap().is_empty());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_disconnected_shops_webhooks_are_refused(pool: PgPool) {
    let api = shop_api(pool).await;
    let other = api.other_brand().await;
    let uri = format!("/v1/integrations/shopify/{SHOP}");
    assert_eq!(other.delete(&uri).await.status, StatusCode::NOT_FOUND);
    let shouted = format!("/v1/integrations/shopify/{}", SHOP.to_uppercase());
    assert_eq!(api.delete(&shouted).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(&uri).await.status, StatusCode::NOT_FOUND);
    assert!(api.get("/v1/integrations/shopify").await.body["data"].as_array().unwrap().is_empty());
    let response = deliver(&api, "orders/create", fixture("orders_create_promo.json")).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    // Now the other brand may connect it.
    assert_eq!(connect(&other, SHOP, "theirs").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn integration_endpoints_need_an_api_key(pool: PgPool) {
    let api = Api::new(pool).await;
    let body = json!({"shop_domain": SHOP, "webhook_secret": SECRET}).to_string();
    for (method, uri, body) in [
        (Method::PUT, "/v1/integrations/shopify", Some(Body::from(body))),
        (Method::GET, "/v1/integrations/shopify", None),
        (Method::DELETE, "/v1/integrations/shopify/northwind-linen.myshopify.com", None),
    ] {
        let response = api.send(method, uri, Some("csk_nope"), body).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    assert_eq!(api.count("shopify_shops").await, 0);
}

// --- Attribution from orders -------------------------------------------------------------------------

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_promo_code_only_order_credits_the_promo_link(pool: PgPool) {
    let api = shop_api(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let link = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://shop.example", "creator_id": jess["id"], "promo_code": "jess15"}),
        )
        .await;
    processed(&api, "orders/create", fixture("orders_create_promo.json")).await;

    let order = the_conversion(&api).await;
    assert_eq!(order["order_id"], PROMO_ORDER);
    assert_eq!((order["method"].clone(), order["link_id"].clone()), (json!("promo_code"), link["id"].clone()));
    assert_eq!(order["creator_id"], jess["id"]);
    assert_eq!(order["click_id"], Value::Null);
    // total_price, in the order's currency, at the order's created_at.
    assert_eq!(order["amount"], usd(8481));
    assert_eq!(order["net"], usd(8481));
    assert_eq!(order["occurred_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), at("2026-11-20T19:32:07Z"));
    assert_eq!(order["source"], "shopify");
    assert_eq!(order["discount_codes"], json!(["JESS15"]));
    assert_eq!(link_conversions(&api, &link).await, json!({"conversions": 1, "revenue": [usd(8481)]}));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_deactivated_links_promo_code_still_credits(pool: PgPool) {
    let api = shop_api(pool).await;
    let link =
        api.create("/v1/links", json!({"destination_url": "https://shop.example", "promo_code": "JESS15"})).await;
    assert_eq!(api.delete(&format!("/v1/links/{}", link["id"].as_str().unwrap())).await.status, StatusCode::NO_CONTENT);
    processed(&api, "orders/create", fixture("orders_create_promo.json")).await;
    let order = the_conversion(&api).await;
    assert_eq!((order["method"].clone(), order["link_id"].clone()), (json!("promo_code"), link["id"].clone()));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_cs_ref_in_the_landing_site_credits_the_click(pool: PgPool) {
    let api = shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &link).await;
    processed(&api, "orders/create", fixture_with_click("orders_create_landing_site.json", click)).await;

    let order = the_conversion(&api).await;
    assert_eq!(order["order_id"], LANDING_ORDER);
    assert_eq!((order["method"].clone(), order["link_id"].clone()), (json!("click"), link["id"].clone()));
    assert_eq!(order["click_id"], click.simple().to_string());
    assert_eq!(order["amount"], usd(14137));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_cs_ref_in_the_cart_attributes_credits_the_click_over_a_promo_code(pool: PgPool) {
    let api = shop_api(pool).await;
    let clicked = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let promo =
        api.create("/v1/links", json!({"destination_url": "https://shop.example", "promo_code": "SAM10"})).await;
    let click = click_on(&api, &clicked).await;
    processed(&api, "orders/create", fixture_with_click("orders_create_note_attributes.json", click)).await;

    let order = the_conversion(&api).await;
    assert_eq!(order["order_id"], NOTE_ORDER);
    assert_eq!((order["method"].clone(), order["link_id"].clone()), (json!("click"), clicked["id"].clone()));
    assert_eq!(order["discount_codes"], json!(["SAM10"]));
    assert_eq!(link_conversions(&api, &promo).await["conversions"], 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_order_reported_by_the_pixel_and_both_webhooks_counts_once(pool: PgPool) {
    let api = shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &link).await;
    // The pixel saw a slightly different total (before taxes were settled): Shopify's amount wins.
    purchase(&api, LANDING_ORDER, "139.99", click).await;
    processed(&api, "orders/create", fixture_with_click("orders_create_landing_site.json", click)).await;
    processed(&api, "orders/paid", fixture_with_click("orders_paid.json", click)).await;

    let order = the_conversion(&api).await;
    assert_eq!(order["order_id"], LANDING_ORDER);
    assert_eq!(order["source"], "pixel");
    assert_eq!(order["amount"], usd(14137));
    assert_eq!(order["method"], "click");
    assert_eq!(order["occurred_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), at("2026-11-20T21:05:41Z"));
    assert_eq!(link_conversions(&api, &link).await, json!({"conversions": 1, "revenue": [usd(14137)]}));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_promo_order_later_matched_to_a_click_switches_to_the_click(pool: PgPool) {
    let api = shop_api(pool).await;
    let promo =
        api.create("/v1/links", json!({"destination_url": "https://shop.example", "promo_code": "JESS15"})).await;
    let clicked = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &clicked).await;

    processed(&api, "orders/create", fixture("orders_create_promo.json")).await;
    assert_eq!(the_conversion(&api).await["method"], "promo_code");

    purchase(&api, PROMO_ORDER, "84.81", click).await;
    let order = the_conversion(&api).await;
    assert_eq!((order["method"].clone(), order["link_id"].clone()), (json!("click"), clicked["id"].clone()));
    assert_eq!(order["click_id"], click.simple().to_string());

    // A later report with only the promo code does not undo the stronger signal.
    processed(&api, "orders/paid", fixture_patched("orders_create_promo.json", json!({"financial_status": "paid"})))
        .await;
    assert_eq!(the_conversion(&api).await["link_id"], clicked["id"]);
    assert_eq!(link_conversions(&api, &promo).await["conversions"], 0);
    assert_eq!(link_conversions(&api, &clicked).await, json!({"conversions": 1, "revenue": [usd(8481)]}));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn ids_beyond_a_floats_precision_stay_exact(pool: PgPool) {
    let api = shop_api(pool).await;
    // Shopify's own documentation example id: more than 2^53.
    let body = fixture("orders_create_promo.json").replace(PROMO_ORDER, "820982911946154508");
    processed(&api, "orders/create", body).await;
    assert_eq!(the_conversion(&api).await["order_id"], "820982911946154508");
}

// --- Deliveries ----------------------------------------------------------------------------------------

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_redelivered_webhook_changes_nothing(pool: PgPool) {
    let api = shop_api(pool).await;
    let first =
        Delivery::new("orders/create", fixture("orders_create_promo.json")).id("b54557e4-bdd9-4b37-8a5f-bf7d70fcd043");
    assert_eq!(first.send(&api).await.body, json!({"status": "processed"}));
    assert_eq!(first.send(&api).await.body, json!({"status": "duplicate"}));
    // Even with another (correctly signed) body under the same webhook id.
    let altered = fixture_patched("orders_create_promo.json", json!({"total_price": "1.00"}));
    let again = Delivery::new("orders/create", altered).id("b54557e4-bdd9-4b37-8a5f-bf7d70fcd043");
    let response = again.send(&api).await;
    assert_eq!((response.status, response.body), (StatusCode::OK, json!({"status": "duplicate"})));

    assert_eq!(the_conversion(&api).await["amount"], usd(8481));
    let rows = delivery_rows(&api).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0], ("b54557e4-bdd9-4b37-8a5f-bf7d70fcd043".into(), "orders/create".into(), true, None, 1));
    let body: Vec<u8> = sqlx::query_scalar("select body from shopify_deliveries").fetch_one(&api.pool).await.unwrap();
    assert_eq!(body, fixture("orders_create_promo.json").into_bytes());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn concurrent_copies_of_one_delivery_are_processed_once(pool: PgPool) {
    let api = shop_api(pool).await;
    let delivery = Delivery::new("orders/create", fixture("orders_create_promo.json"));
    let (a, b) = tokio::join!(delivery.send(&api), delivery.send(&api));
    let mut statuses = vec![a.body["status"].clone(), b.body["status"].clone()];
    statuses.sort_by_key(|s| s.to_string());
    assert_eq!(statuses, vec![json!("duplicate"), json!("processed")]);
    assert_eq!(api.count("shopify_deliveries").await, 1);
    assert_eq!(api.count("conversions").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_delivery_that_failed_is_processed_again_when_redelivered(pool: PgPool) {
    let api = shop_api(pool).await;
    let money = json!({"amount": "84.815", "currency_code": "USD"});
    let broken = fixture_patched(
        "orders_create_promo.json",
        json!({"total_price": "84.815", "total_price_set": {"shop_money": money, "presentment_money": money}}),
    );
    let failed = Delivery::new("orders/create", broken).id("7f6b0f3a-1111-4c3e-9f57-4f3c7c2e0a01");
    let response = failed.send(&api).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::BAD_REQUEST, "invalid_payload"));
    assert!(response.body["error"]["message"].as_str().unwrap().contains("total price"), "{}", response.body);
    assert_eq!(api.count("conversions").await, 0);
    let rows = delivery_rows(&api).await;
    assert_eq!((rows.len(), rows[0].2), (1, false));
    assert!(rows[0].3.as_deref().unwrap().contains("total price"));

    let fixed =
        Delivery::new("orders/create", fixture("orders_create_promo.json")).id("7f6b0f3a-1111-4c3e-9f57-4f3c7c2e0a01");
    assert_eq!(fixed.send(&api).await.body, json!({"status": "processed"}));
    let rows = delivery_rows(&api).await;
    assert_eq!(rows, vec![("7f6b0f3a-1111-4c3e-9f57-4f3c7c2e0a01".into(), "orders/create".into(), true, None, 2)]);
    assert_eq!(the_conversion(&api).await["amount"], usd(8481));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_delivery_that_hit_a_bug_is_kept_and_replayed_from_its_stored_body_after_the_fix(pool: PgPool) {
    let api = shop_api(pool).await;
    // A bug: recording any order fails in the database.
    sqlx::raw_sql(
        "create function simulated_bug() returns trigger language plpgsql as $$
             begin raise exception 'simulated bug'; end $$;
         create trigger simulated_bug before insert on conversions for each row execute function simulated_bug();",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    let response = deliver(&api, "orders/create", fixture("orders_create_promo.json")).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
    assert!(!response.body.to_string().contains("simulated"), "{}", response.body);
    assert_eq!(api.count("conversions").await, 0);
    let rows = delivery_rows(&api).await;
    assert_eq!((rows.len(), rows[0].2), (1, false));
    assert!(rows[0].3.as_deref().unwrap().contains("simulated bug"), "{rows:?}");
    let garbage = Delivery::new("orders/create", "{not json");
    assert_eq!(garbage.send(&api).await.status, StatusCode::BAD_REQUEST);

    // The fix ships; the stored deliveries are replayed (Shopify's redeliveries stop after a few hours).
    sqlx::raw_sql("drop trigger simulated_bug on conversions").execute(&api.pool).await.unwrap();
    let replay = api::shopify::replay_failed(&api.pool, api::shopify::Rules::of(&api.state.config)).await.unwrap();
    assert_eq!(replay, api::shopify::Replay { processed: 1, still_failing: 1 });
    let order = the_conversion(&api).await;
    assert_eq!((order["order_id"].clone(), order["amount"].clone()), (json!(PROMO_ORDER), usd(8481)));
    let processed: Vec<(bool, Option<String>)> = delivery_rows(&api).await.into_iter().map(|r| (r.2, r.3)).collect();
    assert_eq!(processed[0], (true, None));
    assert!(!processed[1].0);
    // A replay changes nothing more.
    assert_eq!(
        api::shopify::replay_failed(&api.pool, api::shopify::Rules::of(&api.state.config)).await.unwrap().processed,
        0
    );
    assert_eq!(api.count("conversions").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn unsigned_or_wrongly_signed_deliveries_are_refused_and_nothing_is_stored(pool: PgPool) {
    let api = shop_api(pool).await;
    let body = fixture("orders_create_promo.json");
    let good = || Delivery::new("orders/create", body.clone());
    let truncated = body.as_bytes()[..body.len() / 2].to_vec();
    let cases: Vec<(&str, Delivery)> = vec![
        ("no signature", Delivery { signature: None, ..good() }),
        ("empty signature", Delivery { signature: Some(String::new()), ..good() }),
        ("not base64", Delivery { signature: Some("%%% not base64 %%%".into()), ..good() }),
        ("hex instead of base64", Delivery { signature: Some("a".repeat(64)), ..good() }),
        ("wrong secret", Delivery { signature: Some(sign("shpss_wrong", body.as_bytes())), ..good() }),
        ("truncated body", Delivery { body: truncated, ..good() }),
        ("body changed after signing", Delivery { body: body.replace("84.81", "8.48").into_bytes(), ..good() }),
        ("no shop", Delivery { shop: None, ..good() }),
        ("unknown shop", Delivery { shop: Some("someone-else.myshopify.com".into()), ..good() }),
        ("malformed shop", Delivery { shop: Some("../../etc".into()), ..good() }),
    ];
    for (case, delivery) in cases {
        let response = delivery.send(&api).await;
        assert_eq!((response.status, response.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{case}");
    }
    assert_eq!(api.count("shopify_deliveries").await, 0);
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn verified_deliveries_without_a_webhook_id_or_topic_are_refused(pool: PgPool) {
    let api = shop_api(pool).await;
    let body = fixture("orders_create_promo.json");
    let no_id = Delivery { webhook_id: None, ..Delivery::new("orders/create", body.clone()) };
    let response = no_id.send(&api).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::BAD_REQUEST, "invalid_webhook_id"));
    let no_topic = Delivery { topic: None, ..Delivery::new("orders/create", body) };
    let response = no_topic.send(&api).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::BAD_REQUEST, "invalid_topic"));
    assert_eq!(api.count("shopify_deliveries").await, 0);
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn verified_bodies_that_are_not_orders_are_kept_but_credit_nothing(pool: PgPool) {
    let api = shop_api(pool).await;
    let body = fixture("orders_create_promo.json");
    for (case, bytes) in [
        ("not json", b"<html>Service Unavailable</html>".to_vec()),
        ("truncated", body.as_bytes()[..body.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("not an order", br#"{"id": 5730101924011, "note": "no total"}"#.to_vec()),
        ("not utf-8", vec![0xff, 0xfe, 0x7b]),
    ] {
        let response = deliver(&api, "orders/create", bytes).await;
        assert_eq!((response.status, response.error_code()), (StatusCode::BAD_REQUEST, "invalid_payload"), "{case}");
    }
    let rows = delivery_rows(&api).await;
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| !r.2 && r.3.is_some()), "{rows:?}");
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn signed_orders_and_refunds_with_times_no_database_can_hold_are_refused_not_failed(pool: PgPool) {
    let api = shop_api(pool).await;
    for far in ["-262143-01-05T00:00:00Z", "+262142-12-31T23:59:59Z"] {
        for (topic, body) in [
            ("orders/create", fixture_patched("orders_create_promo.json", json!({"created_at": far}))),
            ("orders/cancelled", fixture_patched("orders_create_promo.json", json!({"cancelled_at": far}))),
            ("refunds/create", fixture_patched("refunds_create.json", json!({"created_at": far}))),
        ] {
            let response = deliver(&api, topic, body).await;
            assert_eq!(
                (response.status, response.error_code()),
                (StatusCode::BAD_REQUEST, "invalid_payload"),
                "{topic} {far}: {:?}",
                response.body
            );
        }
    }
    assert_eq!(api.count("conversions").await, 0);
    assert_eq!(api.count("refunds").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn topics_we_do_not_act_on_are_acknowledged_and_kept(pool: PgPool) {
    let api = shop_api(pool).await;
    let order = fixture("orders_create_promo.json");
    for topic in ["orders/updated", "app/uninstalled", "customers/redact"] {
        let response = deliver(&api, topic, order.clone()).await;
        assert_eq!((response.status, response.body), (StatusCode::OK, json!({"status": "ignored"})), "{topic}");
    }
    // Still verified first.
    let unsigned =
        Delivery { signature: Some(sign("nope", order.as_bytes())), ..Delivery::new("app/uninstalled", order) };
    assert_eq!(unsigned.send(&api).await.status, StatusCode::UNAUTHORIZED);
    let rows = delivery_rows(&api).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.2 && r.3.is_none()));
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn large_orders_are_accepted_up_to_two_mebibytes(pool: PgPool) {
    let api = shop_api(pool).await;
    let template: Value = serde_json::from_str(&fixture("orders_create_promo.json")).unwrap();
    let item = template["line_items"][0].clone();
    let items: Vec<Value> = (0..120).map(|_| item.clone()).collect();
    let big = fixture_patched("orders_create_promo.json", json!({"line_items": items}));
    // Over twice the limit of every other /v1 route.
    assert!(big.len() > 2 * api::http::MAX_BODY_BYTES, "{}", big.len());
    processed(&api, "orders/create", big).await;

    let huge = fixture_patched("orders_create_promo.json", json!({"note": "x".repeat(2 * 1024 * 1024)}));
    let response = deliver(&api, "orders/create", huge).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(api.count("shopify_deliveries").await, 1);
}

// --- Brands ----------------------------------------------------------------------------------------------

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_shop_of_one_brand_never_touches_another_brand(pool: PgPool) {
    let api = shop_api(pool).await;
    let other = api.other_brand().await;
    let theirs =
        other.create("/v1/links", json!({"destination_url": "https://b.example", "promo_code": "JESS15"})).await;
    let their_click = other.click(&[Click::new(&theirs, Uuid::new_v4(), Utc::now() - Duration::hours(1))]).await[0];
    // The other brand already knows an order with the same id (from its own pixel).
    purchase(&other, PROMO_ORDER, "10.00", their_click).await;

    processed(&api, "orders/create", fixture_with_click("orders_create_note_attributes.json", their_click)).await;
    processed(&api, "orders/create", fixture("orders_create_promo.json")).await;
    processed(&api, "refunds/create", fixture_patched("refunds_create.json", json!({"order_id": 5730101924011u64})))
        .await;

    // Ours: known, credited to nobody (neither their click nor their promo code counts here).
    let ours = conversions(&api).await;
    assert_eq!(ours.len(), 2);
    assert!(ours.iter().all(|o| o["link_id"].is_null() && o["method"].is_null()), "{ours:?}");
    // Theirs: exactly as the pixel left it.
    let theirs_now = the_conversion(&other).await;
    assert_eq!((theirs_now["amount"].clone(), theirs_now["refunded"].clone()), (usd(1000), usd(0)));
    assert_eq!(theirs_now["source"], "pixel");
    assert_eq!(link_conversions(&other, &theirs).await, json!({"conversions": 1, "revenue": [usd(1000)]}));
    let their_deliveries: i64 = sqlx::query_scalar("select count(*) from shopify_deliveries where brand_id = $1")
        .bind(other.brand_id)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(their_deliveries, 0);
}

// --- Refunds ---------------------------------------------------------------------------------------------

async fn attributed_revenue(api: &Api) -> Value {
    let uri = format!("/v1/attribution?group_by=link&{}", window());
    api.get(&uri).await.body["data"][0]["revenue"].clone()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_reduces_the_orders_credited_revenue_once(pool: PgPool) {
    let api = shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &link).await;
    processed(&api, "orders/create", fixture_with_click("orders_create_landing_site.json", click)).await;

    // Only the successful refund transaction counts (the fixture also has a declined one).
    processed(&api, "refunds/create", fixture("refunds_create.json")).await;
    // Shopify can deliver the same refund again under a new webhook id: still one refund.
    processed(&api, "refunds/create", fixture("refunds_create.json")).await;

    let order = the_conversion(&api).await;
    assert_eq!(
        (order["amount"].clone(), order["refunded"].clone(), order["net"].clone()),
        (usd(14137), usd(4748), usd(9389))
    );
    assert_eq!(order["method"], "click");
    assert_eq!(api.count("refunds").await, 1);
    assert_eq!(attributed_revenue(&api).await, json!([usd(9389)]));
    assert_eq!(link_conversions(&api, &link).await, json!({"conversions": 1, "revenue": [usd(9389)]}));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn refunds_add_up_but_never_take_net_revenue_below_zero(pool: PgPool) {
    let api = shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &link).await;
    processed(&api, "orders/create", fixture_with_click("orders_create_landing_site.json", click)).await;
    processed(&api, "refunds/create", fixture("refunds_create.json")).await;
    let second = json!({"id": 929361494891u64, "transactions": [
        {"id": 7234561296427u64, "order_id": 5730101956779u64, "kind": "refund", "status": "success", "amount": "100.00", "currency": "USD"}
    ]});
    processed(&api, "refunds/create", fixture_patched("refunds_create.json", second)).await;

    let order = the_conversion(&api).await;
    assert_eq!((order["refunded"].clone(), order["net"].clone()), (usd(14748), usd(0)));
    assert_eq!(attributed_revenue(&api).await, json!([usd(0)]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_that_arrives_before_its_order_is_applied_when_the_order_arrives(pool: PgPool) {
    let api = shop_api(pool).await;
    processed(&api, "refunds/create", fixture("refunds_create.json")).await;
    assert!(conversions(&api).await.is_empty());
    assert_eq!(api.count("refunds").await, 1);

    processed(&api, "orders/create", fixture("orders_create_landing_site.json")).await;
    let order = the_conversion(&api).await;
    assert_eq!((order["refunded"].clone(), order["net"].clone()), (usd(4748), usd(9389)));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_of_an_order_first_seen_by_the_pixel_applies_to_it(pool: PgPool) {
    let api = shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::hours(1))]).await[0];
    purchase(&api, LANDING_ORDER, "141.37", click).await;
    processed(&api, "refunds/create", fixture("refunds_create.json")).await;
    let order = the_conversion(&api).await;
    assert_eq!((order["refunded"].clone(), order["net"].clone()), (usd(4748), usd(9389)));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_that_moved_no_money_changes_nothing(pool: PgPool) {
    let api = shop_api(pool).await;
    processed(&api, "orders/create", fixture("orders_create_landing_site.json")).await;
    let restock_only = fixture_patched("refunds_create.json", json!({"transactions": []}));
    processed(&api, "refunds/create", restock_only).await;
    assert_eq!(the_conversion(&api).await["refunded"], usd(0));
    assert_eq!(api.count("refunds").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_in_another_currency_than_its_order_is_refused_with_the_reason_and_kept(pool: PgPool) {
    let api = shop_api(pool).await;
    processed(&api, "orders/create", fixture("orders_create_landing_site.json")).await;
    let euros = json!({"transactions": [
        {"id": 7234561263659u64, "kind": "refund", "status": "success", "amount": "40.00", "currency": "EUR"}
    ]});
    // Never silently left unsubtracted: refused, kept with its reason for a replay, and visible.
    let response = deliver(&api, "refunds/create", fixture_patched("refunds_create.json", euros.clone())).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::BAD_REQUEST, "invalid_payload"));
    assert!(response.body["error"]["message"].as_str().unwrap().contains("EUR"), "{}", response.body);
    assert_eq!(api.count("refunds").await, 0);
    let rows = delivery_rows(&api).await;
    assert!(rows[1].3.as_deref().unwrap().contains("cannot be"), "{rows:?}");
    // Without money sets naming the shop's currency, the order's currency decides.
    let bare = json!({"refund_line_items": [], "transactions": euros["transactions"]});
    let response = deliver(&api, "refunds/create", fixture_patched("refunds_create.json", bare)).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::BAD_REQUEST, "invalid_payload"));
    assert_eq!(the_conversion(&api).await["refunded"], usd(0));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_openapi_document_describes_the_shopify_endpoints(pool: PgPool) {
    let api = Api::new(pool).await;
    let doc = api.send(Method::GET, "/openapi.json", None, None).await.body;
    assert!(doc["paths"]["/v1/integrations/shopify"]["put"].is_object());
    assert!(doc["paths"]["/v1/integrations/shopify"]["get"].is_object());
    assert!(doc["paths"]["/v1/integrations/shopify/{shop_domain}"]["delete"].is_object());
    assert!(doc["paths"]["/v1/webhooks/shopify"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ConnectShop"]["properties"]["webhook_secret"].is_object());
    assert!(doc["components"]["schemas"]["Shop"]["properties"].get("webhook_secret").is_none());
}

/// A refund of the landing-site order (47.48 USD) recorded in a transaction that is left open, holding the
/// order's lock, as a refund delivery that arrives before its order does while it is being recorded.
async fn landing_refund_in_progress(api: &Api) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let refund = api::attribution::RefundReport {
        brand_id: api.brand_id,
        refund_id: "929361462123".into(),
        order_id: LANDING_ORDER.into(),
        amount: api::money::Money::parse("47.48", "USD").unwrap(),
        refunded_at: None,
    };
    let mut tx = api::attribution::begin_for_order(&api.pool, api.brand_id, LANDING_ORDER).await.unwrap();
    assert!(api::attribution::record_refund(&mut tx, &refund).await.unwrap());
    tx
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_committed_while_its_order_is_being_recorded_is_not_lost(pool: PgPool) {
    use api::attribution::{record_order, OrderReport, Source};
    use api::money::Money;

    let api = Api::new(pool.clone()).await;
    let order = OrderReport {
        brand_id: api.brand_id,
        order_id: LANDING_ORDER.into(),
        amount: Money::parse("141.37", "USD").unwrap(),
        occurred_at: at("2026-11-20T21:05:41Z"),
        source: Source::Shopify,
        refs: vec![],
        discount_codes: vec![],
        cancelled_at: None,
        test: false,
    };
    // The refund's transaction is open (its order unknown to it) when the order's begins.
    let refund_tx = landing_refund_in_progress(&api).await;
    let order_pool = pool.clone();
    let recording = tokio::spawn(async move {
        // As every writer of an order does, the transaction holds the order's lock from its start.
        let mut tx = api::attribution::begin_for_order(&order_pool, order.brand_id, &order.order_id).await.unwrap();
        record_order(
            &mut tx,
            &order,
            api::attribution::Judged { now: Utc::now(), confirmation_window: Duration::hours(72) },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    });
    // Wait until the order's transaction waits for the refund's (or has finished, if nothing made it wait).
    loop {
        let waiting: bool =
            sqlx::query_scalar("select exists (select 1 from pg_locks where locktype = 'advisory' and not granted)")
                .fetch_one(&pool)
                .await
                .unwrap();
        if waiting || recording.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    refund_tx.commit().await.unwrap();
    recording.await.unwrap();
    let order = the_conversion(&api).await;
    assert_eq!((order["refunded"].clone(), order["net"].clone()), (usd(4748), usd(9389)));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_new_orders_delivery_waits_for_its_lock_and_then_sees_a_refund_committed_meanwhile(pool: PgPool) {
    let api = shop_api(pool).await;
    // A refund of the order arrives first, as Shopify's can: its transaction holds the order's lock.
    let holder = landing_refund_in_progress(&api).await;
    let delivery = Delivery::new("orders/create", fixture("orders_create_landing_site.json"));
    let router = api.router.clone();
    let request = delivery.request();
    let sending = tokio::spawn(async move { router.oneshot(request).await.unwrap().status() });
    until(
        &api.pool,
        "the delivery waits for the order's lock",
        "select exists (select 1 from pg_stat_activity where datname = current_database()
                        and wait_event_type = 'Lock' and pid <> pg_backend_pid())",
    )
    .await;
    holder.commit().await.unwrap();
    assert_eq!(sending.await.unwrap(), StatusCode::OK);
    // The order is read after the lock is granted: the refund committed meanwhile is subtracted.
    let order = the_conversion(&api).await;
    assert_eq!((order["amount"].clone(), order["refunded"].clone()), (usd(14137), usd(4748)));
    assert_eq!(order["status"], "verified");
    // The delivery was stored as processed with the order, by its session's order-creating function (see
    // `attribution::create_order_once`), which took the lock; a redelivery is a duplicate.
    let rows = delivery_rows(&api).await;
    assert_eq!((rows.len(), rows[0].2, rows[0].3.clone(), rows[0].4), (1, true, None, 1));
    assert!(session_functions(&api.pool).await >= 1, "the order-creating function exists in the session");
    assert_eq!(delivery.send(&api).await.body, json!({"status": "duplicate"}));
    assert_eq!(api.count("conversions").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_role_that_may_not_create_temporary_objects_records_deliveries_on_the_transactional_path(pool: PgPool) {
    let restricted = WithoutTemporary::new(&pool).await;
    let api = shop_api(restricted.pool.clone()).await;
    let link =
        api.create("/v1/links", json!({"destination_url": "https://shop.example", "promo_code": "JESS15"})).await;
    let delivery = Delivery::new("orders/create", fixture("orders_create_promo.json"));
    assert_eq!(delivery.send(&api).await.body, json!({"status": "processed"}));
    assert_eq!(delivery.send(&api).await.body, json!({"status": "duplicate"}));
    let order = the_conversion(&api).await;
    assert_eq!((order["status"].as_str(), order["method"].as_str()), (Some("verified"), Some("promo_code")));
    assert_eq!(order["link_id"], link["id"]);
    assert_eq!(delivery_rows(&api).await.len(), 1);
    assert_eq!(session_functions(&pool).await, 0, "the role could not create the session function");
    restricted.drop().await;
}

// --- What can be proven: statuses, Shopify's published samples ---------------------------------------

/// One of Shopify's published sample payloads, byte for byte (`tests/fixtures/shopify/published/`).
fn published(name: &str) -> String {
    fixture(&format!("published/{name}"))
}

/// A published sample with some fields changed (re-serialised, as a different delivery would be).
fn published_patched(name: &str, patch: Value) -> String {
    let mut body: Value = serde_json::from_str(&published(name)).unwrap();
    body.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
    body.to_string()
}

/// The id of Shopify's published sample order.
const SAMPLE_ORDER: &str = "820982911946154508";

async fn statuses(api: &Api) -> Vec<(String, String)> {
    conversions(api)
        .await
        .iter()
        .map(|c| (c["order_id"].as_str().unwrap().into(), c["status"].as_str().unwrap().into()))
        .collect()
}

async fn report_figures(api: &Api, link: &Value) -> Value {
    let uri = format!("/v1/links/{}/stats?{}", link["id"].as_str().unwrap(), window());
    let stats = api.get(&uri).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let by_link = api.get(&format!("/v1/attribution?group_by=link&{}", window())).await;
    assert_eq!(by_link.status, StatusCode::OK, "{}", by_link.body);
    let row = by_link.body["data"].as_array().unwrap().iter().find(|r| r["key"] == link["id"]).cloned();
    let row = row.unwrap_or(json!({"conversions": 0, "revenue": [], "pending_conversions": 0, "pending_revenue": []}));
    for field in ["conversions", "revenue", "pending_conversions", "pending_revenue"] {
        assert_eq!(row[field], stats.body[field], "{field}: /v1/attribution and /v1/links/{{id}}/stats agree");
    }
    json!({"conversions": stats.body["conversions"], "revenue": stats.body["revenue"],
           "pending_conversions": stats.body["pending_conversions"], "pending_revenue": stats.body["pending_revenue"]})
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_pixel_purchase_is_pending_until_shopify_verifies_it(pool: PgPool) {
    let api = proven_shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &link).await;
    purchase(&api, LANDING_ORDER, "139.99", click).await;
    let order = the_conversion(&api).await;
    assert_eq!((order["status"].clone(), order["verified_at"].clone()), (json!("pending"), Value::Null));
    assert!(order["confirm_by"].as_str().is_some());
    assert_eq!(
        report_figures(&api, &link).await,
        json!({"conversions": 0, "revenue": [], "pending_conversions": 1, "pending_revenue": [usd(13999)]})
    );
    let pending = api.get("/v1/conversions?status=pending").await.body["data"].as_array().unwrap().len();
    assert_eq!(pending, 1);

    processed(&api, "orders/create", fixture_with_click("orders_create_landing_site.json", click)).await;
    let order = the_conversion(&api).await;
    assert_eq!(order["status"], "verified");
    assert!(order["verified_at"].as_str().is_some());
    assert_eq!(
        report_figures(&api, &link).await,
        json!({"conversions": 1, "revenue": [usd(14137)], "pending_conversions": 0, "pending_revenue": []})
    );
    // A later pixel report of a verified order changes neither its amount nor its time.
    purchase(&api, LANDING_ORDER, "1.00", click).await;
    let again = the_conversion(&api).await;
    assert_eq!(
        (again["amount"].clone(), again["occurred_at"].clone()),
        (order["amount"].clone(), order["occurred_at"].clone())
    );
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn one_process_sweeps_confirmation_windows_at_a_time(pool: PgPool) {
    let api = proven_shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &link).await;
    purchase(&api, LANDING_ORDER, "139.99", click).await;
    let after_window = Utc::now() + Duration::hours(73);
    // Another process is sweeping: this one skips its turn and changes nothing.
    let mut other = api.pool.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(api::conversions::SWEEP_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(api::conversions::close_confirmation_windows(&api.pool, after_window).await.unwrap(), 0);
    assert_eq!(statuses(&api).await, vec![(LANDING_ORDER.to_owned(), "pending".to_owned())]);
    other.rollback().await.unwrap();
    assert_eq!(api::conversions::close_confirmation_windows(&api.pool, after_window).await.unwrap(), 1);
    assert_eq!(statuses(&api).await, vec![(LANDING_ORDER.to_owned(), "unconfirmed".to_owned())]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_pending_order_is_unconfirmed_after_the_window_and_a_late_webhook_still_verifies_it(pool: PgPool) {
    let api = proven_shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&api, &link).await;
    purchase(&api, LANDING_ORDER, "139.99", click).await;
    let now = Utc::now();
    // One minute before the 72-hour window closes nothing changes; one minute after, it is unconfirmed.
    let closed =
        api::conversions::close_confirmation_windows(&api.pool, now + Duration::hours(72) - Duration::minutes(1));
    assert_eq!(closed.await.unwrap(), 0);
    let closed =
        api::conversions::close_confirmation_windows(&api.pool, now + Duration::hours(72) + Duration::minutes(1));
    assert_eq!(closed.await.unwrap(), 1);
    assert_eq!(statuses(&api).await, vec![(LANDING_ORDER.to_owned(), "unconfirmed".to_owned())]);
    assert_eq!(
        report_figures(&api, &link).await,
        json!({"conversions": 0, "revenue": [], "pending_conversions": 0, "pending_revenue": []})
    );
    // A pixel report after the window does not make it pending again.
    purchase(&api, LANDING_ORDER, "139.99", click).await;
    assert_eq!(statuses(&api).await[0].1, "unconfirmed");

    processed(&api, "orders/paid", fixture_with_click("orders_paid.json", click)).await;
    assert_eq!(statuses(&api).await[0].1, "verified");
    assert_eq!(report_figures(&api, &link).await["conversions"], 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn pixel_reports_of_different_visitors_dispute_an_order_until_shopify_settles_it(pool: PgPool) {
    let api = shop_api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let buyer = click_on(&api, &link).await;
    let stranger = click_on(&api, &link).await;
    purchase(&api, LANDING_ORDER, "139.99", buyer).await;
    purchase(&api, LANDING_ORDER, "139.99", stranger).await;
    let order = the_conversion(&api).await;
    assert_eq!((order["status"].clone(), order["link_id"].clone()), (json!("disputed"), Value::Null));
    assert_eq!(
        report_figures(&api, &link).await,
        json!({"conversions": 0, "revenue": [], "pending_conversions": 0, "pending_revenue": []})
    );
    // Shopify's own cs_ref settles it: the buyer's click earns it.
    processed(&api, "orders/create", fixture_with_click("orders_create_landing_site.json", buyer)).await;
    let order = the_conversion(&api).await;
    assert_eq!(order["status"], "verified");
    assert_eq!(order["click_id"], buyer.simple().to_string());
    assert_eq!(report_figures(&api, &link).await["conversions"], 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn shopifys_published_sample_order_is_a_test_order_and_counts_nowhere(pool: PgPool) {
    let api = shop_api(pool).await;
    for topic in ["orders/create", "orders/paid", "orders/cancelled"] {
        let name = format!("{}.json", topic.replace('/', "_"));
        processed(&api, topic, published(&name)).await;
    }
    let order = the_conversion(&api).await;
    assert_eq!((order["order_id"].clone(), order["status"].clone()), (json!(SAMPLE_ORDER), json!("test")));
    assert_eq!(order["amount"], usd(35997));
    let report = api.get(&format!("/v1/attribution?group_by=creator&{}", window())).await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(report.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["conversions"] == 0 && r["pending_conversions"] == 0));
    assert_eq!(api.get("/v1/conversions?status=test").await.body["data"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_cancelled_order_counts_nowhere_but_stays_listed(pool: PgPool) {
    let api = shop_api(pool).await;
    let link =
        api.create("/v1/links", json!({"destination_url": "https://shop.example", "promo_code": "SAMPLE10"})).await;
    // The published sample, as a real (not test) order that is still open, with a promo code of ours.
    let open = json!({"test": false, "cancelled_at": null, "cancel_reason": null, "created_at": "2026-11-20T16:05:41-05:00",
                      "discount_codes": [{"code": "SAMPLE10", "amount": "10.00", "type": "fixed_amount"}]});
    processed(&api, "orders/create", published_patched("orders_create.json", open.clone())).await;
    assert_eq!(statuses(&api).await, vec![(SAMPLE_ORDER.to_owned(), "verified".to_owned())]);
    assert_eq!(report_figures(&api, &link).await["conversions"], 1);

    // `orders/cancelled` as Shopify publishes it carries `cancelled_at`.
    let mut cancelled = open.clone();
    cancelled["cancelled_at"] = json!("2026-11-21T09:00:00-05:00");
    cancelled["test"] = json!(false);
    processed(&api, "orders/cancelled", published_patched("orders_cancelled.json", cancelled)).await;
    let order = the_conversion(&api).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancelled_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), at("2026-11-21T14:00:00Z"));
    assert_eq!(
        report_figures(&api, &link).await,
        json!({"conversions": 0, "revenue": [], "pending_conversions": 0, "pending_revenue": []})
    );
    assert_eq!(api.get("/v1/conversions?status=cancelled").await.body["data"].as_array().unwrap().len(), 1);
    // A later orders/paid of the same order does not bring it back.
    processed(&api, "orders/paid", published_patched("orders_paid.json", open)).await;
    assert_eq!(statuses(&api).await[0].1, "cancelled");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn shopifys_published_refund_samples_with_null_currencies_are_subtracted(pool: PgPool) {
    let mut previous: Option<Api> = None;
    for sample in ["refunds_create_2025_01.json", "refunds_create_2026_04.json"] {
        // One brand per sample (both name the same order and refund): the shop moves to the next brand.
        if let Some(before) = &previous {
            assert_eq!(before.delete(&format!("/v1/integrations/shopify/{SHOP}")).await.status, StatusCode::NO_CONTENT);
        }
        let api = shop_api(pool.clone()).await;
        let refund: Value = serde_json::from_str(&published(sample)).unwrap();
        assert!(refund["transactions"].as_array().unwrap().iter().all(|t| t["currency"].is_null()), "{sample}");
        let order_id = refund["order_id"].as_u64().unwrap();
        let order =
            json!({"id": order_id, "test": false, "cancelled_at": null, "created_at": "2026-11-20T16:05:41-05:00"});
        processed(&api, "orders/create", published_patched("orders_create.json", order)).await;
        processed(&api, "refunds/create", published(sample)).await;
        let id = order_id.to_string();
        let order = conversions(&api).await.into_iter().find(|c| c["order_id"].as_str() == Some(&id)).unwrap();
        // 75.00 + 10.00 USD, the sample's two successful refund transactions.
        assert_eq!((order["refunded"].clone(), order["net"].clone()), (usd(8500), usd(35997 - 8500)), "{sample}");
        previous = Some(api);
    }
}

// --- Ownership by proof ----------------------------------------------------------------------------------

/// What a brand's `GET /v1/integrations/shopify` says: (domain, status, proven) per shop.
async fn claims_of(api: &Api) -> Vec<(String, String, bool)> {
    let list = api.get("/v1/integrations/shopify").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["shop_domain"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
                s["verified_at"].is_string(),
            )
        })
        .collect()
}

fn pending() -> Vec<(String, String, bool)> {
    vec![(SHOP.to_owned(), "pending".to_owned(), false)]
}

/// A connection's answer without the time it was made, which is all that may differ between brands.
fn without_time(mut answer: Value) -> Value {
    answer.as_object_mut().unwrap().remove("connected_at");
    answer
}

/// A delivery of an order signed with this secret.
fn signed_order(secret: &str, order_id: u64) -> Delivery {
    let mut delivery =
        Delivery::new("orders/create", fixture_patched("orders_create_promo.json", json!({"id": order_id})));
    delivery.signature = Some(sign(secret, &delivery.body));
    delivery
}

async fn order_ids(api: &Api) -> Vec<String> {
    conversions(api).await.iter().map(|c| c["order_id"].as_str().unwrap().to_owned()).collect()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn two_brands_claiming_one_shop_are_answered_alike_and_the_one_whose_secret_verifies_owns_it(pool: PgPool) {
    let owner = Api::new(pool).await;
    let squatter = owner.other_brand().await;
    // The squatter claims first, with a secret it made up; then the shop's real owner.
    let theirs = connect(&squatter, SHOP, "shpss_made_up_by_the_squatter").await;
    let ours = connect(&owner, SHOP, SECRET).await;
    assert_eq!((theirs.status, ours.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(without_time(theirs.body.clone()), without_time(ours.body.clone()));
    assert_eq!(without_time(ours.body), json!({"shop_domain": SHOP, "status": "pending", "verified_at": null}));
    assert_eq!((claims_of(&owner).await, claims_of(&squatter).await), (pending(), pending()));

    // Shopify signs with the real secret: the owner's claim is proven, the squatter's ends.
    processed(&owner, "orders/create", fixture("orders_create_promo.json")).await;
    assert_eq!(claims_of(&owner).await, vec![(SHOP.to_owned(), "active".to_owned(), true)]);
    assert!(claims_of(&squatter).await.is_empty());
    assert_eq!(order_ids(&owner).await, vec![PROMO_ORDER.to_owned()]);
    assert!(conversions(&squatter).await.is_empty());

    // Claiming an owned shop is answered exactly as claiming a free one, and stays pending while the
    // shop signs with another secret.
    let again = connect(&squatter, SHOP, "shpss_made_up_by_the_squatter").await;
    assert_eq!(
        (again.status, without_time(again.body)),
        (StatusCode::OK, json!({"shop_domain": SHOP, "status": "pending", "verified_at": null}))
    );
    processed(&owner, "orders/create", fixture("orders_create_landing_site.json")).await;
    assert_eq!(claims_of(&squatter).await, pending());
    assert_eq!(order_ids(&owner).await.len(), 2);
    assert!(conversions(&squatter).await.is_empty());
    let squatters_deliveries: i64 = sqlx::query_scalar("select count(*) from shopify_deliveries where brand_id = $1")
        .bind(squatter.brand_id)
        .fetch_one(&owner.pool)
        .await
        .unwrap();
    assert_eq!(squatters_deliveries, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_claimant_signing_its_own_deliveries_never_gets_the_owners_orders_nor_ends_its_claim(pool: PgPool) {
    let owner = proven_shop_api(pool).await;
    let forger = owner.other_brand().await;
    let made_up = "shpss_forgers_own_secret";
    assert_eq!(connect(&forger, SHOP, made_up).await.status, StatusCode::OK);

    // A delivery signed with the forger's own secret proves only that the forger knows it: the order is
    // the forger's, and the owner, displaced, keeps its claim (pending, proven before).
    let forged = signed_order(made_up, 1001);
    assert_eq!(forged.send(&forger).await.status, StatusCode::OK);
    assert_eq!(order_ids(&forger).await, vec!["1001".to_owned()]);
    assert_eq!(claims_of(&owner).await, vec![(SHOP.to_owned(), "pending".to_owned(), true)]);

    // The shop's own deliveries still reach the owner, who owns the shop again; nothing of either brand
    // reaches the other.
    assert_eq!(signed_order(SECRET, 2002).send(&owner).await.status, StatusCode::OK);
    assert_eq!(claims_of(&owner).await, vec![(SHOP.to_owned(), "active".to_owned(), true)]);
    assert_eq!(claims_of(&forger).await, vec![(SHOP.to_owned(), "pending".to_owned(), true)]);
    assert_eq!(order_ids(&owner).await, vec!["2002".to_owned()]);
    assert_eq!(order_ids(&forger).await, vec!["1001".to_owned()]);
    // A proven owner's pixel orders stay pending while a forger holds the shop.
    assert_eq!(signed_order(made_up, 1003).send(&forger).await.status, StatusCode::OK);
    let link = owner.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    let click = click_on(&owner, &link).await;
    purchase(&owner, LANDING_ORDER, "139.99", click).await;
    let order = conversions(&owner).await.into_iter().find(|c| c["order_id"] == LANDING_ORDER).unwrap();
    assert_eq!(order["status"], "pending");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_shop_that_re_keys_to_another_claims_secret_moves_to_that_brand(pool: PgPool) {
    let before = proven_shop_api(pool).await;
    let after = before.other_brand().await;
    let new_secret = "shpss_the_new_owners_app_secret";
    assert_eq!(connect(&after, SHOP, new_secret).await.body["status"], "pending");
    assert_eq!(signed_order(SECRET, 1).send(&before).await.status, StatusCode::OK);
    assert_eq!(claims_of(&after).await, pending());

    // The shop now signs with the new brand's secret.
    assert_eq!(signed_order(new_secret, 2).send(&after).await.status, StatusCode::OK);
    assert_eq!(claims_of(&after).await, vec![(SHOP.to_owned(), "active".to_owned(), true)]);
    assert_eq!(claims_of(&before).await, vec![(SHOP.to_owned(), "pending".to_owned(), true)]);
    assert_eq!((order_ids(&before).await, order_ids(&after).await), (vec!["1".to_owned()], vec!["2".to_owned()]));
    // The former owner lets go.
    assert_eq!(before.delete(&format!("/v1/integrations/shopify/{SHOP}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(signed_order(new_secret, 3).send(&after).await.status, StatusCode::OK);
    assert_eq!(order_ids(&after).await.len(), 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn only_the_ten_most_recent_pending_claims_are_tried(pool: PgPool) {
    let owner = Api::new(pool).await;
    assert_eq!(connect(&owner, SHOP, SECRET).await.status, StatusCode::OK);
    let mut squatters = Vec::new();
    for i in 0..api::shopify::shops::MAX_CLAIMS_TRIED {
        let squatter = owner.other_brand().await;
        assert_eq!(connect(&squatter, SHOP, &format!("shpss_guess_{i}")).await.status, StatusCode::OK);
        squatters.push(squatter);
    }
    // Ten newer claims: the owner's is not tried.
    let response = signed_order(SECRET, 1).send(&owner).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    // Claiming again (same secret) makes it recent; then the shop's delivery proves it.
    assert_eq!(connect(&owner, SHOP, SECRET).await.body["status"], "pending");
    assert_eq!(signed_order(SECRET, 1).send(&owner).await.status, StatusCode::OK);
    assert_eq!(claims_of(&owner).await[0].1, "active");
    for squatter in &squatters {
        assert!(claims_of(squatter).await.is_empty());
    }
    // However many claims came since, the owner's secret is tried first; a large order signed with a
    // secret nobody claimed is tried against all eleven (off the request threads) and refused.
    for (i, squatter) in squatters.iter().enumerate() {
        assert_eq!(connect(squatter, SHOP, &format!("shpss_guess_{i}")).await.status, StatusCode::OK);
    }
    assert_eq!(signed_order(SECRET, 2).send(&owner).await.status, StatusCode::OK);
    let large = fixture_patched("orders_create_promo.json", json!({"id": 3, "note": "x".repeat(512 * 1024)}));
    let mut unclaimed = Delivery::new("orders/create", large.clone());
    unclaimed.signature = Some(sign("shpss_nobody", large.as_bytes()));
    assert_eq!(unclaimed.send(&owner).await.status, StatusCode::UNAUTHORIZED);
    processed(&owner, "orders/create", large).await;
    assert_eq!(order_ids(&owner).await.len(), 3);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_unclaimed_shop_is_remembered_and_refused_without_a_query(pool: PgPool) {
    let api = proven_shop_api(pool).await;
    let unknown = "nobody-claims-this.myshopify.com";
    let stranger = || Delivery {
        shop: Some(unknown.to_owned()),
        ..Delivery::new("orders/create", fixture("orders_create_promo.json"))
    };
    let wrongly_signed = || Delivery {
        signature: Some(sign("shpss_wrong", b"{}")),
        ..Delivery::new("orders/create", fixture("orders_create_promo.json"))
    };
    for delivery in [stranger(), wrongly_signed()] {
        assert_eq!(delivery.send(&api).await.status, StatusCode::UNAUTHORIZED);
    }
    let cache = &api.state.shopify_shops;
    assert!(cache.contains_key(&api::shopify::ShopDomain::parse(unknown).unwrap()));
    // With the database gone, both are still refused alike, from memory (a query would be a 500).
    api.pool.close().await;
    for delivery in [stranger(), wrongly_signed()] {
        let response = delivery.send(&api).await;
        assert_eq!((response.status, response.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn deliveries_triggered_too_long_ago_are_refused_before_their_body_is_read(pool: PgPool) {
    let api = proven_shop_api(pool).await;
    let aged = |hours: i64, order_id: u64| {
        let mut delivery = signed_order(SECRET, order_id);
        delivery.triggered_at = Some(shopify_time(Utc::now() - Duration::hours(hours)));
        delivery
    };
    // The default window is 48 hours: Shopify's retries keep the first attempt's time.
    let stale = aged(49, 1).send(&api).await;
    assert_eq!((stale.status, stale.error_code()), (StatusCode::BAD_REQUEST, "stale_delivery"));
    assert_eq!(aged(47, 2).send(&api).await.status, StatusCode::OK);
    let mut garbled = signed_order(SECRET, 3);
    garbled.triggered_at = Some("last tuesday".into());
    let response = garbled.send(&api).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::BAD_REQUEST, "invalid_triggered_at"));
    // The headers are judged first: a stale delivery with a body over the limit is refused as stale, and
    // one for a malformed shop as unauthorized, not as too large.
    let huge = vec![b' '; 3 * 1024 * 1024];
    let stale_and_huge = Delivery { body: huge.clone(), ..aged(49, 4) };
    assert_eq!(stale_and_huge.send(&api).await.error_code(), "stale_delivery");
    let nobody_and_huge = Delivery { shop: Some("not a shop".into()), body: huge, ..signed_order(SECRET, 5) };
    assert_eq!(nobody_and_huge.send(&api).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(order_ids(&api).await, vec!["2".to_owned()]);
    assert_eq!(api.count("shopify_deliveries").await, 2, "the proof and order 2");

    // The window is configurable.
    let strict =
        Api::with_state(AppState::new(api.pool.clone(), support::config(&[("SHOPIFY_MAX_DELIVERY_AGE_HOURS", "1")])))
            .await;
    let late =
        Delivery { triggered_at: Some(shopify_time(Utc::now() - Duration::minutes(61))), ..signed_order(SECRET, 6) };
    assert_eq!(late.send(&strict).await.error_code(), "stale_delivery");
    let in_time =
        Delivery { triggered_at: Some(shopify_time(Utc::now() - Duration::minutes(59))), ..signed_order(SECRET, 6) };
    assert_eq!(in_time.send(&strict).await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn deliveries_beyond_the_concurrency_limit_are_answered_503_at_once(pool: PgPool) {
    let state = AppState::new(pool.clone(), support::config(&[("SHOPIFY_WEBHOOK_CONCURRENCY", "1")]));
    let api = Api::with_state(state).await;
    assert_eq!(connect(&api, SHOP, SECRET).await.status, StatusCode::OK);
    // Order 1's transaction waits on a lock this test holds, keeping the one permit taken.
    let lock = api::attribution::begin_for_order(&pool, api.brand_id, "1").await.unwrap();
    let first = tokio::spawn(api.router.clone().oneshot(signed_order(SECRET, 1).request()));
    loop {
        let waiting: bool =
            sqlx::query_scalar("select exists (select 1 from pg_locks where locktype = 'advisory' and not granted)")
                .fetch_one(&pool)
                .await
                .unwrap();
        if waiting {
            break;
        }
        assert!(!first.is_finished(), "order 1 finished without waiting");
        tokio::task::yield_now().await;
    }
    let refused = api.router.clone().oneshot(signed_order(SECRET, 2).request()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = serde_json::from_slice(&refused.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    lock.commit().await.unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(signed_order(SECRET, 2).send(&api).await.status, StatusCode::OK);
    assert_eq!(order_ids(&api).await.len(), 2);
}
