//! `POST /internal/clicks`: batches from the edge are stored once, classified, and stripped of the user agent;
//! events a later deploy can cure are answered for the queue to deliver again; and the route lives on the
//! internal listener only.

mod support;

use api::http::AppState;
use api::Config;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
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
    api.send_internal(Method::POST, "/internal/clicks", Some(TOKEN), Some(body)).await
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

fn indexes(listed: &Value) -> Vec<u64> {
    listed.as_array().unwrap().iter().map(|r| r["index"].as_u64().unwrap()).collect()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn malformed_events_are_rejected_by_index_and_the_rest_stored(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let mut bad_country = click(&link, None);
    bad_country["country"] = json!("germany");
    let mut no_version = click(&link, None);
    no_version["v"] = json!(0);
    let mut bad_code = click(&link, None);
    bad_code["code"] = json!("0000000O");
    let batch = vec![click(&link, None), json!("not an event"), bad_country, click(&link, None), no_version, bad_code];
    let response = post_batch(&api, batch).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["stored"], 2);
    assert_eq!(indexes(&response.body["rejected"]), vec![1, 2, 4, 5]);
    assert!(response.body["rejected"][1]["error"].as_str().unwrap().contains("country"));
    assert!(response.body.get("retry_later").is_none(), "{}", response.body);
    assert_eq!(api.count("clicks").await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn events_a_later_deploy_can_cure_are_answered_503_and_the_rest_stored_exactly_once(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let mut newer = click(&link, None);
    newer["v"] = json!(2);
    newer["layout"] = json!("of a worker deployed before this API");
    let mut ahead = click(&link, None);
    ahead["occurred_at_ms"] = json!((Utc::now() + Duration::hours(1)).timestamp_millis());
    let mut malformed = click(&link, None);
    malformed["visitor_id"] = json!("not a visitor id");
    let batch = vec![click(&link, None), newer, ahead, malformed, click(&link, None)];

    let first = post_batch(&api, batch.clone()).await;
    assert_eq!((first.status, first.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "retry_later"), "{}", first.body);
    assert_eq!(indexes(&first.body["retry_later"]), vec![1, 2]);
    assert!(first.body["retry_later"][0]["error"].as_str().unwrap().contains("version 2"), "{}", first.body);
    assert!(first.body["retry_later"][1]["error"].as_str().unwrap().contains("ahead"), "{}", first.body);
    assert_eq!(indexes(&first.body["rejected"]), vec![3]);
    assert_eq!((first.body["received"].clone(), first.body["stored"].clone()), (json!(5), json!(2)));
    assert_eq!(api.count("clicks").await, 2, "the valid events are stored (and committed) before the 503");

    // The queue delivers the whole message again: the same answer, and nothing stored twice.
    let again = post_batch(&api, batch).await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(indexes(&again.body["retry_later"]), vec![1, 2]);
    assert_eq!((again.body["stored"].clone(), again.body["duplicates"].clone()), (json!(0), json!(2)));
    assert_eq!(api.count("clicks").await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn clicks_older_than_the_horizon_are_rejected_for_good(pool: PgPool) {
    let at = |days: i64| {
        move |link: &Value| {
            let mut event = click(link, None);
            event["occurred_at_ms"] = json!((Utc::now() - Duration::days(days)).timestamp_millis());
            event
        }
    };
    // The default horizon: 14 days.
    let api = Api::with_state(AppState::new(pool.clone(), support::config(&[("CLICK_MAX_AGE_DAYS", "")]))).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let response = post_batch(&api, vec![at(13)(&link), at(15)(&link)]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["stored"], 1);
    assert_eq!(indexes(&response.body["rejected"]), vec![1]);
    assert!(response.body["rejected"][0]["error"].as_str().unwrap().contains("14-day ingestion horizon"));

    // A longer one, configured.
    let patient = Api::with_state(AppState::new(pool, support::config(&[("CLICK_MAX_AGE_DAYS", "30")]))).await;
    let link = patient.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let response = post_batch(&patient, vec![at(15)(&link), at(31)(&link)]).await;
    assert_eq!((response.body["stored"].clone(), indexes(&response.body["rejected"])), (json!(1), vec![1]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_public_router_answers_internal_paths_like_any_unknown_route(pool: PgPool) {
    let api = api(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let body = || Some(Body::from(json!({"clicks": [click(&link, None)]}).to_string()));
    let unknown = api.send(Method::POST, "/no/such/route", Some(TOKEN), body()).await;
    assert_eq!((unknown.status, unknown.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    for path in ["/internal/clicks", "/internal/openapi.json", "/internal/"] {
        for method in [Method::POST, Method::GET] {
            let response = api.send(method.clone(), path, Some(TOKEN), body()).await;
            assert_eq!((response.status, &response.body), (unknown.status, &unknown.body), "{method} {path}");
        }
    }
    let document = api.send(Method::GET, "/openapi.json", None, None).await.body;
    assert!(document["paths"].get("/internal/clicks").is_none(), "the public document describes the public listener");
    assert_eq!(api.count("clicks").await, 0);

    // The internal router serves ingestion and its own document, and nothing public.
    assert_eq!(api.send_internal(Method::POST, "/internal/clicks", Some(TOKEN), body()).await.status, StatusCode::OK);
    let internal = api.send_internal(Method::GET, "/internal/openapi.json", None, None).await.body;
    let answers = &internal["paths"]["/internal/clicks"]["post"]["responses"];
    assert!(answers.get("200").is_some() && answers.get("503").is_some(), "{internal}");
    for path in ["/v1/links", "/healthz", "/openapi.json", "/brand/sign-in"] {
        let response = api.send_internal(Method::GET, path, Some(&api.key), None).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
    }
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
    let almost = &TOKEN[..TOKEN.len() - 1];
    for auth in [None, Some("wrong"), Some(almost), Some(api.key.as_str())] {
        let response = api.send_internal(Method::POST, "/internal/clicks", auth, body()).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    // With no token configured, nothing gets in.
    let closed = Api::with_state(AppState::new(pool, Config::from_lookup(|_| None).unwrap())).await;
    let refused = closed.send_internal(Method::POST, "/internal/clicks", Some(""), body()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
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

/// The real `api` binary (Cargo builds it for these tests), with a clean environment and plain logs.
fn api_binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("INTERNAL_BIND_ADDR", "127.0.0.1:0");
    command
}

#[test]
fn a_shared_token_shorter_than_32_bytes_stops_the_server_before_it_starts() {
    let worker_sink = [("KV_SINK", "worker"), ("KV_SYNC_URL", "http://127.0.0.1:9")];
    for (name, also) in [("EDGE_INGEST_TOKEN", &[][..]), ("KV_SYNC_TOKEN", &worker_sink[..])] {
        let output = api_binary()
            .arg("serve")
            .env(name, "only-31-bytes-of-shared-secret!")
            .envs(also.iter().copied())
            // Never reached: the settings are refused first.
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:9/unreachable")
            .output()
            .expect("run the api binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name} is 31 bytes long")) && stderr.contains("at least 32 bytes"),
            "{stderr}"
        );
        assert!(!stderr.contains("only-31-bytes"), "the token is never printed: {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

/// The address logged on the line holding `message` (`... <message> addr=127.0.0.1:PORT`).
fn logged_addr(lines: &[String], message: &str) -> Option<String> {
    let prefix = format!(": {message} addr=");
    lines.iter().find_map(|l| l.split_once(&prefix).map(|(_, addr)| addr.trim().to_owned()))
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_binary_serves_internal_routes_on_the_internal_listener_only(pool: PgPool) {
    use std::io::BufRead;
    let db = pool.connect_options();
    let database_url = format!(
        "postgres://{}@{}:{}/{}",
        db.get_username(),
        db.get_host(),
        db.get_port(),
        db.get_database().expect("a test database")
    );
    let mut child = api_binary()
        .arg("serve")
        .env("DATABASE_URL", &database_url)
        .env("EDGE_INGEST_TOKEN", TOKEN)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the api binary");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Both listeners bound port 0; their addresses are read back from the log.
    let mut lines = Vec::new();
    let (public, internal) = loop {
        if let (Some(public), Some(internal)) =
            (logged_addr(&lines, "api listening"), logged_addr(&lines, "internal routes listening"))
        {
            break (format!("http://{public}"), format!("http://{internal}"));
        }
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("the api never logged both listeners ({e}):\n{}", lines.join("\n")),
        }
    };
    assert_ne!(public, internal);

    let http = reqwest::Client::new();
    let post = |base: &str| {
        http.post(format!("{base}/internal/clicks")).bearer_auth(TOKEN).json(&json!({"clicks": []})).send()
    };
    let from_public = post(&public).await.unwrap();
    assert_eq!(from_public.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(from_public.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let from_internal = post(&internal).await.unwrap();
    assert_eq!(from_internal.status(), reqwest::StatusCode::OK);
    assert_eq!(from_internal.json::<Value>().await.unwrap()["received"], 0);
    assert_eq!(http.get(format!("{public}/healthz")).send().await.unwrap().status(), reqwest::StatusCode::OK);
    assert_eq!(http.get(format!("{internal}/healthz")).send().await.unwrap().status(), reqwest::StatusCode::NOT_FOUND);

    // One SIGTERM stops both listeners gracefully.
    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert!(status.success(), "{status}:\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("api stopped")), "{}", lines.join("\n"));
}
