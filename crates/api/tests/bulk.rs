//! `POST /v1/links/bulk`: each item created or refused on its own, in order, with the codes a single
//! creation answers; and the refusals of the request as a whole.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::Api;

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn each_item_is_created_or_refused_on_its_own_in_order(pool: PgPool) {
    let api = Api::new(pool).await;
    let creator = api.create("/v1/creators", json!({"name": "Jessica"})).await;
    let other = api.other_brand().await;
    let strangers_creator = other.create("/v1/creators", json!({"name": "Someone else"})).await;
    let batch = json!({"links": [
        {"destination_url": "https://shop.example/a", "creator_id": creator["id"], "promo_code": "JESS20",
            "platform": "instagram"},
        {"destination_url": "not a url"},
        {"destination_url": "https://shop.example/c", "colour": "red"},
        {"destination_url": "https://shop.example/d", "creator_id": strangers_creator["id"]},
        {"destination_url": "https://shop.example/e", "promo_code": "jess20"},
        {"destination_url": 42},
        "https://shop.example/g",
        {"destination_url": "https://shop.example/h", "share_revenue": true},
    ]});
    let answer = api.post("/v1/links/bulk", batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let items = answer.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["index"], i, "{item}");
    }
    let code = |i: usize| items[i]["error"]["code"].as_str().unwrap_or_default().to_owned();
    assert_eq!(items[0]["link"]["destination_url"], "https://shop.example/a");
    assert_eq!(items[0]["link"]["promo_code"], "JESS20");
    assert_eq!(items[0].get("error"), None);
    assert_eq!(code(1), "invalid_destination_url");
    assert_eq!(code(2), "invalid_body");
    assert!(items[2]["error"]["message"].as_str().unwrap().contains("colour"), "{}", items[2]);
    assert_eq!(code(3), "not_found");
    assert!(items[3]["error"]["message"].as_str().unwrap().contains("creator"), "{}", items[3]);
    assert_eq!(code(4), "promo_code_taken");
    assert_eq!(code(5), "invalid_body");
    assert_eq!(code(6), "invalid_body");
    assert_eq!(items[7]["link"]["share_revenue"], true);
    assert_eq!(items[7].get("error"), None);

    // Only the valid items were stored, and they are links like any other.
    assert_eq!(api.count("links").await, 2);
    let listed = api.get("/v1/links").await;
    let mut destinations: Vec<&str> =
        listed.body["data"].as_array().unwrap().iter().map(|l| l["destination_url"].as_str().unwrap()).collect();
    destinations.sort_unstable();
    assert_eq!(destinations, ["https://shop.example/a", "https://shop.example/h"]);
    let fetched = api.get(&format!("/v1/links/{}", items[0]["link"]["id"].as_str().unwrap())).await;
    assert_eq!(fetched.body, items[0]["link"]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_batch_holds_one_to_a_hundred_links(pool: PgPool) {
    let api = Api::new(pool).await;
    let links = |n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({"destination_url": format!("https://shop.example/p/{i}")})).collect()
    };
    for n in [0, 101] {
        let answer = api.post("/v1/links/bulk", json!({ "links": links(n) })).await;
        assert_eq!((answer.status, answer.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{n}");
    }
    for body in [json!([]), json!({}), json!({"links": {}}), json!({"links": [], "extra": 1}), json!([{"links": []}])] {
        let answer = api.post("/v1/links/bulk", body.clone()).await;
        assert_eq!((answer.status, answer.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{body}");
    }
    assert_eq!(api.count("links").await, 0);

    let answer = api.post("/v1/links/bulk", json!({ "links": links(100) })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let items = answer.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["link"]["destination_url"], format!("https://shop.example/p/{i}"));
    }
    assert_eq!(api.count("links").await, 100);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_batch_may_be_larger_than_other_bodies_but_not_unbounded(pool: PgPool) {
    let api = Api::new(pool).await;
    // About 100 KiB: over the 64 KiB every other body is held to.
    let long_path = "p".repeat(1000);
    let links: Vec<Value> =
        (0..100).map(|i| json!({"destination_url": format!("https://shop.example/{long_path}/{i}")})).collect();
    let answer = api.post("/v1/links/bulk", json!({ "links": links })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let huge = json!({"links": [{"destination_url": format!("https://shop.example/{}", "p".repeat(2 * 1024 * 1024))}]});
    let answer = api.post("/v1/links/bulk", huge).await;
    assert_eq!((answer.status, answer.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let unauthenticated = api.send(axum::http::Method::POST, "/v1/links/bulk", None, None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
}
