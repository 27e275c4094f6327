//! Destination health checks against real local servers: what a check makes of 200, 404, a server
//! without HEAD, redirect chains and loops, silence, a closed port and a refused private address; how
//! background passes store results, list them, spread them per host, give way to a concurrent edit and
//! announce a destination that broke. Passes take their time (`now`) as an argument: nothing sleeps.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::links::health::{self, Checker, Outcome};
use api::links::DestinationStatus;
use api::webhooks::TargetPolicy;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::Api;
use uuid::Uuid;

/// A local destination. Its paths:
/// `/ok` 200; `/missing` 404; `/no-head` 405 to HEAD and 200 to GET; `/hop/{n}` redirects (relative
/// `Location`) to `/hop/{n-1}` and answers 200 at 0; `/loop` redirects to itself; `/nowhere` redirects
/// without a `Location`; `/switch` answers `status`; `/slow` answers 200 after 50 ms, counting how many
/// requests it serves at once.
#[derive(Clone)]
struct Site {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    in_flight: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    agents: Arc<Mutex<Vec<String>>>,
}

impl Site {
    async fn start() -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let site = Site {
            addr: listener.local_addr().unwrap(),
            hits: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            in_flight: Arc::default(),
            most_at_once: Arc::default(),
            agents: Arc::default(),
        };
        let app = axum::Router::new().fallback(answer).with_state(site.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        site
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

async fn answer(
    axum::extract::State(site): axum::extract::State<Site>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    site.hits.fetch_add(1, Ordering::SeqCst);
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    site.agents.lock().unwrap().push(agent.to_owned());
    let redirect = |to: &str| (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response();
    let path = uri.path();
    match path {
        "/ok" => StatusCode::OK.into_response(),
        "/missing" => StatusCode::NOT_FOUND.into_response(),
        "/no-head" if method == Method::HEAD => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        "/no-head" => StatusCode::OK.into_response(),
        "/loop" => redirect("/loop"),
        "/nowhere" => StatusCode::FOUND.into_response(),
        "/switch" => StatusCode::from_u16(site.status.load(Ordering::SeqCst)).unwrap().into_response(),
        "/slow" => {
            let now = site.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            site.most_at_once.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            site.in_flight.fetch_sub(1, Ordering::SeqCst);
            StatusCode::OK.into_response()
        }
        _ => match path.strip_prefix("/hop/").and_then(|n| n.parse::<u32>().ok()) {
            Some(0) => StatusCode::OK.into_response(),
            Some(n) => redirect(&format!("../hop/{}", n - 1)),
            None => StatusCode::NOT_FOUND.into_response(),
        },
    }
}

/// A server that accepts connections and never answers.
async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A port nothing listens on: bound, then let go.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A checker that may reach this machine, without pauses between checks of one host. Its timeout is
/// generous: only the timeout test needs a short one.
fn dev_checker() -> Checker {
    Checker::new(TargetPolicy { allow_private: true }, Duration::from_secs(10)).unwrap().with_host_gap(Duration::ZERO)
}

fn ok(status: i32) -> Outcome {
    Outcome { status: DestinationStatus::Ok, http_status: Some(status) }
}

fn broken(status: i32) -> Outcome {
    Outcome { status: DestinationStatus::Broken, http_status: Some(status) }
}

const UNREACHABLE: Outcome = Outcome { status: DestinationStatus::Unreachable, http_status: None };

#[tokio::test]
async fn a_check_reads_the_answers_of_real_servers() {
    let site = Site::start().await;
    let checker = dev_checker();
    for (path, expected) in [
        ("/ok", ok(200)),
        ("/missing", broken(404)),
        ("/no-head", ok(200)),
        ("/hop/3", ok(200)),
        ("/hop/5", ok(200)),
        ("/hop/6", broken(302)),
        ("/loop", broken(302)),
        ("/nowhere", broken(302)),
    ] {
        assert_eq!(checker.check(&site.url(path)).await, expected, "{path}");
    }
    // Every request says what it is, in a form shops let through.
    let agents = site.agents.lock().unwrap().clone();
    assert!(!agents.is_empty());
    assert!(agents.iter().all(|a| a.starts_with("Mozilla/5.0") && a.contains("CreatorScore-LinkCheck")), "{agents:?}");
}

#[tokio::test]
async fn silence_and_a_closed_port_are_unreachable() {
    let silent = silent_server().await;
    let quick = Checker::new(TargetPolicy { allow_private: true }, Duration::from_millis(300)).unwrap();
    assert_eq!(quick.check(&format!("http://{silent}/")).await, UNREACHABLE);
    let closed = closed_port().await;
    assert_eq!(dev_checker().check(&format!("http://{closed}/")).await, UNREACHABLE);
    assert_eq!(dev_checker().check("http://destination.invalid/").await, UNREACHABLE);
}

#[tokio::test]
async fn private_addresses_are_refused_before_any_request_unless_allowed() {
    let site = Site::start().await;
    let strict = Checker::new(TargetPolicy { allow_private: false }, Duration::from_secs(10)).unwrap();
    let port = site.addr.port();
    // An address as written, and a name that resolves to one.
    for url in [format!("http://127.0.0.1:{port}/ok"), format!("http://localhost:{port}/ok")] {
        assert_eq!(strict.check(&url).await, UNREACHABLE, "{url}");
    }
    assert_eq!(site.hits(), 0, "no request reached the server");
    assert_eq!(dev_checker().check(&site.url("/ok")).await, ok(200));
    assert_eq!(site.hits(), 1);
}

/// An API whose checks may reach this machine.
async fn dev_api(pool: PgPool) -> Api {
    let config = support::config(&[("ALLOW_PRIVATE_TARGETS", "true")]);
    Api::with_state(api::http::AppState::new(pool, config)).await
}

/// A time just after the links were created (so they are due), at the database's precision.
fn soon() -> DateTime<Utc> {
    (Utc::now() + chrono::Duration::minutes(1)).trunc_subsecs(6)
}

/// Runs passes at `now` until none checks anything; returns how many links were checked.
async fn pass(api: &Api, checker: &Checker, now: DateTime<Utc>) -> usize {
    let mut total = 0;
    loop {
        let n = health::run_due(&api.pool, checker, now, 100).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

async fn link_to(api: &Api, url: &str) -> String {
    api.create("/v1/links", json!({"destination_url": url})).await["id"].as_str().unwrap().to_owned()
}

fn ids(list: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids
}

#[sqlx::test(migrations = "../../migrations")]
async fn due_links_are_checked_once_a_day_and_listed_by_what_was_found(pool: PgPool) {
    let api = dev_api(pool).await;
    let site = Site::start().await;
    let fine = link_to(&api, &site.url("/ok")).await;
    let missing = link_to(&api, &site.url("/missing")).await;
    let looping = link_to(&api, &site.url("/loop")).await;
    let closed = link_to(&api, &format!("http://{}/", closed_port().await)).await;
    let created = api.get(&format!("/v1/links/{fine}")).await.body;
    assert_eq!((&created["destination_status"], &created["destination_checked_at"]), (&Value::Null, &Value::Null));
    let versions: i64 =
        sqlx::query_scalar("select sum(version)::bigint from links").fetch_one(&api.pool).await.unwrap();
    let outbox = api.count("link_sync_outbox").await;

    let checker = dev_checker();
    let now = soon();
    assert_eq!(pass(&api, &checker, now).await, 4);

    let link = api.get(&format!("/v1/links/{missing}")).await.body;
    assert_eq!(link["destination_status"], "broken");
    assert_eq!(link["destination_http_status"], 404);
    assert_eq!(link["destination_checked_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), now);
    let mut broken = vec![missing.as_str(), looping.as_str()];
    broken.sort_unstable();
    assert_eq!(ids(&api.get("/v1/links?destination_status=broken").await.body), broken);
    assert_eq!(ids(&api.get("/v1/links?destination_status=unreachable").await.body), vec![closed.as_str()]);
    assert_eq!(ids(&api.get("/v1/links?destination_status=ok").await.body), vec![fine.as_str()]);
    let looped = api.get(&format!("/v1/links/{looping}")).await.body;
    assert_eq!((&looped["destination_status"], &looped["destination_http_status"]), (&json!("broken"), &json!(302)));

    // A health result is not a change of the link: no new version, nothing for the edge.
    let after: i64 = sqlx::query_scalar("select sum(version)::bigint from links").fetch_one(&api.pool).await.unwrap();
    assert_eq!((after, api.count("link_sync_outbox").await), (versions, outbox));

    // The next checks are due a day later, spread over the following hour.
    assert_eq!(pass(&api, &checker, now).await, 0);
    assert_eq!(pass(&api, &checker, now + chrono::Duration::hours(24) - chrono::Duration::seconds(1)).await, 0);
    let due: Vec<DateTime<Utc>> =
        sqlx::query_scalar("select destination_check_due_at from links").fetch_all(&api.pool).await.unwrap();
    for at in due {
        assert!(at >= now + chrono::Duration::hours(24) && at < now + chrono::Duration::hours(25), "{at}");
    }
    assert_eq!(pass(&api, &checker, now + chrono::Duration::hours(25)).await, 4);

    // A deleted link is not checked again.
    assert_eq!(api.delete(&format!("/v1/links/{fine}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(pass(&api, &checker, now + chrono::Duration::hours(60)).await, 3);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_new_destination_is_unchecked_and_due_and_a_concurrent_edit_wins(pool: PgPool) {
    let api = dev_api(pool).await;
    let site = Site::start().await;
    let id = link_to(&api, &site.url("/missing")).await;
    let checker = dev_checker();
    let now = soon();
    assert_eq!(pass(&api, &checker, now).await, 1);
    assert_eq!(api.get(&format!("/v1/links/{id}")).await.body["destination_status"], "broken");

    // Changing something else keeps what was found.
    let patched = api.patch(&format!("/v1/links/{id}"), json!({"utm_source": "instagram"})).await;
    assert_eq!(patched.body["destination_status"], "broken");
    // A new destination: not known until checked, and due at once.
    let patched = api.patch(&format!("/v1/links/{id}"), json!({"destination_url": site.url("/ok")})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    for field in ["destination_status", "destination_http_status", "destination_checked_at"] {
        assert_eq!(patched.body[field], Value::Null, "{field}");
    }
    let later = now + chrono::Duration::minutes(1);
    assert_eq!(pass(&api, &checker, later).await, 1);
    assert_eq!(api.get(&format!("/v1/links/{id}")).await.body["destination_status"], "ok");

    // A destination changed while its old one was being checked: the old result is dropped, the new
    // destination stays due.
    let next = later + chrono::Duration::days(2);
    let claimed = health::claim(&api.pool, next, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let patched = api.patch(&format!("/v1/links/{id}"), json!({"destination_url": site.url("/hop/1")})).await;
    assert_eq!(patched.status, StatusCode::OK);
    let stored =
        health::record(&api.pool, &claimed[0], Outcome { status: DestinationStatus::Ok, http_status: Some(200) }, next)
            .await
            .unwrap();
    assert!(!stored);
    assert_eq!(api.get(&format!("/v1/links/{id}")).await.body["destination_status"], Value::Null);
    assert_eq!(pass(&api, &checker, next).await, 1);
    let link = api.get(&format!("/v1/links/{id}")).await.body;
    assert_eq!((&link["destination_status"], &link["destination_url"]), (&json!("ok"), &json!(site.url("/hop/1"))));
}

/// The `link.destination_broken` events stored, oldest first: (object, previous).
async fn broken_events(api: &Api) -> Vec<(Value, Value)> {
    sqlx::query_as::<_, (Value, Option<Value>)>(
        "select object, previous from webhook_events where type = 'link.destination_broken' order by created_at, id",
    )
    .fetch_all(&api.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(object, previous)| (object, previous.unwrap_or(Value::Null)))
    .collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_destination_that_breaks_is_announced_once(pool: PgPool) {
    let api = dev_api(pool).await;
    api.create("/v1/webhooks", json!({"url": "http://127.0.0.1:9/hook", "events": ["link.destination_broken"]})).await;
    let site = Site::start().await;
    let id = link_to(&api, &site.url("/switch")).await;
    let checker = dev_checker();
    let day = |n: i64| soon() + chrono::Duration::hours(26 * n);

    assert_eq!(pass(&api, &checker, day(0)).await, 1);
    assert!(broken_events(&api).await.is_empty(), "an ok destination is not announced");

    site.answer_with(404);
    assert_eq!(pass(&api, &checker, day(1)).await, 1);
    let events = broken_events(&api).await;
    assert_eq!(events.len(), 1);
    let (object, previous) = &events[0];
    assert_eq!(object["id"], json!(id));
    assert_eq!((&object["destination_status"], &object["destination_http_status"]), (&json!("broken"), &json!(404)));
    assert_eq!(previous, &json!({"destination_status": "ok"}));

    // Still broken, then unreachable: no news.
    assert_eq!(pass(&api, &checker, day(2)).await, 1);
    sqlx::query("update links set destination_url = $1 where id = $2::uuid")
        .bind(format!("http://{}/", closed_port().await))
        .bind(&id)
        .execute(&api.pool)
        .await
        .unwrap();
    assert_eq!(pass(&api, &checker, day(3)).await, 1);
    assert_eq!(api.get(&format!("/v1/links/{id}")).await.body["destination_status"], "unreachable");
    assert_eq!(broken_events(&api).await.len(), 1);

    // Fixed, then broken again: announced again.
    sqlx::query("update links set destination_url = $1 where id = $2::uuid")
        .bind(site.url("/switch"))
        .bind(&id)
        .execute(&api.pool)
        .await
        .unwrap();
    site.answer_with(200);
    assert_eq!(pass(&api, &checker, day(4)).await, 1);
    site.answer_with(503);
    assert_eq!(pass(&api, &checker, day(5)).await, 1);
    let events = broken_events(&api).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0["destination_http_status"], 503);

    // A new link whose first check fails is announced too (it was never checked).
    let other = link_to(&api, &site.url("/missing")).await;
    assert_eq!(pass(&api, &checker, day(5)).await, 1);
    let events = broken_events(&api).await;
    assert_eq!(events.len(), 3);
    assert_eq!((&events[2].0["id"], &events[2].1), (&json!(other), &json!({"destination_status": null})));
    let deliveries: i64 =
        sqlx::query_scalar("select count(*) from webhook_deliveries").fetch_one(&api.pool).await.unwrap();
    assert_eq!(deliveries, 3);
}

#[sqlx::test(migrations = "../../migrations")]
async fn one_host_is_checked_one_link_at_a_time_and_a_pass_takes_only_its_share(pool: PgPool) {
    let api = dev_api(pool).await;
    let site = Site::start().await;
    for i in 0..4 {
        link_to(&api, &site.url(&format!("/slow?link={i}"))).await;
    }
    let checker = dev_checker().with_per_host(3);
    let now = soon();
    assert_eq!(health::run_due(&api.pool, &checker, now, 100).await.unwrap(), 3);
    assert_eq!(site.most_at_once.load(Ordering::SeqCst), 1);
    // The link left over is still due, and the next pass takes it.
    let unchecked: i64 = sqlx::query_scalar(
        "select count(*) from links where destination_status is null and destination_check_due_at <= $1",
    )
    .bind(now)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(unchecked, 1);
    assert_eq!(health::run_due(&api.pool, &checker, now, 100).await.unwrap(), 1);
    assert_eq!(health::run_due(&api.pool, &checker, now, 100).await.unwrap(), 0);
    assert_eq!(site.hits(), 4);
}

#[test]
fn daily_checks_are_spread_over_an_hour_by_link() {
    let now: DateTime<Utc> = "2026-11-20T03:00:00Z".parse().unwrap();
    let spreads: Vec<i64> = (0..50)
        .map(|_| (health::next_due(Uuid::new_v4(), now) - now - chrono::Duration::hours(24)).num_seconds())
        .collect();
    assert!(spreads.iter().all(|s| (0..3600).contains(s)), "{spreads:?}");
    let id = Uuid::new_v4();
    assert_eq!(health::next_due(id, now), health::next_due(id, now), "the spread is the link's own");
    assert!(spreads.iter().any(|s| *s != spreads[0]));
}
