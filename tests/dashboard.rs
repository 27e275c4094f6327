//! The brand dashboard in headless Chromium against the real `api` binary and PostgreSQL: every scenario
//! of `tests/browser/dashboard.mjs` (sign-in, creators and campaigns, links through the form, the
//! clipboard, filters, clicks and a credited order, UTM tags following the form, a broken destination
//! flagged, the QR code's downloads, a CSV import with a bad row, deactivation, a validation error,
//! sign-out, another brand's session), then the same facts read back through the REST API. Screenshots go to
//! `target/e2e-screenshots/`.

use std::process::Command;

use e2e::api::{ApiOptions, ApiProcess};
use e2e::repo_root;
use serde_json::{json, Value};

const INGEST_TOKEN: &str = "dashboard-e2e-ingest-0123456789abcd";

#[test]
fn a_brand_manages_its_tracking_links_in_a_real_browser() {
    let api = ApiProcess::start(ApiOptions {
        env: vec![
            ("EDGE_INGEST_TOKEN".to_owned(), INGEST_TOKEN.to_owned()),
            // The browser's gone shop listens on loopback, which destination checks refuse otherwise.
            ("ALLOW_PRIVATE_TARGETS".to_owned(), "true".to_owned()),
        ],
        ..Default::default()
    });
    let acme = api.create_brand("Acme");
    let other = api.create_brand("Other");
    let password = api.create_user(&acme.id, "owner@acme.example");
    let other_password = api.create_user(&other.id, "owner@other.example");
    let (status, other_link) =
        api.call("POST", "/v1/links", &other.api_key, Some(&json!({"destination_url": "https://other.example/"})));
    assert_eq!(status, 201, "{other_link}");

    let screenshots = repo_root().join("target/e2e-screenshots");
    let output = Command::new("node")
        .arg(repo_root().join("tests/browser/dashboard.mjs"))
        .current_dir(repo_root())
        .env("BASE_URL", api.base_url())
        .env("INTERNAL_URL", api.internal_base_url())
        .env("EMAIL", "owner@acme.example")
        .env("PASSWORD", &password)
        .env("OTHER_EMAIL", "owner@other.example")
        .env("OTHER_PASSWORD", &other_password)
        .env("OTHER_LINK_CODE", other_link["code"].as_str().expect("a code"))
        .env("INGEST_TOKEN", INGEST_TOKEN)
        .env("PIXEL_ID", &acme.pixel_id)
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

    // What the browser did is what the REST API sees.
    let call = |path: &str| {
        let (status, body) = api.call("GET", path, &acme.api_key, None);
        assert_eq!(status, 200, "{path}: {body}");
        body
    };
    let jess_id = seen["jess_link"]["id"].as_str().expect("the first link's id");
    let jess = call(&format!("/v1/links/{jess_id}"));
    assert_eq!(jess["active"], false);
    assert!(jess["deleted_at"].is_string());
    assert_eq!(jess["short_url"], seen["short_url"]);
    assert_eq!(jess["destination_url"], "https://shop.example/products/serum?variant=2");
    assert_eq!(jess["platform"], "instagram");
    assert_eq!(jess["content_type"], "reel");
    assert_eq!(jess["promo_code"], "JESS20");
    assert_eq!(jess["share_revenue"], true);
    let creator = call(&format!("/v1/creators/{}", jess["creator_id"].as_str().expect("a creator")));
    assert_eq!(creator["handle"], "@jessica");
    let stats = call(&format!("/v1/links/{jess_id}/stats"));
    assert_eq!(stats["clicks"], 2, "{stats}");
    assert_eq!(stats["conversions"], 1, "{stats}");

    let sam = call(&format!("/v1/links/{}", seen["sam_link"]["id"].as_str().expect("the second link's id")));
    assert_eq!(sam["active"], true);
    assert_eq!(sam["promo_code"], "SAM10");
    assert_eq!(sam["platform"], "tiktok");
    // A link whose destination answers 404 is flagged, through the API too.
    let broken = call(&format!("/v1/links/{}", seen["broken_link"]["id"].as_str().expect("the broken link's id")));
    assert_eq!(
        (broken["destination_status"].as_str(), broken["destination_http_status"].as_i64()),
        (Some("broken"), Some(404))
    );
    let listed = call("/v1/links?destination_status=broken");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    // The CSV import created its one valid row.
    let imported = call("/v1/links?limit=200");
    let imported = imported["data"].as_array().expect("links");
    let mask = imported.iter().find(|l| l["short_url"] == seen["imported_url"]).expect("the imported link");
    assert_eq!((mask["promo_code"].as_str(), mask["utm_source"].as_str()), (Some("MASK15"), Some("instagram")));
    // Four links for this brand (two through the form, one to a gone page, one imported; the refused
    // attempts and the bad CSV row wrote nothing), one for the other.
    assert_eq!(imported.len(), 4);
    assert_eq!(api.sql_scalar("select count(*) from links"), "5");
    // Signed out: the session row is gone; the other brand's session is the only one left.
    assert_eq!(api.sql_scalar("select count(*) from sessions"), "1");

    for name in [
        "01-signed-in",
        "05-validation-error",
        "10-broken-destination",
        "10-qr-code",
        "10-import-preview",
        "10-deactivated",
        "12-other-brand-on-a-phone",
    ] {
        let shot = screenshots.join(format!("dashboard-{name}.png"));
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0), "{} was not saved", shot.display());
    }
}
