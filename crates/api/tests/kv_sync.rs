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

fn code(link: &Value) -> String {
    link["code"].as_str().unwrap().to_owned()
}

fn uri(link: &Value) -> String {
    format!("/v1/links/{}", link["id"].as_str().unwrap())
}

async fn parked_codes(api: &Api) -> Vec<String> {
    api::sync::list_parked(&api.pool).await.unwrap().into_iter().map(|p| p.code).collect()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_poison_record_is_parked_with_its_error_while_the_rest_sync(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let mut links = Vec::new();
    for i in 0..6 {
        links.push(api.create("/v1/links", json!({"destination_url": format!("https://shop.example/{i}")})).await);
    }
    let deleted = links.pop().unwrap();
    api.delete(&uri(&deleted)).await;
    let poison = code(&links[2]);
    kv.set(|kv| kv.poisoned = vec![poison.clone()]);

    // Seven changes (six links, one deleted): all settled in one drain, one of them parked.
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 7);
    assert_eq!(pending(&api).await, 1, "the parked row is neither done nor drained again");
    let values = kv.values();
    for link in links.iter().filter(|l| code(l) != poison) {
        assert_eq!(record(&values, &link["code"]).unwrap().destination_url, link["destination_url"].as_str().unwrap());
    }
    assert!(!values.contains_key(&poison));
    let parked = api::sync::list_parked(&api.pool).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].code.as_str(), parked[0].version), (poison.as_str(), 1));
    assert_eq!(parked[0].link_id.to_string(), links[2]["id"].as_str().unwrap());
    assert!(parked[0].error.contains("400") && parked[0].error.contains(&poison), "{}", parked[0].error);

    // Later changes are not held back, and the parked one is not pushed again on its own.
    let later = api.create("/v1/links", json!({"destination_url": "https://shop.example/later"})).await;
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 1);
    assert!(record(&kv.values(), &later["code"]).is_some());
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 0);

    // Once the cause is gone, a retry pushes the link's current state.
    kv.set(|kv| kv.poisoned.clear());
    assert_eq!(api::sync::retry_parked(&api.pool).await.unwrap(), 1);
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 1);
    assert!(record(&kv.values(), &links[2]["code"]).is_some());
    assert!(parked_codes(&api).await.is_empty());
    assert_eq!(pending(&api).await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_parked_change_is_settled_by_a_later_push_of_its_link(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/too-long"})).await;
    kv.set(|kv| kv.poisoned = vec![code(&link)]);
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 1);
    assert_eq!(parked_codes(&api).await, [code(&link)]);

    kv.set(|kv| kv.poisoned.clear());
    api.patch(&uri(&link), json!({"destination_url": "https://shop.example/fixed"})).await;
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 1);
    let stored = record(&kv.values(), &link["code"]).unwrap();
    assert_eq!((stored.destination_url.as_str(), stored.version), ("https://shop.example/fixed", 2));
    assert!(parked_codes(&api).await.is_empty());
    assert_eq!(pending(&api).await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_refused_request_as_a_whole_parks_nothing(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let wrong = api::sync::CloudflareKv::new(
        &kv.base.parse().unwrap(),
        support::cloudflare::ACCOUNT,
        "0000000000000000000000000000000f",
        support::cloudflare::TOKEN.into(),
    )
    .unwrap();
    for i in 0..3 {
        api.create("/v1/links", json!({"destination_url": format!("https://shop.example/{i}")})).await;
    }
    // A namespace that does not exist (404) is the request's fault, not any record's.
    let err = api::sync::drain_once(&api.pool, &wrong, 1000).await.unwrap_err();
    assert!(format!("{err:#}").contains("404"), "{err:#}");
    assert!(parked_codes(&api).await.is_empty());
    assert_eq!(pending(&api).await, 3);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_push_whose_outcome_is_unknown_is_pushed_again_with_the_links_current_state(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/v1"})).await;
    // KV applies the write, but the answer is a 502: the drainer cannot know it landed.
    kv.set(|kv| kv.apply_then_fail = 1);
    assert!(api::sync::drain_once(&api.pool, &sink, 1000).await.is_err());
    assert_eq!(pending(&api).await, 1);
    assert_eq!(record(&kv.values(), &link["code"]).unwrap().version, 1);

    // The link changes meanwhile: what is pushed again is its state now, not the change that was unsettled.
    api.patch(&uri(&link), json!({"destination_url": "https://shop.example/v2"})).await;
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 2);
    let stored = record(&kv.values(), &link["code"]).unwrap();
    assert_eq!((stored.destination_url.as_str(), stored.version), ("https://shop.example/v2", 2));
    let applied = kv.kv.lock().unwrap().applied.clone();
    assert_eq!(applied.len(), 2, "one push per drain, one key each: {applied:?}");
    assert_eq!(pending(&api).await, 0);
    assert!(parked_codes(&api).await.is_empty());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_timed_out_write_that_lands_late_is_repaired_by_the_reconciliation(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let impatient = kv.sink().with_timeout(std::time::Duration::from_millis(200)).unwrap();
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/v1"})).await;
    let hold = std::sync::Arc::new(tokio::sync::Notify::new());
    kv.set(|kv| kv.hold_once = Some(hold.clone()));
    let err = api::sync::drain_once(&api.pool, &impatient, 1000).await.unwrap_err();
    assert!(format!("{err:#}").contains("KV bulk write"), "{err:#}");
    assert_eq!(pending(&api).await, 1);

    // Pushed again after a change: KV holds version 2 ...
    api.patch(&uri(&link), json!({"destination_url": "https://shop.example/v2"})).await;
    assert_eq!(api::sync::drain_once(&api.pool, &impatient, 1000).await.unwrap(), 2);
    assert_eq!(record(&kv.values(), &link["code"]).unwrap().version, 2);
    // ... until the request that timed out lands, late, with version 1 (Cloudflare cannot refuse it).
    hold.notify_one();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while record(&kv.values(), &link["code"]).unwrap().version != 1 {
        assert!(std::time::Instant::now() < deadline, "the late write never landed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The reconciliation writes the newest state over it.
    let report = api::sync::reconcile_if_due(&api.pool, &impatient, std::time::Duration::from_secs(3600))
        .await
        .unwrap()
        .expect("due: never run before");
    assert_eq!((report.written, report.deleted, report.parked), (1, 0, 0));
    let stored = record(&kv.values(), &link["code"]).unwrap();
    assert_eq!((stored.destination_url.as_str(), stored.version), ("https://shop.example/v2", 2));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_reconciliation_pushes_again_the_links_changed_in_the_last_day_once_per_period(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let recent = api.create("/v1/links", json!({"destination_url": "https://shop.example/recent"})).await;
    let old = api.create("/v1/links", json!({"destination_url": "https://shop.example/old"})).await;
    let gone = api.create("/v1/links", json!({"destination_url": "https://shop.example/gone"})).await;
    api.delete(&uri(&gone)).await;
    while api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap() > 0 {}
    sqlx::query("update links set updated_at = now() - interval '25 hours' where id = $1::uuid")
        .bind(old["id"].as_str().unwrap())
        .execute(&api.pool)
        .await
        .unwrap();
    // KV lost every record, and the deleted link's came back (a write that landed late).
    kv.set(|kv| {
        kv.values.clear();
        kv.values.insert(code(&gone), "stale".into());
    });

    let every = std::time::Duration::from_secs(3600);
    let report = api::sync::reconcile_if_due(&api.pool, &sink, every).await.unwrap().expect("due");
    assert_eq!((report.written, report.deleted, report.parked), (1, 1, 0));
    let values = kv.values();
    assert_eq!(record(&values, &recent["code"]).unwrap().destination_url, "https://shop.example/recent");
    assert!(!values.contains_key(&code(&old)), "changed more than a day ago: left alone");
    assert!(!values.contains_key(&code(&gone)));

    // Another process looking right after finds it done for this period.
    assert_eq!(api::sync::reconcile_if_due(&api.pool, &sink, every).await.unwrap(), None);
    // A period later it is due again.
    sqlx::query("update kv_reconcile set started_at = started_at - interval '61 minutes'")
        .execute(&api.pool)
        .await
        .unwrap();
    assert!(api::sync::reconcile_if_due(&api.pool, &sink, every).await.unwrap().is_some());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_reconciliation_that_fails_is_run_again_at_the_next_look(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    kv.set_failing(true);
    let every = std::time::Duration::from_secs(3600);
    assert!(api::sync::reconcile_if_due(&api.pool, &sink, every).await.is_err());
    kv.set_failing(false);
    let report = api::sync::reconcile_if_due(&api.pool, &sink, every).await.unwrap().expect("still due");
    assert_eq!(report.written, 1);
    assert!(record(&kv.values(), &link["code"]).is_some());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_record_the_reconciliation_cannot_push_is_parked_once(pool: PgPool) {
    let api = Api::new(pool).await;
    let kv = StandIn::start().await;
    let sink = kv.sink();
    let good = api.create("/v1/links", json!({"destination_url": "https://shop.example/good"})).await;
    let bad = api.create("/v1/links", json!({"destination_url": "https://shop.example/bad"})).await;
    kv.set(|kv| kv.poisoned = vec![code(&bad)]);
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    for _ in 0..2 {
        let report = api::sync::reconcile(&api.pool, &sink, since, 1000).await.unwrap();
        assert_eq!((report.written, report.parked), (1, 1));
    }
    assert_eq!(parked_codes(&api).await, [code(&bad)]);
    assert!(record(&kv.values(), &good["code"]).is_some());
    // The outbox rows of both links are still drained as usual: the good one syncs, and the bad one,
    // refused again, is settled against the change already parked.
    assert_eq!(api::sync::drain_once(&api.pool, &sink, 1000).await.unwrap(), 2);
    assert_eq!(parked_codes(&api).await, [code(&bad)]);
    assert_eq!(pending(&api).await, 1, "only the parked change is left");
}
