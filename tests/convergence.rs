//! The edge converges on the links table, on the real Workers runtime (`wrangler dev`) and, where the API
//! takes part, the real `api` binary and PostgreSQL: a record older than the one KV holds never replaces
//! it (nor brings a deactivated link back), a record the edge would not redirect to never reaches KV, and
//! one bad record is parked by the API while every other change reaches the edge.

use std::time::Duration;

use e2e::stack::{start, Stack};
use e2e::wrangler::{Wrangler, WranglerOptions};
use e2e::{http, wait_until};
use serde_json::{json, Value};
use shared::LinkRecord;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(60);

/// POSTs `body` to a sync route with the worker's token: the status and the JSON answer.
fn sync(worker: &Wrangler, path: &str, body: &Value) -> (u16, Value) {
    let token = worker.options().kv_sync_token.clone().expect("started with a sync token");
    let mut response = http()
        .post(worker.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("the sync route answers");
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

fn write(worker: &Wrangler, code: &str, record: &LinkRecord) -> (u16, Value) {
    sync(worker, "/_internal/kv/bulk", &json!([{"key": code, "value": record.to_json()}]))
}

fn delete(worker: &Wrangler, code: &str, version: i64) -> (u16, Value) {
    sync(worker, "/_internal/kv/bulk/delete", &json!([{"key": code, "version": version}]))
}

fn record(destination: &str, version: i64) -> LinkRecord {
    LinkRecord::new(Uuid::from_u128(77), destination.to_owned(), version)
}

/// A `GET` of `code` at the edge: the status and, for a redirect, the `Location` up to its `cs_ref`.
fn resolve(worker: &Wrangler, code: &str) -> (u16, Option<String>) {
    let mut response = http().get(worker.url(&format!("/{code}"))).call().expect("the worker answers");
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(|l| l.split("cs_ref=").next().unwrap_or_default().to_owned());
    let _ = response.body_mut().read_to_string();
    (response.status().as_u16(), location)
}

fn wait_for_location(worker: &Wrangler, code: &str, expected: &str) {
    wait_until(&format!("{code} to redirect to {expected}"), LIMIT, || {
        (resolve(worker, code) == (302, Some(expected.to_owned()))).then_some(())
    });
}

fn stale(code: &str, stored_version: i64) -> Value {
    json!([{"key": code, "stored_version": stored_version}])
}

#[test]
fn a_record_older_than_the_one_in_kv_is_refused_as_stale_and_named_in_the_answer() {
    let worker = Wrangler::start(WranglerOptions::default());
    let code = "stqr2345";
    assert_eq!(write(&worker, code, &record("https://shop.example/v5", 5)), (200, json!({"written": 1})));
    wait_for_location(&worker, code, "https://shop.example/v5?");

    // A lower version loses: nothing written, and the answer says which key and what KV holds.
    let (status, answer) = write(&worker, code, &record("https://shop.example/v3", 3));
    assert_eq!((status, answer), (200, json!({"written": 0, "stale": stale(code, 5)})));
    assert_eq!(resolve(&worker, code), (302, Some("https://shop.example/v5?".to_owned())));

    // The same version again is the same change: applied, idempotently. A higher one wins.
    assert_eq!(write(&worker, code, &record("https://shop.example/v5", 5)), (200, json!({"written": 1})));
    assert_eq!(write(&worker, code, &record("https://shop.example/v6", 6)), (200, json!({"written": 1})));
    wait_for_location(&worker, code, "https://shop.example/v6?");

    // In one batch, only the stale entry is skipped.
    let batch = json!([
        {"key": code, "value": record("https://shop.example/v4", 4).to_json()},
        {"key": "fres2345", "value": record("https://shop.example/fresh", 1).to_json()},
    ]);
    let (status, answer) = sync(&worker, "/_internal/kv/bulk", &batch);
    assert_eq!((status, answer), (200, json!({"written": 1, "stale": stale(code, 6)})));
    wait_for_location(&worker, "fres2345", "https://shop.example/fresh?");
    assert_eq!(resolve(&worker, code), (302, Some("https://shop.example/v6?".to_owned())));
}

#[test]
fn a_deactivated_link_stays_a_404_when_an_older_record_arrives_late() {
    let worker = Wrangler::start(WranglerOptions::default());
    let code = "dead2345";
    assert_eq!(write(&worker, code, &record("https://shop.example/live", 1)), (200, json!({"written": 1})));
    wait_for_location(&worker, code, "https://shop.example/live?");

    assert_eq!(delete(&worker, code, 2), (200, json!({"deleted": 1})));
    wait_until("the deactivated link to answer 404", LIMIT, || (resolve(&worker, code).0 == 404).then_some(()));
    // The push of version 1, overtaken by the deactivation, lands now: it loses to the tombstone.
    let (status, answer) = write(&worker, code, &record("https://shop.example/live", 1));
    assert_eq!((status, answer), (200, json!({"written": 0, "stale": stale(code, 2)})));
    assert_eq!(resolve(&worker, code), (404, None));

    // A delete older than the record KV holds loses too.
    assert_eq!(write(&worker, code, &record("https://shop.example/back", 3)), (200, json!({"written": 1})));
    wait_for_location(&worker, code, "https://shop.example/back?");
    assert_eq!(delete(&worker, code, 2), (200, json!({"deleted": 0, "stale": stale(code, 3)})));
    assert_eq!(resolve(&worker, code), (302, Some("https://shop.example/back?".to_owned())));
}

#[test]
fn a_record_with_a_javascript_destination_never_reaches_kv_and_its_code_stays_a_404() {
    let worker = Wrangler::start(WranglerOptions::default());
    for destination in ["javascript:alert(document.cookie)", "data:text/html,hi", "https://user:pw@shop.example/"] {
        let batch = json!([
            {"key": "gudd2345", "value": record("https://shop.example/good", 1).to_json()},
            {"key": "evvz2345", "value": record(destination, 1).to_json()},
        ]);
        let (status, answer) = sync(&worker, "/_internal/kv/bulk", &batch);
        assert_eq!(status, 400, "{destination}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_body");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("[1].value has a destination"), "{destination}: {message}");
    }
    // Refused whole: the good record of the same batch was not written either.
    assert_eq!(resolve(&worker, "evvz2345"), (404, None));
    assert_eq!(resolve(&worker, "gudd2345"), (404, None));
}

/// Changes links behind the API's back, in one transaction with their outbox rows, so the drainer takes
/// them in one batch: `(link id, new destination)` pairs.
fn change_in_one_batch(stack: &Stack, changes: &[(&str, &str)]) {
    let ids: Vec<String> = changes.iter().map(|(id, _)| format!("'{id}'")).collect();
    let cases: String = changes.iter().map(|(id, destination)| format!(" when '{id}' then '{destination}'")).collect();
    stack.api.sql_scalar(&format!(
        "with changed as (
             update links set destination_url = case id::text{cases} end, version = version + 1, updated_at = now()
             where id::text in ({ids}) returning id, version
         )
         insert into link_sync_outbox (link_id, version) select id, version from changed",
        ids = ids.join(", ")
    ));
}

