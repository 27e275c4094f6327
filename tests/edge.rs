//! The edge worker on the real Workers runtime: `wrangler dev` (workerd, local KV and Queues) driven over
//! HTTP, with a local receiver standing in for the API's `/internal/clicks`.
//!
//! Needs `bash scripts/install-edge-tools.sh` once; the worker is built by the first test that starts.

use std::time::{SystemTime, UNIX_EPOCH};

use e2e::http;
use e2e::receiver::{Receiver, DELIVERY_LIMIT};
use e2e::wrangler::{Wrangler, WranglerOptions, TEST_INGEST_TOKEN, TEST_SYNC_TOKEN};
use shared::{ClickEvent, Code, LinkRecord, VisitorId};
use uuid::Uuid;

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const COOKIE_ATTRIBUTES: &str = "; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=Lax";

/// One HTTP answer, read whole.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn location(&self) -> &str {
        self.header("location").unwrap_or_else(|| panic!("no Location in a {} answer", self.status))
    }

    /// The click id the worker put into `Location`.
    fn cs_ref(&self) -> String {
        let (_, rest) = self.location().split_once("cs_ref=").expect("cs_ref in Location");
        rest.split(['&', '#']).next().unwrap_or_default().to_owned()
    }

    /// The visitor id of the `_cs_pv` cookie set, checking the cookie's exact attributes.
    fn visitor_cookie(&self) -> String {
        let cookie = self.header("set-cookie").expect("a Set-Cookie header");
        let id = cookie.strip_prefix("_cs_pv=").and_then(|c| c.strip_suffix(COOKIE_ATTRIBUTES));
        let id = id.unwrap_or_else(|| panic!("unexpected cookie {cookie:?}"));
        assert!(VisitorId::parse(id).is_ok(), "visitor id {id:?}");
        id.to_owned()
    }
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let agent = http();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = agent.run(builder.body(()).expect("a request")).expect("the worker answers");
    Reply {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn get(worker: &Wrangler, path: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", &worker.url(path), headers)
}

fn link(n: u128, destination: &str) -> LinkRecord {
    LinkRecord::new(Uuid::from_u128(n), destination.to_owned(), 1)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn start_with_receiver() -> (Wrangler, Receiver) {
    let receiver = Receiver::start();
    let worker = Wrangler::start(WranglerOptions { ingest_url: receiver.url(), ..WranglerOptions::default() });
    (worker, receiver)
}

/// Every click the receiver accepted (answered 2xx), in arrival order.
fn accepted_clicks(receiver: &Receiver) -> Vec<ClickEvent> {
    receiver.received().iter().filter(|r| r.status < 300).flat_map(|r| batch(&r.body)).collect()
}

/// The body the consumer posts to `/internal/clicks`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    clicks: Vec<ClickEvent>,
}

fn batch(body: &[u8]) -> Vec<ClickEvent> {
    // From the bytes: the shared id types borrow their strings while parsing.
    serde_json::from_slice::<Batch>(body).expect("{\"clicks\": [ClickEvent]}").clicks
}

/// Waits until clicks with all these ids have been accepted, then returns them in the same order.
fn wait_for_clicks(receiver: &Receiver, click_ids: &[String]) -> Vec<ClickEvent> {
    receiver.wait_for("the clicks to reach the receiver", DELIVERY_LIMIT, |received| {
        let clicks: Vec<ClickEvent> = received.iter().filter(|r| r.status < 300).flat_map(|r| batch(&r.body)).collect();
        click_ids.iter().map(|id| clicks.iter().find(|c| c.click_id.to_string() == *id).cloned()).collect()
    })
}

#[test]
fn clicks_redirect_with_cs_ref_and_the_visitor_cookie_and_reach_the_api_exactly_as_sent() {
    let (worker, receiver) = start_with_receiver();
    // (code, destination, Location before cs_ref's value, Location after it)
    let cases = [
        ("k7m2p9qr", "https://shop.example/product", "https://shop.example/product?cs_ref=", ""),
        ("abcdefgh", "https://shop.example/p?color=red&size=m", "https://shop.example/p?color=red&size=m&cs_ref=", ""),
        (
            "hjkmnpqr",
            "https://shop.example/p?color=red#reviews",
            "https://shop.example/p?color=red&cs_ref=",
            "#reviews",
        ),
        ("stuvwxyz", "https://shop.example/p#reviews", "https://shop.example/p?cs_ref=", "#reviews"),
        ("23456789", "https://shop.example/p?cs_ref=stale&x=a%20b", "https://shop.example/p?x=a%20b&cs_ref=", ""),
    ];
    let links: Vec<_> = cases.iter().enumerate().map(|(i, c)| (c.0, link(i as u128 + 1, c.1))).collect();
    worker.kv_put(&links.iter().map(|(code, record)| (*code, record)).collect::<Vec<_>>());

    let before = now_ms();
    let referer = "https://www.instagram.com/p/C1abc/?igsh=private-token";
    let replies: Vec<Reply> = cases
        .iter()
        .map(|c| get(&worker, &format!("/{}", c.0), &[("User-Agent", CHROME), ("Referer", referer)]))
        .collect();
    let after = now_ms();

    let mut sent = Vec::new();
    for ((code, _, prefix, suffix), reply) in cases.iter().zip(&replies) {
        assert_eq!(reply.status, 302, "{code}");
        let click_id = reply.cs_ref();
        assert_eq!(reply.location(), format!("{prefix}{click_id}{suffix}"), "{code}");
        assert_eq!(reply.header("cache-control"), Some("private, no-store"));
        assert!(reply.body.is_empty());
        sent.push((click_id, reply.visitor_cookie()));
    }

    let click_ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let clicks = wait_for_clicks(&receiver, &click_ids);
    for (((code, ..), (_, record)), ((click_id, visitor), click)) in
        cases.iter().zip(&links).zip(sent.iter().zip(&clicks))
    {
        assert_eq!(click.click_id.to_string(), *click_id);
        assert_eq!(click.code, Code::parse(code).unwrap());
        assert_eq!(click.link_id, record.link_id);
        assert_eq!(click.visitor_id.to_string(), *visitor);
        assert!(click.new_visitor);
        assert!(!click.bot);
        // wrangler dev's stand-in for Cloudflare's request metadata places every request in the US.
        assert_eq!(click.country.as_deref(), Some("US"));
        assert_eq!(click.referrer_host.as_deref(), Some("www.instagram.com"));
        assert_eq!(click.user_agent.as_deref(), Some(CHROME));
        assert!((before..=after).contains(&click.occurred_at_ms), "{} not in {before}..={after}", click.occurred_at_ms);
        assert_eq!(click.validate(), Ok(()));
    }

    let batches = receiver.received();
    for batch in &batches {
        assert_eq!((batch.method.as_str(), batch.url.as_str()), ("POST", "/internal/clicks"));
        assert_eq!(batch.header("authorization"), Some(format!("Bearer {TEST_INGEST_TOKEN}").as_str()));
        assert_eq!(batch.header("content-type"), Some("application/json"));
        // Only the referrer's host travels, never its path or query; and no IP address at all.
        assert!(!batch.text().contains("igsh") && !batch.text().contains("127.0.0.1"), "{}", batch.text());
    }
    let all = accepted_clicks(&receiver);
    assert_eq!(all.len(), cases.len(), "each click is delivered once: {all:?}");
}

#[test]
fn a_returning_visitor_keeps_their_id_and_an_invalid_cookie_gets_a_new_one() {
    let (worker, receiver) = start_with_receiver();
    worker.kv_put(&[("mnpqrstu", &link(7, "https://shop.example/"))]);

    let first = get(&worker, "/mnpqrstu", &[("User-Agent", CHROME)]);
    let visitor = first.visitor_cookie();
    let cookie = format!("theme=dark; _cs_pv={visitor}");
    let second = get(&worker, "/mnpqrstu", &[("User-Agent", CHROME), ("Cookie", &cookie)]);
    assert_eq!(second.status, 302);
    assert_eq!(second.visitor_cookie(), visitor, "the same id is set again, refreshing its 30 days");
    let forged = get(&worker, "/mnpqrstu", &[("User-Agent", CHROME), ("Cookie", "_cs_pv=0123456789abcdef")]);
    let new_visitor = forged.visitor_cookie();
    assert_ne!(new_visitor, visitor);

    let clicks = wait_for_clicks(&receiver, &[first.cs_ref(), second.cs_ref(), forged.cs_ref()]);
    let seen: Vec<_> = clicks.iter().map(|c| (c.visitor_id.to_string(), c.new_visitor)).collect();
    assert_eq!(seen, [(visitor.clone(), true), (visitor, false), (new_visitor, true)]);
}

#[test]
fn head_answers_the_same_redirect_but_records_nothing_and_sets_no_cookie() {
    let (worker, receiver) = start_with_receiver();
    worker.kv_put(&[("qrstuvwx", &link(8, "https://shop.example/p?a=1#top"))]);

    let head = request("HEAD", &worker.url("/qrstuvwx"), &[("User-Agent", CHROME)]);
    assert_eq!(head.status, 302);
    assert_eq!(head.location(), format!("https://shop.example/p?a=1&cs_ref={}#top", head.cs_ref()));
    assert_eq!(head.header("cache-control"), Some("private, no-store"));
    assert_eq!(head.header("set-cookie"), None);

    // A click after it: once that one has arrived, the HEAD's would have too.
    let click = get(&worker, "/qrstuvwx", &[("User-Agent", CHROME)]);
    wait_for_clicks(&receiver, &[click.cs_ref()]);
    let ids: Vec<String> = accepted_clicks(&receiver).iter().map(|c| c.click_id.to_string()).collect();
    assert_eq!(ids, [click.cs_ref()]);
}

#[test]
fn uppercase_codes_redirect_like_their_lowercase_form() {
    let (worker, receiver) = start_with_receiver();
    worker.kv_put(&[("wxyz2345", &link(9, "https://shop.example/upper"))]);

    let reply = get(&worker, "/WXYZ2345", &[("User-Agent", CHROME)]);
    assert_eq!(reply.status, 302);
    assert_eq!(reply.location(), format!("https://shop.example/upper?cs_ref={}", reply.cs_ref()));
    let head = request("HEAD", &worker.url("/WxYz2345"), &[]);
    assert_eq!(head.status, 302);

    let clicks = wait_for_clicks(&receiver, &[reply.cs_ref()]);
    assert_eq!(clicks[0].code.as_str(), "wxyz2345");
}

#[test]
fn malformed_unknown_and_inactive_codes_get_the_not_found_page_and_record_nothing() {
    let (worker, receiver) = start_with_receiver();
    worker.kv_put(&[
        ("abcd2345", &link(10, "https://shop.example/live")),
        ("efgh6789", &link(11, "https://gone.example/")),
    ]);
    // Deactivating a link deletes its record.
    worker.kv_delete(&["efgh6789"]);

    for path in ["/efgh6789", "/zzzz2222", "/abc", "/abcd234o", "/abcd2345x", "/", "/favicon.ico", "/abcd2345/more"] {
        let reply = get(&worker, path, &[("User-Agent", CHROME)]);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(reply.header("cache-control"), Some("private, no-store"), "{path}");
        assert!(reply.body.contains("Link not found"), "{path}: {}", reply.body);
        assert_eq!(reply.header("location"), None);
        assert_eq!(reply.header("set-cookie"), None);
    }
    let head = request("HEAD", &worker.url("/zzzz2222"), &[]);
    assert_eq!((head.status, head.body.as_str()), (404, ""));

    let post = request("POST", &worker.url("/abcd2345"), &[]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let sync_get = get(&worker, "/_internal/kv/bulk", &[]);
    assert_eq!(sync_get.status, 405);
    assert_eq!(sync_get.header("allow"), Some("POST"));

    let click = get(&worker, "/abcd2345", &[("User-Agent", CHROME)]);
    assert_eq!(click.status, 302);
    wait_for_clicks(&receiver, &[click.cs_ref()]);
    let ids: Vec<String> = accepted_clicks(&receiver).iter().map(|c| c.click_id.to_string()).collect();
    assert_eq!(ids, [click.cs_ref()], "only the live link's click is recorded");
}

#[test]
fn bots_and_link_preview_crawlers_are_redirected_but_flagged() {
    let (worker, receiver) = start_with_receiver();
    worker.kv_put(&[("bcdfghjk", &link(12, "https://shop.example/bot"))]);

    let person = get(&worker, "/bcdfghjk", &[("User-Agent", CHROME)]);
    let crawlers = ["Twitterbot/1.0", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"];
    let crawled: Vec<Reply> = crawlers.iter().map(|ua| get(&worker, "/bcdfghjk", &[("User-Agent", ua)])).collect();
    // workerd takes Cloudflare's request metadata from this header when the runtime is local; here it
    // says what Bot Management would say about an automated client in Germany.
    let cf = r#"{"country":"DE","botManagement":{"score":1,"verifiedBot":false}}"#;
    let scored = get(&worker, "/bcdfghjk", &[("User-Agent", CHROME), ("MF-CF-Blob", cf)]);

    let mut ids = vec![person.cs_ref()];
    for reply in crawled.iter().chain([&scored]) {
        assert_eq!(reply.status, 302);
        assert_eq!(reply.location(), format!("https://shop.example/bot?cs_ref={}", reply.cs_ref()));
        ids.push(reply.cs_ref());
    }
    let clicks = wait_for_clicks(&receiver, &ids);
    let flags: Vec<bool> = clicks.iter().map(|c| c.bot).collect();
    assert_eq!(flags, [false, true, true, true]);
    assert_eq!(clicks[1].user_agent.as_deref(), Some("Twitterbot/1.0"));
    assert_eq!(clicks[3].country.as_deref(), Some("DE"));
}

#[test]
fn the_country_comes_from_cf_ipcountry_and_bot_scores_from_cf_where_the_zone_has_bot_management() {
    // Cloudflare's header and its request metadata disagree here, so that each click shows what was read.
    let cf = r#"{"country":"DE","botManagement":{"score":1,"verifiedBot":false}}"#;
    let headers = [("User-Agent", CHROME), ("CF-IPCountry", "FR"), ("MF-CF-Blob", cf)];
    for bot_management in [true, false] {
        let receiver = Receiver::start();
        let worker = Wrangler::start(WranglerOptions {
            ingest_url: receiver.url(),
            bot_management,
            ..WranglerOptions::default()
        });
        worker.kv_put(&[("cdfghjkm", &link(14, "https://shop.example/geo"))]);
        let reply = get(&worker, "/cdfghjkm", &headers);
        assert_eq!(reply.status, 302);
        let clicks = wait_for_clicks(&receiver, &[reply.cs_ref()]);
        assert_eq!(clicks[0].country.as_deref(), Some("FR"), "CF_BOT_MANAGEMENT={bot_management}");
        assert_eq!(clicks[0].bot, bot_management, "CF_BOT_MANAGEMENT={bot_management}: the score is read only then");
    }
}

#[test]
fn a_batch_the_api_refuses_is_delivered_again_until_accepted() {
    let (worker, receiver) = start_with_receiver();
    worker.kv_put(&[("pqrstuvw", &link(13, "https://shop.example/retry"))]);
    receiver.answer_next_with(&[503]);

    let click = get(&worker, "/pqrstuvw", &[("User-Agent", CHROME)]);
    wait_for_clicks(&receiver, &[click.cs_ref()]);
    let deliveries = receiver.received();
    assert_eq!(deliveries.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 200]);
    assert_eq!(batch(&deliveries[0].body), batch(&deliveries[1].body), "the retry carries the same click");
}

#[test]
fn the_sync_route_needs_the_token_and_valid_records() {
    let worker = Wrangler::start(WranglerOptions::default());
    let url = worker.url("/_internal/kv/bulk");
    let good =
        serde_json::json!([{"key": "jkmnpqrs", "value": link(14, "https://shop.example/s").to_json()}]).to_string();
    let post = |auth: Option<&str>, body: &str| {
        let agent = http();
        let mut req = agent.post(&url).header("Content-Type", "application/json");
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let mut response = req.send(body).expect("an answer");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), serde_json::from_str::<serde_json::Value>(&text).expect("JSON"))
    };

    for auth in [None, Some("Bearer wrong"), Some(TEST_SYNC_TOKEN)] {
        let (status, body) = post(auth, &good);
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(get(&worker, "/jkmnpqrs", &[]).status, 404, "nothing was written");

    let bearer = format!("Bearer {TEST_SYNC_TOKEN}");
    let token = Some(bearer.as_str());
    let bad_key =
        serde_json::json!([{"key": "nope", "value": link(14, "https://shop.example/s").to_json()}]).to_string();
    let bad_value = r#"[{"key": "jkmnpqrs", "value": "{\"v\":1}"}]"#;
    for body in [bad_key.as_str(), bad_value, "{}", "not json"] {
        let (status, answer) = post(token, body);
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], "invalid_body");
    }
    assert_eq!(post(token, &good), (200, serde_json::json!({"written": 1})));
    assert_eq!(get(&worker, "/JKMNPQRS", &[("User-Agent", CHROME)]).status, 302);
}

