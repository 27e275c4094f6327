//! The Conversions API: orders, refunds and cancellations a store reports server-side with its brand key,
//! their idempotency, their attribution, and how the orders they verify count in every report.

mod support;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{session_functions, until, Api, Click, Response, WithoutTemporary};
use tower::ServiceExt;
use uuid::Uuid;

/// The largest order the default configuration accepts: 1,000,000.00 USD.
const MAX_USD_MINOR: i64 = 100_000_000;

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn usd(amount_minor: i64) -> Value {
    json!({"amount_minor": amount_minor, "currency": "USD"})
}

fn cs_ref(click: Uuid) -> String {
    click.simple().to_string()
}

/// A `POST /v1/conversions` body of `amount_minor` USD placed at `at`.
fn order(order_id: &str, amount_minor: i64, at: DateTime<Utc>) -> Value {
    json!({"order_id": order_id, "amount": usd(amount_minor), "occurred_at": rfc3339(at)})
}

/// The same body naming a click.
fn order_via(order_id: &str, amount_minor: i64, at: DateTime<Utc>, click: Uuid) -> Value {
    let mut body = order(order_id, amount_minor, at);
    body["cs_ref"] = json!(cs_ref(click));
    body
}

/// `POST /v1/conversions` as `api`'s brand, with this `Idempotency-Key` (none if `None`).
fn report_request(api: &Api, key: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/conversions")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.key))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn answer(router: axum::Router, request: Request<Body>) -> Response {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    Response { status, body }
}

/// Reports an order as raw JSON text under `key`.
async fn report_raw(api: &Api, key: Option<&str>, body: &str) -> Response {
    answer(api.router.clone(), report_request(api, key, body)).await
}

async fn report(api: &Api, key: &str, body: &Value) -> Response {
    report_raw(api, Some(key), &body.to_string()).await
}

