//! The creators' portal through the real router, driven like a browser: invitations accepted by a new
//! account and by an existing one (two brands, one person), the portal's figures equal to the brand's
//! `/v1/attribution`, revenue only on links that share it, unlinking, one creator never seeing another's
//! links, sessions and CSRF like the dashboard's, and statements issued from a portal session.

mod support;

use api::http::AppState;
use api::statements::generate_key;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Days, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::browser::{Browser, Page, LOCAL};
use support::{Api, Click};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

async fn api_with_key(pool: PgPool) -> Api {
    let key = generate_key(Utc::now());
    Api::with_state(AppState::new(pool, support::config(&[("STATEMENT_SIGNING_KEY", key.setting.as_str())]))).await
}

/// Jess with a link that shares revenue and one that does not, Sam with one: clicks and orders on each.
struct Scene {
    jess: String,
    sam: String,
    shared: Value,
    private: Value,
    sams: Value,
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
    let sams = api.create("/v1/links", json!({"destination_url": "https://c.example", "creator_id": sam["id"]})).await;
    let now = Utc::now();
    let visitor = Uuid::new_v4();
    let clicks = api
        .click(&[
            Click::new(&shared, visitor, now - Duration::hours(3)),
            Click::new(&shared, visitor, now - Duration::hours(2)),
            Click::new(&shared, Uuid::new_v4(), now - Duration::hours(2)),
            Click::new(&private, Uuid::new_v4(), now - Duration::hours(1)),
            Click::new(&sams, Uuid::new_v4(), now - Duration::hours(1)),
            Click::new(&shared, Uuid::new_v4(), now - Duration::days(3)),
        ])
        .await;
    api.report_order("9001", 12_999, Some(clicks[0]), &[]).await;
    api.report_order("9002", 5_000, Some(clicks[2]), &[]).await;
    api.report_order("9003", 3_000, Some(clicks[3]), &[]).await;
    api.report_order("9004", 7_000, Some(clicks[4]), &[]).await;
    Scene {
        jess: jess["id"].as_str().unwrap().to_owned(),
        sam: sam["id"].as_str().unwrap().to_owned(),
        shared,
        private,
        sams,
    }
}

