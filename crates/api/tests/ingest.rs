//! `POST /internal/clicks`: batches from the edge are stored once, classified, and stripped of the user agent.

mod support;

use api::http::AppState;
use api::Config;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::Api;
use uuid::Uuid;

const TOKEN: &str = support::EDGE_TOKEN;
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

async fn api(pool: PgPool) -> Api {
    Api::new(pool).await
}

fn click(link: &Value, ua: Option<&str>) -> Value {
    let mut event = json!({
        "v": 1,
        "click_id": Uuid::new_v4().simple().to_string(),
        "code": link["code"],
        "link_id": link["id"],
        "occurred_at_ms": 1_764_000_000_000i64,
        "visitor_id": Uuid::new_v4().simple().to_string(),
        "new_visitor": true,
        "bot": false,
        "country": "DE",
        "referrer_host": "l.instagram.com",
    });
    if let Some(ua) = ua {
        event["user_agent"] = json!(ua);
    }
    event
}

async fn post_batch(api: &Api, clicks: Vec<Value>) -> support::Response {
    let body = Body::from(json!({ "clicks": clicks }).to_string());
    api.send(Method::POST, "/internal/clicks", Some(TOKEN), Some(body)).await
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_batch_is_stored_classified_and_without_the_user_agent(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let response = post_batch(&api, vec![click(&link, Some(IPHONE)), click(&link, None)]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body, json!({"received": 2, "stored": 2, "duplicates": 0, "unknown_links": 0, "rejected": []}));

    type Row = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "select device_type, browser, os, country, referrer_host from clicks order by device_type nulls last",
    )
    .fetch_all(&api.pool)
    .await
    .unwrap();
    assert_eq!(
        rows[0],
        (
            Some("mobile".into()),
            Some("Mobile Safari".into()),
            Some("iOS".into()),
            Some("DE".into()),
            Some("l.instagram.com".into())
        )
    );
    assert_eq!(rows[1].0, None);

    // Nothing that could hold a user agent or an address exists to be filled.
    let columns: Vec<String> =
        sqlx::query_scalar("select column_name from information_schema.columns where table_name = 'clicks'")
            .fetch_all(&api.pool)
            .await
            .unwrap();
    assert!(columns.iter().all(|c| !c.contains("agent") && !c.contains("ip")), "{columns:?}");
    let stats = api.get(&format!("/v1/links/{}/stats", link["id"].as_str().unwrap())).await.body;
    assert_eq!(stats["clicks"], 2);
    assert_eq!(stats["by_os"], json!({"iOS": 1, "unknown": 1}));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_redelivered_batch_changes_nothing(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let batch: Vec<Value> = (0..50).map(|_| click(&link, Some(IPHONE))).collect();
    assert_eq!(post_batch(&api, batch.clone()).await.body["stored"], 50);
    let again = post_batch(&api, batch.clone()).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!((again.body["stored"].clone(), again.body["duplicates"].clone()), (json!(0), json!(50)));
    // A click repeated inside one batch is stored once too.
    let fresh = click(&link, None);
    let repeated = post_batch(&api, vec![fresh.clone(), fresh]).await.body;
    assert_eq!((repeated["stored"].clone(), repeated["duplicates"].clone()), (json!(1), json!(1)));
    assert_eq!(api.count("clicks").await, 51);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn malformed_events_are_rejected_by_index_and_the_rest_stored(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let mut bad_country = click(&link, None);
    bad_country["country"] = json!("germany");
    let mut bad_version = click(&link, None);
    bad_version["v"] = json!(2);
    let mut bad_code = click(&link, None);
    bad_code["code"] = json!("0000000O");
    let batch = vec![click(&link, None), json!("not an event"), bad_country, click(&link, None), bad_version, bad_code];
    let response = post_batch(&api, batch).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["stored"], 2);
    let indexes: Vec<u64> =
        response.body["rejected"].as_array().unwrap().iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, vec![1, 2, 4, 5]);
    assert!(response.body["rejected"][1]["error"].as_str().unwrap().contains("country"));
    assert_eq!(api.count("clicks").await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn clicks_for_unknown_links_are_counted_not_fatal(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let mut unknown = click(&link, None);
    unknown["link_id"] = json!(Uuid::new_v4());
    let mut mismatched = click(&link, None);
    mismatched["code"] = json!("zzzzzzzz");
    let response = post_batch(&api, vec![unknown, click(&link, None), mismatched]).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!((response.body["stored"].clone(), response.body["unknown_links"].clone()), (json!(1), json!(2)));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn ingestion_needs_the_edge_token(pool: PgPool) {
    let api = api(pool.clone()).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let body = || Some(Body::from(json!({"clicks": [click(&link, None)]}).to_string()));
    for auth in [None, Some("wrong"), Some(api.key.as_str())] {
        let response = api.send(Method::POST, "/internal/clicks", auth, body()).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    // With no token configured, nothing gets in.
    let closed = Api::with_state(AppState::new(pool, Config::from_lookup(|_| None).unwrap())).await;
    assert_eq!(closed.send(Method::POST, "/internal/clicks", Some(""), body()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.count("clicks").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn oversized_batches_are_refused_whole(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let batch: Vec<Value> = (0..1001).map(|_| click(&link, None)).collect();
    let response = post_batch(&api, batch).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large"));
    assert_eq!(api.count("clicks").await, 0);
}
