//! The creators' portal in headless Chromium against the real `api` binary and PostgreSQL: every scenario
//! of `tests/browser/portal.mjs` (an invitation accepted with a new account, the creator's figures with
//! revenue only where shared, a chosen period, a signed statement downloaded and verified on `/verify`, a
//! tampered copy refused, the phone layout, signing out and in, and the brand unlinking the account), then
//! the same facts read back through the REST API and the database. Screenshots go to
//! `target/e2e-screenshots/`.

use std::process::Command;

use e2e::api::{ApiOptions, ApiProcess};
use e2e::repo_root;
use serde_json::{json, Value};

const INGEST_TOKEN: &str = "portal-e2e-ingest-0123456789abcdefgh";

#[test]
fn a_creator_joins_sees_their_figures_and_proves_them_in_a_real_browser() {
    // A signing key made as an operator makes one (it needs no database).
    let made = Command::new(e2e::api::binary()).args(["statement-key", "create"]).output().expect("run api");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let signing_key = String::from_utf8_lossy(&made.stdout).into_owned();
    let setting = signing_key
        .lines()
        .find_map(|l| l.strip_prefix("STATEMENT_SIGNING_KEY="))
        .unwrap_or_else(|| panic!("no STATEMENT_SIGNING_KEY line in {signing_key}"))
        .to_owned();
    let api = ApiProcess::start(ApiOptions {
        env: vec![
            ("EDGE_INGEST_TOKEN".to_owned(), INGEST_TOKEN.to_owned()),
            ("STATEMENT_SIGNING_KEY".to_owned(), setting),
        ],
        ..Default::default()
    });
    let acme = api.create_brand("Acme");
    let call = |method: &str, path: &str, body: Option<&Value>| {
        let (status, body) = api.call(method, path, &acme.api_key, body);
        assert!((200..300).contains(&status), "{method} {path}: {status} {body}");
        body
    };
    let jess = call("POST", "/v1/creators", Some(&json!({"name": "Jessica Lee", "handle": "@jess"})));
    let sam = call("POST", "/v1/creators", Some(&json!({"name": "Sam"})));
    let link = |creator: &Value, share: bool| {
        call(
            "POST",
            "/v1/links",
            Some(
                &json!({"destination_url": "https://shop.example/", "creator_id": creator["id"], "share_revenue": share,
                "platform": "instagram", "content_type": "reel"}),
            ),
        )
    };
    let (shared, private, sams) = (link(&jess, true), link(&jess, false), link(&sam, true));
    let creator_id = jess["id"].as_str().expect("an id");
    let invitation = call("POST", &format!("/v1/creators/{creator_id}/invitations"), Some(&json!({})));
    // The link names PUBLIC_BASE_URL's origin; this API listens on a port of its own.
    let path = invitation["url"].as_str().and_then(|u| u.find("/creator/").map(|i| u[i..].to_owned())).expect("a path");

    let screenshots = repo_root().join("target/e2e-screenshots");
    let pick = |l: &Value| json!({"id": l["id"], "code": l["code"]}).to_string();
    let output = Command::new("node")
        .arg(repo_root().join("tests/browser/portal.mjs"))
        .current_dir(repo_root())
        .env("BASE_URL", api.base_url())
        .env("INTERNAL_URL", api.internal_base_url())
        .env("INGEST_TOKEN", INGEST_TOKEN)
        .env("API_KEY", &acme.api_key)
        .env("INVITATION_URL", api.url(&path))
        .env("CREATOR_ID", creator_id)
        .env("SHARED_LINK", pick(&shared))
        .env("PRIVATE_LINK", pick(&private))
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

    // One account, signed out of nothing it did not sign in to; the statement is stored and verifies.
    assert_eq!(api.sql_scalar("select email from creator_accounts"), "jess@creator.example");
    let statement_id = seen["statement_id"].as_str().expect("a statement id");
    assert_eq!(api.sql_scalar(&format!("select count(*) from statements where id = '{statement_id}'")), "1");
    let listed = call("GET", &format!("/v1/statements?creator_id={creator_id}"), None);
    assert_eq!(listed["data"][0]["id"], statement_id, "{listed}");
    // Unlinked by the brand: not joined any more, and no open invitation left.
    assert_eq!(call("GET", &format!("/v1/creators/{creator_id}"), None)["joined_at"], Value::Null);
    assert_eq!(api.sql_scalar("select count(*) from creator_invitations where used_at is null"), "0");
    // Sam's link was never the creator's to see (the browser checked the pages; the statement agrees).
    let document = api.sql_scalar(&format!("select document from statements where id = '{statement_id}'"));
    assert!(!document.contains(sams["code"].as_str().expect("a code")), "{document}");

    for name in
        ["01-invitation", "02-brand", "03-statement", "04-verify-valid", "05-verify-tampered", "06-phone", "07-home"]
    {
        let shot = screenshots.join(format!("portal-{name}.png"));
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0), "{} was not saved", shot.display());
    }
}
