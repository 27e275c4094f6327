//! Reports from a read replica: the `api` binary with `DATABASE_URL` on the tests' PostgreSQL server and
//! `DATABASE_READ_URL` on a real streaming replica of it (`scripts/start-replica.sh`).
//!
//! Which pool answers is proven by pausing the replica's replay: a write is then on the primary only, so a
//! report that does not show it was read from the replica, and an endpoint that does show it read the
//! primary (as do reports of a process that allows the replica less lag than it has by then). Nothing waits by sleeping: replay is awaited by comparing WAL positions, the API's switch of
//! pools through `/readyz`.

use std::time::Duration;

use e2e::api::{ApiOptions, ApiProcess, Brand};
use e2e::http;
use e2e::replica::{psql, Replica};
use e2e::wait_until;
use serde_json::{json, Value};

/// Waits until `/readyz` says the replica is `status` (`ok`: reads go to it; `unreachable`: to the primary).
fn wait_for_replica_status(api: &ApiProcess, status: &str) {
    wait_until(&format!("/readyz to say the replica is {status}"), Duration::from_secs(60), || {
        let mut response = http().get(api.url("/readyz")).call().ok()?;
        let body: Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
        (response.status() == 200 && body["replica"] == status).then_some(())
    });
}

fn ok(api: &ApiProcess, brand: &Brand, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, value) = api.call(method, path, &brand.api_key, body.as_ref());
    assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
    value
}

/// The ids in a list's `data`.
fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().expect("a list").iter().filter_map(|item| item["id"].as_str().map(str::to_owned)).collect()
}

/// `POST /v1/conversions` (it needs an idempotency key, which `ApiProcess::call` does not send).
fn report_order(api: &ApiProcess, brand: &Brand, order_id: &str, promo: &str) -> (u16, Value) {
    // A minute ago, by the database's clock (the tests have no date library).
    let minute_ago = psql(
        api.database_url(),
        r#"select to_char(now() at time zone 'UTC' - interval '1 minute', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"#,
    )
    .expect("the time");
    let body = json!({"order_id": order_id, "amount": {"amount_minor": 4200, "currency": "USD"},
                      "occurred_at": minute_ago, "discount_codes": [promo]});
    let mut response = http()
        .post(api.url("/v1/conversions"))
        .header("Authorization", &format!("Bearer {}", brand.api_key))
        .header("Idempotency-Key", order_id)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect("the API answers");
    let text = response.body_mut().read_to_string().expect("a body");
    (response.status().as_u16(), serde_json::from_str(&text).expect("JSON"))
}

/// The attribution report's row for `link`, all time.
fn attribution_of(api: &ApiProcess, brand: &Brand, link: &Value) -> Option<Value> {
    let report = ok(api, brand, "GET", "/v1/attribution?group_by=link&from=2020-01-01T00:00:00Z", None);
    report["data"].as_array()?.iter().find(|r| r["key"] == link["id"]).cloned()
}

/// The `name=value` pairs a response sets, joined as a `Cookie` header sends them.
fn cookies_set(response: &ureq::http::Response<ureq::Body>) -> String {
    let pairs = response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok());
    pairs.filter_map(|c| c.split(';').next()).collect::<Vec<_>>().join("; ")
}