#[test]
fn without_a_sync_token_the_sync_routes_do_not_exist() {
    let worker = Wrangler::start(WranglerOptions { kv_sync_token: None, ..WranglerOptions::default() });
    let reply = request("POST", &worker.url("/_internal/kv/bulk"), &[("Authorization", "Bearer ")]);
    assert_eq!(reply.status, 404);
    assert_eq!(request("POST", &worker.url("/_internal/kv/bulk/delete"), &[]).status, 404);
    assert_eq!(get(&worker, "/_internal/kv/bulk", &[]).status, 404);
}

#[test]
fn concurrent_clicks_each_reach_the_api_exactly_once() {
    let (worker, receiver) = start_with_receiver();
    worker.kv_put(&[("xyz23456", &link(15, "https://shop.example/busy"))]);

    // Many clicks at once share the worker's queue sends; each must still arrive, and only once.
    let url = worker.url("/xyz23456");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                (0..10).map(|_| request("GET", &url, &[("User-Agent", CHROME)]).cs_ref()).collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().flat_map(|t| t.join().expect("a clicking thread")).collect();
    assert_eq!(ids.len(), 80);

    wait_for_clicks(&receiver, &ids);
    let mut delivered: Vec<String> = accepted_clicks(&receiver).iter().map(|c| c.click_id.to_string()).collect();
    delivered.sort();
    let mut sent = ids.clone();
    sent.sort();
    assert_eq!(delivered, sent);
}

