//! Clicks survive a deploy: the worker under `wrangler dev` and the real `api` binary. A click event of a
//! version the API does not read yet is answered `503 retry_later`, retried by the queue `max_retries`
//! times and then kept in the dead-letter queue, while the valid clicks that travelled with it are
//! stored exactly once. The worker refuses to use a shared token shorter than 32 bytes.
//!
//! A probe worker beside the real one (`tests/support/dlq-probe/`) sends the messages a worker of
//! another version would, and passes whatever reaches the dead-letter queue to a local receiver.

use std::time::Duration;

use e2e::api::{ApiOptions, ApiProcess};
use e2e::receiver::Receiver;
use e2e::wrangler::{Wrangler, WranglerOptions};
use e2e::{repo_root, wait_until};
use serde_json::{json, Value};
use uuid::Uuid;

const INGEST_TOKEN: &str = "deadletter-ingest-token-0123456789ab";

/// The consumer's `max_retries` in wrangler.toml: a message is delivered once plus that many times.
fn max_retries() -> usize {
    let config = std::fs::read_to_string(repo_root().join("wrangler.toml")).expect("read wrangler.toml");
    config
        .lines()
        .find_map(|line| line.strip_prefix("max_retries = "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a max_retries line in wrangler.toml")
}

/// A click event as the edge worker sends it, for `link`, stamped now.
fn click(link: &Value) -> (String, Value) {
    let id = Uuid::new_v4().simple().to_string();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let event = json!({
        "v": 1, "click_id": id, "code": link["code"], "link_id": link["id"], "occurred_at_ms": now_ms as i64,
        "visitor_id": Uuid::new_v4().simple().to_string(), "new_visitor": true, "bot": false,
    });
    (id, event)
}

#[test]
fn a_click_event_of_a_newer_version_is_retried_then_dead_lettered_and_the_valid_clicks_land_once() {
    let api = ApiProcess::start(ApiOptions {
        env: vec![("EDGE_INGEST_TOKEN".to_owned(), INGEST_TOKEN.to_owned())],
        ..ApiOptions::default()
    });
    let brand = api.create_brand("Deploys");
    let (status, link) =
        api.call("POST", "/v1/links", &brand.api_key, Some(&json!({"destination_url": "https://shop.example/"})));
    assert_eq!(status, 201, "{link}");

    let dead_letters = Receiver::start();
    let edge = Wrangler::start_with_probe(
        WranglerOptions {
            ingest_url: api.internal_base_url(),
            ingest_token: INGEST_TOKEN.to_owned(),
            // Retry at once: each delivery still waits for the queue's batch timeout (5 s).
            queue_retry_max_delay: Some(0),
            ..WranglerOptions::default()
        },
        &dead_letters.url(),
    );

    // One message from a newer worker, with a valid click beside the v2 event; another with a valid click.
    let (with_it, beside) = click(&link);
    let (alone, elsewhere) = click(&link);
    let mut newer = click(&link).1;
    newer["v"] = json!(2);
    newer["campaign_hint"] = json!("a field version 1 does not have");
    let mixed = Value::from(vec![newer, beside]).to_string();
    edge.send_to_queue(&[mixed.clone(), Value::from(vec![elsewhere]).to_string()]);

    let dead = dead_letters
        .wait_for("the v2 message in the dead-letter queue", Duration::from_secs(300), |got| got.first().cloned());
    assert_eq!(dead.text(), mixed, "the message is kept whole, as it was sent");
    assert_eq!(dead.header("x-queue"), Some("tracking-clicks-dlq"));
    let logs = edge.logs();
    assert_eq!(logs.matches("to dead letter queue").count(), 1, "only the message holding the v2 event:\n{logs}");
    assert!(logs.contains("retrying 1 of 2 messages"), "the other message was acknowledged at once:\n{logs}");

    // The API was asked max_retries + 1 times, and stored each valid click once.
    let asked = api.logs().matches("a click event to retry later").count();
    assert_eq!(asked, max_retries() + 1, "{}", api.logs());
    let stored = api.sql_scalar("select string_agg(replace(id::text, '-', ''), ',' order by id) from clicks");
    let mut expected = [with_it, alone];
    expected.sort();
    assert_eq!(stored, expected.join(","));
    assert_eq!(dead_letters.received().len(), 1);
}

#[test]
fn a_worker_with_short_tokens_refuses_to_sync_and_posts_no_click() {
    let receiver = Receiver::start();
    let dead_letters = Receiver::start();
    let edge = Wrangler::start_with_probe(
        WranglerOptions {
            ingest_url: receiver.url(),
            ingest_token: "31-bytes-of-ingest-token-012345".to_owned(),
            kv_sync_token: Some("short-sync-token".to_owned()),
            ..WranglerOptions::default()
        },
        &dead_letters.url(),
    );

    let mut response = e2e::http()
        .post(edge.url("/_internal/kv/bulk"))
        .header("Authorization", "Bearer short-sync-token")
        .header("Content-Type", "application/json")
        .send("[]")
        .expect("an answer");
    let answer: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).expect("JSON");
    assert_eq!((response.status().as_u16(), &answer["error"]["code"]), (503, &json!("misconfigured")));
    wait_until("the worker to log why", Duration::from_secs(30), || {
        edge.logs().contains("KV_SYNC_TOKEN is 16 bytes long").then_some(())
    });

    let link = json!({"id": Uuid::new_v4(), "code": "k7m2p9qr"});
    edge.send_to_queue(&[Value::from(vec![click(&link).1]).to_string()]);
    wait_until("the consumer to refuse its token", Duration::from_secs(90), || {
        edge.logs().contains("EDGE_INGEST_TOKEN is 31 bytes long").then_some(())
    });
    assert!(receiver.received().is_empty(), "the short token was never sent");
    for token in ["short-sync-token", "31-bytes-of-ingest-token-012345"] {
        assert!(!edge.logs().contains(token), "the logs never show a token");
    }
}
