//! The public pixel under hostile clients: who a client is behind proxies (the right-most untrusted
//! `X-Forwarded-For` hop, `CF-Connecting-IP`, IPv6 /64s), pixel ids checked for shape before anything
//! else and resolved through a cache that remembers unknown ones, rate limits keyed by brand, and
//! memory that stays bounded whatever ids and addresses are sent.

mod support;

use std::net::SocketAddr;

use api::http::AppState;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::Api;
use tower::ServiceExt;

async fn api_with(pool: PgPool, vars: &[(&str, &str)]) -> Api {
    Api::with_state(AppState::new(pool, support::config(vars))).await
}

/// A pixel event from a TCP peer, with these headers; answers the status and the error code, if any.
async fn pixel_from(api: &Api, pixel_id: &str, peer: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    pixel_through(api.router.clone(), pixel_id, peer, headers).await
}

async fn pixel_through(router: Router, pixel_id: &str, peer: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let body = json!({"pixel_id": pixel_id, "event": "page_view"}).to_string();
    let mut request = Request::post("/v1/pixel/events").header("content-type", "text/plain;charset=UTF-8");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::from(body)).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

/// Sends events until one is refused; answers how many were accepted (at most `max`).
async fn accepted_before_limit(api: &Api, peer: &str, headers: &[(&str, &str)], max: usize) -> usize {
    for accepted in 0..max {
        let (status, code) = pixel_from(api, &api.pixel_id, peer, headers).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code, "rate_limited");
            return accepted;
        }
        assert_eq!(status, StatusCode::ACCEPTED, "{code}");
    }
    max
}