/// Signs a new user of the brand in to the dashboard over HTTP, as a browser's form does; returns the
/// session's `Cookie` header.
fn dashboard_session(api: &ApiProcess, brand: &Brand) -> String {
    let email = "ops@replicated.example";
    let password = api.create_user(&brand.id, email);
    let mut form = http().get(api.url("/brand/sign-in")).call().expect("the sign-in page");
    let cookie = cookies_set(&form);
    let page = form.body_mut().read_to_string().expect("the sign-in page");
    let csrf =
        page.split(r#"name="csrf" value=""#).nth(1).and_then(|rest| rest.split('"').next()).expect("a csrf field");
    let signed_in = http()
        .post(api.url("/brand/sign-in"))
        .header("cookie", &cookie)
        .header("origin", api.base_url())
        .header("sec-fetch-site", "same-origin")
        .send_form([("csrf", csrf), ("email", email), ("password", password.as_str())])
        .expect("signing in");
    assert_eq!(signed_in.status(), 303, "signing in");
    cookies_set(&signed_in)
}

/// The dashboard's Attribution page (the last 7 days), as the signed-in user sees it.
fn dashboard_attribution(api: &ApiProcess, session: &str) -> String {
    let mut page = http().get(api.url("/brand/attribution?days=7")).header("cookie", session).call().expect("the page");
    assert_eq!(page.status(), 200);
    page.body_mut().read_to_string().expect("the page")
}

#[test]
fn reports_read_the_replica_while_writes_and_their_reads_stay_on_the_primary_and_reads_survive_its_loss() {
    let mut replica = Replica::start();
    // Replay is paused below for as long as the test takes: the lag allowed is longer than that.
    let patient = vec![("DATABASE_READ_MAX_LAG_SECS".to_owned(), "3600".to_owned())];
    let api = ApiProcess::start(ApiOptions {
        read_replica: Some(replica.server_url()),
        env: patient,
        ..ApiOptions::default()
    });
    let primary = api.database_url().to_owned();
    let brand = api.create_brand("Replicated");
    wait_for_replica_status(&api, "ok");

    // Reports are correct once the replica has replayed the writes.
    let creator = ok(&api, &brand, "POST", "/v1/creators", Some(json!({"name": "Jess"})));
    let first = ok(
        &api,
        &brand,
        "POST",
        "/v1/links",
        Some(json!({"destination_url": "https://shop.example/a", "creator_id": creator["id"], "promo_code": "JESS20"})),
    );
    let (status, order) = report_order(&api, &brand, "1001", "JESS20");
    assert_eq!((status, &order["link_id"]), (201, &first["id"]), "{order}");
    replica.wait_for_replay(&primary);
    assert_eq!(ids(&ok(&api, &brand, "GET", "/v1/links", None)), vec![first["id"].as_str().unwrap()]);
    assert_eq!(ids(&ok(&api, &brand, "GET", "/v1/creators", None)), vec![creator["id"].as_str().unwrap()]);
    let conversions = ok(&api, &brand, "GET", "/v1/conversions", None);
    assert_eq!(conversions["data"][0]["order_id"], "1001");
    let row = attribution_of(&api, &brand, &first).expect("the link's row");
    assert_eq!(
        (row["conversions"].clone(), row["revenue"].clone()),
        (json!(1), json!([{"amount_minor": 4200, "currency": "USD"}]))
    );
    // The dashboard signs in on the primary (its session is a write) and shows the replicated order.
    let session = dashboard_session(&api, &brand);
    replica.wait_for_replay(&primary);
    assert!(dashboard_attribution(&api, &session).contains("1001"));

    // With the replica's replay paused, what is written now exists on the primary only.
    replica.pause_replay(&primary);
    let second = ok(
        &api,
        &brand,
        "POST",
        "/v1/links",
        Some(json!({"destination_url": "https://shop.example/b", "promo_code": "SAM10"})),
    );
    let second_id = second["id"].as_str().unwrap();
    // Reads of one's own writes are answered by the primary: the link just created, its stats, an order
    // just recorded and its idempotent replay.
    let fetched = ok(&api, &brand, "GET", &format!("/v1/links/{second_id}"), None);
    assert_eq!(fetched["id"], second["id"]);
    let stats = ok(&api, &brand, "GET", &format!("/v1/links/{second_id}/stats"), None);
    assert_eq!(stats["clicks"], 0, "{stats}");
    let (status, order) = report_order(&api, &brand, "1002", "SAM10");
    assert_eq!((status, &order["link_id"]), (201, &second["id"]), "{order}");
    let (status, replayed) = report_order(&api, &brand, "1002", "SAM10");
    assert_eq!((status, &replayed), (201, &order), "the replay answers as the first request did");
    // Reports and lists come from the paused replica: neither the link nor the order is in them yet.
    assert!(!ids(&ok(&api, &brand, "GET", "/v1/links", None)).contains(&second_id.to_owned()));
    let conversions = ok(&api, &brand, "GET", "/v1/conversions", None);
    assert_eq!(conversions["data"].as_array().map(Vec::len), Some(1), "{conversions}");
    assert_eq!(attribution_of(&api, &brand, &second), None);
    // So does the dashboard's Attribution page, while its session is still found on the primary.
    let page = dashboard_attribution(&api, &session);
    assert!(page.contains("1001") && !page.contains("1002"), "the dashboard read the paused replica");

    // A process that allows the replica one second of lag reads from the primary once it falls behind.
    let strict = api.start_beside(ApiOptions {
        read_replica: Some(replica.server_url()),
        env: vec![("DATABASE_READ_MAX_LAG_SECS".to_owned(), "1".to_owned())],
        serve_args: vec!["--no-background".to_owned()],
        ..ApiOptions::default()
    });
    wait_for_replica_status(&strict, "lagging");
    assert!(ids(&ok(&strict, &brand, "GET", "/v1/links", None)).contains(&second_id.to_owned()));
    assert!(attribution_of(&strict, &brand, &second).is_some(), "the order, read from the primary");
    assert!(strict.logs().contains("lags the primary"), "{}", strict.logs());

    // Once replayed, the reports have them.
    replica.resume_replay(&primary);
    replica.wait_for_replay(&primary);
    assert!(ids(&ok(&api, &brand, "GET", "/v1/links", None)).contains(&second_id.to_owned()));
    let row = attribution_of(&api, &brand, &second).expect("the new link's row");
    assert_eq!(row["conversions"], 1);
    assert!(dashboard_attribution(&api, &session).contains("1002"));
    // Caught up, the strict process reads from the replica again.
    wait_for_replica_status(&strict, "ok");
    drop(strict);

    // Without the replica, reads fall back to the primary (and say so), and writes go on.
    replica.stop();
    wait_for_replica_status(&api, "unreachable");
    let third = ok(&api, &brand, "POST", "/v1/links", Some(json!({"destination_url": "https://shop.example/c"})));
    let listed = ids(&ok(&api, &brand, "GET", "/v1/links", None));
    assert!(listed.contains(&third["id"].as_str().unwrap().to_owned()), "{listed:?}");
    assert_eq!(ok(&api, &brand, "GET", "/v1/conversions", None)["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(attribution_of(&api, &brand, &second).map(|row| row["conversions"].clone()), Some(json!(1)));
    assert!(api.logs().contains("the read replica does not serve reads"), "{}", api.logs());
    assert!(api.logs().contains("status=\"unreachable\""), "{}", api.logs());
}

#[test]
fn without_a_replica_everything_reads_the_primary() {
    let api = ApiProcess::start(ApiOptions::default());
    wait_for_replica_status(&api, "not_configured");
    let brand = api.create_brand("Single");
    let link = ok(&api, &brand, "POST", "/v1/links", Some(json!({"destination_url": "https://shop.example/"})));
    assert_eq!(ids(&ok(&api, &brand, "GET", "/v1/links", None)), vec![link["id"].as_str().unwrap()]);
}