fn parked(stack: &Stack) -> String {
    stack.api.run(&["kv", "parked"])
}

#[test]
fn a_poison_record_is_parked_by_the_api_while_the_other_changes_reach_the_edge() {
    let stack = start(e2e::stack::SYNC_TOKEN);
    let links: Vec<Value> = (0..3).map(|i| stack.create_link(&format!("https://shop.example/{i}"))).collect();
    let code = |i: usize| links[i]["code"].as_str().unwrap().to_owned();
    let id = |i: usize| links[i]["id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        stack.wait_for_redirect(&code(i));
    }

    // A destination the API would never accept, written straight into the database beside two good changes.
    change_in_one_batch(
        &stack,
        &[
            (&id(0), "https://shop.example/0-v2"),
            (&id(1), "javascript:alert(document.cookie)"),
            (&id(2), "https://shop.example/2-v2"),
        ],
    );
    wait_for_location(&stack.edge, &code(0), "https://shop.example/0-v2?");
    wait_for_location(&stack.edge, &code(2), "https://shop.example/2-v2?");
    let listing = wait_until("the poison record to be parked", LIMIT, || {
        let listing = parked(&stack);
        listing.starts_with("parked: 1\n").then_some(listing)
    });
    assert!(listing.contains(&format!("{} version 2 link {}", code(1), id(1))), "{listing}");
    assert!(listing.contains("400") && listing.contains("destination"), "{listing}");
    // The edge kept the last good record of the poisoned link; nothing is left pending.
    assert_eq!(resolve(&stack.edge, &code(1)), (302, Some("https://shop.example/1?".to_owned())));
    assert_eq!(
        stack.api.sql_scalar("select count(*) from link_sync_outbox where done_at is null and parked_at is null"),
        "0"
    );
    assert!(stack.api.logs().contains("KV refused a link change; it is parked"), "{}", stack.api.logs());

    // Once the link is fixed, a retry pushes its current state and the parked change is settled.
    stack
        .api
        .sql_scalar(&format!("update links set destination_url = 'https://shop.example/1-v3' where id = '{}'", id(1)));
    assert_eq!(stack.api.run(&["kv", "retry"]), "retried: 1\n");
    wait_for_location(&stack.edge, &code(1), "https://shop.example/1-v3?");
    wait_until("the parked change to be settled", LIMIT, || (parked(&stack) == "parked: 0\n").then_some(()));
}