/// A record with the fields a brand sets beyond the destination.
fn link_with(n: u128, destination: &str, edit: impl FnOnce(&mut LinkRecord)) -> LinkRecord {
    let mut record = link(n, destination);
    edit(&mut record);
    record
}

#[test]
fn custom_domains_serve_their_own_links_and_the_default_domain_serves_all() {
    let (worker, receiver) = start_with_receiver();
    let on_a = link_with(41, "https://shop-a.example/p", |r| r.domain = Some("go.brand-a.example".into()));
    let on_b = link_with(42, "https://shop-b.example/p", |r| r.domain = Some("go.brand-b.example".into()));
    let plain = link(43, "https://shop-a.example/plain");
    worker.kv_put(&[("gdmnpqrs", &on_a), ("bdmnpqrs", &on_b), ("pdmnpqrs", &plain)]);
    let host = |h: &'static str| [("Host", h), ("User-Agent", CHROME)];

    let own = get(&worker, "/gdmnpqrs", &host("go.brand-a.example"));
    assert_eq!(own.status, 302, "a link on its own domain redirects");
    assert!(own.location().starts_with("https://shop-a.example/p?cs_ref="), "{}", own.location());
    let default = get(&worker, "/gdmnpqrs", &[("User-Agent", CHROME)]);
    assert_eq!(default.status, 302, "and on the default domain");
    for (code, what) in [("bdmnpqrs", "another brand's domain"), ("pdmnpqrs", "the default domain")] {
        let reply = get(&worker, &format!("/{code}"), &host("go.brand-a.example"));
        assert_eq!(reply.status, 404, "a link on {what} is unknown on go.brand-a.example");
        assert!(reply.header("set-cookie").is_none());
        let peek = request("HEAD", &worker.url(&format!("/{code}")), &host("go.brand-a.example"));
        assert_eq!(peek.status, 404);
    }
    // A host name is compared without its port and whatever its case.
    let upper = get(&worker, "/gdmnpqrs", &host("GO.Brand-A.example:443"));
    assert_eq!(upper.status, 302);

    let clicks = wait_for_clicks(&receiver, &[own.cs_ref(), default.cs_ref(), upper.cs_ref()]);
    assert!(clicks.iter().all(|c| c.link_id == on_a.link_id));
    assert_eq!(accepted_clicks(&receiver).len(), 3, "the 404s recorded nothing");
}

