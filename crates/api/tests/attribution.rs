//! From a click to revenue credited to the creator: the attribution rules, the pixel endpoint, and the
//! creators' own view.

mod support;

use api::attribution::{self, Credit, OrderReport, Source};
use api::http::AppState;
use api::money::Money;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{Api, Click};
use tower::ServiceExt;
use uuid::Uuid;

fn pixel_body(api: &Api, event: &str, extra: Value) -> Body {
    let mut body = json!({"pixel_id": api.pixel_id, "event": event});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Body::from(body.to_string())
}

async fn pixel(api: &Api, event: &str, extra: Value) -> support::Response {
    api.send(Method::POST, "/v1/pixel/events", None, Some(pixel_body(api, event, extra))).await
}

async fn purchase(api: &Api, order_id: &str, value: &str, cs_ref: Option<Uuid>) -> support::Response {
    let mut extra = json!({"order_id": order_id, "value": value, "currency": "USD"});
    if let Some(r) = cs_ref {
        extra["cs_ref"] = json!(r.simple().to_string());
    }
    pixel(api, "purchase", extra).await
}

async fn conversions(api: &Api) -> Vec<Value> {
    api.get("/v1/conversions").await.body["data"].as_array().unwrap().clone()
}

/// Records an order at a pinned time, as the pixel endpoint does, and returns its credit.
async fn order_at(api: &Api, order_id: &str, at: DateTime<Utc>, refs: Vec<Uuid>) -> Credit {
    let mut tx = attribution::begin_for_order(&api.pool, api.brand_id, order_id).await.unwrap();
    let report = OrderReport {
        brand_id: api.brand_id,
        order_id: order_id.into(),
        amount: Money::parse("25.00", "USD").unwrap(),
        occurred_at: at,
        source: Source::Pixel,
        refs,
        discount_codes: vec![],
        cancelled_at: None,
        test: false,
    };
    let judged = attribution::Judged { now: Utc::now(), confirmation_window: Duration::hours(72) };
    let credit = attribution::record_order(&mut tx, &report, judged).await.unwrap().credit;
    tx.commit().await.unwrap();
    credit
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_click_earns_orders_for_exactly_thirty_days(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let link_id = Uuid::parse_str(link["id"].as_str().unwrap()).unwrap();
    let clicked_at: DateTime<Utc> = "2026-10-01T12:00:00Z".parse().unwrap();
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), clicked_at)]).await[0];

    let inside = order_at(&api, "inside", clicked_at + Duration::days(30) - Duration::seconds(1), vec![click]).await;
    assert_eq!(inside, Credit::Click { link_id, click_id: click });
    let outside = order_at(&api, "outside", clicked_at + Duration::days(30) + Duration::seconds(1), vec![click]).await;
    assert_eq!(outside, Credit::Nobody);
    // A click after the order did not drive it.
    let before = order_at(&api, "before", clicked_at - Duration::seconds(1), vec![click]).await;
    assert_eq!(before, Credit::Nobody);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_visitors_latest_click_wins(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let sam = api.create("/v1/creators", json!({"name": "Sam"})).await;
    let first =
        api.create("/v1/links", json!({"destination_url": "https://a.example", "creator_id": jess["id"]})).await;
    let second =
        api.create("/v1/links", json!({"destination_url": "https://a.example", "creator_id": sam["id"]})).await;
    let visitor = Uuid::new_v4();
    let now = Utc::now();
    let ids = api
        .click(&[
            Click::new(&first, visitor, now - Duration::days(2)),
            Click::new(&second, visitor, now - Duration::days(1)),
        ])
        .await;
    // The store still holds the first click id (its cookie was set then): the latest click wins anyway.
    assert_eq!(purchase(&api, "2001", "40.00", Some(ids[0])).await.status, StatusCode::ACCEPTED);
    let orders = conversions(&api).await;
    assert_eq!(orders[0]["link_id"], second["id"]);
    assert_eq!(orders[0]["creator_id"], sam["id"]);
    assert_eq!(orders[0]["method"], "click");
    assert_eq!(orders[0]["click_id"], ids[1].simple().to_string());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn bot_clicks_never_earn_anything(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let bot =
        api.click(&[Click { bot: true, ..Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::hours(1)) }]).await;
    purchase(&api, "3001", "10.00", Some(bot[0])).await;
    let orders = conversions(&api).await;
    assert_eq!((orders[0]["link_id"].clone(), orders[0]["method"].clone()), (Value::Null, Value::Null));
    let stats = api.get(&format!("/v1/links/{}/stats", link["id"].as_str().unwrap())).await.body;
    assert_eq!(
        (stats["clicks"].clone(), stats["bot_clicks"].clone(), stats["conversions"].clone()),
        (json!(0), json!(1), json!(0))
    );
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_order_reported_three_times_counts_once(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::hours(1))]).await[0];
    for _ in 0..3 {
        assert_eq!(purchase(&api, "4001", "129.99", Some(click)).await.status, StatusCode::ACCEPTED);
    }
    let orders = conversions(&api).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["amount"], json!({"amount_minor": 12999, "currency": "USD"}));
    let stats = api.get(&format!("/v1/links/{}/stats", link["id"].as_str().unwrap())).await.body;
    assert_eq!(stats["conversions"], 1);
    assert_eq!(stats["revenue"], json!([{"amount_minor": 12999, "currency": "USD"}]));
    assert_eq!(api.count("pixel_events").await, 3);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn forged_and_foreign_click_ids_are_stored_but_credit_nobody(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    let theirs = other.create("/v1/links", json!({"destination_url": "https://theirs.example"})).await;
    let their_click = other.click(&[Click::new(&theirs, Uuid::new_v4(), Utc::now() - Duration::hours(1))]).await[0];

    assert_eq!(purchase(&api, "5001", "10.00", Some(Uuid::new_v4())).await.status, StatusCode::ACCEPTED);
    assert_eq!(purchase(&api, "5002", "10.00", Some(their_click)).await.status, StatusCode::ACCEPTED);
    let orders = conversions(&api).await;
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|o| o["link_id"].is_null() && o["method"].is_null()));
    // The other brand sees none of it.
    assert!(conversions(&other).await.is_empty());
    let stored: i64 =
        sqlx::query_scalar("select count(*) from pixel_events where brand_id = $1 and cs_ref_id is not null")
            .bind(api.brand_id)
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(stored, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_click_that_arrives_after_its_purchase_still_earns_it(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let (click_id, event) = Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::minutes(1)).event();
    purchase(&api, "6001", "15.00", Some(click_id)).await;
    assert!(conversions(&api).await[0]["link_id"].is_null());
    api.ingest(vec![event]).await;
    // The batch is acknowledged without waiting for the order: it was queued, and the background task
    // re-attributes it.
    assert!(conversions(&api).await[0]["link_id"].is_null());
    assert_eq!(api.reattribute().await, 1);
    let orders = conversions(&api).await;
    assert_eq!((orders[0]["link_id"].clone(), orders[0]["method"].clone()), (link["id"].clone(), json!("click")));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn amounts_convert_exactly_and_extra_precision_is_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let visitor = Uuid::new_v4();
    let clicks = api.click(&[Click::new(&link, visitor, Utc::now() - Duration::hours(1))]).await;
    purchase(&api, "7001", "0.1", Some(clicks[0])).await;
    purchase(&api, "7002", "0.2", Some(clicks[0])).await;
    let stats = api.get(&format!("/v1/links/{}/stats", link["id"].as_str().unwrap())).await.body;
    assert_eq!(stats["revenue"], json!([{"amount_minor": 30, "currency": "USD"}]));

    let refused = purchase(&api, "7003", "19.999", Some(clicks[0])).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount"));
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("USD"));
    assert_eq!(api.count("conversions").await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn pixel_events_are_validated_field_by_field(pool: PgPool) {
    let api = Api::new(pool).await;
    let cases = [
        ("purchase", json!({"value": "1.00", "currency": "USD"}), "invalid_purchase"),
        ("purchase", json!({"order_id": "1", "value": "1.00"}), "invalid_amount"),
        ("purchase", json!({"order_id": "1", "value": "1.00", "currency": "DOLLARS"}), "invalid_amount"),
        ("purchase", json!({"order_id": "x".repeat(129), "value": "1.00", "currency": "USD"}), "invalid_order_id"),
        ("purchase", json!({"order_id": "1", "value": "-1", "currency": "USD"}), "invalid_amount"),
        ("page_view", json!({"cs_ref": "not-a-click"}), "invalid_cs_ref"),
        ("page_view", json!({"url": "javascript:alert(1)"}), "invalid_url"),
        ("page_view", json!({"extra": 1}), "invalid_body"),
        ("sign_up", json!({}), "invalid_body"),
    ];
    for (event, extra, code) in cases {
        let response = pixel(&api, event, extra.clone()).await;
        assert_eq!(
            (response.status, response.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "{event} {extra}"
        );
    }
    let garbage = api.send(Method::POST, "/v1/pixel/events", None, Some(Body::from("{oops"))).await;
    assert_eq!((garbage.status, garbage.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
    let unknown = api
        .send(
            Method::POST,
            "/v1/pixel/events",
            None,
            Some(Body::from(json!({"pixel_id": "px_nope", "event": "page_view"}).to_string())),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(api.count("pixel_events").await, 0);

    // Numbers are accepted where stores send them, and the page URL loses its query string.
    let ok = pixel(
        &api,
        "purchase",
        json!({"order_id": 8001, "value": 12.5, "currency": "eur", "url": "https://shop.example/thanks?email=a@b.c#x"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
    let (url, value, currency): (String, i64, String) =
        sqlx::query_as("select url, value_minor, currency from pixel_events").fetch_one(&api.pool).await.unwrap();
    assert_eq!((url.as_str(), value, currency.as_str()), ("https://shop.example/thanks", 1250, "EUR"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_pixel_endpoint_is_open_to_any_store_and_takes_text_plain(pool: PgPool) {
    let api = Api::new(pool).await;
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/pixel/events")
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(preflight).await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(response.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));

    let beacon = Request::builder()
        .method(Method::POST)
        .uri("/v1/pixel/events")
        .header("origin", "https://shop.example")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(pixel_body(&api, "page_view", json!({})))
        .unwrap();
    let response = api.router.clone().oneshot(beacon).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_client_flooding_a_pixel_is_rate_limited(pool: PgPool) {
    let state = AppState::new(pool, support::config(&[("PIXEL_RATE_PER_CLIENT", "1")]));
    let api = Api::with_state(state).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(pixel(&api, "page_view", json!({})).await.status);
    }
    // A burst of two, then 429s with the JSON error shape.
    assert_eq!(&statuses[..2], &[StatusCode::ACCEPTED, StatusCode::ACCEPTED]);
    assert!(statuses[2..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(pixel(&api, "page_view", json!({})).await.error_code(), "rate_limited");
    assert_eq!(api.count("pixel_events").await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn pixel_js_is_cached_and_revalidated(pool: PgPool) {
    let api = Api::new(pool).await;
    let get = |etag: Option<String>| {
        let mut request = Request::builder().uri("/pixel.js");
        if let Some(tag) = etag {
            request = request.header("if-none-match", tag);
        }
        api.router.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    let response = get(None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/javascript"));
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age="));
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("/v1/pixel/events"));
    let revalidated = get(Some(etag)).await.unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(get(Some("\"other\"".into())).await.unwrap().status(), StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn creators_see_revenue_only_where_it_is_shared(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let shared = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://a.example", "creator_id": jess["id"], "share_revenue": true}),
        )
        .await;
    let private =
        api.create("/v1/links", json!({"destination_url": "https://b.example", "creator_id": jess["id"]})).await;
    api.create("/v1/links", json!({"destination_url": "https://c.example"})).await;
    let now = Utc::now();
    let clicks = api
        .click(&[
            Click::new(&shared, Uuid::new_v4(), now - Duration::hours(2)),
            Click::new(&private, Uuid::new_v4(), now - Duration::hours(1)),
        ])
        .await;
    purchase(&api, "9001", "20.00", Some(clicks[0])).await;
    purchase(&api, "9002", "30.00", Some(clicks[1])).await;

    let token = api.create(&format!("/v1/creators/{}/tokens", jess["id"].as_str().unwrap()), json!({})).await;
    let token = token["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cst_"));
    let mine = api.send(Method::GET, "/v1/me/links", Some(&token), None).await;
    assert_eq!(mine.status, StatusCode::OK);
    let links = mine.body["data"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    let by_id = |id: &Value| links.iter().find(|l| &l["id"] == id).unwrap().clone();
    let shared_view = by_id(&shared["id"]);
    assert_eq!(
        (shared_view["clicks"].clone(), shared_view["unique_clicks"].clone(), shared_view["conversions"].clone()),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(shared_view["revenue"], json!([{"amount_minor": 2000, "currency": "USD"}]));
    let private_view = by_id(&private["id"]);
    assert_eq!((private_view["clicks"].clone(), private_view["conversions"].clone()), (json!(1), json!(1)));
    assert!(private_view.get("revenue").is_none(), "{private_view}");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_creator_token_opens_nothing_but_the_creators_own_view(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let token = api.create(&format!("/v1/creators/{}/tokens", jess["id"].as_str().unwrap()), json!({})).await;
    let token = token["token"].as_str().unwrap();
    for (method, uri) in [
        (Method::GET, "/v1/links"),
        (Method::GET, "/v1/creators"),
        (Method::GET, "/v1/conversions"),
        (Method::GET, "/v1/attribution?group_by=creator"),
        (Method::POST, "/v1/links"),
    ] {
        let body =
            (method == Method::POST).then(|| Body::from(json!({"destination_url": "https://a.example"}).to_string()));
        assert_eq!(api.send(method, uri, Some(token), body).await.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    // And a brand key is not a creator token.
    assert_eq!(api.send(Method::GET, "/v1/me/links", Some(&api.key), None).await.status, StatusCode::UNAUTHORIZED);
    // Tokens are only for the brand's own creators.
    let other = api.other_brand().await;
    let theirs = other.create("/v1/creators", json!({"name": "Theirs"})).await;
    let response = api.post(&format!("/v1/creators/{}/tokens", theirs["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
}

// --- What the public pixel can and cannot do ---------------------------------------------------------

fn usd(amount_minor: i64) -> Value {
    json!({"amount_minor": amount_minor, "currency": "USD"})
}

/// Every report that shows a link's figures, which must agree: `/v1/attribution`, the link's stats and
/// the creator's own view.
async fn figures_everywhere(api: &Api, link: &Value, creator_token: &str) -> Value {
    let to = (Utc::now() + Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let window = format!("from=2026-01-01T00:00:00Z&to={to}");
    let stats = api.get(&format!("/v1/links/{}/stats?{window}", link["id"].as_str().unwrap())).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let report = api.get(&format!("/v1/attribution?group_by=link&{window}")).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let mine = api.send(Method::GET, "/v1/me/links", Some(creator_token), None).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    let row = report.body["data"].as_array().unwrap().iter().find(|r| r["key"] == link["id"]).unwrap().clone();
    let my = mine.body["data"][0].clone();
    for field in ["conversions", "revenue", "pending_conversions", "pending_revenue"] {
        assert_eq!(row[field], stats.body[field], "{field}");
        assert_eq!(my[field], stats.body[field], "{field}");
    }
    json!({"conversions": row["conversions"], "revenue": row["revenue"],
           "pending_conversions": row["pending_conversions"], "pending_revenue": row["pending_revenue"]})
}

/// A creator with a revenue-sharing link, the creator's token, and a click on the link.
async fn shared_link(api: &Api) -> (Value, String, Uuid) {
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let link = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://a.example", "creator_id": jess["id"], "share_revenue": true}),
        )
        .await;
    let token = api.create(&format!("/v1/creators/{}/tokens", jess["id"].as_str().unwrap()), json!({})).await;
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::minutes(5))]).await[0];
    (link, token["token"].as_str().unwrap().to_owned(), click)
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn without_a_server_side_source_pixel_orders_are_unverified_and_count(pool: PgPool) {
    let api = Api::new(pool).await;
    let (link, token, click) = shared_link(&api).await;
    assert_eq!(purchase(&api, "7001", "40.00", Some(click)).await.status, StatusCode::ACCEPTED);
    assert_eq!(conversions(&api).await[0]["status"], "unverified");
    assert_eq!(
        figures_everywhere(&api, &link, &token).await,
        json!({"conversions": 1, "revenue": [usd(4000)], "pending_conversions": 0, "pending_revenue": []})
    );
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn once_a_brand_uses_the_conversions_api_its_pixel_orders_wait_for_confirmation(pool: PgPool) {
    let api = Api::new(pool).await;
    let (link, token, click) = shared_link(&api).await;
    let body = json!({"order_id": "api-1", "amount": usd(1000), "occurred_at": Utc::now().to_rfc3339()});
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/conversions")
        .header("authorization", format!("Bearer {}", api.key))
        .header("content-type", "application/json")
        .header("idempotency-key", "first")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(api.router.clone().oneshot(request).await.unwrap().status(), StatusCode::CREATED);
    purchase(&api, "7002", "40.00", Some(click)).await;
    let pending = conversions(&api).await.into_iter().find(|c| c["order_id"] == "7002").unwrap();
    assert_eq!(pending["status"], "pending");
    assert_eq!(
        figures_everywhere(&api, &link, &token).await,
        json!({"conversions": 0, "revenue": [], "pending_conversions": 1, "pending_revenue": [usd(4000)]})
    );
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_largest_accepted_purchases_leave_every_report_exact(pool: PgPool) {
    let api = Api::new(pool).await;
    let (link, token, click) = shared_link(&api).await;
    // What used to break every report for good: two purchases of i64::MAX cents.
    for order in ["huge-1", "huge-2"] {
        let response = purchase(&api, order, "92233720368547758.07", Some(click)).await;
        assert_eq!((response.status, response.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large"));
    }
    let response = purchase(&api, "just-over", "1000000.01", Some(click)).await;
    assert_eq!(response.error_code(), "amount_too_large");
    assert_eq!(api.count("conversions").await, 0);
    for order in ["max-1", "max-2"] {
        assert_eq!(purchase(&api, order, "1000000.00", Some(click)).await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(
        figures_everywhere(&api, &link, &token).await,
        json!({"conversions": 2, "revenue": [usd(200_000_000)], "pending_conversions": 0, "pending_revenue": []})
    );
    for uri in ["/v1/conversions", "/v1/attribution?group_by=creator", "/v1/attribution?group_by=platform"] {
        assert_eq!(api.get(uri).await.status, StatusCode::OK, "{uri}");
    }
    // In a currency with three decimals the limit is 1,000,000.000 too.
    let kwd = pixel(
        &api,
        "purchase",
        json!({"order_id": "kwd", "value": "1000000.000", "currency": "KWD", "cs_ref": click.simple().to_string()}),
    );
    assert_eq!(kwd.await.status, StatusCode::ACCEPTED);
    assert_eq!(api.get("/v1/attribution?group_by=link").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_order_keeps_at_most_ten_click_ids_and_none_of_another_brand(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    let theirs = other.create("/v1/links", json!({"destination_url": "https://b.example"})).await;
    let their_click = other.click(&[Click::new(&theirs, Uuid::new_v4(), Utc::now() - Duration::minutes(1))]).await[0];
    assert_eq!(purchase(&api, "8001", "10.00", Some(their_click)).await.status, StatusCode::ACCEPTED);
    for _ in 0..15 {
        purchase(&api, "8001", "10.00", Some(Uuid::new_v4())).await;
    }
    let kept: Vec<Uuid> =
        sqlx::query_scalar("select cs_ref_id from order_refs where brand_id = $1 and order_id = '8001'")
            .bind(api.brand_id)
            .fetch_all(&api.pool)
            .await
            .unwrap();
    assert_eq!(kept.len(), 10);
    assert!(!kept.contains(&their_click));
    assert_eq!(api.count("conversions").await, 1);
}

/// A small simulated month on a brand with a server-side source: clicks of twenty visitors on three
/// links over thirty days, and orders of every kind (reported through the Conversions API, then
/// refunded or cancelled; reported only by the pixel; claimed by two visitors), credited and counted
/// exactly as an independent model of the rules says, before and after the confirmation window closes.
#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_simulated_month_of_every_kind_of_order_is_counted_exactly(pool: PgPool) {
    use std::collections::BTreeMap;

    // The whole month's pixel reports come from one client in a second or two.
    let limits = [("PIXEL_RATE_PER_CLIENT", "1000000"), ("PIXEL_RATE_PER_PIXEL", "1000000")];
    let api = Api::with_state(AppState::new(pool, support::config(&limits))).await;
    let links: Vec<Value> = three_links(&api).await;
    let now = Utc::now();
    let start = now - Duration::days(30);
    // A deterministic generator, so a failure can be replayed.
    let mut seed: u64 = 0x5eed_cafe;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let visitors: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    // (visitor index, link index, time, click id)
    let mut clicks: Vec<(usize, usize, DateTime<Utc>, Uuid)> = Vec::new();
    for day in 0..30 {
        for (v, visitor) in visitors.iter().enumerate() {
            if next(3) == 0 {
                let l = next(3) as usize;
                let at = start + Duration::days(day) + Duration::minutes(next(1400) as i64);
                let id = api.click(&[Click::new(&links[l], *visitor, at)]).await[0];
                clicks.push((v, l, at, id));
            }
        }
    }
    // The model: the link of the visitor's latest click within the 30 days before `at`.
    let credited = |visitor: usize, at: DateTime<Utc>| {
        clicks
            .iter()
            .filter(|(v, _, t, _)| *v == visitor && *t <= at && *t > at - Duration::days(30))
            .max_by_key(|(_, _, t, id)| (*t, std::cmp::Reverse(*id)))
            .map(|(_, l, _, _)| *l)
    };
    #[derive(Default, Debug, PartialEq)]
    struct Expect {
        conversions: i64,
        revenue: i64,
        pending: i64,
        pending_revenue: i64,
    }
    let mut expect: BTreeMap<usize, Expect> = BTreeMap::new();
    let mut pending_orders: Vec<(usize, i64)> = Vec::new();
    let key = |n: usize| format!("key-{n}");
    for (n, (v, _, at, id)) in clicks.clone().into_iter().enumerate() {
        let amount = 1000 + next(90_000) as i64;
        let order = format!("o-{n}");
        let occurred = at + Duration::minutes(30);
        if occurred > now {
            continue;
        }
        match n % 6 {
            // Reported server-side: verified. Some are then refunded in part, some cancelled.
            0..=2 => {
                let body = json!({"order_id": order, "amount": usd(amount), "occurred_at": occurred.to_rfc3339(),
                                  "cs_ref": id.simple().to_string()});
                assert_eq!(post_with_key(&api, "/v1/conversions", &key(n), body).await, StatusCode::CREATED);
                let link = credited(v, occurred).unwrap();
                match n % 6 {
                    1 => {
                        let refund = json!({"refund_id": format!("r-{n}"), "amount": usd(amount / 3),
                                            "occurred_at": now.to_rfc3339()});
                        let uri = format!("/v1/conversions/{order}/refunds");
                        assert_eq!(post_with_key(&api, &uri, "-", refund.clone()).await, StatusCode::CREATED);
                        // Sent twice, counted once.
                        assert_eq!(post_with_key(&api, &uri, "-", refund).await, StatusCode::OK);
                        let e = expect.entry(link).or_default();
                        e.conversions += 1;
                        e.revenue += amount - amount / 3;
                    }
                    2 => {
                        let uri = format!("/v1/conversions/{order}/cancel");
                        assert_eq!(post_with_key(&api, &uri, "-", json!({})).await, StatusCode::OK);
                    }
                    _ => {
                        let e = expect.entry(link).or_default();
                        e.conversions += 1;
                        e.revenue += amount;
                    }
                }
                // The same order under another key is the same order.
                let again = json!({"order_id": order, "amount": usd(amount), "occurred_at": occurred.to_rfc3339()});
                assert_eq!(post_with_key(&api, "/v1/conversions", &format!("again-{n}"), again).await, StatusCode::OK);
            }
            // Reported only by the pixel (now): pending, credited to the visitor's latest click.
            3 | 4 => {
                let value = format!("{}.{:02}", amount / 100, amount % 100);
                assert_eq!(purchase(&api, &order, &value, Some(id)).await.status, StatusCode::ACCEPTED);
                if let Some(link) = credited(v, Utc::now()) {
                    pending_orders.push((link, amount));
                }
            }
            // Claimed by two visitors: disputed, counted nowhere.
            _ => {
                let value = format!("{}.{:02}", amount / 100, amount % 100);
                purchase(&api, &order, &value, Some(id)).await;
                let other = clicks.iter().find(|(ov, ..)| *ov != v).map(|c| c.3).unwrap();
                purchase(&api, &order, &value, Some(other)).await;
            }
        }
    }
    for (link, amount) in &pending_orders {
        let e = expect.entry(*link).or_default();
        e.pending += 1;
        e.pending_revenue += amount;
    }
    let actual = |report: Value| -> BTreeMap<usize, Expect> {
        let mut out = BTreeMap::new();
        for row in report["data"].as_array().unwrap() {
            let l = links.iter().position(|link| link["id"] == row["key"]).unwrap();
            let sum =
                |field: &str| row[field].as_array().unwrap().iter().map(|m| m["amount_minor"].as_i64().unwrap()).sum();
            let e = Expect {
                conversions: row["conversions"].as_i64().unwrap(),
                revenue: sum("revenue"),
                pending: row["pending_conversions"].as_i64().unwrap(),
                pending_revenue: sum("pending_revenue"),
            };
            if e != Expect::default() {
                out.insert(l, e);
            }
        }
        out
    };
    let to = (now + Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let uri = format!("/v1/attribution?group_by=link&from=2000-01-01T00:00:00Z&to={to}");
    assert!(!pending_orders.is_empty() && !expect.is_empty());
    assert_eq!(actual(api.get(&uri).await.body), expect);

    // After the window, pending orders are unconfirmed: counted nowhere; the rest is unchanged.
    api::conversions::close_confirmation_windows(&api.pool, Utc::now() + Duration::hours(73)).await.unwrap();
    for e in expect.values_mut() {
        e.pending = 0;
        e.pending_revenue = 0;
    }
    expect.retain(|_, e| *e != Expect::default());
    assert_eq!(actual(api.get(&uri).await.body), expect);
    let disputed = api.get("/v1/conversions?status=disputed&limit=200").await.body["data"].as_array().unwrap().len();
    assert_eq!(
        disputed,
        clicks.iter().enumerate().filter(|(n, c)| n % 6 == 5 && c.2 + Duration::minutes(30) <= now).count()
    );
}

async fn three_links(api: &Api) -> Vec<Value> {
    let mut links = Vec::new();
    for n in 0..3 {
        links.push(api.create("/v1/links", json!({"destination_url": format!("https://shop.example/{n}")})).await);
    }
    links
}

/// POSTs with the brand's key and an `Idempotency-Key`; returns the status.
async fn post_with_key(api: &Api, uri: &str, key: &str, body: Value) -> StatusCode {
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("authorization", format!("Bearer {}", api.key))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    api.router.clone().oneshot(request).await.unwrap().status()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_click_named_by_many_orders_is_acknowledged_at_once_and_they_are_credited_in_bulk(pool: PgPool) {
    let limits = [("PIXEL_RATE_PER_CLIENT", "1000000"), ("PIXEL_RATE_PER_PIXEL", "1000000")];
    let api = Api::with_state(AppState::new(pool, support::config(&limits))).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let (click_id, event) = Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::minutes(1)).event();
    // 600 orders name a click the API has not seen yet (more than one drain takes at once).
    for n in 0..600 {
        assert_eq!(purchase(&api, &format!("many-{n}"), "5.00", Some(click_id)).await.status, StatusCode::ACCEPTED);
    }
    // The batch's answer does not wait for them: they are queued in the statement that stores the click.
    let summary = api.ingest(vec![event]).await;
    assert_eq!(summary["stored"], 1);
    assert_eq!(api.count("reattribution_queue").await, 600);
    assert_eq!(api.reattribute().await, 500);
    assert_eq!(api.reattribute().await, 100);
    assert_eq!(api.reattribute().await, 0);
    let credited: i64 = sqlx::query_scalar("select count(*) from conversions where method = 'click' and link_id = $1")
        .bind(Uuid::parse_str(link["id"].as_str().unwrap()).unwrap())
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(credited, 600);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_openapi_document_describes_statuses_and_the_conversions_api(pool: PgPool) {
    let api = Api::new(pool).await;
    let doc = api.send(Method::GET, "/openapi.json", None, None).await.body;
    let post = &doc["paths"]["/v1/conversions"]["post"];
    for status in ["200", "201", "400", "401", "409", "422"] {
        assert!(post["responses"][status].is_object(), "POST /v1/conversions documents {status}");
    }
    assert!(post["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
    assert!(post["requestBody"]["content"]["application/json"]["schema"].is_object());
    for path in ["/v1/conversions/{order_id}/refunds", "/v1/conversions/{order_id}/cancel"] {
        assert!(doc["paths"][path]["post"]["responses"]["404"].is_object(), "{path}");
    }
    let statuses = &doc["components"]["schemas"]["Status"]["enum"];
    assert_eq!(statuses, &json!(["verified", "pending", "unconfirmed", "unverified", "disputed", "cancelled", "test"]));
    let list = &doc["paths"]["/v1/conversions"]["get"]["parameters"];
    assert!(list.as_array().unwrap().iter().any(|p| p["name"] == "status"));
}
