//! From a click to revenue credited to the creator, with every part real: the worker under wrangler
//! dev redirects a visitor to a store whose pages embed `/pixel.js` from the `api` binary, headless
//! Chromium browses and buys, and the order is credited to the creator of the link that was clicked.

use std::process::Command;
use std::thread;
use std::time::Duration;

use e2e::stack::{start, SYNC_TOKEN};
use e2e::{repo_root, wait_until};
use serde_json::{json, Value};

/// A storefront on a port of its own (bound as port 0): `/thanks` is the order confirmation page, every other path a landing
/// page; both embed the pixel from the API. Runs until the test process ends.
fn storefront(api_origin: &str, pixel_id: &str) -> String {
    let fixture = |name: &str| {
        std::fs::read_to_string(repo_root().join("tests/fixtures/storefront").join(name))
            .expect("storefront fixture")
            .replace("{{API_ORIGIN}}", api_origin)
            .replace("{{PIXEL_ID}}", pixel_id)
    };
    let (landing, thanks) = (fixture("landing.html"), fixture("thanks.html"));
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind the storefront");
    let port = server.server_addr().to_ip().expect("an IP address").port();
    thread::spawn(move || {
        let html = tiny_http::Header::from_bytes("Content-Type", "text/html; charset=utf-8").expect("header");
        for request in server.incoming_requests() {
            let page = if request.url().starts_with("/thanks") { &thanks } else { &landing };
            let _ = request.respond(tiny_http::Response::from_string(page.clone()).with_header(html.clone()));
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_purchase_in_a_real_browser_is_credited_to_the_creator_whose_link_was_clicked() {
    let stack = start(SYNC_TOKEN);
    let key = stack.brand.api_key.clone();
    let store = storefront(&stack.api.base_url(), &stack.brand.pixel_id);

    let call = |method: &str, path: &str, body: Option<Value>| {
        let (status, value) = stack.api.call(method, path, &key, body.as_ref());
        assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
        value
    };
    let jess = call("POST", "/v1/creators", Some(json!({"name": "Jessica", "handle": "@jessica"})));
    let sam = call("POST", "/v1/creators", Some(json!({"name": "Sam"})));
    let link = call(
        "POST",
        "/v1/links",
        Some(json!({"destination_url": format!("{store}/products/serum?utm_source=ig"), "creator_id": jess["id"],
                    "platform": "instagram", "content_type": "reel", "share_revenue": true})),
    );
    // Another creator's link, never clicked, must earn nothing.
    call(
        "POST",
        "/v1/links",
        Some(json!({"destination_url": format!("{store}/products/other"), "creator_id": sam["id"]})),
    );
    let code = link["code"].as_str().unwrap();
    stack.wait_for_redirect(code);

    let output = Command::new("node")
        .arg(repo_root().join("tests/browser/storefront.mjs"))
        .current_dir(repo_root())
        .env("START_URL", stack.edge.url(&format!("/{code}")))
        .env("STORE_ORIGIN", &store)
        .env("ORDER_ID", "5551234")
        .env("VALUE", "129.99")
        .env("CURRENCY", "USD")
        .output()
        .expect("run the browser");
    assert!(
        output.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(output.stdout.split(|b| *b == b'\n').next().unwrap_or_default())
        .expect("the browser's JSON line");
    let cs_ref = seen["cs_ref"].as_str().expect("the browser saw a cs_ref").to_owned();

    // The click travels edge → queue → API; the purchase may get there first and is credited then.
    let order = wait_until("the order to be credited", Duration::from_secs(90), || {
        let data = call("GET", "/v1/conversions", None)["data"].clone();
        data.as_array()?.iter().find(|o| o["order_id"] == "5551234" && !o["link_id"].is_null()).cloned()
    });
    assert_eq!(order["link_id"], link["id"]);
    assert_eq!(order["creator_id"], jess["id"]);
    assert_eq!(order["method"], "click");
    assert_eq!(order["click_id"], cs_ref.as_str());
    assert_eq!(order["amount"], json!({"amount_minor": 12999, "currency": "USD"}));
    assert_eq!(order["source"], "pixel");

    let report = call("GET", "/v1/attribution?group_by=creator", None);
    let rows = report["data"].as_array().unwrap();
    let jess_row = rows.iter().find(|r| r["key"] == jess["id"]).expect("a row for Jessica");
    assert_eq!(jess_row["conversions"], 1);
    assert_eq!(jess_row["revenue"], json!([{"amount_minor": 12999, "currency": "USD"}]));
    assert!(jess_row["clicks"].as_i64().unwrap() >= 1);
    assert!(rows.iter().all(|r| r["key"] != sam["id"] || r["conversions"] == 0));

    // The pixel's page views were stored too, without query strings.
    let page_views =
        stack.api.sql_scalar("select count(*) from pixel_events where event = 'page_view' and url not like '%?%'");
    assert!(page_views.parse::<i64>().unwrap() >= 2, "{page_views}");
}
