//! A pending order in headless Chromium against the real `api` binary and PostgreSQL, on a brand with a
//! connected Shopify shop: `tests/browser/pending.mjs` records a click and a purchase only the storefront
//! pixel reported, sees it pending on the Attribution page (counted apart), sends the shop's signed
//! `orders/create` webhook for the same order, and sees it verified and counted after a reload; then the
//! same facts are read back through the REST API. Screenshots go to `target/e2e-screenshots/`.

use std::process::Command;

use e2e::api::{ApiOptions, ApiProcess};
use e2e::repo_root;
use serde_json::{json, Value};

const INGEST_TOKEN: &str = "pending-e2e-ingest-0123456789abcdef";
const SHOP_DOMAIN: &str = "northwind-linen.myshopify.com";
const WEBHOOK_SECRET: &str = "pending-e2e-shopify-secret";
/// A Shopify order id: the pixel reports it as a string, the webhook as a number.
const ORDER_ID: &str = "5730101989547";

#[test]
fn a_pixel_order_stays_pending_until_the_shop_confirms_it_in_a_real_browser() {
    let api = ApiProcess::start(ApiOptions {
        env: vec![("EDGE_INGEST_TOKEN".to_owned(), INGEST_TOKEN.to_owned())],
        ..Default::default()
    });
    let acme = api.create_brand("Acme");
    let password = api.create_user(&acme.id, "owner@acme.example");
    let call = |method: &str, path: &str, body: Option<Value>| {
        let (status, value) = api.call(method, path, &acme.api_key, body.as_ref());
        assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
        value
    };
    let shop = call(
        "PUT",
        "/v1/integrations/shopify",
        Some(json!({"shop_domain": SHOP_DOMAIN, "webhook_secret": WEBHOOK_SECRET})),
    );
    assert_eq!(shop["shop_domain"], SHOP_DOMAIN);
    let jess = call("POST", "/v1/creators", Some(json!({"name": "Jessica", "handle": "@jessica"})));
    let link = call(
        "POST",
        "/v1/links",
        Some(json!({"destination_url": "https://northwind-linen.example/products/shorts", "creator_id": jess["id"]})),
    );

    let screenshots = repo_root().join("target/e2e-screenshots");
    let output = Command::new("node")
        .arg(repo_root().join("tests/browser/pending.mjs"))
        .current_dir(repo_root())
        .env("BASE_URL", api.base_url())
        .env("INTERNAL_URL", api.internal_base_url())
        .env("EMAIL", "owner@acme.example")
        .env("PASSWORD", &password)
        .env("INGEST_TOKEN", INGEST_TOKEN)
        .env("PIXEL_ID", &acme.pixel_id)
        .env("LINK_ID", link["id"].as_str().expect("a link id"))
        .env("LINK_CODE", link["code"].as_str().expect("a code"))
        .env("SHOP_DOMAIN", SHOP_DOMAIN)
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("ORDER_ID", ORDER_ID)
        .env("SCREENSHOT_DIR", &screenshots)
        .output()
        .expect("run the browser");
    assert!(
        output.status.success(),
        "browser run failed:\n{}\n{}\n--- api log ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        api.logs()
    );
    let seen: Value = serde_json::from_slice(output.stdout.split(|b| *b == b'\n').next().unwrap_or_default())
        .expect("the browser's JSON line");
    let click_id = seen["click_id"].as_str().expect("the click id");

    // What the browser saw is what the REST API sees: one order, verified, credited to the click.
    let orders = call("GET", "/v1/conversions", None)["data"].clone();
    let orders = orders.as_array().expect("a list of orders");
    assert_eq!(orders.len(), 1, "{orders:?}");
    let order = &orders[0];
    assert_eq!(order["order_id"], ORDER_ID);
    assert_eq!(order["status"], "verified", "{order}");
    assert_eq!(order["source"], "pixel", "the pixel reported it first: {order}");
    assert!(order["verified_at"].is_string(), "{order}");
    assert_eq!(order["link_id"], link["id"]);
    assert_eq!(order["creator_id"], jess["id"]);
    assert_eq!(order["method"], "click");
    assert_eq!(order["click_id"], click_id);
    assert_eq!(order["amount"], json!({"amount_minor": 4773, "currency": "USD"}));
    assert_eq!(order["net"], json!({"amount_minor": 4773, "currency": "USD"}));

    let report = call("GET", "/v1/attribution?group_by=link", None);
    let row = report["data"].as_array().and_then(|rows| rows.iter().find(|r| r["key"] == link["id"])).cloned();
    let row = row.unwrap_or_else(|| panic!("no row for the link in {report}"));
    assert_eq!(row["clicks"], 1, "{row}");
    assert_eq!(row["conversions"], 1, "{row}");
    assert_eq!(row["revenue"], json!([{"amount_minor": 4773, "currency": "USD"}]), "{row}");
    assert_eq!(row["pending_conversions"], 0, "{row}");
    assert_eq!(row["pending_revenue"], json!([]), "{row}");
    assert_eq!(api.sql_scalar("select count(*) from conversions"), "1");

    for name in ["01-pending", "02-verified"] {
        let shot = screenshots.join(format!("pending-{name}.png"));
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0), "{} was not saved", shot.display());
    }
}
