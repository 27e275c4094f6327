//! Link records reach KV through the outbox: in order, newest version last, nothing lost while KV fails.

mod support;

use serde_json::{json, Value};
use shared::LinkRecord;
use sqlx::PgPool;
use support::cloudflare::StandIn;
use support::Api;

async fn pending(api: &Api) -> i64 {
    sqlx::query_scalar("select count(*) from link_sync_outbox where done_at is null")
        .fetch_one(&api.pool)
        .await
        .unwrap()
}

fn record(values: &std::collections::BTreeMap<String, String>, code: &Value) -> Option<LinkRecord> {
    values.get(code.as_str().unwrap()).map(|v| LinkRecord::from_json(v).unwrap())
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn active_links_are_written_and_deleted_links_removed(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let keep = api.create("/v1/links", json!({"destination_url": "https://shop.example/a?x=1#f"})).await;
    let gone = api.create("/v1/links", json!({"destination_url": "https://shop.example/b"})).await;
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 2);
    assert!(record(&kv.values(), &gone["code"]).is_some());

    api.delete(&format!("/v1/links/{}", gone["id"].as_str().unwrap())).await;
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 1);
    let values = kv.values();
    let kept = record(&values, &keep["code"]).unwrap();
    assert_eq!(kept.link_id.to_string(), keep["id"].as_str().unwrap());
    assert_eq!(kept.destination_url, "https://shop.example/a?x=1#f");
    assert_eq!(kept.version, 1);
    assert!(record(&values, &gone["code"]).is_none());
    assert_eq!(pending(&api).await, 0);
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_newest_version_wins_when_changes_pile_up(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/v1"})).await;
    let uri = format!("/v1/links/{}", link["id"].as_str().unwrap());
    api.patch(&uri, json!({"destination_url": "https://shop.example/v2"})).await;
    api.patch(&uri, json!({"destination_url": "https://shop.example/v3"})).await;
    // Three pending changes, drained in batches of one: every push carries the current state.
    let sink = kv.sink();
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1).await.unwrap(), 1);
    let first = record(&kv.values(), &link["code"]).unwrap();
    assert_eq!((first.destination_url.as_str(), first.version), ("https://shop.example/v3", 3));
    while api::sync::drain_once(&api.pool, &sink, 1).await.unwrap() > 0 {}
    let last = record(&kv.values(), &link["code"]).unwrap();
    assert_eq!((last.destination_url.as_str(), last.version), ("https://shop.example/v3", 3));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn while_kv_fails_the_outbox_keeps_every_change_and_the_newest_lands_after(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let a = api.create("/v1/links", json!({"destination_url": "https://shop.example/a1"})).await;
    let b = api.create("/v1/links", json!({"destination_url": "https://shop.example/b"})).await;
    kv.set_failing(true);
    assert!(api::sync::drain_once(&api.pool, &sink, 1000).await.is_err());
    // Changes keep coming while KV is down.
    api.patch(
        &format!("/v1/links/{}", a["id"].as_str().unwrap()),
        json!({"destination_url": "https://shop.example/a2"}),
    )
    .await;
    api.delete(&format!("/v1/links/{}", b["id"].as_str().unwrap())).await;
    assert!(api::sync::drain_once(&api.pool, &sink, 1000).await.is_err());
    assert_eq!(pending(&api).await, 4);
    assert!(kv.values().is_empty());

    kv.set_failing(false);
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 4);
    let values = kv.values();
    assert_eq!(record(&values, &a["code"]).unwrap().destination_url, "https://shop.example/a2");
    assert!(record(&values, &b["code"]).is_none());
    assert_eq!(pending(&api).await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn keys_cloudflare_could_not_apply_are_sent_again(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    kv.kv.lock().unwrap().unsuccessful_once = vec![link["code"].as_str().unwrap().to_owned()];
    assert!(api::sync::drain_once(&api.pool, &sink, 1000).await.is_err());
    assert_eq!(pending(&api).await, 1);
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 1);
    assert!(record(&kv.values(), &link["code"]).is_some());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_wrong_token_is_a_failure_not_a_success(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let wrong = api::sync::CloudflareKv::new(
        &kv.base.parse().unwrap(),
        support::cloudflare::ACCOUNT,
        support::cloudflare::NAMESPACE,
        "wrong".into(),
    )
    .unwrap();
    api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let err = api::sync::drain_once(&api.pool, &wrong, 1000).await.unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");
    assert_eq!(pending(&api).await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn resync_rewrites_every_active_link_and_deletes_inactive_ones(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let mut active = Vec::new();
    for i in 0..7 {
        active.push(api.create("/v1/links", json!({"destination_url": format!("https://shop.example/{i}")})).await);
    }
    let deleted = api.create("/v1/links", json!({"destination_url": "https://shop.example/gone"})).await;
    api.delete(&format!("/v1/links/{}", deleted["id"].as_str().unwrap())).await;
    // A stale record of the deleted link sits in KV, as after a lost sync.
    kv.kv.lock().unwrap().values.insert(deleted["code"].as_str().unwrap().to_owned(), "stale".into());

    let report = api::sync::resync(&api.pool, &kv.sink(), 3).await.unwrap();
    assert_eq!((report.written, report.deleted), (7, 1));
    let values = kv.values();
    assert_eq!(values.len(), 7);
    for link in &active {
        assert_eq!(record(&values, &link["code"]).unwrap().destination_url, link["destination_url"].as_str().unwrap());
    }
}