/// Reports an order under a fresh key and returns it, failing the test unless the answer is 201.
async fn reported(api: &Api, body: &Value) -> Value {
    let response = report(api, &Uuid::new_v4().to_string(), body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.body
}

async fn refund(api: &Api, order_id: &str, refund_id: &str, amount: Value) -> Response {
    let body = json!({"refund_id": refund_id, "amount": amount, "occurred_at": rfc3339(Utc::now())});
    api.post(&format!("/v1/conversions/{order_id}/refunds"), body).await
}

async fn cancel(api: &Api, order_id: &str) -> Response {
    api.send(Method::POST, &format!("/v1/conversions/{order_id}/cancel"), Some(&api.key), None).await
}

async fn conversions(api: &Api, query: &str) -> Vec<Value> {
    let response = api.get(&format!("/v1/conversions{query}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["data"].as_array().unwrap().clone()
}

async fn pixel_purchase(api: &Api, order_id: &str, value: &str, click: Option<Uuid>) -> Response {
    let mut body = json!({"pixel_id": api.pixel_id, "event": "purchase", "order_id": order_id, "value": value,
        "currency": "USD"});
    if let Some(click) = click {
        body["cs_ref"] = json!(cs_ref(click));
    }
    let response = api.send(Method::POST, "/v1/pixel/events", None, Some(Body::from(body.to_string()))).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    response
}

/// `/v1/attribution?group_by=link` over the day around now: the row of `link`, or null.
async fn attribution_row(api: &Api, link: &Value) -> Value {
    let now = Utc::now();
    let (from, to) = (rfc3339(now - Duration::days(1)), rfc3339(now + Duration::days(1)));
    let response = api.get(&format!("/v1/attribution?group_by=link&from={from}&to={to}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["key"] == link["id"])
        .cloned()
        .unwrap_or(Value::Null)
}

async fn link_stats(api: &Api, link: &Value) -> Value {
    let response = api.get(&format!("/v1/links/{}/stats", link["id"].as_str().unwrap())).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

async fn link(api: &Api, promo_code: Option<&str>) -> Value {
    let mut body = json!({"destination_url": "https://shop.example/"});
    if let Some(code) = promo_code {
        body["promo_code"] = json!(code);
    }
    api.create("/v1/links", body).await
}

/// One human click on `link` an hour ago, by a new visitor.
async fn click(api: &Api, link: &Value) -> Uuid {
    api.click(&[Click::new(link, Uuid::new_v4(), Utc::now() - Duration::hours(1))]).await[0]
}

// ---------------------------------------------------------------------------------------------------
// Attribution of reported orders

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_reported_order_is_verified_and_credits_the_visitors_latest_click(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let first = link(&api, None).await;
    let second =
        api.create("/v1/links", json!({"destination_url": "https://a.example", "creator_id": jess["id"]})).await;
    let visitor = Uuid::new_v4();
    let now = Utc::now();
    let clicks = api
        .click(&[
            Click::new(&first, visitor, now - Duration::days(2)),
            Click::new(&second, visitor, now - Duration::days(1)),
        ])
        .await;

    let body = order_via("1001", 12999, now - Duration::minutes(5), clicks[0]);
    let created = reported(&api, &body).await;
    assert_eq!(created["order_id"], "1001");
    assert_eq!(created["status"], "verified");
    assert_eq!(created["source"], "api");
    assert_eq!(created["amount"], usd(12999));
    assert_eq!(created["net"], usd(12999));
    assert_eq!(created["refunded"], usd(0));
    assert_eq!(created["method"], "click");
    assert_eq!(created["link_id"], second["id"]);
    assert_eq!(created["creator_id"], jess["id"]);
    assert_eq!(created["click_id"], cs_ref(clicks[1]));
    assert!(created["verified_at"].is_string());
    // The answer is the order exactly as the list shows it.
    assert_eq!(conversions(&api, "").await, vec![created]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_discount_code_credits_the_link_with_that_promo_code_case_insensitively(pool: PgPool) {
    let api = Api::new(pool).await;
    let promo = link(&api, Some("JESS20")).await;
    let mut body = order("2001", 5000, Utc::now() - Duration::minutes(1));
    body["discount_codes"] = json!(["jess20"]);
    let created = reported(&api, &body).await;
    assert_eq!((created["method"].clone(), created["link_id"].clone()), (json!("promo_code"), promo["id"].clone()));
    assert_eq!(created["click_id"], Value::Null);
    assert_eq!(created["discount_codes"], json!(["jess20"]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_click_beats_a_discount_code(pool: PgPool) {
    let api = Api::new(pool).await;
    let promo = link(&api, Some("SAM10")).await;
    let clicked = link(&api, None).await;
    let click = click(&api, &clicked).await;
    let mut body = order_via("2101", 5000, Utc::now(), click);
    body["discount_codes"] = json!(["SAM10"]);
    let created = reported(&api, &body).await;
    assert_eq!((created["method"].clone(), created["link_id"].clone()), (json!("click"), clicked["id"].clone()));
    assert_ne!(created["link_id"], promo["id"]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn orders_without_a_valid_credit_credit_nobody_but_are_recorded(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    let ours = link(&api, Some("OURS")).await;
    let theirs = link(&other, None).await;
    let their_click = click(&other, &theirs).await;
    let now = Utc::now();
    let old = api.click(&[Click::new(&ours, Uuid::new_v4(), now - Duration::days(31))]).await[0];
    let bot = api.click(&[Click { bot: true, ..Click::new(&ours, Uuid::new_v4(), now - Duration::hours(1)) }]).await[0];

    let cases = [
        ("nothing", order("3001", 100, now)),
        ("unknown click", order_via("3002", 100, now, Uuid::new_v4())),
        ("another brand's click", order_via("3003", 100, now, their_click)),
        ("a click older than 30 days", order_via("3004", 100, now, old)),
        ("a bot's click", order_via("3005", 100, now, bot)),
        (
            "an unknown discount code",
            json!({"order_id": "3006", "amount": usd(100), "occurred_at": rfc3339(now),
            "discount_codes": ["NOT-OURS"]}),
        ),
    ];
    for (what, body) in cases {
        let created = reported(&api, &body).await;
        assert_eq!(created["status"], "verified", "{what}");
        assert_eq!(
            (created["link_id"].clone(), created["method"].clone(), created["click_id"].clone()),
            (Value::Null, Value::Null, Value::Null),
            "{what}"
        );
    }
    assert_eq!(api.count("conversions").await, 6);
    assert!(conversions(&other, "").await.is_empty());
    // The click ids are kept as evidence, but not another brand's.
    let kept: Vec<(String, Uuid)> =
        sqlx::query_as("select order_id, cs_ref_id from order_refs where brand_id = $1 order by order_id")
            .bind(api.brand_id)
            .fetch_all(&api.pool)
            .await
            .unwrap();
    let kept: Vec<(&str, Uuid)> = kept.iter().map(|(order, click)| (order.as_str(), *click)).collect();
    assert_eq!(kept.iter().map(|(order, _)| *order).collect::<Vec<_>>(), ["3002", "3004", "3005"]);
    assert_eq!(&kept[1..], &[("3004", old), ("3005", bot)]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_click_credits_orders_placed_within_thirty_days_after_it(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let clicked_at = Utc::now() - Duration::days(40);
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), clicked_at)]).await[0];
    let inside =
        reported(&api, &order_via("3101", 100, clicked_at + Duration::days(30) - Duration::seconds(1), click)).await;
    assert_eq!(inside["method"], "click");
    let outside =
        reported(&api, &order_via("3102", 100, clicked_at + Duration::days(30) + Duration::seconds(1), click)).await;
    assert_eq!(outside["method"], Value::Null);
    let before = reported(&api, &order_via("3103", 100, clicked_at - Duration::seconds(1), click)).await;
    assert_eq!(before["method"], Value::Null);
}

// ---------------------------------------------------------------------------------------------------
// Validation

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_idempotency_key_is_required_and_is_1_to_255_visible_ascii_characters(pool: PgPool) {
    let api = Api::new(pool).await;
    let body = order("4001", 100, Utc::now()).to_string();

    let missing = report_raw(&api, None, &body).await;
    assert_eq!((missing.status, missing.error_code()), (StatusCode::BAD_REQUEST, "missing_idempotency_key"));
    for bad in ["x".repeat(256), String::new(), "two words".into(), "tab\there".into()] {
        let refused = report_raw(&api, Some(&bad), &body).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            "{bad:?}"
        );
    }
    // Not ASCII at all (a header value may carry such bytes).
    let mut request = report_request(&api, None, &body);
    request.headers_mut().insert("idempotency-key", axum::http::HeaderValue::from_bytes("clé".as_bytes()).unwrap());
    let refused = answer(api.router.clone(), request).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::BAD_REQUEST, "invalid_idempotency_key"));
    assert_eq!(api.count("conversions").await, 0);
    assert_eq!(api.count("idempotency_keys").await, 0);

    let longest = "k".repeat(255);
    assert_eq!(report_raw(&api, Some(&longest), &body).await.status, StatusCode::CREATED);
    assert_eq!(
        report_raw(&api, Some("~!@#$%^&*()_+{}|:<>?"), &order("4002", 100, Utc::now()).to_string()).await.status,
        StatusCode::CREATED
    );
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_conversions_api_needs_the_brands_key(pool: PgPool) {
    let api = Api::new(pool).await;
    let body = Body::from(order("4101", 100, Utc::now()).to_string());
    let anonymous = api.send(Method::POST, "/v1/conversions", None, Some(body)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let body = Body::from(order("4101", 100, Utc::now()).to_string());
    let forged = api.send(Method::POST, "/v1/conversions", Some("sk_live_forged"), Some(body)).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let forged = api.send(Method::POST, "/v1/conversions/4101/cancel", Some("sk_live_forged"), None).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn amounts_up_to_one_million_major_units_are_accepted_and_larger_ones_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    let now = Utc::now();
    let accepted = reported(&api, &order("5001", MAX_USD_MINOR, now)).await;
    assert_eq!(accepted["amount"], usd(MAX_USD_MINOR));

    let too_large = report(&api, "k-5002", &order("5002", MAX_USD_MINOR + 1, now)).await;
    assert_eq!((too_large.status, too_large.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large"));
    let yen = json!({"order_id": "5003", "amount": {"amount_minor": 1_000_001, "currency": "JPY"},
        "occurred_at": rfc3339(now)});
    let too_large = report(&api, "k-5003", &yen).await;
    assert_eq!((too_large.status, too_large.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large"));
    let huge = order("5004", i64::MAX, now);
    let too_large = report(&api, "k-5004", &huge).await;
    assert_eq!((too_large.status, too_large.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large"));
    assert_eq!(api.count("conversions").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn negative_amounts_and_unknown_currencies_are_invalid_amounts(pool: PgPool) {
    let api = Api::new(pool).await;
    let now = rfc3339(Utc::now());
    for (i, amount) in [
        json!({"amount_minor": -1, "currency": "USD"}),
        json!({"amount_minor": 100, "currency": "DOLLARS"}),
        json!({"amount_minor": 100, "currency": "XXX"}),
        json!({"amount_minor": 100, "currency": ""}),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"order_id": format!("6{i:03}"), "amount": amount, "occurred_at": now});
        let refused = report(&api, &format!("k-{i}"), &body).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount"),
            "{amount}"
        );
    }
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_order_placed_more_than_ten_minutes_in_the_future_is_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    let refused = report(&api, "k-1", &order("7001", 100, Utc::now() + Duration::minutes(11))).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_occurred_at"));
    // A store's clock a little ahead of ours is fine.
    assert_eq!(
        report(&api, "k-2", &order("7002", 100, Utc::now() + Duration::minutes(5))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(api.count("conversions").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_cs_ref_that_is_not_a_click_id_is_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    let now = Utc::now();
    // Not hex, the wrong length, and a UUID of a version we never issue.
    for (i, bad) in ["nope", "0123456789abcdef", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "00000000000010008000000000000000"]
        .into_iter()
        .enumerate()
    {
        let mut body = order(&format!("8{i:03}"), 100, now);
        body["cs_ref"] = json!(bad);
        let refused = report(&api, &format!("k-{i}"), &body).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_cs_ref"),
            "{bad}"
        );
    }
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn unknown_fields_and_missing_ones_are_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    let mut extra = order("9001", 100, Utc::now());
    extra["customer_email"] = json!("a@b.example");
    let refused = report(&api, "k-1", &extra).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    let mut extra_in_amount = order("9001", 100, Utc::now());
    extra_in_amount["amount"]["tax"] = json!(1);
    assert_eq!(report(&api, "k-2", &extra_in_amount).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing = json!({"order_id": "9001", "occurred_at": rfc3339(Utc::now())});
    assert_eq!(report(&api, "k-3", &missing).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let empty_id = order("  ", 100, Utc::now());
    let refused = report(&api, "k-4", &empty_id).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_order_id"));
    let malformed = report_raw(&api, Some("k-5"), "{not json").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.count("conversions").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refused_request_does_not_use_up_its_idempotency_key(pool: PgPool) {
    let api = Api::new(pool).await;
    let refused = report(&api, "retry-me", &order("9101", MAX_USD_MINOR + 1, Utc::now())).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The store corrects the request and sends it again with the same key.
    let corrected = report(&api, "retry-me", &order("9101", MAX_USD_MINOR, Utc::now())).await;
    assert_eq!(corrected.status, StatusCode::CREATED, "{}", corrected.body);
}

// ---------------------------------------------------------------------------------------------------
// Idempotency

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_same_key_and_body_again_get_the_same_answer_and_count_once(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    let at = Utc::now() - Duration::minutes(1);
    let body = order_via("10001", 4200, at, click);
    let first = report(&api, "key-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = report(&api, "key-1", &body).await;
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &first.body));
    // The same request with its keys in another order and other spacing is the same request.
    let reordered = format!(
        r#"{{ "cs_ref": "{}",  "occurred_at": "{}", "amount": {{"currency": "USD", "amount_minor": 4200}}, "order_id": "10001" }}"#,
        cs_ref(click),
        rfc3339(at)
    );
    let third = report_raw(&api, Some("key-1"), &reordered).await;
    assert_eq!((third.status, &third.body), (StatusCode::CREATED, &first.body));

    assert_eq!(api.count("conversions").await, 1);
    assert_eq!(api.count("idempotency_keys").await, 1);
    assert_eq!(link_stats(&api, &link).await["conversions"], 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_same_key_with_another_body_is_a_conflict(pool: PgPool) {
    let api = Api::new(pool).await;
    let at = Utc::now();
    let first = reported(&api, &order("11001", 100, at)).await;
    assert_eq!(report(&api, "key-1", &order("11002", 100, at)).await.status, StatusCode::CREATED);
    for other in [order("11002", 101, at), order("11003", 100, at), order("11002", 100, at - Duration::seconds(1))] {
        let conflict = report(&api, "key-1", &other).await;
        assert_eq!((conflict.status, conflict.error_code()), (StatusCode::CONFLICT, "idempotency_conflict"), "{other}");
    }
    assert_eq!(api.count("conversions").await, 2);
    let orders = conversions(&api, "").await;
    assert_eq!(orders[1], first);
    assert_eq!(orders[0]["amount"], usd(100));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_same_order_under_another_key_answers_200_with_the_existing_order(pool: PgPool) {
    let api = Api::new(pool).await;
    let at = Utc::now() - Duration::minutes(3);
    let first = report(&api, "key-1", &order("12001", 100, at)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = report(&api, "key-2", &order("12001", 100, at)).await;
    assert_eq!((second.status, &second.body), (StatusCode::OK, &first.body));
    // Another amount under yet another key does not change the order: it was reported already.
    let third = report(&api, "key-3", &order("12001", 999, at)).await;
    assert_eq!((third.status, &third.body), (StatusCode::OK, &first.body));
    // And each key keeps its own answer.
    let replay = report(&api, "key-2", &order("12001", 100, at)).await;
    assert_eq!((replay.status, &replay.body), (StatusCode::OK, &first.body));
    assert_eq!(api.count("conversions").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn eight_concurrent_requests_with_one_key_record_one_order_and_answer_alike(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    let body = order_via("13001", 7700, Utc::now(), click).to_string();
    let handles: Vec<_> = (0..8)
        .map(|_| tokio::spawn(answer(api.router.clone(), report_request(&api, Some("one-key"), &body))))
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    for a in &answers {
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        assert_eq!(a.body, answers[0].body);
    }
    assert_eq!(answers[0].body["method"], "click");
    assert_eq!(api.count("conversions").await, 1);
    assert_eq!(api.count("idempotency_keys").await, 1);
    assert_eq!(conversions(&api, "").await, vec![answers[0].body.clone()]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn eight_concurrent_requests_with_eight_keys_for_one_order_create_it_once(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    let body = order_via("14001", 8800, Utc::now(), click).to_string();
    let handles: Vec<_> = (0..8)
        .map(|i| tokio::spawn(answer(api.router.clone(), report_request(&api, Some(&format!("key-{i}")), &body))))
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    let created: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    let found: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::OK).collect();
    assert_eq!((created.len(), found.len()), (1, 7), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    for a in &answers {
        assert_eq!(a.body, created[0].body);
    }
    assert_eq!(api.count("conversions").await, 1);
    assert_eq!(api.count("idempotency_keys").await, 8);
    let stats = link_stats(&api, &link).await;
    assert_eq!((stats["conversions"].clone(), stats["revenue"].clone()), (json!(1), json!([usd(8800)])));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn eight_concurrent_requests_with_one_key_for_eight_orders_record_one_and_conflict_seven(pool: PgPool) {
    let api = Api::new(pool).await;
    let at = Utc::now();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let body = order(&format!("16{i:03}"), 100, at).to_string();
            tokio::spawn(answer(api.router.clone(), report_request(&api, Some("one-key"), &body)))
        })
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    let created: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    let conflicts = answers.iter().filter(|a| a.error_code() == "idempotency_conflict").count();
    assert_eq!((created.len(), conflicts), (1, 7), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert_eq!(api.count("conversions").await, 1);
    assert_eq!(api.count("idempotency_keys").await, 1);
    assert_eq!(conversions(&api, "").await, vec![created[0].body.clone()]);
}

/// Sends a report of `body` under `key` and returns once its request waits for a lock (the order's or the key's)
/// that the test holds.
async fn report_waiting(api: &Api, key: &str, body: &str, what: &str) -> tokio::task::JoinHandle<Response> {
    let request = tokio::spawn(answer(api.router.clone(), report_request(api, Some(key), body)));
    until(
        &api.pool,
        what,
        "select exists (select 1 from pg_stat_activity where datname = current_database()
                        and wait_event_type = 'Lock' and pid <> pg_backend_pid())",
    )
    .await;
    request
}

/// Reports `body` under `key` while the test's own transaction holds the key, as a request for another
/// order does between its order's statement and its commit; returns once the request waits for the key.
async fn report_while_key_held(
    api: &Api,
    key: &str,
    body: &str,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, tokio::task::JoinHandle<Response>) {
    let mut holder = api.pool.begin().await.unwrap();
    sqlx::query(
        "insert into idempotency_keys (brand_id, key, request_hash, status_code, response)
         values ($1, $2, sha256('another request'), 201, 'null')",
    )
    .bind(api.brand_id)
    .bind(key)
    .execute(&mut *holder)
    .await
    .unwrap();
    let request = report_waiting(api, key, body, "the request waits for the key").await;
    (holder, request)
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_key_taken_for_another_order_while_an_order_is_recorded_undoes_that_order(pool: PgPool) {
    let api = Api::new(pool).await;
    let body = order("17001", 100, Utc::now()).to_string();
    // The key is taken, not yet committed, when the request records its order: the request waits for it.
    let (holder, request) = report_while_key_held(&api, "taken", &body).await;
    holder.commit().await.unwrap();
    // The key's first request was for another body: this one is a conflict, and its order is not kept.
    let answered = request.await.unwrap();
    assert_eq!((answered.status, answered.error_code()), (StatusCode::CONFLICT, "idempotency_conflict"));
    assert_eq!(api.count("conversions").await, 0);
    assert_eq!(api.count("idempotency_keys").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_key_released_while_an_order_is_recorded_is_claimed_by_that_order(pool: PgPool) {
    let api = Api::new(pool).await;
    let body = order("17002", 100, Utc::now()).to_string();
    let (holder, request) = report_while_key_held(&api, "released", &body).await;
    // The other request failed and rolled back: the key is this one's, and so is its answer.
    holder.rollback().await.unwrap();
    let answered = request.await.unwrap();
    assert_eq!(answered.status, StatusCode::CREATED, "{}", answered.body);
    let retried = report_raw(&api, Some("released"), &body).await;
    assert_eq!((retried.status, &retried.body), (StatusCode::CREATED, &answered.body));
    assert_eq!(api.count("conversions").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_transaction_begun_for_an_order_holds_its_lock_and_a_failed_begin_leaves_nothing_open(pool: PgPool) {
    use api::attribution::{begin_for_order, order_lock_key};
    let api = Api::new(pool).await;
    let free = |order_id: &'static str| {
        let pool = api.pool.clone();
        let key = order_lock_key(api.brand_id, order_id);
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let free: bool = sqlx::query_scalar("select pg_try_advisory_lock(1869767794, $1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            if free {
                sqlx::query("select pg_advisory_unlock(1869767794, $1)").bind(key).execute(&mut *conn).await.unwrap();
            }
            free
        }
    };
    let tx = begin_for_order(&api.pool, api.brand_id, "18001").await.unwrap();
    assert!(!free("18001").await, "the transaction holds the order's lock");
    assert!(free("18002").await, "and no other order's");
    tx.commit().await.unwrap();
    assert!(free("18001").await, "until it ends");

    // A pool of one connection whose lock waits time out: the begin fails while another holds the lock...
    let options = api.pool.connect_options().as_ref().clone().options([("lock_timeout", "50ms")]);
    let one = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    let holder = begin_for_order(&api.pool, api.brand_id, "18001").await.unwrap();
    let failed = begin_for_order(&one, api.brand_id, "18001").await.expect_err("the lock is held");
    assert_eq!(failed.as_database_error().and_then(|e| e.code()).as_deref(), Some("55P03"), "{failed}");
    // ... and leaves its connection outside any transaction, ready for the next one.
    // (A savepoint outside a transaction block is refused with 25P01; inside one it is taken, and inside
    // an aborted one refused with 25P02.)
    let probe = sqlx::query("savepoint probe").execute(&one).await.expect_err("no transaction is open");
    assert_eq!(probe.as_database_error().and_then(|e| e.code()).as_deref(), Some("25P01"), "{probe}");
    holder.rollback().await.unwrap();
    let tx = begin_for_order(&one, api.brand_id, "18001").await.unwrap();
    assert!(!free("18001").await);
    tx.rollback().await.unwrap();
    assert!(free("18001").await);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_request_whose_client_goes_away_inside_its_transaction_still_records_the_order(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    let body = order_via("15001", 4200, Utc::now(), click).to_string();
    // Someone else holds the order's lock, so the request stops inside its transaction, waiting for it.
    let holder = api::attribution::begin_for_order(&api.pool, api.brand_id, "15001").await.unwrap();
    let request = report_waiting(&api, "gone", &body, "the request waits for the order's lock").await;
    // The client goes away: the server drops the request's future, as hyper does on a closed connection.
    request.abort();
    assert!(request.await.is_err_and(|e| e.is_cancelled()));
    holder.commit().await.unwrap();
    // The request runs on to its end and commits what it was asked to record.
    until(&api.pool, "the order is recorded", "select exists (select 1 from conversions where order_id = '15001')")
        .await;
    until(
        &api.pool,
        "no connection is left inside a transaction",
        "select not exists (select 1 from pg_stat_activity where datname = current_database()
                            and state like 'idle in transaction%')",
    )
    .await;
    // The answer it could not deliver is kept under its key: the client's retry gets it.
    let retried = report_raw(&api, Some("gone"), &body).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.body);
    assert_eq!((retried.body["status"].as_str(), retried.body["method"].as_str()), (Some("verified"), Some("click")));
    assert_eq!(conversions(&api, "").await, vec![retried.body]);
    assert_eq!(attribution_row(&api, &link).await["conversions"], 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_new_order_waits_for_its_lock_and_then_sees_a_refund_committed_meanwhile(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    let body = order_via("15101", 4200, Utc::now(), click).to_string();
    // A refund of the order arrives first (as Shopify's can): its transaction holds the order's lock.
    let mut holder = api::attribution::begin_for_order(&api.pool, api.brand_id, "15101").await.unwrap();
    sqlx::query(
        "insert into refunds (brand_id, order_id, refund_id, amount_minor, currency, refunded_at)
         values ($1, '15101', 'early', 1200, 'USD', now())",
    )
    .bind(api.brand_id)
    .execute(&mut *holder)
    .await
    .unwrap();
    let request = report_waiting(&api, "early-refund", &body, "the request waits for the order's lock").await;
    holder.commit().await.unwrap();
    // The order is read after the lock is granted: the refund committed meanwhile is subtracted.
    let created = request.await.unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!((created.body["refunded"].clone(), created.body["net"].clone()), (usd(1200), usd(3000)));
    assert_eq!(conversions(&api, "").await, vec![created.body.clone()]);
    assert_eq!(attribution_row(&api, &link).await["revenue"], json!([usd(3000)]));
    // It was created in one statement of its session's order-creating function (see
    // `attribution::create_order_once`), which took the lock.
    assert!(session_functions(&api.pool).await >= 1, "the order-creating function exists in the session");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_role_that_may_not_create_temporary_objects_records_orders_on_the_transactional_path(pool: PgPool) {
    let restricted = WithoutTemporary::new(&pool).await;
    let api = Api::new(restricted.pool.clone()).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    let body = order_via("15201", 4200, Utc::now(), click);
    let created = report(&api, "no-temp", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!((created.body["status"].as_str(), created.body["method"].as_str()), (Some("verified"), Some("click")));
    let again = report(&api, "no-temp", &body).await;
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &created.body));
    assert_eq!(conversions(&api, "").await, vec![created.body.clone()]);
    assert_eq!(attribution_row(&api, &link).await["revenue"], json!([usd(4200)]));
    assert_eq!(session_functions(&pool).await, 0, "the role could not create the session function");
    restricted.drop().await;
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_brand_is_never_deleted_so_no_order_outlives_its_brand(pool: PgPool) {
    let api = Api::new(pool).await;
    reported(&api, &order("16001", 1500, Utc::now())).await;
    let other = api.other_brand().await;
    for brand in [api.brand_id, other.brand_id] {
        let refused = sqlx::query("delete from brands where id = $1").bind(brand).execute(&api.pool).await.unwrap_err();
        let refused = refused.as_database_error().unwrap();
        assert_eq!(refused.code().as_deref(), Some("23001"), "{refused}");
    }
    assert_eq!(api.count("brands").await, 2);
    assert_eq!(conversions(&api, "").await.len(), 1);
}

// ---------------------------------------------------------------------------------------------------
// Pixel orders and the brand's server-side source

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_pixel_only_order_the_api_reports_becomes_verified_with_the_apis_amount(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    pixel_purchase(&api, "15001", "10.00", Some(click)).await;
    let before = conversions(&api, "").await;
    assert_eq!((before[0]["status"].clone(), before[0]["amount"].clone()), (json!("unverified"), usd(1000)));

    let at = Utc::now() - Duration::minutes(2);
    let verified = reported(&api, &order("15001", 1250, at)).await;
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["amount"], usd(1250));
    assert_eq!(verified["net"], usd(1250));
    assert_eq!(verified["source"], "pixel", "who reported it first");
    assert_eq!(verified["occurred_at"].as_str().unwrap().parse::<DateTime<Utc>>(), rfc3339(at).parse());
    // Still credited to the pixel's click.
    assert_eq!((verified["method"].clone(), verified["link_id"].clone()), (json!("click"), link["id"].clone()));
    assert_eq!(conversions(&api, "").await, vec![verified]);
    assert_eq!(api.count("conversions").await, 1);
    let stats = link_stats(&api, &link).await;
    assert_eq!((stats["conversions"].clone(), stats["revenue"].clone()), (json!(1), json!([usd(1250)])));

    // A later pixel report of the same order changes nothing.
    pixel_purchase(&api, "15001", "99.00", Some(click)).await;
    assert_eq!(conversions(&api, "").await[0]["amount"], usd(1250));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn pixel_purchases_are_unverified_before_the_first_api_order_and_pending_after_it(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    pixel_purchase(&api, "16001", "10.00", Some(click)).await;
    assert_eq!(conversions(&api, "").await[0]["status"], "unverified");
    let row = attribution_row(&api, &link).await;
    assert_eq!((row["conversions"].clone(), row["revenue"].clone()), (json!(1), json!([usd(1000)])));

    reported(&api, &order_via("16002", 2000, Utc::now() - Duration::minutes(1), click)).await;
    pixel_purchase(&api, "16003", "30.00", Some(click)).await;
    let pending = conversions(&api, "?status=pending").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["order_id"], "16003");
    assert!(pending[0]["confirm_by"].is_string());
    // The earlier pixel order stays what it was.
    let unverified = conversions(&api, "?status=unverified").await;
    assert_eq!(unverified.iter().map(|o| o["order_id"].clone()).collect::<Vec<_>>(), vec![json!("16001")]);

    let row = attribution_row(&api, &link).await;
    assert_eq!((row["conversions"].clone(), row["revenue"].clone()), (json!(2), json!([usd(3000)])));
    assert_eq!((row["pending_conversions"].clone(), row["pending_revenue"].clone()), (json!(1), json!([usd(3000)])));
    let stats = link_stats(&api, &link).await;
    assert_eq!((stats["conversions"].clone(), stats["revenue"].clone()), (json!(2), json!([usd(3000)])));
    assert_eq!(
        (stats["pending_conversions"].clone(), stats["pending_revenue"].clone()),
        (json!(1), json!([usd(3000)]))
    );

    // The store's own report of the pending order verifies it: it moves from pending to counted.
    let confirmed = reported(&api, &order("16003", 3000, Utc::now())).await;
    assert_eq!((confirmed["status"].clone(), confirmed["method"].clone()), (json!("verified"), json!("click")));
    let row = attribution_row(&api, &link).await;
    assert_eq!((row["conversions"].clone(), row["revenue"].clone()), (json!(3), json!([usd(6000)])));
    assert_eq!((row["pending_conversions"].clone(), row["pending_revenue"].clone()), (json!(0), json!([])));
    assert!(conversions(&api, "?status=pending").await.is_empty());

    // Another brand has no server-side source: its pixel orders are unverified still.
    let other = api.other_brand().await;
    pixel_purchase(&other, "16001", "10.00", None).await;
    assert_eq!(conversions(&other, "").await[0]["status"], "unverified");
}

// ---------------------------------------------------------------------------------------------------
// Refunds

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_reduces_the_net_and_a_repeated_refund_id_counts_once(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    reported(&api, &order_via("17001", 10000, Utc::now() - Duration::minutes(1), click)).await;

    let first = refund(&api, "17001", "r-1", usd(2500)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!((first.body["refunded"].clone(), first.body["net"].clone()), (usd(2500), usd(7500)));
    assert_eq!(first.body["status"], "verified");
    let again = refund(&api, "17001", "r-1", usd(2500)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!((again.body["refunded"].clone(), again.body["net"].clone()), (usd(2500), usd(7500)));
    assert_eq!(api.count("refunds").await, 1);

    let second = refund(&api, "17001", "r-2", usd(1000)).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["net"], usd(6500));
    assert_eq!(conversions(&api, "").await, vec![second.body.clone()]);
    let stats = link_stats(&api, &link).await;
    assert_eq!((stats["conversions"].clone(), stats["revenue"].clone()), (json!(1), json!([usd(6500)])));
    let row = attribution_row(&api, &link).await;
    assert_eq!(row["revenue"], json!([usd(6500)]));

    // Refunding more than was paid leaves nothing credited, never less than nothing.
    let all = refund(&api, "17001", "r-3", usd(MAX_USD_MINOR)).await;
    assert_eq!(all.status, StatusCode::CREATED);
    assert_eq!(all.body["net"], usd(0));
    let stats = link_stats(&api, &link).await;
    assert_eq!((stats["conversions"].clone(), stats["revenue"].clone()), (json!(1), json!([usd(0)])));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn refunds_of_unknown_orders_are_404_and_in_another_currency_are_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    reported(&api, &order("18001", 10000, Utc::now())).await;
    let unknown = refund(&api, "no-such-order", "r-1", usd(100)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let euros = refund(&api, "18001", "r-1", json!({"amount_minor": 100, "currency": "EUR"})).await;
    assert_eq!((euros.status, euros.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch"));
    let too_large = refund(&api, "18001", "r-1", usd(MAX_USD_MINOR + 1)).await;
    assert_eq!((too_large.status, too_large.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large"));
    let negative = refund(&api, "18001", "r-1", usd(-1)).await;
    assert_eq!((negative.status, negative.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount"));
    assert_eq!(api.count("refunds").await, 0);
    // The refund id was not used up by the refused requests.
    assert_eq!(refund(&api, "18001", "r-1", usd(100)).await.status, StatusCode::CREATED);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refund_id_already_used_for_another_order_is_a_conflict(pool: PgPool) {
    let api = Api::new(pool).await;
    let at = Utc::now();
    reported(&api, &order("19001", 10000, at)).await;
    reported(&api, &order("19002", 10000, at)).await;
    assert_eq!(refund(&api, "19001", "r-1", usd(100)).await.status, StatusCode::CREATED);
    let conflict = refund(&api, "19002", "r-1", usd(100)).await;
    assert_eq!((conflict.status, conflict.error_code()), (StatusCode::CONFLICT, "refund_conflict"));
    let orders = conversions(&api, "").await;
    let net = |id: &str| orders.iter().find(|o| o["order_id"] == id).unwrap()["net"].clone();
    assert_eq!((net("19001"), net("19002")), (usd(9900), usd(10000)));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn concurrent_refunds_with_one_refund_id_for_two_orders_are_counted_for_one_only(pool: PgPool) {
    let api = Api::new(pool).await;
    let at = Utc::now();
    reported(&api, &order("19101", 10000, at)).await;
    reported(&api, &order("19102", 10000, at)).await;
    let request = |order_id: &str| {
        let body = json!({"refund_id": "shared", "amount": usd(100), "occurred_at": rfc3339(at)});
        Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/conversions/{order_id}/refunds"))
            .header(header::AUTHORIZATION, format!("Bearer {}", api.key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let handles: Vec<_> = (0..8)
        .map(|i| tokio::spawn(answer(api.router.clone(), request(if i % 2 == 0 { "19101" } else { "19102" }))))
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    let statuses: Vec<_> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    // Every other answer either repeats the refund for its order (200) or refuses it for the other (409),
    // and never claims the refund counted for an order it does not belong to.
    let owner = answers.iter().find(|a| a.status == StatusCode::CREATED).unwrap().body["order_id"].clone();
    for a in &answers {
        match a.status {
            StatusCode::CREATED => {}
            StatusCode::OK => assert_eq!(a.body["order_id"], owner, "{}", a.body),
            StatusCode::CONFLICT => assert_eq!(a.error_code(), "refund_conflict"),
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert_eq!(api.count("refunds").await, 1);
}

// ---------------------------------------------------------------------------------------------------
// Cancellation

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_cancelled_order_leaves_every_report_but_stays_listed(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let click = click(&api, &link).await;
    let at = Utc::now() - Duration::minutes(1);
    reported(&api, &order_via("20001", 5000, at, click)).await;
    reported(&api, &order_via("20002", 7000, at, click)).await;
    let row = attribution_row(&api, &link).await;
    assert_eq!((row["conversions"].clone(), row["revenue"].clone()), (json!(2), json!([usd(12000)])));

    let cancelled = cancel(&api, "20001").await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.body["cancelled_at"].is_string());
    // Cancelling again changes nothing.
    let again = cancel(&api, "20001").await;
    assert_eq!((again.status, &again.body["cancelled_at"]), (StatusCode::OK, &cancelled.body["cancelled_at"]));

    let row = attribution_row(&api, &link).await;
    assert_eq!((row["conversions"].clone(), row["revenue"].clone()), (json!(1), json!([usd(7000)])));
    let stats = link_stats(&api, &link).await;
    assert_eq!((stats["conversions"].clone(), stats["revenue"].clone()), (json!(1), json!([usd(7000)])));
    assert_eq!(conversions(&api, "").await.len(), 2);
    let listed = conversions(&api, "?status=cancelled").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["order_id"], "20001");
    assert_eq!(listed[0]["status"], "cancelled");

    // Reporting the order again under a new key answers it as it stands: cancelled, not counted.
    let again = report(&api, "another-key", &order_via("20001", 5000, at, click)).await;
    assert_eq!((again.status, again.body["status"].clone()), (StatusCode::OK, json!("cancelled")));
    assert_eq!(attribution_row(&api, &link).await["conversions"], 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn cancelling_an_unknown_order_is_404(pool: PgPool) {
    let api = Api::new(pool).await;
    let unknown = cancel(&api, "no-such-order").await;
    assert_eq!((unknown.status, unknown.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(api.count("conversions").await, 0);
}

// ---------------------------------------------------------------------------------------------------
// Brands

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn another_brand_can_neither_refund_nor_cancel_an_order_and_has_its_own_order_ids(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    let at = Utc::now() - Duration::minutes(1);
    let ours = reported(&api, &order("21001", 10000, at)).await;

    let refunded = refund(&other, "21001", "r-1", usd(100)).await;
    assert_eq!(refunded.status, StatusCode::NOT_FOUND);
    let cancelled = cancel(&other, "21001").await;
    assert_eq!(cancelled.status, StatusCode::NOT_FOUND);
    assert_eq!(conversions(&api, "").await, vec![ours.clone()]);
    assert!(conversions(&other, "").await.is_empty());

    // The same order id, even under the same idempotency key, is the other brand's own order.
    let key = "shared-key";
    assert_eq!(report(&api, key, &order("21002", 100, at)).await.status, StatusCode::CREATED);
    let theirs = report(&other, key, &order("21002", 300, at)).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    let theirs = report(&other, "k", &order("21001", 200, at)).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_eq!(theirs.body["amount"], usd(200));
    assert_eq!(api.count("conversions").await, 4);
    // Their refund id space is theirs too.
    assert_eq!(refund(&api, "21001", "r-1", usd(100)).await.status, StatusCode::CREATED);
    assert_eq!(refund(&other, "21001", "r-1", usd(50)).await.status, StatusCode::CREATED);
    let theirs = conversions(&other, "").await;
    let net = |orders: &[Value], id: &str| orders.iter().find(|o| o["order_id"] == id).unwrap()["net"].clone();
    assert_eq!(net(&theirs, "21001"), usd(150));
    assert_eq!(net(&conversions(&api, "").await, "21001"), usd(9900));
}

// ---------------------------------------------------------------------------------------------------
// The largest amounts in reports

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_largest_accepted_orders_add_up_exactly_in_every_report(pool: PgPool) {
    let api = Api::new(pool).await;
    let creator = api.create("/v1/creators", json!({"name": "Big"})).await;
    let campaign = api.create("/v1/campaigns", json!({"name": "Big"})).await;
    let link = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://a.example", "creator_id": creator["id"], "campaign_id": campaign["id"],
                "platform": "instagram", "content_type": "reel"}),
        )
        .await;
    let click = click(&api, &link).await;
    let at = Utc::now() - Duration::minutes(1);
    for id in ["22001", "22002"] {
        let created = reported(&api, &order_via(id, MAX_USD_MINOR, at, click)).await;
        assert_eq!((created["link_id"].clone(), created["amount"].clone()), (link["id"].clone(), usd(MAX_USD_MINOR)));
    }
    let total = json!([usd(2 * MAX_USD_MINOR)]);

    let row = attribution_row(&api, &link).await;
    assert_eq!((row["conversions"].clone(), row["revenue"].clone()), (json!(2), total.clone()));
    let now = Utc::now();
    let (from, to) = (rfc3339(now - Duration::days(1)), rfc3339(now + Duration::days(1)));
    for group_by in ["creator", "campaign", "platform", "content_type"] {
        let response = api.get(&format!("/v1/attribution?group_by={group_by}&from={from}&to={to}")).await;
        assert_eq!(response.status, StatusCode::OK, "{group_by}: {}", response.body);
        let data = response.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{group_by}");
        assert_eq!(
            (data[0]["conversions"].clone(), data[0]["revenue"].clone()),
            (json!(2), total.clone()),
            "{group_by}"
        );
    }
    let stats = link_stats(&api, &link).await;
    assert_eq!((stats["conversions"].clone(), stats["revenue"].clone()), (json!(2), total.clone()));
    let windowed = api.get(&format!("/v1/links/{}/stats?from={from}&to={to}", link["id"].as_str().unwrap())).await;
    assert_eq!(windowed.status, StatusCode::OK, "{}", windowed.body);
    assert_eq!(windowed.body["revenue"], total);
    let listed = conversions(&api, &format!("?link_id={}", link["id"].as_str().unwrap())).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().map(|o| o["amount"]["amount_minor"].as_i64().unwrap()).sum::<i64>(), 2 * MAX_USD_MINOR);
    assert!(listed.iter().all(|o| o["net"] == usd(MAX_USD_MINOR)));
}

/// The database itself refuses an order row that breaks any rule of `conversion_row_valid` (one CHECK
/// holds them all): each row here breaks one, and only one, next to a row that keeps them all.
#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_database_refuses_order_rows_that_break_any_rule(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api, None).await;
    let link_id: Uuid = link["id"].as_str().unwrap().parse().unwrap();
    let insert = |order_id: &str, column: &str, value: &str| {
        // A verified order credited to a click; `column` takes `value` (SQL) instead.
        let mut row = vec![
            ("amount_minor", "100".to_owned()),
            ("refunded_minor", "0".to_owned()),
            ("currency", "'USD'".to_owned()),
            ("link_id", format!("'{link_id}'")),
            ("method", "'click'".to_owned()),
            ("click_id", "gen_random_uuid()".to_owned()),
            ("source", "'api'".to_owned()),
            ("amount_source", "'api'".to_owned()),
            ("status", "'verified'".to_owned()),
            ("order_id", format!("'{order_id}'")),
        ];
        for (name, sql) in &mut row {
            if *name == column {
                *sql = value.to_owned();
            }
        }
        let (names, values): (Vec<&str>, Vec<String>) = row.into_iter().unzip();
        format!(
            "insert into conversions (id, brand_id, occurred_at, {}) values (gen_random_uuid(), '{}', now(), {})",
            names.join(", "),
            api.brand_id,
            values.join(", ")
        )
    };
    sqlx::query(&insert("valid", "", "")).execute(&api.pool).await.unwrap();
    // Credited to nobody, and by a promo code (no click): valid too.
    let nobody = insert("nobody", "link_id", "null")
        .replace("'click'", "null")
        .replace("gen_random_uuid(), 'api'", "null, 'api'");
    sqlx::query(&nobody).execute(&api.pool).await.unwrap();
    sqlx::query(&insert("promo", "method", "'promo_code'").replace("gen_random_uuid(), 'api'", "null, 'api'"))
        .execute(&api.pool)
        .await
        .unwrap();
    let broken = [
        ("order_id", "''"),
        ("order_id", "repeat('x', 129)"),
        ("amount_minor", "-1"),
        ("refunded_minor", "-1"),
        ("currency", "'usd'"),
        ("method", "'coupon'"),
        ("link_id", "null"),
        ("click_id", "null"),
        ("source", "'email'"),
        ("amount_source", "'email'"),
        ("status", "'paid'"),
    ];
    for (i, (column, value)) in broken.into_iter().enumerate() {
        let error = sqlx::query(&insert(&format!("broken-{i}"), column, value)).execute(&api.pool).await.unwrap_err();
        let error = error.as_database_error().unwrap();
        assert_eq!(
            (error.code().as_deref(), error.constraint()),
            (Some("23514"), Some("conversions_row_valid")),
            "{column} = {value}"
        );
    }
    assert_eq!(api.count("conversions").await, 3);
}