/// A new invitation for the brand's creator; returns its path on this API.
async fn invite(api: &Api, creator: &str) -> String {
    let response = api.post(&format!("/v1/creators/{creator}/invitations"), json!(null)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    let url = response.body["url"].as_str().unwrap();
    let expires: DateTime<Utc> = response.body["expires_at"].as_str().unwrap().parse().unwrap();
    let week = Utc::now() + Duration::days(7);
    assert!((expires - week).num_seconds().abs() < 60, "{expires}");
    let path = url.strip_prefix("http://127.0.0.1:8080").unwrap_or_else(|| panic!("{url}"));
    assert!(path.starts_with("/creator/invitations/"), "{url}");
    path.to_owned()
}

/// Opens an invitation and creates an account through it.
async fn sign_up(browser: &mut Browser<'_>, invitation: &str, email: &str) -> Page {
    let page = browser.get(invitation).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let token = page.csrf();
    browser
        .post(
            &format!("{invitation}/sign-up"),
            &[("csrf", &token), ("new-email", email), ("new-password", PASSWORD), ("new-password-again", PASSWORD)],
        )
        .await
}

/// The text of a link row's cell (`td.num.<class>`) on a portal page.
fn cell(body: &str, code: &str, class: &str) -> String {
    let row = &body[body.find(&format!(r#"data-code="{code}""#)).unwrap_or_else(|| panic!("no row for {code}"))..];
    let row = &row[..row.find("</tr>").unwrap()];
    let at = row.find(&format!(r#"class="num {class}">"#)).unwrap_or_else(|| panic!("no {class} in {row}"));
    let text = &row[at + format!(r#"class="num {class}">"#).len()..];
    text[..text.find("</td>").unwrap()].to_owned()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_invited_creator_sees_exactly_the_brands_figures_for_their_own_links(pool: PgPool) {
    let api = api_with_key(pool).await;
    let scene = scene(&api).await;
    let creator = api.get(&format!("/v1/creators/{}", scene.jess)).await;
    assert_eq!(creator.body["joined_at"], Value::Null);
    let invitation = invite(&api, &scene.jess).await;
    let stored: Vec<u8> =
        sqlx::query_scalar("select token_hash from creator_invitations").fetch_one(&api.pool).await.unwrap();
    let token = invitation.rsplit('/').next().unwrap();
    assert_eq!(stored, api::secrets::hash(token).to_vec(), "only a hash of the link is kept");

    let mut browser = Browser::new(&api);
    let page = browser.get(&invitation).await;
    assert!(page.body.contains("Acme invites you") && page.body.contains("Jessica Lee"), "{}", page.body);
    // Refused sign-ups change nothing.
    let csrf = page.csrf();
    for (password, again, status) in [
        ("short", "short", StatusCode::UNPROCESSABLE_ENTITY),
        (PASSWORD, "other words entirely", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let refused = browser
            .post(
                &format!("{invitation}/sign-up"),
                &[
                    ("csrf", &csrf),
                    ("new-email", "jess@creator.example"),
                    ("new-password", password),
                    ("new-password-again", again),
                ],
            )
            .await;
        assert_eq!(refused.status, status, "{}", refused.body);
    }
    assert_eq!(api.count("creator_accounts").await, 0);

    let page = sign_up(&mut browser, &invitation, "Jess@Creator.example").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some(format!("/creator/brands/{}?joined=1", api.brand_id).as_str()));
    assert!(browser.cookies.contains_key("cs_creator_session"));
    let creator = api.get(&format!("/v1/creators/{}", scene.jess)).await;
    assert!(creator.body["joined_at"].is_string(), "{}", creator.body);
    // Used up: the link cannot be used again, and a joined creator gets no new one.
    assert_eq!(Browser::new(&api).get(&invitation).await.status, StatusCode::GONE);
    let again = api.post(&format!("/v1/creators/{}/invitations", scene.jess), json!(null)).await;
    assert_eq!((again.status, again.error_code()), (StatusCode::CONFLICT, "creator_joined"));

    // The period: yesterday and today.
    let today = Utc::now().date_naive();
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap();
    let page = browser.get(&format!("/creator/brands/{}?from={yesterday}&to={today}", api.brand_id)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (shared, private) = (scene.shared["code"].as_str().unwrap(), scene.private["code"].as_str().unwrap());
    assert!(!page.body.contains(scene.sams["code"].as_str().unwrap()), "another creator's link is never shown");
    let from = yesterday.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let report =
        api.get(&format!("/v1/attribution?group_by=link&from={}&to={}", rfc3339(from), rfc3339(Utc::now()))).await;
    let rows = report.body["data"].as_array().unwrap();
    for (link, code) in [(&scene.shared, shared), (&scene.private, private)] {
        let row = rows.iter().find(|r| r["key"] == link["id"]).unwrap();
        for (class, field) in [
            ("clicks", "clicks"),
            ("unique", "unique_clicks"),
            ("conversions", "conversions"),
            ("pending", "pending_conversions"),
        ] {
            assert_eq!(cell(&page.body, code, class), row[field].to_string(), "{field} of {code}");
        }
    }
    assert_eq!(cell(&page.body, shared, "revenue"), "179.99 USD");
    assert_eq!(cell(&page.body, private, "revenue"), "Not shared");
    assert!(!page.body.contains("30.00 USD"), "the private link's revenue appears nowhere");
    assert!(page.body.contains(r#"data-total="clicks">4<"#), "totals: {}", page.body);
    assert!(page.body.contains(r#"data-total="revenue">179.99 USD<"#));
    assert!(page.body.contains("<svg"), "a per-day chart");

    // Sam's records are not Jess's to see, nor another brand's pages.
    let other = api.other_brand().await;
    for path in [format!("/creator/brands/{}", other.brand_id), "/creator/brands/not-a-uuid".to_owned()] {
        assert_eq!(browser.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn one_account_follows_two_brands_until_one_unlinks_it(pool: PgPool) {
    let acme = api_with_key(pool).await;
    let scene = scene(&acme).await;
    let mut browser = Browser::new(&acme);
    assert_eq!(
        sign_up(&mut browser, &invite(&acme, &scene.jess).await, "jess@creator.example").await.status,
        StatusCode::SEE_OTHER
    );

    // A second brand invites the same person, who signs in to the account on the invitation page.
    let other = acme.other_brand().await;
    let jess_there = other.create("/v1/creators", json!({"name": "Jess L."})).await;
    let jess_there = jess_there["id"].as_str().unwrap().to_owned();
    other.create("/v1/links", json!({"destination_url": "https://other.example", "creator_id": jess_there})).await;
    let invitation = invite(&other, &jess_there).await;
    let mut fresh = Browser::new(&acme);
    let token = fresh.get(&invitation).await.csrf();
    let wrong = fresh
        .post(
            &format!("{invitation}/sign-in"),
            &[("csrf", &token), ("email", "jess@creator.example"), ("password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Incorrect email or password."));
    let page = fresh
        .post(
            &format!("{invitation}/sign-in"),
            &[("csrf", &token), ("email", "jess@creator.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some(format!("/creator/brands/{}?joined=1", other.brand_id).as_str()));
    assert_eq!(acme.count("creator_accounts").await, 1);
    let home = browser.get("/creator").await;
    assert!(
        home.body.contains(&format!("/creator/brands/{}", acme.brand_id))
            && home.body.contains(&format!("/creator/brands/{}", other.brand_id)),
        "{}",
        home.body
    );

    // A third brand's invitation, accepted by the signed-in account in one click.
    let third = acme.other_brand().await;
    let jess_third = third.create("/v1/creators", json!({"name": "Jess"})).await;
    let invitation = invite(&third, jess_third["id"].as_str().unwrap()).await;
    let page = browser.get(&invitation).await;
    assert!(page.body.contains("Accept as jess@creator.example"), "{}", page.body);
    let accepted = browser.post(&format!("{invitation}/accept"), &[("csrf", &page.csrf())]).await;
    assert_eq!(accepted.location(), Some(format!("/creator/brands/{}?joined=1", third.brand_id).as_str()));
    // The account already follows Jess at Acme: Sam's invitation cannot add a second creator of Acme.
    let sams = invite(&acme, &scene.sam).await;
    let page = browser.get(&sams).await;
    let refused = browser.post(&format!("{sams}/accept"), &[("csrf", &page.csrf())]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);

    // The second brand unlinks its record: gone from the portal at once, everywhere.
    let unlinked = other.delete(&format!("/v1/creators/{jess_there}/account")).await;
    assert_eq!(unlinked.status, StatusCode::NO_CONTENT);
    assert_eq!(browser.get(&format!("/creator/brands/{}", other.brand_id)).await.status, StatusCode::NOT_FOUND);
    assert!(!browser.get("/creator").await.body.contains(&format!("/creator/brands/{}", other.brand_id)));
    assert_eq!(other.get(&format!("/v1/creators/{jess_there}")).await.body["joined_at"], Value::Null);
    assert_eq!(other.delete(&format!("/v1/creators/{jess_there}/account")).await.status, StatusCode::NO_CONTENT);
    // Another brand's creator is not this brand's to unlink or invite.
    assert_eq!(other.delete(&format!("/v1/creators/{}/account", scene.jess)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        other.post(&format!("/v1/creators/{}/invitations", scene.jess), json!(null)).await.status,
        StatusCode::NOT_FOUND
    );
    // Statements from the portal name a brand the account follows.
    let issued = issue_json(&mut browser, other.brand_id, true).await;
    assert_eq!(issued.status, StatusCode::NOT_FOUND, "{}", issued.body);
}

/// `POST /v1/me/statements` with the portal's session cookie, from this site or not.
async fn issue_json(browser: &mut Browser<'_>, brand_id: Uuid, same_site: bool) -> Page {
    let now = Utc::now();
    let body = json!({"brand_id": brand_id, "from": rfc3339(now - Duration::days(1)), "to": rfc3339(now)});
    let origin = format!("http://{LOCAL}");
    let headers: Vec<(&str, &str)> = if same_site {
        vec![("origin", origin.as_str()), ("sec-fetch-site", "same-origin")]
    } else {
        vec![("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")]
    };
    browser
        .send_body(
            Method::POST,
            "/v1/me/statements",
            Some(("application/json".into(), Body::from(body.to_string()))),
            &headers,
        )
        .await
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn statements_come_from_the_portal_with_revenue_only_where_shared(pool: PgPool) {
    let api = api_with_key(pool).await;
    let scene = scene(&api).await;
    let mut browser = Browser::new(&api);
    sign_up(&mut browser, &invite(&api, &scene.jess).await, "jess@creator.example").await;
    let page = browser.get(&format!("/creator/brands/{}", api.brand_id)).await;
    let today = Utc::now().date_naive();
    let from = today.checked_sub_days(Days::new(6)).unwrap();
    let path = format!("/creator/brands/{}/statements", api.brand_id);
    let (from_day, to_day) = (from.to_string(), today.to_string());
    let forged = browser.post(&path, &[("csrf", "not-the-token"), ("from", &from_day), ("to", &to_day)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let issued = browser.post(&path, &[("csrf", &page.csrf()), ("from", &from_day), ("to", &to_day)]).await;
    assert_eq!(issued.status, StatusCode::SEE_OTHER, "{}", issued.body);
    let location = issued.location().unwrap().to_owned();
    assert!(location.starts_with("/statements/st_"), "{location}");
    let shown = browser.get(&location).await;
    assert!(shown.body.contains("Valid"), "{}", shown.body);
    let document = browser.get(&format!("{location}.json")).await;
    let document: Value = serde_json::from_str(&document.body).unwrap();
    let statement = &document["statement"];
    assert_eq!(statement["period"]["from"], format!("{from}T00:00:00Z"));
    assert_eq!(statement["creator"], json!({"name": "Jessica Lee", "handle": "@jess"}));
    let links = statement["links"].as_array().unwrap();
    let private = links.iter().find(|l| l["code"] == scene.private["code"]).unwrap();
    assert!(private.get("revenue").is_none(), "{private}");
    let shared = links.iter().find(|l| l["code"] == scene.shared["code"]).unwrap();
    assert_eq!(shared["revenue"], json!([{"amount_minor": 17_999, "currency": "USD"}]));
    assert_eq!(statement["totals"]["revenue"], json!([{"amount_minor": 17_999, "currency": "USD"}]));
    let verdict = api.send(Method::POST, "/v1/statements/verify", None, Some(Body::from(document.to_string()))).await;
    assert_eq!(verdict.body["valid"], true, "{}", verdict.body);
    // The brand page lists it.
    assert!(browser
        .get(&format!("/creator/brands/{}", api.brand_id))
        .await
        .body
        .contains(location.trim_start_matches("/statements/")));

    // The REST endpoint with the portal's session, from this site only.
    let json_issued = issue_json(&mut browser, api.brand_id, true).await;
    assert_eq!(json_issued.status, StatusCode::CREATED, "{}", json_issued.body);
    let json_doc: Value = serde_json::from_str(&json_issued.body).unwrap();
    assert_eq!(json_doc["statement"]["creator"]["name"], "Jessica Lee");
    assert_eq!(issue_json(&mut browser, api.brand_id, false).await.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn portal_sessions_sign_in_out_and_refuse_forged_forms(pool: PgPool) {
    let api = api_with_key(pool).await;
    let scene = scene(&api).await;
    let mut browser = Browser::new(&api);
    sign_up(&mut browser, &invite(&api, &scene.jess).await, "jess@creator.example").await;
    let session: Vec<u8> =
        sqlx::query_scalar("select token_hash from creator_sessions").fetch_one(&api.pool).await.unwrap();
    assert_eq!(session, api::secrets::hash(&browser.cookies["cs_creator_session"]).to_vec());
    let page = browser.get("/creator").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    // Another site's form, or one without the session's token, is refused.
    let csrf = page.csrf();
    let forged = browser
        .send(
            Method::POST,
            "/creator/sign-out",
            Some(&[("csrf", csrf.as_str())]),
            &[("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.post("/creator/sign-out", &[("csrf", "wrong")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.count("creator_sessions").await, 1);
    // A brand's dashboard session opens nothing here, and the portal's opens nothing there.
    let dashboard = browser.get("/brand/attribution/links").await;
    assert_eq!(dashboard.location(), Some("/brand/sign-in?next=%2Fbrand%2Fattribution%2Flinks"));

    let out = browser.post("/creator/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), Some("/creator/sign-in?signed_out=1"));
    assert_eq!(api.count("creator_sessions").await, 0);
    let home = browser.get("/creator").await;
    assert_eq!(home.location(), Some("/creator/sign-in?next=%2Fcreator"));

    let token = browser.get("/creator/sign-in").await.csrf();
    let wrong = browser
        .post(
            "/creator/sign-in",
            &[("csrf", &token), ("email", "jess@creator.example"), ("password", "nope nope nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = browser
        .post("/creator/sign-in", &[("csrf", &token), ("email", "nobody@creator.example"), ("password", PASSWORD)])
        .await;
    assert_eq!(
        (unknown.status, unknown.body.contains("Incorrect email or password.")),
        (StatusCode::UNAUTHORIZED, true)
    );
    let back = browser
        .post(
            "/creator/sign-in",
            &[
                ("csrf", &token),
                ("email", "jess@creator.example"),
                ("password", PASSWORD),
                ("next", "/creator/brands/x"),
            ],
        )
        .await;
    assert_eq!(back.location(), Some("/creator/brands/x"));
    // Never anywhere else after sign-in.
    let mut elsewhere = Browser::new(&api);
    let token = elsewhere.get("/creator/sign-in").await.csrf();
    let away = elsewhere
        .post(
            "/creator/sign-in",
            &[
                ("csrf", &token),
                ("email", "jess@creator.example"),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(away.location(), Some("/creator"));
}