#[test]
fn utm_tags_reach_the_destination_qr_scans_are_counted_apart_and_expired_links_record_nothing() {
    let (worker, receiver) = start_with_receiver();
    let tagged = link_with(51, "https://shop.example/p?utm_source=newsletter#top", |r| {
        r.utm = shared::Utm { source: Some("instagram".into()), medium: Some("creator".into()), ..Default::default() }
    });
    let now = now_ms();
    let expired = link_with(52, "https://shop.example/sale", |r| {
        r.expires_at_ms = Some(now - 1_000);
        r.expired_url = Some("https://shop.example/sale-ended".into());
    });
    let expired_bare = link_with(53, "https://shop.example/sale", |r| r.expires_at_ms = Some(now - 1_000));
    let running = link_with(54, "https://shop.example/sale", |r| r.expires_at_ms = Some(now + 3_600_000));
    worker.kv_put(&[
        ("umnpqrst", &tagged),
        ("exmnpqrs", &expired),
        ("eymnpqrs", &expired_bare),
        ("ezmnpqrs", &running),
    ]);

    let tagged_click = get(&worker, "/umnpqrst", &[("User-Agent", CHROME)]);
    let click_id = tagged_click.cs_ref();
    assert_eq!(
        tagged_click.location(),
        format!("https://shop.example/p?utm_source=newsletter&utm_medium=creator&cs_ref={click_id}#top"),
        "the destination's own utm_source wins; the missing tag is added"
    );
    let scan = get(&worker, "/umnpqrst?qr=1", &[("User-Agent", CHROME)]);
    assert_eq!(scan.status, 302);
    assert!(!scan.location().contains("qr=1"), "the marker never reaches the destination: {}", scan.location());

    for method in ["GET", "HEAD"] {
        let gone = request(method, &worker.url("/exmnpqrs"), &[("User-Agent", CHROME)]);
        assert_eq!(gone.status, 302, "{method}");
        assert_eq!(gone.location(), "https://shop.example/sale-ended", "no click id after expiry");
        assert!(gone.header("set-cookie").is_none());
        assert_eq!(gone.header("cache-control"), Some("private, no-store"));
        let bare = request(method, &worker.url("/eymnpqrs"), &[("User-Agent", CHROME)]);
        assert_eq!(bare.status, 404, "{method}");
    }
    let before_expiry = get(&worker, "/ezmnpqrs", &[("User-Agent", CHROME)]);
    assert_eq!(before_expiry.status, 302);

    let clicks = wait_for_clicks(&receiver, &[click_id, scan.cs_ref(), before_expiry.cs_ref()]);
    let sources: Vec<_> = clicks.iter().map(|c| c.source).collect();
    assert_eq!(sources, [shared::ClickSource::Link, shared::ClickSource::Qr, shared::ClickSource::Link]);
    let all = accepted_clicks(&receiver);
    assert_eq!(all.len(), 3, "expired links recorded no click: {all:?}");
}