const PROXY: &str = "10.0.0.2:40000";

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn spoofed_left_most_forwarded_for_entries_do_not_change_the_client(pool: PgPool) {
    let vars = [("CLIENT_IP_SOURCE", "x-forwarded-for"), ("TRUSTED_PROXY_HOPS", "1"), ("PIXEL_RATE_PER_CLIENT", "1")];
    let api = api_with(pool, &vars).await;
    // One client rotating what it writes in front of the address the proxy appends: one key, burst of two.
    for i in 0..5 {
        let chain = format!("192.0.2.{i}, 198.51.100.{i}, 203.0.113.7");
        let (status, _) = pixel_from(&api, &api.pixel_id, PROXY, &[("x-forwarded-for", &chain)]).await;
        let expected = if i < 2 { StatusCode::ACCEPTED } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(status, expected, "request {i} ({chain})");
    }
    // The same spoofed entries from another client: that client's own key.
    let other = [("x-forwarded-for", "192.0.2.0, 198.51.100.0, 203.0.113.8")];
    assert_eq!(accepted_before_limit(&api, PROXY, &other, 10).await, 2);
    // A proxy appending on a second header line is the same list.
    let lines = [("x-forwarded-for", "192.0.2.50"), ("x-forwarded-for", "203.0.113.7")];
    assert_eq!(pixel_from(&api, &api.pixel_id, PROXY, &lines).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn behind_two_trusted_proxies_the_client_is_the_second_entry_from_the_right(pool: PgPool) {
    let vars = [("CLIENT_IP_SOURCE", "x-forwarded-for"), ("TRUSTED_PROXY_HOPS", "2"), ("PIXEL_RATE_PER_CLIENT", "1")];
    let api = api_with(pool, &vars).await;
    // A CDN edge (any of several) appended the client; the load balancer appended the edge.
    for (i, edge) in ["172.64.0.1", "172.64.0.2", "172.64.0.3"].iter().enumerate() {
        let chain = format!("192.0.2.{i}, 203.0.113.7, {edge}");
        let (status, _) = pixel_from(&api, &api.pixel_id, PROXY, &[("x-forwarded-for", &chain)]).await;
        let expected = if i < 2 { StatusCode::ACCEPTED } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(status, expected, "{chain}");
    }
    let another_client = [("x-forwarded-for", "192.0.2.0, 203.0.113.99, 172.64.0.1")];
    assert_eq!(pixel_from(&api, &api.pixel_id, PROXY, &another_client).await.0, StatusCode::ACCEPTED);
    // A chain shorter than the trusted proxies skipped one of them: the peer is the key, not the header.
    let short = [("x-forwarded-for", "198.51.100.1")];
    let short_other = [("x-forwarded-for", "198.51.100.2")];
    assert_eq!(accepted_before_limit(&api, "10.0.0.3:1", &short, 10).await, 2);
    assert_eq!(pixel_from(&api, &api.pixel_id, "10.0.0.3:1", &short_other).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_older_trust_forwarded_for_setting_trusts_one_proxy(pool: PgPool) {
    let api = api_with(pool, &[("TRUST_FORWARDED_FOR", "true"), ("PIXEL_RATE_PER_CLIENT", "1")]).await;
    let spoofs = ["192.0.2.1, 203.0.113.7", "192.0.2.2, 203.0.113.7", "203.0.113.7"];
    let mut statuses = Vec::new();
    for chain in spoofs {
        statuses.push(pixel_from(&api, &api.pixel_id, PROXY, &[("x-forwarded-for", chain)]).await.0);
    }
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn without_a_trusted_proxy_forwarded_headers_are_ignored(pool: PgPool) {
    let api = api_with(pool, &[("PIXEL_RATE_PER_CLIENT", "1")]).await;
    for (i, expected) in [StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS].iter().enumerate()
    {
        let spoof = format!("198.51.100.{i}");
        let headers = [("x-forwarded-for", spoof.as_str()), ("cf-connecting-ip", spoof.as_str())];
        assert_eq!(pixel_from(&api, &api.pixel_id, "203.0.113.7:5000", &headers).await.0, *expected, "{i}");
    }
    // Another peer is another client.
    assert_eq!(pixel_from(&api, &api.pixel_id, "203.0.113.8:5000", &[]).await.0, StatusCode::ACCEPTED);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn ipv6_clients_in_one_64_share_a_limit_and_another_64_does_not(pool: PgPool) {
    let api = api_with(pool, &[("PIXEL_RATE_PER_CLIENT", "1")]).await;
    // Three addresses of one /64 (a host can use any of its 2^64): one key, burst of two.
    let statuses = [
        pixel_from(&api, &api.pixel_id, "[2001:db8:1:2::1]:443", &[]).await.0,
        pixel_from(&api, &api.pixel_id, "[2001:db8:1:2:aaaa::7]:443", &[]).await.0,
        pixel_from(&api, &api.pixel_id, "[2001:db8:1:2:ffff:ffff:ffff:ffff]:443", &[]).await.0,
    ];
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS]);
    // The neighbouring /64 is another subscriber.
    assert_eq!(pixel_from(&api, &api.pixel_id, "[2001:db8:1:3::1]:443", &[]).await.0, StatusCode::ACCEPTED);
    // An IPv4 client seen through a dual-stack socket is its IPv4 address.
    assert_eq!(accepted_before_limit(&api, "[::ffff:192.0.2.9]:443", &[], 10).await, 2);
    assert_eq!(pixel_from(&api, &api.pixel_id, "192.0.2.9:443", &[]).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn behind_cloudflare_the_client_is_cf_connecting_ip(pool: PgPool) {
    let api = api_with(pool, &[("CLIENT_IP_SOURCE", "cf-connecting-ip"), ("PIXEL_RATE_PER_CLIENT", "1")]).await;
    let edge = "172.64.0.1:443";
    // Whatever X-Forwarded-For says, the client is Cloudflare's header, IPv6 by /64.
    let first = [("cf-connecting-ip", "2001:db8:9:9::1"), ("x-forwarded-for", "192.0.2.1")];
    let second = [("cf-connecting-ip", "2001:db8:9:9::2"), ("x-forwarded-for", "192.0.2.2")];
    assert_eq!(pixel_from(&api, &api.pixel_id, edge, &first).await.0, StatusCode::ACCEPTED);
    assert_eq!(pixel_from(&api, &api.pixel_id, edge, &second).await.0, StatusCode::ACCEPTED);
    assert_eq!(pixel_from(&api, &api.pixel_id, edge, &first).await.0, StatusCode::TOO_MANY_REQUESTS);
    // Other clients behind the same edge are not affected.
    let other = [("cf-connecting-ip", "198.51.100.4")];
    assert_eq!(pixel_from(&api, &api.pixel_id, edge, &other).await.0, StatusCode::ACCEPTED);
    // Without the header, the edge itself is the client.
    assert_eq!(accepted_before_limit(&api, edge, &[], 10).await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_malformed_pixel_id_is_refused_before_any_limit_or_lookup(pool: PgPool) {
    let api = api_with(pool, &[("PIXEL_RATE_PER_CLIENT", "1"), ("PIXEL_RATE_PER_PIXEL", "1")]).await;
    let long = format!("px_{}", "a".repeat(60_000));
    let malformed = ["", "px_nope", "PX_ABCDEFGHJKMNPQRS", "px_abcdefghjkmnpqr0", "x", long.as_str()];
    for round in 0..5 {
        for id in malformed {
            let (status, code) = pixel_from(&api, id, "203.0.113.7:1", &[]).await;
            // Like an unknown id, and never rate limited: nothing was counted.
            assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"), "round {round}: {:.20}", id);
        }
    }
    assert_eq!(api.state.pixel_brands.lookups(), 0, "no query");
    assert_eq!(api.state.pixel_brands.remembered(), 0, "nothing cached");
    assert_eq!(api.state.pixel_limits.key_count(), 0, "no limiter key");
    // The brand's own quota is untouched.
    assert_eq!(accepted_before_limit(&api, "203.0.113.7:1", &[], 10).await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_unknown_pixel_id_costs_one_query_however_often_it_is_named(pool: PgPool) {
    let vars = [("PIXEL_RATE_PER_CLIENT", "1000000"), ("PIXEL_RATE_PER_PIXEL", "1000000")];
    let api = api_with(pool, &vars).await;
    let unknown = "px_abcdefghjkmnpqrs";
    // Fifty at once, then fifty one after the other.
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..50 {
        at_once.spawn(pixel_through(api.router.clone(), unknown, "203.0.113.7:1", &[]));
    }
    while let Some(answer) = at_once.join_next().await {
        let (status, code) = answer.unwrap();
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    }
    for _ in 0..50 {
        assert_eq!(pixel_from(&api, unknown, "203.0.113.7:1", &[]).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(api.state.pixel_brands.lookups(), 1);
    // The answer is remembered, not asked again: a brand that takes this id now is not seen until the
    // cache forgets it (its time to live).
    sqlx::query("update brands set pixel_id = $1 where id = $2")
        .bind(unknown)
        .bind(api.brand_id)
        .execute(&api.pool)
        .await
        .unwrap();
    assert_eq!(pixel_from(&api, unknown, "203.0.113.7:1", &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.state.pixel_brands.lookups(), 1);
    // A known id is remembered the same way: one query for a whole stream of events.
    let other = api.other_brand().await;
    for _ in 0..20 {
        assert_eq!(pixel_from(&api, &other.pixel_id, "203.0.113.7:1", &[]).await.0, StatusCode::ACCEPTED);
    }
    assert_eq!(api.state.pixel_brands.lookups(), 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_client_naming_pixel_ids_nobody_has_is_limited_in_its_lookups(pool: PgPool) {
    let api = api_with(pool, &[("PIXEL_RATE_PER_CLIENT", "1")]).await;
    // The brand's own id is in the cache (another client's event put it there).
    assert_eq!(pixel_from(&api, &api.pixel_id, "198.51.100.1:1", &[]).await.0, StatusCode::ACCEPTED);
    let ids: Vec<String> = (0..30).map(|_| api::secrets::generate_pixel_id(&mut rand::thread_rng())).collect();
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(pixel_from(&api, id, "203.0.113.7:1", &[]).await.0);
    }
    // Two lookups (the burst), then refused without a query.
    assert_eq!(&statuses[..2], &[StatusCode::NOT_FOUND, StatusCode::NOT_FOUND]);
    assert!(statuses[2..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(api.state.pixel_brands.lookups(), 1 + 2);
    // Ids already answered cost nothing more and are answered as before.
    assert_eq!(pixel_from(&api, &ids[0], "203.0.113.7:1", &[]).await.0, StatusCode::NOT_FOUND);
    // The junk counted against the client's lookups only: its events for a brand in the cache go on.
    assert_eq!(accepted_before_limit(&api, "203.0.113.7:1", &[], 10).await, 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_pixel_limit_is_the_brands_not_one_per_spelling_of_its_id(pool: PgPool) {
    let vars = [("PIXEL_RATE_PER_PIXEL", "2"), ("PIXEL_RATE_PER_CLIENT", "1000")];
    let api = api_with(pool, &vars).await;
    // Other brands' and unknown ids do not use this brand's quota...
    let other = api.other_brand().await;
    for _ in 0..3 {
        pixel_from(&api, &other.pixel_id, "203.0.113.1:1", &[]).await;
        pixel_from(&api, "px_abcdefghjkmnpqrs", "203.0.113.1:1", &[]).await;
    }
    // ...which is a burst of four from every client together.
    let mut accepted = 0;
    for i in 0..10 {
        let peer = format!("198.51.100.{i}:1");
        if pixel_from(&api, &api.pixel_id, &peer, &[]).await.0 == StatusCode::ACCEPTED {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 4);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_pixel_limits_memory_stays_bounded_whatever_clients_send(pool: PgPool) {
    let api = api_with(pool, &[("PIXEL_RATE_PER_CLIENT", "1000000")]).await;
    // Thousands of distinct junk ids from thousands of addresses: nothing is remembered for them.
    for i in 0..2_000u32 {
        let peer = format!("[2001:db8:{:x}:{:x}::1]:443", i / 256, i % 256);
        let junk = format!("px_{i}{}", "z".repeat(usize::try_from(i).unwrap() % 300));
        assert_eq!(pixel_from(&api, &junk, &peer, &[]).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(api.state.pixel_limits.key_count(), 0);
    assert_eq!(api.state.pixel_brands.remembered(), 0);
    for i in 0..200u32 {
        let peer = format!("192.0.2.{}:1", i % 100);
        assert_eq!(pixel_from(&api, &api.pixel_id, &peer, &[]).await.0, StatusCode::ACCEPTED);
    }
    // At most: one brand, a hundred clients of it, and the client whose first event cost the lookup
    // (keys idle until their burst refilled, two seconds, may already be forgotten).
    let keys = api.state.pixel_limits.key_count();
    assert!((1..=1 + 100 + 1).contains(&keys), "{keys} keys");
    assert_eq!(api.state.pixel_brands.remembered(), 1);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_pixel_body_over_64_kib_is_refused_in_the_json_error_shape(pool: PgPool) {
    let api = Api::new(pool).await;
    let huge = format!("px_{}", "a".repeat(70_000));
    let (status, code) = pixel_from(&api, &huge, "203.0.113.7:1", &[]).await;
    assert_eq!((status, code.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(api.state.pixel_brands.lookups(), 0);
}

/// A refused event says when to come back: `Retry-After` in whole seconds, at least one, and no longer than
/// the quota takes to let one through (one event a second here).
#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_rate_limited_event_says_when_to_retry(pool: PgPool) {
    let api = api_with(pool, &[("PIXEL_RATE_PER_CLIENT", "1")]).await;
    let send = || {
        let body = json!({"pixel_id": api.pixel_id, "event": "page_view"}).to_string();
        let mut request = Request::post("/v1/pixel/events").body(Body::from(body)).unwrap();
        request.extensions_mut().insert(ConnectInfo("203.0.113.9:4000".parse::<SocketAddr>().unwrap()));
        api.router.clone().oneshot(request)
    };
    let mut answers = Vec::new();
    for _ in 0..3 {
        let response = send().await.unwrap();
        let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        answers.push((response.status(), retry));
    }
    assert_eq!(answers[0], (StatusCode::ACCEPTED, None));
    assert_eq!(answers[1], (StatusCode::ACCEPTED, None));
    let (status, retry) = &answers[2];
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry.as_deref().expect("a Retry-After header").parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
}