#[test]
fn a_push_the_worker_refuses_as_stale_is_parked_and_the_edge_keeps_the_newer_record() {
    let stack = start(e2e::stack::SYNC_TOKEN);
    let link = stack.create_link("https://shop.example/v1");
    let code = link["code"].as_str().unwrap();
    stack.wait_for_redirect(code);
    // KV holds a newer version than the database ever had (say, after a restore from an old backup).
    let newer = LinkRecord::new(link["id"].as_str().unwrap().parse().unwrap(), "https://shop.example/v9".into(), 9);
    assert_eq!(write(&stack.edge, code, &newer), (200, json!({"written": 1})));

    let path = format!("/v1/links/{}", link["id"].as_str().unwrap());
    let (status, _) = stack.api.call(
        "PATCH",
        &path,
        &stack.brand.api_key,
        Some(&json!({"destination_url": "https://shop.example/v2"})),
    );
    assert_eq!(status, 200);
    let listing = wait_until("the stale push to be parked", LIMIT, || {
        let listing = parked(&stack);
        listing.starts_with("parked: 1\n").then_some(listing)
    });
    assert!(listing.contains(&format!("{code} version 2")), "{listing}");
    assert!(listing.contains("refused as stale: KV holds version 9"), "{listing}");
    assert_eq!(resolve(&stack.edge, code), (302, Some("https://shop.example/v9?".to_owned())));
}

#[test]
fn a_link_deleted_through_the_api_never_comes_back_from_a_late_write() {
    let stack = start(e2e::stack::SYNC_TOKEN);
    let link = stack.create_link("https://shop.example/once");
    let code = link["code"].as_str().unwrap();
    stack.wait_for_redirect(code);
    let (status, _) =
        stack.api.call("DELETE", &format!("/v1/links/{}", link["id"].as_str().unwrap()), &stack.brand.api_key, None);
    assert_eq!(status, 204);
    wait_until("the deleted link to answer 404", LIMIT, || (resolve(&stack.edge, code).0 == 404).then_some(()));

    // The push of version 1 arrives after the deletion (version 2): refused, and the link stays gone.
    let late = LinkRecord::new(link["id"].as_str().unwrap().parse().unwrap(), "https://shop.example/once".into(), 1);
    assert_eq!(write(&stack.edge, code, &late), (200, json!({"written": 0, "stale": stale(code, 2)})));
    assert_eq!(resolve(&stack.edge, code), (404, None));
}
