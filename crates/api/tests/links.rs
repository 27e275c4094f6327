//! Tracking links: creation, listing, editing, soft deletion, and everything a client can get wrong.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use api::http::AppState;
use api::Config;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use shared::{Code, CODE_ALPHABET};
use sqlx::PgPool;
use support::Api;

async fn full_link(api: &Api) -> (Value, Value, Value) {
    let creator = api.create("/v1/creators", json!({"name": "Jessica", "handle": "@jessica"})).await;
    let campaign = api.create("/v1/campaigns", json!({"name": "Spring drop"})).await;
    let link = api
        .create(
            "/v1/links",
            json!({
                "destination_url": "https://shop.example/products/serum?variant=2#reviews",
                "campaign_id": campaign["id"], "creator_id": creator["id"],
                "platform": "instagram", "content_type": "reel",
                "promo_code": "JESS20", "share_revenue": true
            }),
        )
        .await;
    (link, creator, campaign)
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn creating_a_link_returns_every_field_and_a_short_url(pool: PgPool) {
    let api = Api::new(pool).await;
    let (link, creator, campaign) = full_link(&api).await;
    let code = link["code"].as_str().unwrap();
    assert!(Code::parse(code).is_ok_and(|c| c.as_str() == code), "{code}");
    assert_eq!(link["short_url"], format!("https://trk.creatorscore.io/{code}"));
    assert_eq!(link["destination_url"], "https://shop.example/products/serum?variant=2#reviews");
    assert_eq!(link["creator_id"], creator["id"]);
    assert_eq!(link["campaign_id"], campaign["id"]);
    assert_eq!(link["platform"], "instagram");
    assert_eq!(link["content_type"], "reel");
    assert_eq!(link["promo_code"], "JESS20");
    assert_eq!(link["share_revenue"], true);
    assert_eq!(link["active"], true);
    assert_eq!(link["deleted_at"], Value::Null);
    assert!(link["created_at"].as_str().unwrap().ends_with('Z'));

    let fetched = api.get(&format!("/v1/links/{}", link["id"].as_str().unwrap())).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, link);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_minimal_link_needs_only_a_destination(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example"})).await;
    assert_eq!(link["destination_url"], "https://shop.example/");
    assert_eq!(link["share_revenue"], false);
    assert_eq!(link["platform"], Value::Null);
    assert_eq!(link["promo_code"], Value::Null);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn generated_codes_are_unique_and_drawn_from_the_alphabet(pool: PgPool) {
    let api = Api::new(pool).await;
    let mut codes = HashSet::new();
    for i in 0..200 {
        let link = api.create("/v1/links", json!({"destination_url": format!("https://shop.example/{i}")})).await;
        let code = link["code"].as_str().unwrap().to_owned();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        assert!(codes.insert(code));
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_code_collision_is_retried_with_a_fresh_code(pool: PgPool) {
    // The code source hands out the same code twice, then another: the second create collides once.
    let sequence = ["abcd2345", "abcd2345", "wxyz6789"].map(|c| Code::parse(c).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut state = AppState::new(pool, Config::from_lookup(|_| None).unwrap());
    state.codes = Arc::new(move || sequence[counter.fetch_add(1, Ordering::SeqCst).min(2)]);
    let api = Api::with_state(state).await;

    let first = api.create("/v1/links", json!({"destination_url": "https://a.example/"})).await;
    let second = api.create("/v1/links", json!({"destination_url": "https://b.example/"})).await;
    assert_eq!(first["code"], "abcd2345");
    assert_eq!(second["code"], "wxyz6789");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(api.count("links").await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_deleted_links_code_is_never_given_out_again(pool: PgPool) {
    let mut state = AppState::new(pool, Config::from_lookup(|_| None).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let sequence = ["abcd2345", "abcd2345", "wxyz6789"].map(|c| Code::parse(c).unwrap());
    state.codes = Arc::new(move || sequence[counter.fetch_add(1, Ordering::SeqCst).min(2)]);
    let api = Api::with_state(state).await;

    let first = api.create("/v1/links", json!({"destination_url": "https://a.example/"})).await;
    assert_eq!(
        api.delete(&format!("/v1/links/{}", first["id"].as_str().unwrap())).await.status,
        StatusCode::NO_CONTENT
    );
    let second = api.create("/v1/links", json!({"destination_url": "https://b.example/"})).await;
    assert_eq!(second["code"], "wxyz6789");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn invalid_destinations_are_422_and_nothing_is_written(pool: PgPool) {
    let api = Api::new(pool).await;
    let long = format!("https://shop.example/{}", "a".repeat(2048));
    for bad in [
        json!("ftp://shop.example/"),
        json!("javascript:alert(1)"),
        json!("/relative"),
        json!("https://user:pass@shop.example/"),
        json!("https://trk.creatorscore.io/abcd2345"),
        json!(long),
    ] {
        let response = api.post("/v1/links", json!({"destination_url": bad})).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(response.error_code(), "invalid_destination_url");
        assert!(response.body["error"]["message"].as_str().unwrap().contains("destination_url"));
    }
    assert_eq!(api.count("links").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn malformed_bodies_get_clear_errors(pool: PgPool) {
    let api = Api::new(pool).await;
    let cases = [
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            json!({"destination_url": "https://a.example", "code": "abcd2345"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"destination_url": "https://a.example", "platform": "myspace"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"destination_url": "https://a.example", "content_type": "Reel"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"destination_url": "https://a.example", "creator_id": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"destination_url": "https://a.example", "promo_code": "has space"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_promo_code",
        ),
    ];
    for (body, status, code) in cases {
        let response = api.post("/v1/links", body.clone()).await;
        assert_eq!((response.status, response.error_code()), (status, code), "{body}");
    }
    let unknown = api.post("/v1/links", json!({"destination_url": "https://a.example", "colour": "red"})).await;
    assert!(unknown.body["error"]["message"].as_str().unwrap().contains("colour"), "{}", unknown.body);

    let syntax = api.send(Method::POST, "/v1/links", Some(&api.key), Some(Body::from("{\"destination_url\":"))).await;
    assert_eq!((syntax.status, syntax.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
    assert_eq!(api.count("links").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_body_over_64_kib_is_413(pool: PgPool) {
    let api = Api::new(pool).await;
    let body = json!({"destination_url": "https://a.example/", "promo_code": "x".repeat(70 * 1024)});
    let response = api.post("/v1/links", body).await;
    assert_eq!((response.status, response.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(api.count("links").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn another_brands_creator_or_campaign_is_404_and_nothing_is_written(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    let creator = other.create("/v1/creators", json!({"name": "Theirs"})).await;
    let campaign = other.create("/v1/campaigns", json!({"name": "Theirs"})).await;

    let response =
        api.post("/v1/links", json!({"destination_url": "https://a.example", "creator_id": creator["id"]})).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.body["error"]["message"], "creator not found");
    let response =
        api.post("/v1/links", json!({"destination_url": "https://a.example", "campaign_id": campaign["id"]})).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.body["error"]["message"], "campaign not found");
    let missing = api
        .post("/v1/links", json!({"destination_url": "https://a.example", "creator_id": uuid::Uuid::new_v4()}))
        .await;
    // Exactly the answer for a creator that does not exist at all: nothing reveals the other brand's.
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"]["message"], "creator not found");
    assert_eq!(api.count("links").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn promo_codes_are_unique_among_active_links_whatever_the_case(pool: PgPool) {
    let api = Api::new(pool).await;
    let first = api.create("/v1/links", json!({"destination_url": "https://a.example", "promo_code": "JESS20"})).await;
    let clash = api.post("/v1/links", json!({"destination_url": "https://b.example", "promo_code": "jess20"})).await;
    assert_eq!((clash.status, clash.error_code()), (StatusCode::CONFLICT, "promo_code_taken"));
    assert_eq!(api.count("links").await, 1);

    // Another brand may use the same code.
    let other = api.other_brand().await;
    other.create("/v1/links", json!({"destination_url": "https://b.example", "promo_code": "JESS20"})).await;

    // Once the first link is deleted the code is free again.
    api.delete(&format!("/v1/links/{}", first["id"].as_str().unwrap())).await;
    api.create("/v1/links", json!({"destination_url": "https://b.example", "promo_code": "Jess20"})).await;

    // Taking a used code by editing is a conflict too.
    let third = api.create("/v1/links", json!({"destination_url": "https://c.example"})).await;
    let clash =
        api.patch(&format!("/v1/links/{}", third["id"].as_str().unwrap()), json!({"promo_code": "JESS20"})).await;
    assert_eq!((clash.status, clash.error_code()), (StatusCode::CONFLICT, "promo_code_taken"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn patch_changes_given_fields_clears_nulls_and_keeps_the_rest(pool: PgPool) {
    let api = Api::new(pool).await;
    let (link, _, _) = full_link(&api).await;
    let uri = format!("/v1/links/{}", link["id"].as_str().unwrap());
    let response = api
        .patch(&uri, json!({"destination_url": "https://shop.example/new", "promo_code": null, "platform": "tiktok"}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let updated = response.body;
    assert_eq!(updated["destination_url"], "https://shop.example/new");
    assert_eq!(updated["promo_code"], Value::Null);
    assert_eq!(updated["platform"], "tiktok");
    assert_eq!(updated["code"], link["code"]);
    assert_eq!(updated["creator_id"], link["creator_id"]);
    assert_eq!(updated["content_type"], "reel");
    assert_eq!(updated["share_revenue"], true);

    let code_change = api.patch(&uri, json!({"code": "abcd2345"})).await;
    assert_eq!(code_change.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_url = api.patch(&uri, json!({"destination_url": "mailto:x@y.z"})).await;
    assert_eq!(bad_url.error_code(), "invalid_destination_url");
    assert_eq!(api.get(&uri).await.body, updated);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn every_write_records_a_sync_entry_in_its_transaction(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let uri = format!("/v1/links/{}", link["id"].as_str().unwrap());
    api.patch(&uri, json!({"share_revenue": true})).await;
    api.delete(&uri).await;
    api.delete(&uri).await;
    // A failed write records nothing.
    api.patch(&uri, json!({"share_revenue": false})).await;
    let versions: Vec<i64> =
        sqlx::query_scalar("select version from link_sync_outbox order by id").fetch_all(&api.pool).await.unwrap();
    assert_eq!(versions, vec![1, 2, 3]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn deleting_deactivates_keeps_history_and_is_idempotent(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let id = link["id"].as_str().unwrap();
    let uri = format!("/v1/links/{id}");
    api.click(&[support::Click::new(&link, uuid::Uuid::new_v4(), chrono::Utc::now() - chrono::Duration::hours(1))])
        .await;

    assert_eq!(api.delete(&uri).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(&uri).await.status, StatusCode::NO_CONTENT);
    let deleted = api.get(&uri).await.body;
    assert_eq!(deleted["active"], false);
    assert!(deleted["deleted_at"].is_string());
    assert_eq!(deleted["code"], link["code"]);
    assert_eq!(api.get(&format!("{uri}/stats")).await.body["clicks"], 1);
    let edit = api.patch(&uri, json!({"destination_url": "https://b.example"})).await;
    assert_eq!((edit.status, edit.error_code()), (StatusCode::CONFLICT, "link_deleted"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn another_brands_link_is_404_for_every_verb(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    let theirs = other.create("/v1/links", json!({"destination_url": "https://theirs.example"})).await;
    let uri = format!("/v1/links/{}", theirs["id"].as_str().unwrap());

    for response in [
        api.get(&uri).await,
        api.patch(&uri, json!({"destination_url": "https://mine.example"})).await,
        api.delete(&uri).await,
        api.get(&format!("{uri}/stats")).await,
    ] {
        assert_eq!((response.status, response.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    }
    let untouched = other.get(&uri).await.body;
    assert_eq!(untouched, theirs);
    assert_eq!(api.get("/v1/links").await.body["data"], json!([]));
    // A malformed id is just as invisible.
    assert_eq!(api.get("/v1/links/not-a-uuid").await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn lists_filter_and_paginate_newest_first(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let sam = api.create("/v1/creators", json!({"name": "Sam"})).await;
    let spring = api.create("/v1/campaigns", json!({"name": "Spring"})).await;
    let mut jess_links = Vec::new();
    for i in 0..5 {
        let link = api
            .create(
                "/v1/links",
                json!({"destination_url": format!("https://a.example/{i}"), "creator_id": jess["id"],
                       "platform": if i % 2 == 0 { "tiktok" } else { "youtube" }, "campaign_id": spring["id"],
                       "content_type": "story"}),
            )
            .await;
        jess_links.push(link["id"].clone());
    }
    let sams = api.create("/v1/links", json!({"destination_url": "https://b.example", "creator_id": sam["id"]})).await;
    api.delete(&format!("/v1/links/{}", jess_links[0].as_str().unwrap())).await;

    let ids = |body: &Value| body["data"].as_array().unwrap().iter().map(|l| l["id"].clone()).collect::<Vec<_>>();
    let jess_id = jess["id"].as_str().unwrap();
    let all_jess = api.get(&format!("/v1/links?creator_id={jess_id}")).await.body;
    assert_eq!(ids(&all_jess), jess_links.iter().rev().cloned().collect::<Vec<_>>());

    let tiktok = api.get("/v1/links?platform=tiktok&active=true").await.body;
    assert_eq!(ids(&tiktok), vec![jess_links[4].clone(), jess_links[2].clone()]);
    let inactive = api.get("/v1/links?active=false").await.body;
    assert_eq!(ids(&inactive), vec![jess_links[0].clone()]);
    let campaign =
        api.get(&format!("/v1/links?campaign_id={}&content_type=story", spring["id"].as_str().unwrap())).await;
    assert_eq!(campaign.body["data"].as_array().unwrap().len(), 5);

    // Pages of two walk the whole list once, in order.
    let mut walked = Vec::new();
    let mut uri = "/v1/links?limit=2".to_owned();
    loop {
        let page = api.get(&uri).await.body;
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/links?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected = vec![sams["id"].clone()];
    expected.extend(jess_links.iter().rev().cloned());
    assert_eq!(walked, expected);

    for bad in [
        "/v1/links?limit=0",
        "/v1/links?limit=201",
        "/v1/links?cursor=garbage",
        "/v1/links?platform=myspace",
        "/v1/links?active=maybe",
    ] {
        assert_eq!(api.get(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}
