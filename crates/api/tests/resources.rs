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

/// Runs the key listener of `api`'s process until the returned sender says stop, and waits until it is
/// subscribed.
async fn listening(api: &Api) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(api::brands::run_key_listener(api.pool.clone(), api.state.api_keys.clone(), stopped));
    until("the key listener subscribes", || api.state.api_keys.listening()).await;
    stop
}

/// Waits until `done` holds (a notice is delivered when the change commits, to another connection).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within 30 s");
}

async fn status(api: &Api, key: &str) -> StatusCode {
    api.send(Method::GET, "/v1/links", Some(key), None).await.status
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_key_revoked_anywhere_stops_working_in_every_process_that_remembered_it(pool: PgPool) {
    let one = Api::new(pool).await;
    let two = one.another_process();
    let _listeners = (listening(&one).await, listening(&two).await);
    let second = api::brands::create_key(&one.pool, one.brand_id).await.unwrap();
    for api in [&one, &two] {
        assert_eq!(status(api, &one.key).await, StatusCode::OK);
        assert_eq!(status(api, &second).await, StatusCode::OK);
    }
    // Remembered keys are checked against their hash, not taken on their prefix.
    let mut forged = second.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(status(&one, &forged).await, StatusCode::UNAUTHORIZED);

    // Revoked from a third process (the command line): both forget the key when the notice arrives.
    let seen = (one.state.api_keys.generation(), two.state.api_keys.generation());
    api::brands::revoke_key(&one.pool, &one.key[..12]).await.unwrap();
    until("both processes get the notice", || {
        one.state.api_keys.generation() > seen.0 && two.state.api_keys.generation() > seen.1
    })
    .await;
    for api in [&one, &two] {
        assert_eq!(status(api, &one.key).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(api, &second).await, StatusCode::OK);
    }

    // Without the notice (the trigger off), a remembered key would still be taken: what the notice is for.
    sqlx::query("alter table api_keys disable trigger api_keys_changed").execute(&one.pool).await.unwrap();
    api::brands::revoke_key(&one.pool, &second[..12]).await.unwrap();
    assert_eq!(status(&one, &second).await, StatusCode::OK);
    // A process whose subscription is lost forgets everything and reads every key until it is back.
    sqlx::query(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and query ilike 'listen%'",
    )
    .execute(&one.pool)
    .await
    .unwrap();
    until("the lost subscriptions are noticed", || !one.state.api_keys.listening() && !two.state.api_keys.listening())
        .await;
    assert_eq!(status(&one, &second).await, StatusCode::UNAUTHORIZED);
    until("the listener subscribes again", || one.state.api_keys.listening()).await;
    assert_eq!(status(&one, &second).await, StatusCode::UNAUTHORIZED);
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
