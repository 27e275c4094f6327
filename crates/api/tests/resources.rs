//! Brands, keys, creators, campaigns, health and the OpenAPI document.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::Api;

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn brand_endpoints_need_a_valid_unrevoked_key(pool: PgPool) {
    let api = Api::new(pool).await;
    for auth in [None, Some("garbage"), Some("csk_abcd2345_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
        let response = api.send(Method::GET, "/v1/links", auth, None).await;
        assert_eq!((response.status, response.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{auth:?}");
    }
    // The right prefix with the wrong secret.
    let mut forged = api.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(api.send(Method::GET, "/v1/links", Some(&forged), None).await.status, StatusCode::UNAUTHORIZED);

    let second = api::brands::create_key(&api.pool, api.brand_id).await.unwrap();
    assert_eq!(api.send(Method::GET, "/v1/links", Some(&second), None).await.status, StatusCode::OK);
    api::brands::revoke_key(&api.pool, &api.key[..12]).await.unwrap();
    assert_eq!(api.send(Method::GET, "/v1/links", Some(&api.key), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.send(Method::GET, "/v1/links", Some(&second), None).await.status, StatusCode::OK);
    assert!(api::brands::revoke_key(&api.pool, "csk_zzzzzzzz").await.is_err());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn keys_are_stored_only_as_hashes(pool: PgPool) {
    let api = Api::new(pool).await;
    let stored: Vec<(String, Vec<u8>)> =
        sqlx::query_as("select prefix, key_hash from api_keys").fetch_all(&api.pool).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(api.key.contains(&stored[0].0));
    assert_eq!(stored[0].1.len(), 32);
    assert!(!String::from_utf8_lossy(&stored[0].1).contains(&api.key[13..]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn creators_are_created_listed_and_fetched(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "  Jessica ", "handle": "@jessica"})).await;
    assert_eq!(jess["name"], "Jessica");
    assert_eq!(jess["handle"], "@jessica");
    let sam = api.create("/v1/creators", json!({"name": "Sam"})).await;
    assert_eq!(sam["handle"], Value::Null);

    let list = api.get("/v1/creators").await;
    assert_eq!(list.body["data"], json!([sam, jess]));
    assert_eq!(list.body["next_cursor"], Value::Null);
    let page = api.get("/v1/creators?limit=1").await.body;
    assert_eq!(page["data"], json!([sam]));
    let next = api.get(&format!("/v1/creators?limit=1&cursor={}", page["next_cursor"].as_str().unwrap())).await.body;
    assert_eq!(next["data"], json!([jess]));
    assert_eq!(api.get(&format!("/v1/creators/{}", jess["id"].as_str().unwrap())).await.body, jess);

    for bad in [json!({"name": ""}), json!({"name": "x".repeat(201)}), json!({"name": "ok", "followers": 3})] {
        assert_eq!(api.post("/v1/creators", bad).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn campaigns_are_created_listed_and_fetched(pool: PgPool) {
    let api = Api::new(pool).await;
    let spring = api.create("/v1/campaigns", json!({"name": "Spring drop"})).await;
    assert_eq!(spring["name"], "Spring drop");
    assert_eq!(api.get("/v1/campaigns").await.body["data"], json!([spring]));
    assert_eq!(api.get(&format!("/v1/campaigns/{}", spring["id"].as_str().unwrap())).await.body, spring);
    assert_eq!(api.post("/v1/campaigns", json!({"name": "\u{0007}"})).await.error_code(), "invalid_name");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn one_brand_never_sees_another_brands_creators_or_campaigns(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    let creator = other.create("/v1/creators", json!({"name": "Theirs"})).await;
    let campaign = other.create("/v1/campaigns", json!({"name": "Theirs"})).await;
    assert_eq!(
        api.get(&format!("/v1/creators/{}", creator["id"].as_str().unwrap())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!("/v1/campaigns/{}", campaign["id"].as_str().unwrap())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.get("/v1/creators").await.body["data"], json!([]));
    assert_eq!(api.get("/v1/campaigns").await.body["data"], json!([]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn health_readiness_and_unknown_routes(pool: PgPool) {
    let api = Api::new(pool).await;
    let live = api.send(Method::GET, "/healthz", None, None).await;
    assert_eq!((live.status, live.body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let ready = api.send(Method::GET, "/readyz", None, None).await;
    assert_eq!((ready.status, ready.body["status"].as_str()), (StatusCode::OK, Some("ready")));
    let missing = api.send(Method::GET, "/v2/nothing", None, None).await;
    assert_eq!((missing.status, missing.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let wrong_method = api.send(Method::PUT, "/v1/links", Some(&api.key), None).await;
    assert_eq!(
        (wrong_method.status, wrong_method.error_code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn readiness_fails_when_the_database_is_gone(pool: PgPool) {
    let api = Api::new(pool).await;
    api.pool.close().await;
    let ready = api.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_openapi_document_describes_every_endpoint(pool: PgPool) {
    let api = Api::new(pool).await;
    let doc = api.send(Method::GET, "/openapi.json", None, None).await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/creators",
        "/v1/creators/{id}",
        "/v1/campaigns",
        "/v1/campaigns/{id}",
        "/v1/links",
        "/v1/links/{id}",
        "/v1/links/{id}/stats",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/v1/links"]["post"]["requestBody"].is_object());
    assert!(doc["components"]["schemas"]["Link"]["properties"]["short_url"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
}
