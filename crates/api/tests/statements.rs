//! Signed statements: issued by a creator, with the reports' own figures, verified online and offline,
//! rotated keys, revocation, and the public pages.

mod support;

use api::http::AppState;
use api::statements::{generate_key, NewKey};
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{Api, Click};
use tower::ServiceExt;
use uuid::Uuid;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An API signing statements with `key` (and these retired keys), verifications not limited.
async fn api_with(pool: PgPool, key: Option<&NewKey>, retired: &[&NewKey]) -> Api {
    let retired: Vec<String> = retired.iter().map(|k| format!("{}:{}", k.kid, k.public_key)).collect();
    let retired = retired.join(",");
    let mut overrides = vec![
        ("STATEMENT_VERIFY_RATE_PER_CLIENT", "1000"),
        ("STATEMENT_RETIRED_KEYS", retired.as_str()),
        ("PUBLIC_BASE_URL", "https://api.example"),
    ];
    if let Some(key) = key {
        overrides.push(("STATEMENT_SIGNING_KEY", key.setting.as_str()));
    }
    Api::with_state(AppState::new(pool, support::config(&overrides))).await
}

/// A raw request: status, headers and body text.
async fn raw(
    api: &Api,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = auth {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let response = api.router.clone().oneshot(request.body(body.into()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// What one scenario set up: a creator with a shared and a private link, clicks and orders on both, and
/// another creator's link; the creator's token.
struct Scene {
    creator_id: String,
    token: String,
    shared: Value,
    private: Value,
    shared_order: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

async fn scene(api: &Api) -> Scene {
    let jess = api.create("/v1/creators", json!({"name": "Jessica Lee", "handle": "@jess"})).await;
    let sam = api.create("/v1/creators", json!({"name": "Sam"})).await;
    let shared = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://a.example", "creator_id": jess["id"], "share_revenue": true,
                "platform": "instagram", "content_type": "reel"}),
        )
        .await;
    let private =
        api.create("/v1/links", json!({"destination_url": "https://b.example", "creator_id": jess["id"]})).await;
    let other = api.create("/v1/links", json!({"destination_url": "https://c.example", "creator_id": sam["id"]})).await;
    let now = Utc::now();
    let visitor = Uuid::new_v4();
    let clicks = api
        .click(&[
            Click::new(&shared, visitor, now - Duration::hours(3)),
            Click::new(&shared, visitor, now - Duration::hours(2)),
            Click::new(&shared, Uuid::new_v4(), now - Duration::hours(2)),
            Click::new(&private, Uuid::new_v4(), now - Duration::hours(1)),
            Click::new(&other, Uuid::new_v4(), now - Duration::hours(1)),
            // Before the period: not counted.
            Click::new(&shared, Uuid::new_v4(), now - Duration::days(3)),
        ])
        .await;
    api.report_order("9001", 12_999, Some(clicks[0]), &[]).await;
    api.report_order("9002", 5_000, Some(clicks[2]), &[]).await;
    api.report_order("9003", 3_000, Some(clicks[3]), &[]).await;
    api.report_order("9004", 7_000, Some(clicks[4]), &[]).await;
    let token = api.create(&format!("/v1/creators/{}/tokens", jess["id"].as_str().unwrap()), json!({})).await;
    Scene {
        creator_id: jess["id"].as_str().unwrap().to_owned(),
        token: token["token"].as_str().unwrap().to_owned(),
        shared,
        private,
        shared_order: "9001".into(),
        from: now - Duration::days(1),
        to: now,
    }
}

/// Issues a statement for the scene's creator; returns its text as served.
async fn issue(api: &Api, scene: &Scene) -> String {
    let body = json!({"brand_id": api.brand_id, "from": rfc3339(scene.from), "to": rfc3339(scene.to)}).to_string();
    let (status, headers, text) =
        raw(api, Method::POST, "/v1/me/statements", Some(&scene.token), Some("application/json"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    text
}

async fn verify(api: &Api, document: &str) -> Value {
    let (status, _, text) =
        raw(api, Method::POST, "/v1/statements/verify", None, Some("application/json"), document.to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_statement_carries_the_reports_figures_and_revenue_only_where_shared(pool: PgPool) {
    let key = generate_key(Utc::now());
    let api = api_with(pool, Some(&key), &[]).await;
    let scene = scene(&api).await;
    let text = issue(&api, &scene).await;
    let doc: Value = serde_json::from_str(&text).unwrap();
    let statement = &doc["statement"];
    assert!(statement["id"].as_str().unwrap().starts_with("st_") && statement["id"].as_str().unwrap().len() >= 25);
    assert_eq!(statement["issuer"], "https://api.example");
    assert_eq!(statement["brand"], json!({"id": api.brand_id.to_string(), "name": "Acme"}));
    assert_eq!(statement["creator"], json!({"name": "Jessica Lee", "handle": "@jess"}));
    assert_eq!(statement["period"], json!({"from": rfc3339(scene.from), "to": rfc3339(scene.to)}));
    assert_eq!(statement["kid"], key.kid.as_str());

    let report =
        api.get(&format!("/v1/attribution?group_by=link&from={}&to={}", rfc3339(scene.from), rfc3339(scene.to))).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let rows = report.body["data"].as_array().unwrap();
    let links = statement["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "only the creator's links: {statement}");
    for (link, shares) in [(&scene.shared, true), (&scene.private, false)] {
        let row = rows.iter().find(|r| r["key"] == link["id"]).unwrap();
        let item = links.iter().find(|l| l["code"] == link["code"]).unwrap();
        for field in ["clicks", "unique_clicks", "conversions"] {
            assert_eq!(item[field], row[field], "{field} of {item}");
        }
        assert_eq!(item["short_url"], link["short_url"]);
        if shares {
            assert_eq!(item["revenue"], row["revenue"]);
            assert_eq!(item["revenue"], json!([{"amount_minor": 17_999, "currency": "USD"}]));
            assert_eq!((item["platform"].as_str(), item["content_type"].as_str()), (Some("instagram"), Some("reel")));
        } else {
            assert!(item.get("revenue").is_none(), "{item}");
        }
    }
    assert_eq!(links.iter().map(|l| l["clicks"].as_i64().unwrap()).sum::<i64>(), 4);
    assert_eq!(
        statement["totals"],
        json!({"clicks": 4, "unique_clicks": 3, "conversions": 3,
            "revenue": [{"amount_minor": 17_999, "currency": "USD"}]})
    );

    // Stored byte for byte.
    let id = statement["id"].as_str().unwrap();
    let (status, headers, download) = raw(&api, Method::GET, &format!("/statements/{id}.json"), None, None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(download, text);
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));

    let verdict = verify(&api, &text).await;
    assert_eq!(verdict, json!({"valid": true, "statement_id": id, "issued_at": statement["issued_at"]}));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn without_shared_links_no_revenue_is_stated(pool: PgPool) {
    let key = generate_key(Utc::now());
    let api = api_with(pool, Some(&key), &[]).await;
    let lee = api.create("/v1/creators", json!({"name": "Lee"})).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://b.example", "creator_id": lee["id"]})).await;
    let clicks = api.click(&[Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::hours(1))]).await;
    api.report_order("1", 1_000, Some(clicks[0]), &[]).await;
    let token = api.create(&format!("/v1/creators/{}/tokens", lee["id"].as_str().unwrap()), json!({})).await;
    let body =
        json!({"brand_id": api.brand_id, "from": rfc3339(Utc::now() - Duration::days(1)), "to": rfc3339(Utc::now())});
    let issued =
        api.send(Method::POST, "/v1/me/statements", token["token"].as_str(), Some(Body::from(body.to_string()))).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    assert_eq!(issued.body["statement"]["totals"], json!({"clicks": 1, "unique_clicks": 1, "conversions": 1}));
    assert!(issued.body["statement"]["links"][0].get("revenue").is_none());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn every_one_byte_change_to_the_statement_makes_it_invalid(pool: PgPool) {
    let key = generate_key(Utc::now());
    let api = api_with(pool, Some(&key), &[]).await;
    let scene = scene(&api).await;
    let text = issue(&api, &scene).await;
    let keys = &api.state.config.statement_keys;
    let original: Value = serde_json::from_str(&text).unwrap();
    assert!(api::statements::check_signature(keys, &original).is_ok());
    let end = text.find(",\"signature\"").unwrap();
    let mut changed = 0;
    for (i, byte) in text.bytes().enumerate().take(end) {
        let replacement = match byte {
            b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => byte + 1,
            b'9' => b'0',
            b'z' => b'a',
            b'Z' => b'A',
            _ => continue,
        };
        let mut bytes = text.clone().into_bytes();
        bytes[i] = replacement;
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else { continue };
        assert!(
            api::statements::check_signature(keys, &value).is_err(),
            "a change at byte {i} verified: {}",
            String::from_utf8_lossy(&bytes)
        );
        changed += 1;
    }
    assert!(changed > 300, "{changed} changes tried");

    // Over HTTP: a figure, then a name.
    let more_clicks = text.replacen("\"totals\":{\"clicks\":4", "\"totals\":{\"clicks\":5", 1);
    assert_ne!(more_clicks, text);
    assert_eq!(verify(&api, &more_clicks).await, json!({"valid": false, "reason": "bad_signature"}));
    let renamed = text.replacen("Jessica Lee", "Jessica Lea", 1);
    assert_eq!(verify(&api, &renamed).await["reason"], "bad_signature");
    assert_eq!(verify(&api, r#"{"statement": {}, "signature": "x"}"#).await["reason"], "malformed");
    let (status, _, _) =
        raw(&api, Method::POST, "/v1/statements/verify", None, Some("application/json"), "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_rotated_key_still_verifies_old_statements_and_a_dropped_one_does_not(pool: PgPool) {
    let old = generate_key(Utc::now());
    let api = api_with(pool.clone(), Some(&old), &[]).await;
    let scene = scene(&api).await;
    let text = issue(&api, &scene).await;

    let new = generate_key(Utc::now());
    let rotated = api_with(pool.clone(), Some(&new), &[&old]).await;
    let keys = rotated.send(Method::GET, "/.well-known/statement-keys", None, None).await;
    let kids: Vec<&str> = keys.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![new.kid.as_str(), old.kid.as_str()]);
    assert_eq!(keys.body["keys"][1], json!({"kty": "OKP", "crv": "Ed25519", "kid": old.kid, "x": old.public_key}));
    assert_eq!(verify(&rotated, &text).await["valid"], true);

    let dropped = api_with(pool.clone(), Some(&new), &[]).await;
    assert_eq!(verify(&dropped, &text).await, json!({"valid": false, "reason": "unknown_key"}));

    // Without a signing key: nothing is issued, and only retired keys are served.
    let unsigned = api_with(pool, None, &[&old]).await;
    let body = json!({"brand_id": api.brand_id, "from": rfc3339(scene.from), "to": rfc3339(scene.to)}).to_string();
    let refused = unsigned.send(Method::POST, "/v1/me/statements", Some(&scene.token), Some(Body::from(body))).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "statements_unavailable"));
    let keys = unsigned.send(Method::GET, "/.well-known/statement-keys", None, None).await;
    assert_eq!(keys.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(verify(&unsigned, &text).await["valid"], true);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_brand_revokes_its_own_statements_only_and_creators_issue_only_for_their_brand(pool: PgPool) {
    let key = generate_key(Utc::now());
    let api = api_with(pool, Some(&key), &[]).await;
    let scene = scene(&api).await;
    let text = issue(&api, &scene).await;
    let id = serde_json::from_str::<Value>(&text).unwrap()["statement"]["id"].as_str().unwrap().to_owned();

    let other = api.other_brand().await;
    let theirs = other.post(&format!("/v1/statements/{id}/revoke"), json!({})).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(verify(&api, &text).await["valid"], true);

    let revoked = api.post(&format!("/v1/statements/{id}/revoke"), json!({"reason": "orders cancelled"})).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["id"], id.as_str());
    let again = api.send(Method::POST, &format!("/v1/statements/{id}/revoke"), Some(&api.key), None).await;
    assert_eq!((again.status, &again.body["revoked_at"]), (StatusCode::OK, &revoked.body["revoked_at"]));
    let verdict = verify(&api, &text).await;
    assert_eq!((verdict["valid"].clone(), verdict["reason"].clone()), (json!(false), json!("revoked")));
    assert_eq!(verdict["revoked_at"], revoked.body["revoked_at"]);
    let reason: Option<String> = sqlx::query_scalar("select revoked_reason from statements where id = $1")
        .bind(&id)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("orders cancelled"));
    for unknown in ["st_nope", "st_a%00b", "nope", "st_a%20b"] {
        let response = api.post(&format!("/v1/statements/{unknown}/revoke"), json!({})).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{unknown}");
        let (status, _, _) = raw(&api, Method::GET, &format!("/statements/{unknown}"), None, None, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    }

    // Another brand's creator cannot issue for this brand; this creator not for the other brand.
    let stranger = other.create("/v1/creators", json!({"name": "Stranger"})).await;
    let token = other.create(&format!("/v1/creators/{}/tokens", stranger["id"].as_str().unwrap()), json!({})).await;
    let body = |brand: Uuid| {
        Some(Body::from(json!({"brand_id": brand, "from": rfc3339(scene.from), "to": rfc3339(scene.to)}).to_string()))
    };
    let foreign = api.send(Method::POST, "/v1/me/statements", token["token"].as_str(), body(api.brand_id)).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let mine_elsewhere = api.send(Method::POST, "/v1/me/statements", Some(&scene.token), body(other.brand_id)).await;
    assert_eq!(mine_elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.send(Method::POST, "/v1/me/statements", Some(&api.key), body(api.brand_id)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let backwards = json!({"brand_id": api.brand_id, "from": rfc3339(scene.to), "to": rfc3339(scene.from)}).to_string();
    let refused = api.send(Method::POST, "/v1/me/statements", Some(&scene.token), Some(Body::from(backwards))).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_period"));
    let count: i64 = sqlx::query_scalar("select count(*) from statements where creator_id = $1::uuid")
        .bind(&scene.creator_id)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // The brand's list: this creator's statements, paged; another brand sees none of them.
    let second = issue(&api, &scene).await;
    let second_id = serde_json::from_str::<Value>(&second).unwrap()["statement"]["id"].as_str().unwrap().to_owned();
    let page = api.get(&format!("/v1/statements?creator_id={}&limit=1", scene.creator_id)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["data"][0]["id"], second_id.as_str());
    assert!(page.body["data"][0]["revoked_at"].is_null());
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = api.get(&format!("/v1/statements?creator_id={}&limit=1&cursor={cursor}", scene.creator_id)).await;
    assert_eq!(next.body["data"][0]["id"], id.as_str());
    assert!(next.body["data"][0]["revoked_at"].is_string());
    assert_eq!(other.get("/v1/statements").await.body["data"], json!([]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_statement_verifies_offline_with_the_python_script(pool: PgPool) {
    let key = generate_key(Utc::now());
    let api = api_with(pool, Some(&key), &[]).await;
    let scene = scene(&api).await;
    let text = issue(&api, &scene).await;
    let keys = api.send(Method::GET, "/.well-known/statement-keys", None, None).await.body.to_string();
    let dir = std::env::temp_dir().join(format!("statements-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (doc_path, keys_path) = (dir.join("statement.json"), dir.join("keys.json"));
    std::fs::write(&keys_path, keys).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/verify-statement.py");
    let run = |document: &str| {
        std::fs::write(&doc_path, document).unwrap();
        std::process::Command::new("python3").arg(script).arg(&doc_path).arg(&keys_path).output().unwrap()
    };
    let ok = run(&text);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("valid"));
    let changed = run(&text.replacen("\"conversions\":3", "\"conversions\":4", 1));
    assert!(!changed.status.success(), "a changed figure must not verify offline");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_public_page_shows_the_verdict_figures_changes_and_revocation(pool: PgPool) {
    let key = generate_key(Utc::now());
    let api = api_with(pool, Some(&key), &[]).await;
    let scene = scene(&api).await;
    let text = issue(&api, &scene).await;
    let id = serde_json::from_str::<Value>(&text).unwrap()["statement"]["id"].as_str().unwrap().to_owned();
    let page = format!("/statements/{id}");
    let show = || raw(&api, Method::GET, &page, None, None, "");

    let (status, headers, html) = show().await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    assert!(html.contains("Valid") && !html.contains("Not valid"), "{html}");
    assert!(html.contains("Jessica Lee") && html.contains("Acme"));
    assert!(html.contains(scene.shared["short_url"].as_str().unwrap()));
    assert!(html.contains("179.99 USD"), "shared revenue is shown");
    assert!(html.contains(&format!("href=\"/statements/{id}.json\"")) && html.contains("Download JSON"));
    assert!(!html.contains("Figures have changed"));

    let refund = json!({"refund_id": "r-1", "amount": {"amount_minor": 2_999, "currency": "USD"},
        "occurred_at": rfc3339(Utc::now())});
    let refunded = api.post(&format!("/v1/conversions/{}/refunds", scene.shared_order), refund).await;
    assert!(refunded.status.is_success(), "{}", refunded.body);
    let (_, _, html) = show().await;
    assert!(html.contains("Figures have changed since this statement was issued"), "{html}");
    assert!(html.contains("Valid"), "the signature still holds");

    api.post(&format!("/v1/statements/{id}/revoke"), json!({})).await;
    let (_, _, html) = show().await;
    assert!(html.contains("Revoked on") && html.contains("Not valid"), "{html}");

    let (status, _, html) = raw(&api, Method::GET, "/statements/st_unknown", None, None, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Statement not found"));
    let (status, _, _) = raw(&api, Method::GET, "/statements/st_unknown.json", None, None, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_verify_page_checks_a_pasted_statement(pool: PgPool) {
    let key = generate_key(Utc::now());
    let api = api_with(pool, Some(&key), &[]).await;
    let scene = scene(&api).await;
    let text = issue(&api, &scene).await;
    let (status, _, form) = raw(&api, Method::GET, "/verify", None, None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("<textarea") && form.contains("type=\"file\""));
    let multipart = |document: &str| {
        format!(
            "--XYZ\r\nContent-Disposition: form-data; name=\"document\"\r\n\r\n{document}\r\n\
             --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--XYZ--\r\n"
        )
    };
    let post = |document: String| {
        raw(&api, Method::POST, "/verify", None, Some("multipart/form-data; boundary=XYZ"), multipart(&document))
    };
    let (status, _, html) = post(text.clone()).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Valid") && !html.contains("Not valid") && html.contains("Jessica Lee"), "{html}");
    let (_, _, html) = post(text.replacen("\"clicks\":", "\"clicks\":1", 1)).await;
    assert!(html.contains("Not valid") && html.contains("signature does not match"), "{html}");
    let (_, _, html) = post("nonsense".into()).await;
    assert!(html.contains("Not valid"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn verification_is_rate_limited_per_client(pool: PgPool) {
    let api = Api::with_state(AppState::new(pool, support::config(&[("STATEMENT_VERIFY_RATE_PER_CLIENT", "1")]))).await;
    let statuses: Vec<StatusCode> = futures_statuses(&api).await;
    assert_eq!(statuses[..2], [StatusCode::OK, StatusCode::OK]);
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS);
}

async fn futures_statuses(api: &Api) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _, _) = raw(
            api,
            Method::POST,
            "/v1/statements/verify",
            None,
            Some("application/json"),
            r#"{"statement": {}, "signature": ""}"#,
        )
        .await;
        statuses.push(status);
    }
    statuses
}
