//! The brand dashboard's server side: sign-in, sessions and their expiry, CSRF and cross-site refusals,
//! sign-in rate limits, and a session reaching exactly its own brand, driven through the real router
//! the way a browser drives it (cookies kept between requests, forms posted url-encoded).

mod support;

use api::http::AppState;
use axum::http::{header, Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use support::browser::{Browser, Page, LOCAL};
use support::Api;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

/// Signing in to the brand dashboard.
trait SignIn {
    async fn sign_in(&mut self, email: &str, password: &str) -> Page;
    /// Signs in and returns the session's form token.
    async fn signed_in(&mut self, email: &str) -> String;
}

impl SignIn for Browser<'_> {
    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let token = self.get("/brand/sign-in").await.csrf();
        self.post("/brand/sign-in", &[("csrf", &token), ("email", email), ("password", password)]).await
    }

    async fn signed_in(&mut self, email: &str) -> String {
        let page = self.sign_in(email, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        self.get("/brand/attribution/links").await.csrf()
    }
}

async fn user(api: &Api, email: &str) -> Uuid {
    api::users::create_user(&api.pool, api.brand_id, email, PASSWORD).await.unwrap()
}

async fn sessions(api: &Api) -> i64 {
    api.count("sessions").await
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn signing_in_sets_an_http_only_lax_expiring_cookie_and_stores_only_a_hash_of_it(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    let page = browser.get("/brand/attribution/links").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/brand/sign-in?next=%2Fbrand%2Fattribution%2Flinks"));

    let page = browser.sign_in(" JESS@acme.example", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/brand/attribution/links"));
    let cookie = page.set_cookies().into_iter().find(|c| c.starts_with("cs_session=")).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    // Plain-http loopback development: no Secure, so no __Host- prefix either.
    assert!(!cookie.contains("Secure"), "{cookie}");
    let token = browser.cookies["cs_session"].clone();
    let stored: Vec<u8> = sqlx::query_scalar("select token_hash from sessions").fetch_one(&api.pool).await.unwrap();
    assert_eq!(stored, api::secrets::hash(&token).to_vec());
    let raw_anywhere: bool = sqlx::query_scalar("select exists (select 1 from sessions where encode(token_hash, 'escape') like '%' || $1 || '%' or csrf_token = $1)")
        .bind(&token)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert!(!raw_anywhere);
    let page = browser.get("/brand/attribution/links").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("jess@acme.example"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn off_loopback_cookies_are_secure_and_host_prefixed(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    browser.host = "app.creatorscore.io".to_owned();
    let page = browser.get("/brand/sign-in").await;
    assert!(page.set_cookies().iter().any(|c| c.starts_with("__Host-cs_signin=") && c.contains("Secure")));
    let page = browser.sign_in("jess@acme.example", PASSWORD).await;
    let cookie =
        page.set_cookies().into_iter().find(|c| c.starts_with("__Host-cs_session=")).expect("a __Host- cookie");
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"), "{cookie}");
    assert_eq!(browser.get("/brand/attribution/links").await.status, StatusCode::OK);
    // The same cookie without the prefix is not a session.
    let token = browser.cookies.remove("__Host-cs_session").unwrap();
    browser.cookies.insert("cs_session".to_owned(), token);
    assert_eq!(browser.get("/brand/attribution/links").await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    let wrong_password = browser.sign_in("jess@acme.example", "not the password").await;
    let unknown_email = browser.sign_in("nobody@acme.example", PASSWORD).await;
    for page in [&wrong_password, &unknown_email] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Incorrect email or password."), "{}", page.body);
        assert!(page.set_cookies().iter().all(|c| !c.contains("cs_session")));
    }
    // What was typed stays (the email, never the password).
    assert!(wrong_password.body.contains(r#"value="jess@acme.example""#));
    assert!(!wrong_password.body.contains("not the password"));
    assert_eq!(sessions(&api).await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn posts_without_the_session_token_or_from_another_site_are_refused_and_write_nothing(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    let token = browser.signed_in("jess@acme.example").await;
    let origin = format!("http://{LOCAL}");
    let refusals: [(&str, Vec<(&str, &str)>); 6] = [
        ("no token", vec![]),
        ("a wrong token", vec![("csrf", "forged")]),
        ("an empty token", vec![("csrf", "")]),
        ("the right token from another site (Origin)", vec![("csrf", &token), ("!origin", "https://evil.example")]),
        (
            "the right token from another site (Sec-Fetch-Site)",
            vec![("csrf", &token), ("!sec-fetch-site", "cross-site")],
        ),
        ("the right token from a sandboxed frame", vec![("csrf", &token), ("!origin", "null")]),
    ];
    for (what, fields) in refusals {
        let mut headers = vec![("origin", origin.as_str()), ("sec-fetch-site", "same-origin")];
        let mut form = vec![("name", "Forged campaign")];
        // `!name` replaces a header the browser would send.
        for (k, v) in fields {
            match k.strip_prefix('!') {
                Some(header) => {
                    headers.retain(|(h, _)| *h != header);
                    headers.push((header, v));
                }
                None => form.push((k, v)),
            }
        }
        let page = browser.send(Method::POST, "/brand/campaigns", Some(&form), &headers).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}");
        assert!(page.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"), "{what}");
        assert!(page.body.contains("Request refused"), "{what}: {}", page.body);
    }
    assert_eq!(api.count("campaigns").await, 0);

    // Another session's token does not fit this session.
    let mut other = Browser::new(&api);
    user(&api, "sam@acme.example").await;
    let other_token = other.signed_in("sam@acme.example").await;
    assert_ne!(other_token, token);
    let page = browser.post("/brand/campaigns", &[("csrf", &other_token), ("name", "Spring")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Sign-out is a state change too.
    let page = browser.post("/brand/sign-out", &[("csrf", "forged")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(sessions(&api).await, 2);

    // A client that sends neither Origin nor Sec-Fetch-Site (curl) still passes with the token.
    let page = browser.send(Method::POST, "/brand/campaigns", Some(&[("csrf", &token), ("name", "Spring")]), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(api.count("campaigns").await, 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_sign_in_form_needs_its_own_token_and_a_same_site_post(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    let token = browser.get("/brand/sign-in").await.csrf();
    let fields = [("csrf", "forged"), ("email", "jess@acme.example"), ("password", PASSWORD)];
    assert_eq!(browser.post("/brand/sign-in", &fields).await.status, StatusCode::FORBIDDEN);
    let fields = [("csrf", token.as_str()), ("email", "jess@acme.example"), ("password", PASSWORD)];
    let cross_site = [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")];
    let page = browser.send(Method::POST, "/brand/sign-in", Some(&fields), &cross_site).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Without the sign-in cookie (a login-CSRF attempt from another browser), the token means nothing.
    let mut stranger = Browser::new(&api);
    assert_eq!(stranger.post("/brand/sign-in", &fields).await.status, StatusCode::FORBIDDEN);
    assert_eq!(sessions(&api).await, 0);
    assert_eq!(browser.post("/brand/sign-in", &fields).await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_idle_session_expires_and_is_deleted(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    // 59 minutes idle: still signed in, and the visit counts as activity.
    sqlx::query("update sessions set last_seen_at = now() - interval '59 minutes'").execute(&api.pool).await.unwrap();
    assert_eq!(browser.get("/brand/attribution/links").await.status, StatusCode::OK);
    let idle: f64 = sqlx::query_scalar("select extract(epoch from now() - last_seen_at)::float8 from sessions")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert!(idle < 5.0, "the visit did not refresh the session ({idle} s idle)");
    // 61 minutes idle: over.
    sqlx::query("update sessions set last_seen_at = now() - interval '61 minutes'").execute(&api.pool).await.unwrap();
    let page = browser.get("/brand/attribution").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/brand/sign-in?next=%2Fbrand%2Fattribution"));
    assert_eq!(sessions(&api).await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_session_ends_after_twelve_hours_however_active(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    sqlx::query("update sessions set created_at = now() - interval '11 hours 59 minutes'")
        .execute(&api.pool)
        .await
        .unwrap();
    assert_eq!(browser.get("/brand/attribution/links").await.status, StatusCode::OK);
    sqlx::query("update sessions set created_at = now() - interval '12 hours 1 second', last_seen_at = now()")
        .execute(&api.pool)
        .await
        .unwrap();
    assert_eq!(browser.get("/brand/attribution/links").await.status, StatusCode::SEE_OTHER);
    assert_eq!(sessions(&api).await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn signing_out_deletes_the_session_on_the_server(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    let token = browser.signed_in("jess@acme.example").await;
    let stolen = browser.cookies.clone();
    let page = browser.post("/brand/sign-out", &[("csrf", &token)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/brand/sign-in?signed_out=1"));
    assert!(page.set_cookies().iter().any(|c| c.starts_with("cs_session=;") && c.contains("Max-Age=0")));
    assert_eq!(sessions(&api).await, 0);
    // A copy of the cookie taken before sign-out opens nothing.
    browser.cookies = stolen;
    assert_eq!(browser.get("/brand/attribution/links").await.status, StatusCode::SEE_OTHER);
}

/// An API behind one proxy that appends the client's address to `X-Forwarded-For`.
async fn behind_a_proxy(pool: PgPool, vars: &[(&str, &str)]) -> Api {
    let mut vars = vars.to_vec();
    vars.push(("CLIENT_IP_SOURCE", "x-forwarded-for"));
    Api::with_state(AppState::new(pool, support::config(&vars))).await
}

fn retry_after(page: &Page) -> u64 {
    page.headers.get(header::RETRY_AFTER).expect("a Retry-After header").to_str().unwrap().parse().unwrap()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_user_guessed_at_from_one_client_still_signs_in_from_another(pool: PgPool) {
    let api = behind_a_proxy(pool, &[]).await;
    user(&api, "jess@acme.example").await;
    let mut stranger = Browser::new(&api);
    stranger.client = Some("203.0.113.7".to_owned());
    for _ in 0..5 {
        assert_eq!(stranger.sign_in("jess@acme.example", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    // The sixth attempt from there is refused before the password is even looked at, right or wrong.
    let page = stranger.sign_in("JESS@acme.example", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("Too many sign-in attempts"), "{}", page.body);
    assert!((1..=60).contains(&retry_after(&page)), "one attempt a minute");
    assert_eq!(sessions(&api).await, 0);
    // Jess, from her own address, is not locked out by it...
    let mut jess = Browser::new(&api);
    jess.client = Some("198.51.100.20".to_owned());
    assert_eq!(jess.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::SEE_OTHER);
    // ...and other people at the stranger's address are not either.
    user(&api, "sam@acme.example").await;
    assert_eq!(stranger.sign_in("sam@acme.example", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn sign_in_limits_count_the_right_most_forwarded_for_hop_not_what_the_client_wrote(pool: PgPool) {
    let api = behind_a_proxy(pool, &[]).await;
    user(&api, "jess@acme.example").await;
    let mut attacker = Browser::new(&api);
    // Whatever the attacker writes in front, the proxy appends the address it came from.
    for i in 0..5 {
        attacker.client = Some(format!("10.{i}.0.1, 192.0.2.{i}, 203.0.113.7"));
        assert_eq!(attacker.sign_in("jess@acme.example", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    attacker.client = Some("198.51.100.20, 203.0.113.7".to_owned());
    assert_eq!(attacker.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    // The address the attacker wrote is nobody's key: its owner signs in.
    let mut jess = Browser::new(&api);
    jess.client = Some("198.51.100.20".to_owned());
    assert_eq!(jess.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn ipv6_sign_in_attempts_from_one_64_back_off_together(pool: PgPool) {
    let api = behind_a_proxy(pool, &[]).await;
    user(&api, "jess@acme.example").await;
    let mut attacker = Browser::new(&api);
    for i in 1..=5 {
        attacker.client = Some(format!("2001:db8:1:2::{i}"));
        assert_eq!(attacker.sign_in("jess@acme.example", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    attacker.client = Some("2001:db8:1:2:ffff::99".to_owned());
    assert_eq!(attacker.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    let mut neighbour = Browser::new(&api);
    neighbour.client = Some("2001:db8:1:3::1".to_owned());
    assert_eq!(neighbour.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn beyond_the_concurrent_password_hashes_sign_in_answers_503_with_retry_after(pool: PgPool) {
    let state = AppState::new(pool, support::config(&[("SIGNIN_MAX_CONCURRENT_HASHES", "1")]));
    let api = Api::with_state(state).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    // The one permit is taken, as by a sign-in hashing its password right now.
    let held = api.state.signin_limits.hashing().clone().try_acquire_owned().unwrap();
    let page = browser.sign_in("jess@acme.example", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&page), 1);
    assert!(page.body.contains("Sign-in is busy right now"), "{}", page.body);
    assert!(page.body.contains(r#"value="jess@acme.example""#), "what was typed stays");
    assert_eq!(sessions(&api).await, 0);
    drop(held);
    // Refused while busy, the attempts counted against nothing: five wrong ones, then the right one.
    for _ in 0..4 {
        assert_eq!(browser.sign_in("jess@acme.example", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(browser.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::SEE_OTHER);
    assert_eq!(api.state.signin_limits.hashing().available_permits(), 1, "every permit came back");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn beyond_the_global_sign_in_rate_the_form_answers_503(pool: PgPool) {
    // One a second, bursts of two, whoever signs in.
    let api = behind_a_proxy(pool, &[("SIGNIN_RATE_PER_SECOND", "1")]).await;
    user(&api, "jess@acme.example").await;
    let mut browsers: Vec<Browser> = (1..=3).map(|_| Browser::new(&api)).collect();
    let mut tokens = Vec::new();
    for (i, browser) in browsers.iter_mut().enumerate() {
        browser.client = Some(format!("198.51.100.{i}"));
        tokens.push(browser.get("/brand/sign-in").await.csrf());
    }
    // Three clients at once: every attempt is admitted or refused before any password is hashed.
    let forms: Vec<[(&str, &str); 3]> =
        tokens.iter().map(|t| [("csrf", t.as_str()), ("email", "jess@acme.example"), ("password", "guess")]).collect();
    let [a, b, c] = &mut browsers[..] else { unreachable!("three browsers") };
    let pages = tokio::join!(
        a.post("/brand/sign-in", &forms[0]),
        b.post("/brand/sign-in", &forms[1]),
        c.post("/brand/sign-in", &forms[2])
    );
    let mut statuses = [pages.0.status, pages.1.status, pages.2.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE]);
    let busy =
        [&pages.0, &pages.1, &pages.2].into_iter().find(|p| p.status == StatusCode::SERVICE_UNAVAILABLE).unwrap();
    assert_eq!(retry_after(busy), 1);
    assert!(busy.body.contains("Sign-in is busy right now"), "{}", busy.body);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_bad_next_after_sign_in_leads_to_the_default_page(pool: PgPool) {
    let api = behind_a_proxy(pool, &[]).await;
    user(&api, "jess@acme.example").await;
    let bad = [
        "/brand/caf\u{e9}",
        "/brand/\u{444}\u{430}\u{439}\u{43b}",
        "/brand/a\r\nSet-Cookie: x=1",
        "/brand/a b",
        "https://evil.example/brand/",
    ];
    for (i, next) in bad.iter().enumerate() {
        let mut browser = Browser::new(&api);
        browser.client = Some(format!("192.0.2.{i}"));
        let token = browser.get("/brand/sign-in").await.csrf();
        let form = [("csrf", token.as_str()), ("email", "jess@acme.example"), ("password", PASSWORD), ("next", next)];
        let page = browser.post("/brand/sign-in", &form).await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, Some("/brand/attribution/links")),
            "{next:?}"
        );
        // Signed in, the form passes a bad `next` on to the default page too.
        let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let page = browser.get(&format!("/brand/sign-in?next={encoded}")).await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, Some("/brand/attribution/links")),
            "{next:?}"
        );
    }
    // A dashboard path as browsers send it (non-ASCII percent-encoded) is followed.
    let mut browser = Browser::new(&api);
    let next = "/brand/attribution/links?q=caf%C3%A9";
    let token = browser.get("/brand/sign-in").await.csrf();
    let form = [("csrf", token.as_str()), ("email", "jess@acme.example"), ("password", PASSWORD), ("next", next)];
    assert_eq!(browser.post("/brand/sign-in", &form).await.location(), Some(next));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn x_forwarded_host_is_believed_only_behind_forwarded_for_proxies(pool: PgPool) {
    let secure_sign_in_cookie =
        |page: &Page| page.set_cookies().iter().any(|c| c.starts_with("__Host-cs_signin=") && c.contains("Secure"));
    let loopback = [("x-forwarded-host", "127.0.0.1:8080")];
    let direct = Api::new(pool.clone()).await;
    let cloudflare =
        Api::with_state(AppState::new(pool.clone(), support::config(&[("CLIENT_IP_SOURCE", "cf-connecting-ip")])))
            .await;
    let proxied = behind_a_proxy(pool, &[]).await;
    for (api, believed) in [(&direct, false), (&cloudflare, false), (&proxied, true)] {
        let mut browser = Browser::new(api);
        browser.host = "app.creatorscore.io".to_owned();
        let page = browser.send(Method::GET, "/brand/sign-in", None, &loopback).await;
        // Believed, the proxy says the request was addressed to loopback: plain development cookies.
        assert_eq!(secure_sign_in_cookie(&page), !believed, "{:?}", api.state.config.client_ip_source);
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn sign_in_attempts_are_limited_per_client_address(pool: PgPool) {
    let state = AppState::new(pool, support::config(&[("TRUST_FORWARDED_FOR", "true")]));
    let api = Api::with_state(state).await;
    user(&api, "jess@acme.example").await;
    let mut attacker = Browser::new(&api);
    attacker.client = Some("203.0.113.7".to_owned());
    for i in 0..20 {
        let page = attacker.sign_in(&format!("guess{i}@acme.example"), "guess").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    assert_eq!(attacker.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address (X-Forwarded-For is trusted here) signs in.
    let mut colleague = Browser::new(&api);
    colleague.client = Some("198.51.100.20".to_owned());
    assert_eq!(colleague.sign_in("jess@acme.example", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_link_form_shows_the_api_messages_beside_their_fields_and_keeps_what_was_typed(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let creator = api.create("/v1/creators", json!({"name": "Jessica"})).await;
    api.create("/v1/links", json!({"destination_url": "https://shop.example/a", "promo_code": "JESS20"})).await;
    let mut browser = Browser::new(&api);
    let token = browser.signed_in("jess@acme.example").await;
    let creator_id = creator["id"].as_str().unwrap();

    let form = [
        ("csrf", token.as_str()),
        ("destination_url", "https://trk.creatorscore.io/abcd2345"),
        ("creator_id", creator_id),
        ("platform", "youtube"),
        ("content_type", "video"),
        ("promo_code", "has space"),
        ("share_revenue", "on"),
    ];
    let page = browser.post("/brand/attribution/links", &form).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The REST API's own messages, each beside its field.
    let rest = api.post("/v1/links", json!({"destination_url": "https://trk.creatorscore.io/abcd2345"})).await;
    let rest_message = rest.body["error"]["message"].as_str().unwrap();
    assert!(
        page.body.contains(&format!(r#"<p class="error" id="destination_url-error">{rest_message}</p>"#)),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            r#"id="promo_code-error">promo_code must be 1 to 64 letters, digits, &#39;-&#39; or &#39;_&#39;</p>"#
        ) || page.body.contains(r#"id="promo_code-error">promo_code must be 1 to 64 letters, digits, '-' or '_'</p>"#),
        "{}",
        page.body
    );
    // What was typed is still there.
    assert!(page.body.contains(r#"value="https://trk.creatorscore.io/abcd2345""#));
    assert!(page.body.contains(r#"value="has space""#));
    assert!(page.body.contains(&format!(r#"<option value="{creator_id}" selected>"#)));
    assert!(page.body.contains(r#"<option value="youtube" selected>"#));
    assert!(page.body.contains(r#"<option value="video" selected>"#));
    assert!(page.body.contains(r#"name="share_revenue" type="checkbox" role="switch" value="on" checked"#));

    // A promo code another active link uses (in another case): the conflict, beside the promo code.
    let form = [("csrf", token.as_str()), ("destination_url", "https://shop.example/b"), ("promo_code", "jess20")];
    let page = browser.post("/brand/attribution/links", &form).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page
        .body
        .contains(r#"id="promo_code-error">another active link of this brand already uses this promo code"#));
    assert_eq!(api.count("links").await, 1, "no partial write");

    // Fixed, the same form creates the link, the same as the API would.
    let form = [
        ("csrf", token.as_str()),
        ("destination_url", "https://shop.example/b"),
        ("creator_id", creator_id),
        ("platform", "youtube"),
        ("promo_code", "JESS30"),
        ("share_revenue", "on"),
    ];
    let page = browser.post("/brand/attribution/links", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location().unwrap().to_owned();
    let id = location.trim_start_matches("/brand/attribution/links/").trim_end_matches("?created=1");
    let link = api.get(&format!("/v1/links/{id}")).await.body;
    assert_eq!(link["creator_id"], creator["id"]);
    assert_eq!(link["platform"], "youtube");
    assert_eq!(link["promo_code"], "JESS30");
    assert_eq!(link["share_revenue"], true);
    let page = browser.get(&location).await;
    assert!(page.body.contains("Link created"));
    assert!(page.body.contains(&format!("https://trk.creatorscore.io/{}", link["code"].as_str().unwrap())));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_session_never_reaches_another_brands_data(pool: PgPool) {
    let api = Api::new(pool).await;
    let other = api.other_brand().await;
    user(&api, "jess@acme.example").await;
    let their_creator = other.create("/v1/creators", json!({"name": "Theirs"})).await;
    let their_campaign = other.create("/v1/campaigns", json!({"name": "Their drop"})).await;
    let their_link = other.create("/v1/links", json!({"destination_url": "https://other.example/"})).await;
    let their_id = their_link["id"].as_str().unwrap();
    let mut browser = Browser::new(&api);
    let token = browser.signed_in("jess@acme.example").await;

    let page = browser.get("/brand/attribution/links").await;
    assert!(!page.body.contains(their_link["code"].as_str().unwrap()));
    assert!(!page.body.contains("Theirs") && !page.body.contains("Their drop"));
    for path in
        [format!("/brand/attribution/links/{their_id}"), format!("/brand/attribution/links/{their_id}/deactivate")]
    {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.body.contains("does not exist or is not yours"));
    }
    let page = browser.post(&format!("/brand/attribution/links/{their_id}/deactivate"), &[("csrf", &token)]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get(&format!("/v1/links/{their_id}")).await.body["active"], true);

    // Their creator and campaign cannot be attached to a link of ours: the API's 404s, beside the fields.
    let form = [
        ("csrf", token.as_str()),
        ("destination_url", "https://shop.example/"),
        ("creator_id", their_creator["id"].as_str().unwrap()),
        ("campaign_id", their_campaign["id"].as_str().unwrap()),
    ];
    let page = browser.post("/brand/attribution/links", &form).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains(r#"id="creator_id-error">creator not found"#)
            || page.body.contains(r#"id="campaign_id-error">campaign not found"#),
        "{}",
        page.body
    );
    assert_eq!(api.count("links").await, 1, "only their link exists");
    // Filtering by their creator shows nothing.
    let page =
        browser.get(&format!("/brand/attribution/links?creator_id={}", their_creator["id"].as_str().unwrap())).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No links yet match these filters"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn dashboard_pages_forbid_framing_caching_and_foreign_scripts_and_v1_keeps_json_errors(pool: PgPool) {
    let api = Api::new(pool).await;
    let mut browser = Browser::new(&api);
    let page = browser.get("/brand/sign-in").await;
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    let script = browser.get("/static/dashboard.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/javascript"));
    let missing = browser.get("/brand/nothing-here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.starts_with("<!DOCTYPE html>"));
    let rest = api.send(Method::GET, "/v1/links", None, None).await;
    assert_eq!(rest.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rest.error_code(), "unauthorized");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_attribution_page_shows_the_reports_figures_and_how_each_order_was_credited(pool: PgPool) {
    use api::attribution::{record_order, OrderReport, Source};
    use api::money::Money;
    use chrono::{Duration, Utc};

    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let jess = api.create("/v1/creators", json!({"name": "Jessica"})).await;
    let link = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://shop.example/", "creator_id": jess["id"], "promo_code": "JESS20"}),
        )
        .await;
    let visitor = Uuid::new_v4();
    let clicked_at = Utc::now() - Duration::hours(1);
    let clicks = api
        .click(&[
            support::Click::new(&link, visitor, clicked_at),
            support::Click::new(&link, Uuid::new_v4(), clicked_at),
        ])
        .await;
    let order = |order_id: &str, minor, refs: Vec<Uuid>, codes: Vec<String>| OrderReport {
        brand_id: api.brand_id,
        order_id: order_id.to_owned(),
        amount: Money { amount_minor: minor, currency: "USD".to_owned() },
        occurred_at: Utc::now() - Duration::minutes(5),
        source: Source::Pixel,
        refs,
        discount_codes: codes,
        cancelled_at: None,
        test: false,
    };
    let judged = api::attribution::Judged { now: Utc::now(), confirmation_window: Duration::hours(72) };
    let mut conn = api.pool.acquire().await.unwrap();
    record_order(&mut conn, &order("by-click", 12999, vec![clicks[0]], vec![]), judged).await.unwrap();
    record_order(&mut conn, &order("by-promo", 5000, vec![], vec!["jess20".to_owned()]), judged).await.unwrap();
    drop(conn);

    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    let page = browser.get("/brand/attribution?days=7").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    // The REST report over the same window says the same.
    let rest = api.get("/v1/attribution?group_by=creator").await.body;
    let row = &rest["data"][0];
    assert_eq!((row["clicks"].as_i64(), row["conversions"].as_i64()), (Some(2), Some(2)));
    assert!(body.contains(r#"data-total="clicks">2<"#), "{body}");
    assert!(body.contains(r#"data-total="conversions">2<"#));
    assert!(body.contains(r#"data-total="revenue">179.99 USD<"#));
    assert!(body.contains(r#"data-total="conversion_rate">100.0%<"#));
    assert!(body.contains(&format!(
        r#"<a href="/brand/attribution/links?creator_id={}">Jessica</a>"#,
        jess["id"].as_str().unwrap()
    )));
    assert!(body.contains(&format!(
        r#"<a href="/brand/attribution/links/{}">{}</a>"#,
        link["id"].as_str().unwrap(),
        link["code"].as_str().unwrap()
    )));
    // Each order explains itself: the click (which one, when) or the promo code.
    let click = clicks[0].simple().to_string();
    assert!(
        body.contains(&format!(
            r#"Click <code title="{click}">{}</code> at {}"#,
            &click[..8],
            clicked_at.format("%Y-%m-%d %H:%M UTC")
        )),
        "{body}"
    );
    assert!(body.contains("Promo code <code>jess20</code>"), "{body}");
    // A period the dashboard does not offer falls back to 30 days, never to an error.
    assert_eq!(browser.get("/brand/attribution?days=3650").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_links_list_pages_through_the_brands_links_newest_first(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    for i in 0..30 {
        api.create("/v1/links", json!({"destination_url": format!("https://shop.example/{i}")})).await;
    }
    let newest = api.get("/v1/links?limit=1").await.body["data"][0]["code"].as_str().unwrap().to_owned();
    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    let first = browser.get("/brand/attribution/links").await;
    assert_eq!(first.body.matches("data-link-id=").count(), 25);
    let first_code = first.body.split(r#"data-code=""#).nth(1).and_then(|rest| rest.split('"').next());
    assert_eq!(first_code, Some(newest.as_str()), "newest first");
    let start = first.body.find(r#"rel="next""#).expect("a next page link");
    let href_start = first.body[..start].rfind("href=\"").unwrap() + 6;
    let next = first.body[href_start..].split('"').next().unwrap().replace("&amp;", "&");
    let second = browser.get(&next).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body.matches("data-link-id=").count(), 5);
    assert!(!second.body.contains(r#"rel="next""#));
    assert!(second.body.contains("← First page"));
}

// --- Disabled users and reset passwords (through the real `api` binary), revoking creators' access -----

#[path = "support/cli.rs"]
mod cli;

/// Where a request without a live session is sent.
fn sent_to_sign_in(page: &Page) -> bool {
    page.status == StatusCode::SEE_OTHER && page.location().is_some_and(|l| l.starts_with("/brand/sign-in"))
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn disabling_a_user_ends_its_sessions_at_once_and_it_cannot_sign_in_until_enabled(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let cli = cli::Cli::new(&api.pool);
    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    assert_eq!(browser.get("/brand/creators").await.status, StatusCode::OK);

    let disabled = cli.ok(&["user", "disable", "jess@acme.example"], None).await;
    assert_eq!(disabled.field("sessions_ended"), Some("1"));
    let page = browser.get("/brand/creators").await;
    assert_eq!(page.location(), Some("/brand/sign-in?next=%2Fbrand%2Fcreators"));
    // The right password opens nothing while the user is disabled.
    browser.sign_in("jess@acme.example", PASSWORD).await;
    assert!(sent_to_sign_in(&browser.get("/brand/attribution/links").await));
    assert_eq!(sessions(&api).await, 0);

    cli.ok(&["user", "enable", "jess@acme.example"], None).await;
    browser.signed_in("jess@acme.example").await;
    assert_eq!(browser.get("/brand/creators").await.status, StatusCode::OK);
    // A session that escaped the deletion (a sign-in racing with the disabling) is refused all the same.
    sqlx::query("update users set disabled_at = now()").execute(&api.pool).await.unwrap();
    assert!(sent_to_sign_in(&browser.get("/brand/creators").await));
    assert_eq!(sessions(&api).await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn resetting_a_password_ends_every_session_and_only_the_new_password_works(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    user(&api, "sam@acme.example").await;
    let cli = cli::Cli::new(&api.pool);
    let (mut laptop, mut phone, mut colleague) = (Browser::new(&api), Browser::new(&api), Browser::new(&api));
    laptop.signed_in("jess@acme.example").await;
    phone.signed_in("jess@acme.example").await;
    colleague.signed_in("sam@acme.example").await;

    let reset = cli.ok(&["user", "reset-password", "jess@acme.example"], None).await;
    assert_eq!(reset.field("sessions_ended"), Some("2"));
    let password = reset.field("password").expect("a generated password").to_owned();
    assert_eq!(password.len(), 22);
    for browser in [&mut laptop, &mut phone] {
        assert!(sent_to_sign_in(&browser.get("/brand/attribution/links").await));
    }
    assert_eq!(colleague.get("/brand/attribution/links").await.status, StatusCode::OK, "other users keep theirs");

    let old = laptop.sign_in("jess@acme.example", PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = laptop.sign_in("jess@acme.example", &password).await;
    assert_eq!(new.status, StatusCode::SEE_OTHER, "{}", new.body);
    assert_eq!(laptop.get("/brand/attribution/links").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_creators_page_revokes_a_creators_tokens_with_the_sessions_form_token(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let jess = api.create("/v1/creators", json!({"name": "Jessica"})).await["id"].as_str().unwrap().to_owned();
    let sam = api.create("/v1/creators", json!({"name": "Sam"})).await["id"].as_str().unwrap().to_owned();
    let mint = |id: String| {
        let api = &api;
        async move {
            api.create(&format!("/v1/creators/{id}/tokens"), json!({})).await["token"].as_str().unwrap().to_owned()
        }
    };
    let (jess_phone, jess_laptop, sams) = (mint(jess.clone()).await, mint(jess.clone()).await, mint(sam.clone()).await);
    let opens = |token: String| {
        let api = &api;
        async move { api.send(Method::GET, "/v1/me/links", Some(&token), None).await.status }
    };
    let mut browser = Browser::new(&api);
    let csrf = browser.signed_in("jess@acme.example").await;

    let page = browser.get("/brand/creators").await;
    let action = format!("/brand/creators/{jess}/revoke-tokens");
    assert!(page.body.contains(&format!(r#"action="{action}""#)), "{}", page.body);
    assert!(page.body.contains("2 active tokens"), "{}", page.body);

    // Without the session's token, or from another site, nothing is revoked.
    assert_eq!(browser.post(&action, &[]).await.status, StatusCode::FORBIDDEN);
    let cross_site = browser
        .send(
            Method::POST,
            &action,
            Some(&[("csrf", &csrf)]),
            &[("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    assert_eq!(opens(jess_phone.clone()).await, StatusCode::OK);

    let revoked = browser.post(&action, &[("csrf", &csrf)]).await;
    assert_eq!((revoked.status, revoked.location()), (StatusCode::SEE_OTHER, Some("/brand/creators?revoked=2")));
    for token in [jess_phone, jess_laptop] {
        assert_eq!(opens(token).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(opens(sams).await, StatusCode::OK, "another creator's token is untouched");
    let page = browser.get("/brand/creators?revoked=2").await;
    assert!(page.body.contains("Access revoked: 2 tokens stopped working."), "{}", page.body);
    assert_eq!(page.body.matches("No active tokens").count(), 1, "{}", page.body);

    // Another brand's creator is a 404 page, and keeps its tokens.
    let other = api.other_brand().await;
    let theirs = other.create("/v1/creators", json!({"name": "Theirs"})).await["id"].as_str().unwrap().to_owned();
    let their_token =
        other.create(&format!("/v1/creators/{theirs}/tokens"), json!({})).await["token"].as_str().unwrap().to_owned();
    let refused = browser.post(&format!("/brand/creators/{theirs}/revoke-tokens"), &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(api.send(Method::GET, "/v1/me/links", Some(&their_token), None).await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_webhooks_page_adds_an_endpoint_shows_its_secret_once_and_acts_on_it(pool: PgPool) {
    let api = Api::with_state(AppState::new(pool, support::config(&[("ALLOW_PRIVATE_TARGETS", "true")]))).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    let csrf = browser.signed_in("jess@acme.example").await;
    let page = browser.get("/brand/webhooks").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No endpoints yet."));

    let refused = browser
        .post("/brand/webhooks", &[("csrf", &csrf), ("url", "ftp://hooks.example.com/"), ("events", "link.created")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("must use https"), "{}", refused.body);
    let added = browser
        .post(
            "/brand/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "http://127.0.0.1:9/hook"),
                ("description", "payouts"),
                ("events", "conversion.created"),
                ("events", "conversion.refunded"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK);
    assert!(added.body.contains("whsec_"), "the secret is shown once");
    let endpoints = api.get("/v1/webhooks").await.body;
    let endpoint = &endpoints["data"][0];
    assert_eq!(endpoint["events"], json!(["conversion.created", "conversion.refunded"]));
    let id = endpoint["id"].as_str().unwrap();
    let listed = browser.get("/brand/webhooks").await;
    assert!(listed.body.contains("http://127.0.0.1:9/hook") && !listed.body.contains("whsec_"));

    let sent = browser.post(&format!("/brand/webhooks/{id}/test"), &[("csrf", &csrf)]).await;
    assert_eq!(sent.location(), Some(format!("/brand/webhooks/{id}?done=test").as_str()));
    let detail = browser.get(&format!("/brand/webhooks/{id}?done=test")).await;
    assert!(detail.body.contains("webhook.test") && detail.body.contains("Test event queued"));
    let delivery =
        api.get(&format!("/v1/webhooks/{id}/deliveries")).await.body["data"][0]["id"].as_str().unwrap().to_owned();
    let retried = browser.post(&format!("/brand/webhooks/{id}/deliveries/{delivery}/retry"), &[("csrf", &csrf)]).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER);
    browser.post(&format!("/brand/webhooks/{id}/disable"), &[("csrf", &csrf)]).await;
    assert_eq!(api.get(&format!("/v1/webhooks/{id}")).await.body["disabled_reason"], "manual");
    let rotated = browser.post(&format!("/brand/webhooks/{id}/rotate-secret"), &[("csrf", &csrf)]).await;
    assert!(rotated.body.contains("whsec_") && rotated.body.contains("old one too"));
    // Without the form token nothing happens.
    let forged = browser.post(&format!("/brand/webhooks/{id}/delete"), &[("csrf", "nope")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // An endpoint disabled for failing is announced on the links list.
    sqlx::query("update webhook_endpoints set enabled = false, disabled_reason = 'failing', disabled_at = now()")
        .execute(&api.pool)
        .await
        .unwrap();
    assert!(browser.get("/brand/attribution/links").await.body.contains("disabled after five days"));

    // Another brand's endpoint is not found.
    let other = api.other_brand().await;
    let theirs = other.create("/v1/webhooks", json!({"url": "http://127.0.0.1:9/x", "events": ["link.created"]})).await;
    let foreign = browser.get(&format!("/brand/webhooks/{}", theirs["id"].as_str().unwrap())).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let deleted = browser.post(&format!("/brand/webhooks/{id}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(deleted.location(), Some("/brand/webhooks"));
    assert_eq!(api.get("/v1/webhooks").await.body["data"], json!([]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_dashboard_exports_links_orders_and_reports_as_csv(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    let links = browser.get("/brand/attribution/links").await;
    assert!(links.body.contains("/brand/attribution/links.csv"));
    for (uri, first_column) in [
        ("/brand/attribution/links.csv", "id,code,short_url"),
        ("/brand/attribution/orders.csv?days=7", "order_id,status"),
        ("/brand/attribution.csv?days=7&group_by=creator", "group_by,key"),
    ] {
        let page = browser.get(uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        assert_eq!(page.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert!(page.body.starts_with(first_column), "{uri}: {}", page.body);
    }
    let attribution = browser.get("/brand/attribution?days=7").await;
    assert!(attribution.body.contains("/brand/attribution/orders.csv?days=7"));
    // Signed out, an export is a sign-in redirect, not a file.
    let mut stranger = Browser::new(&api);
    assert_eq!(stranger.get("/brand/attribution/links.csv").await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_domains_page_adds_a_domain_and_new_links_take_it_with_utm_tags_and_expiry(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let campaign = api.create("/v1/campaigns", json!({"name": "Spring drop"})).await;
    let mut browser = Browser::new(&api);
    let token = browser.signed_in("jess@acme.example").await;

    let refused = browser.post("/brand/domains", &[("csrf", &token), ("hostname", "trk.creatorscore.io")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("the tracking domain and its subdomains cannot be added"), "{}", refused.body);
    let added = browser.post("/brand/domains", &[("csrf", &token), ("hostname", "Go.Acme.example")]).await;
    assert_eq!(added.location(), Some("/brand/domains?added=1"));
    let page = browser.get("/brand/domains?added=1").await;
    assert!(page.body.contains(r#"data-hostname="go.acme.example""#) && page.body.contains("Pending"), "{}", page.body);
    assert!(page
        .body
        .contains("<td>CNAME</td><td><code>go.acme.example</code></td><td><code>trk.creatorscore.io</code>"));
    // A pending domain is not offered to links yet.
    let form =
        browser.get(&format!("/brand/attribution/links/new?campaign_id={}", campaign["id"].as_str().unwrap())).await;
    assert!(!form.body.contains(r#"<option value="go.acme.example""#));
    // The campaign's name and `creator` are filled in as UTM tags already (the script follows changes).
    assert!(form.body.contains(r#"name="utm_campaign" type="text" value="Spring drop""#), "{}", form.body);
    assert!(form.body.contains(r#"name="utm_medium" type="text" value="creator""#));

    api::domains::Domains::activate(&api.pool, "go.acme.example").await.unwrap();
    let form = browser.get("/brand/attribution/links/new").await;
    assert!(form.body.contains(r#"<option value="go.acme.example">go.acme.example</option>"#), "{}", form.body);
    let fields = [
        ("csrf", token.as_str()),
        ("destination_url", "https://shop.example/serum"),
        ("domain", "go.acme.example"),
        ("utm_source", "instagram"),
        ("utm_medium", "creator"),
        ("utm_campaign", ""),
        ("expires_at", "2031-05-01T12:30"),
        ("expired_url", "https://shop.example/ended"),
    ];
    let created = browser.post("/brand/attribution/links", &fields).await;
    let location = created.location().expect("a redirect to the new link").to_owned();
    let link = api.get("/v1/links").await.body["data"][0].clone();
    assert_eq!(link["domain"], "go.acme.example");
    assert_eq!((link["utm_source"].as_str(), link["utm_campaign"].as_str()), (Some("instagram"), None));
    assert_eq!(link["expires_at"], "2031-05-01T12:30:00Z");
    let detail = browser.get(&location).await;
    assert!(detail.body.contains(&format!("https://go.acme.example/{}", link["code"].as_str().unwrap())));
    assert!(
        detail.body.contains("https://shop.example/serum?utm_source=instagram&amp;utm_medium=creator"),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("2031-05-01 12:30 UTC, then sends visitors to https://shop.example/ended"));

    // A bad expiry or tag stays beside its field, with what was typed.
    let mut bad = fields;
    bad[6] = ("expires_at", "soon");
    bad[3] = ("utm_source", "line\u{1}break");
    let page = browser.post("/brand/attribution/links", &bad).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains(r#"id="expires_at-error">expires_at must be a date and time"#), "{}", page.body);
    assert!(page.body.contains(r#"id="utm-error">utm_source must be 1 to 255 characters"#), "{}", page.body);

    // In use: not removed, and the page says why.
    let in_use = browser.post("/brand/domains/go.acme.example/remove", &[("csrf", &token)]).await;
    assert_eq!(in_use.status, StatusCode::CONFLICT);
    assert!(in_use.body.contains("1 active links use this domain"), "{}", in_use.body);
    api.delete(&format!("/v1/links/{}", link["id"].as_str().unwrap())).await;
    let removed = browser.post("/brand/domains/go.acme.example/remove", &[("csrf", &token)]).await;
    assert_eq!(removed.location(), Some("/brand/domains?removed=1"));
    assert_eq!(api.get("/v1/domains").await.body["data"], json!([]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn links_show_what_their_destination_check_found(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let broken = api.create("/v1/links", json!({"destination_url": "https://shop.example/gone"})).await;
    let fine = api.create("/v1/links", json!({"destination_url": "https://shop.example/here"})).await;
    let unchecked = api.create("/v1/links", json!({"destination_url": "https://shop.example/new"})).await;
    for (link, status, http) in [(&broken, "broken", 404), (&fine, "ok", 200)] {
        sqlx::query(
            "update links set destination_status = $2, destination_http_status = $3, destination_checked_at = now()
             where id = $1::uuid",
        )
        .bind(link["id"].as_str().unwrap())
        .bind(status)
        .bind(http)
        .execute(&api.pool)
        .await
        .unwrap();
    }
    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    let list = browser.get("/brand/attribution/links").await;
    assert_eq!(list.body.matches("Broken destination (404)").count(), 1, "{}", list.body);
    let page = |link: &serde_json::Value| format!("/brand/attribution/links/{}", link["id"].as_str().unwrap());
    assert!(browser.get(&page(&broken)).await.body.contains("Broken destination (404)"));
    assert!(browser.get(&page(&fine)).await.body.contains("OK at "));
    assert!(browser.get(&page(&unchecked)).await.body.contains("Not checked yet"));
    // The list filters by what the check found, and the filter stays in the export's and the pages' links.
    let only_broken = browser.get("/brand/attribution/links?destination_status=broken").await;
    let code = |link: &serde_json::Value| format!(r#"data-code="{}""#, link["code"].as_str().unwrap());
    assert!(only_broken.body.contains(&code(&broken)), "{}", only_broken.body);
    assert!(!only_broken.body.contains(&code(&fine)) && !only_broken.body.contains(&code(&unchecked)));
    assert!(only_broken.body.contains(r#"href="/brand/attribution/links.csv?destination_status=broken""#));
    assert!(only_broken.body.contains(r#"<option value="broken" selected>Broken</option>"#), "{}", only_broken.body);
    let bad = browser.get("/brand/attribution/links?destination_status=gone").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// The text of the page's first hidden field named `name`, as a browser would post it back.
fn hidden_value(body: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = body.find(&marker).expect("the hidden field") + marker.len();
    let raw = body[start..].split('"').next().unwrap_or_default();
    raw.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_csv_import_is_checked_row_by_row_before_anything_is_created(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    api.create("/v1/creators", json!({"name": "Jessica Alba", "handle": "@jess"})).await;
    let campaign = api.create("/v1/campaigns", json!({"name": "Spring drop"})).await;
    let mut browser = Browser::new(&api);
    let csrf = browser.signed_in("jess@acme.example").await;

    let list = browser.get("/brand/attribution/links").await;
    assert!(list.body.contains(r#"href="/brand/attribution/links/import""#), "the list offers the import");
    let form = browser.get("/brand/attribution/links/import").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"id="csv_file""#) && form.body.contains(r#"enctype="multipart/form-data""#));

    let csv = "destination_url,campaign,creator,platform,promo_code,share_revenue,utm_source\n\
               https://shop.example/a,Spring drop,@jess,instagram,JESS20,yes,ig\n\
               not a url,,,,,,\n\
               https://shop.example/c,Summer,Jessica Alba,myspace,,maybe,\n\
               https://shop.example/d,,jessica alba,,jess20,no,\n\
               \"https://shop.example/e?a=1,2\",,,tiktok,,1,\n";
    let preview = browser
        .upload("/brand/attribution/links/import", &[("csrf", &csrf)], ("file", "links.csv", csv.as_bytes()))
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains(r#"class="import-preview""#), "{}", preview.body);
    assert!(preview.body.contains("5 rows: 2 ready, 3 with errors"), "{}", preview.body);
    assert!(preview.body.contains("destination_url"), "the bad URL's error is shown");
    assert!(preview.body.contains("campaign &quot;Summer&quot; not found"), "{}", preview.body);
    assert!(preview.body.contains("platform must be one of"));
    assert!(preview.body.contains("share_revenue must be true or false"));
    assert!(preview.body.contains("row 2 already uses this promo code"), "{}", preview.body);
    assert!(preview.body.contains(r#"role="alert""#));
    assert!(preview.body.contains("Create 2 links"), "{}", preview.body);
    assert_eq!(api.count("links").await, 0, "the preview creates nothing");

    // Confirming posts the same CSV back; only the valid rows are created.
    let posted_csv = hidden_value(&preview.body, "csv");
    assert_eq!(posted_csv, csv);
    let results =
        browser.post("/brand/attribution/links/import/create", &[("csrf", &csrf), ("csv", &posted_csv)]).await;
    assert_eq!(results.status, StatusCode::OK, "{}", results.body);
    assert!(results.body.contains(r#"class="import-results""#));
    assert!(results.body.contains("2 links created."), "{}", results.body);
    assert!(results.body.contains("3 rows were not imported"), "{}", results.body);
    let links = api.get("/v1/links").await.body;
    let mut links = links["data"].as_array().unwrap().clone();
    links.sort_by_key(|l| l["destination_url"].as_str().unwrap().to_owned());
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["destination_url"], "https://shop.example/a");
    assert_eq!(links[0]["utm_source"], "ig");
    assert_eq!(links[0]["campaign_id"], campaign["id"]);
    assert_eq!(links[0]["promo_code"], "JESS20");
    assert_eq!(links[0]["share_revenue"], true);
    assert_eq!(links[0]["platform"], "instagram");
    assert_eq!(links[1]["destination_url"], "https://shop.example/e?a=1,2");
    assert!(results.body.contains(links[0]["short_url"].as_str().unwrap()));

    // The confirmation is a dashboard form like any other: without its token it is refused.
    let forged = browser.post("/brand/attribution/links/import/create", &[("csrf", "nope"), ("csv", csv)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = browser.upload("/brand/attribution/links/import", &[("csrf", "nope")], ("file", "a.csv", b"x")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(api.count("links").await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn csv_files_too_large_too_long_or_unreadable_are_refused_with_a_message(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let mut browser = Browser::new(&api);
    let csrf = browser.signed_in("jess@acme.example").await;
    let upload = |csv: Vec<u8>| (csv, "links.csv");
    let rows = |n: usize| {
        let mut csv = "destination_url\n".to_owned();
        for i in 0..n {
            csv.push_str(&format!("https://shop.example/{i}\n"));
        }
        csv.into_bytes()
    };
    let big = {
        let mut csv = "destination_url\n".to_owned();
        while csv.len() <= 256 * 1024 {
            csv.push_str(&format!("https://shop.example/{}\n", "p".repeat(1000)));
        }
        csv.into_bytes()
    };
    let huge = vec![b'a'; 2 * 1024 * 1024];
    for (csv, status, message) in [
        (rows(101), StatusCode::UNPROCESSABLE_ENTITY, "more than 100 rows"),
        (big, StatusCode::PAYLOAD_TOO_LARGE, "larger than 256 KiB"),
        (b"url\nhttps://shop.example\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "Unknown column"),
        (b"destination_url\n".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "no links"),
        (vec![0xff, 0xfe, 0x00], StatusCode::UNPROCESSABLE_ENTITY, "not UTF-8"),
        (Vec::new(), StatusCode::UNPROCESSABLE_ENTITY, "Choose a CSV file"),
    ] {
        let (bytes, name) = upload(csv);
        let page = browser.upload("/brand/attribution/links/import", &[("csrf", &csrf)], ("file", name, &bytes)).await;
        assert_eq!(page.status, status, "{message}: {}", page.body);
        assert!(page.body.contains(message), "{message}: {}", page.body);
        assert!(page.body.contains(r#"role="alert""#) && page.body.contains(r#"id="csv_file""#));
    }
    // Over the route's own limit, the body may be cut off before its token is read: a page says why.
    let page = browser.upload("/brand/attribution/links/import", &[("csrf", &csrf)], ("file", "a.csv", &huge)).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.body.contains("at most 256 KiB"), "{}", page.body);
    let page =
        browser.upload("/brand/attribution/links/import", &[("csrf", &csrf)], ("file", "a.csv", &rows(100))).await;
    assert!(page.body.contains("Create 100 links"), "{}", page.body);
    assert_eq!(api.count("links").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_links_page_shows_its_qr_code_with_downloads(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/a"})).await;
    let (id, code) = (link["id"].as_str().unwrap(), link["code"].as_str().unwrap());
    let mut browser = Browser::new(&api);
    browser.signed_in("jess@acme.example").await;
    let page = browser.get(&format!("/brand/attribution/links/{id}")).await;
    assert!(page.body.contains(&format!(r#"src="/brand/attribution/links/{id}/qr.svg?size=256""#)), "{}", page.body);
    assert!(page.body.contains(&format!(r#"download="{code}-qr.svg""#)));
    assert!(page.body.contains(&format!(r#"download="{code}-qr.png""#)));
    let svg = browser.get(&format!("/brand/attribution/links/{id}/qr.svg?size=256")).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(svg.body.contains(r#"width="256" height="256""#));
    let png = browser.get(&format!("/brand/attribution/links/{id}/qr.png?size=1024&download=1")).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(png.headers[header::CONTENT_DISPOSITION], format!("attachment; filename=\"{code}-qr.png\"").as_str());
    // Another brand's link, and a bad size, are refused like anything else on the dashboard.
    let other = api.other_brand().await;
    let theirs = other.create("/v1/links", json!({"destination_url": "https://shop.example/b"})).await;
    let refused = browser.get(&format!("/brand/attribution/links/{}/qr.png", theirs["id"].as_str().unwrap())).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let refused = browser.get(&format!("/brand/attribution/links/{id}/qr.svg?size=5000")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Signed out: off to sign in, as for any page.
    let mut stranger = Browser::new(&api);
    assert_eq!(stranger.get(&format!("/brand/attribution/links/{id}/qr.svg")).await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_creators_page_invites_to_the_portal_shows_who_joined_and_unlinks(pool: PgPool) {
    let api = Api::new(pool).await;
    user(&api, "jess@acme.example").await;
    let creator = api.create("/v1/creators", json!({"name": "Jessica"})).await;
    let id = creator["id"].as_str().unwrap();
    let mut browser = Browser::new(&api);
    let csrf = browser.signed_in("jess@acme.example").await;
    assert!(browser.get("/brand/creators").await.body.contains("Not joined"));
    let forged = browser.post(&format!("/brand/creators/{id}/invite"), &[("csrf", "wrong")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(api.count("creator_invitations").await, 0);

    let invited = browser.post(&format!("/brand/creators/{id}/invite"), &[("csrf", &csrf)]).await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.body);
    let at = invited.body.find("http://127.0.0.1:8080/creator/invitations/").expect("the invitation link") + 42;
    let token = &invited.body[at..at + 43];
    assert!(invited.body.contains("shown only now"));
    // A creator accepts it: the page says so, and a second invitation is refused.
    let hash = api::users::hash_password("correct horse battery staple").unwrap();
    let email = api::users::Email::parse("jess@creator.example").unwrap();
    let account = api::creator_accounts::create_account(&api.pool, &email, &hash).await.unwrap();
    assert_eq!(api::creator_accounts::accept(&api.pool, token, account).await.unwrap(), api.brand_id);
    let page = browser.get("/brand/creators").await;
    assert!(page.body.contains("Joined ") && page.body.contains("Unlink"), "{}", page.body);
    let again = browser.post(&format!("/brand/creators/{id}/invite"), &[("csrf", &csrf)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let unlinked = browser.post(&format!("/brand/creators/{id}/unlink"), &[("csrf", &csrf)]).await;
    assert_eq!(unlinked.location(), Some("/brand/creators?unlinked=1"));
    assert!(browser.get("/brand/creators?unlinked=1").await.body.contains("no longer sees this brand"));
    assert_eq!(api.get(&format!("/v1/creators/{id}")).await.body["joined_at"], serde_json::Value::Null);
    // Another brand's creator is not this page's to invite.
    let other = api.other_brand().await;
    let theirs = other.create("/v1/creators", json!({"name": "Theirs"})).await;
    let theirs =
        browser.post(&format!("/brand/creators/{}/invite", theirs["id"].as_str().unwrap()), &[("csrf", &csrf)]).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}
