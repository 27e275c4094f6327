//! The work the worker does per click, natively: route the path, parse the KV record, decide the
//! visit (ids, location, cookie, bot check, event) and serialise the event for the queue.
//! `click_cached_link` is the same for a link the isolate has cached (no record or destination to
//! parse), which is what most clicks cost. Target: under 5 µs. Run with
//! `cargo bench -p edge-worker --bench hot_path`.
//!
//! `ua_parse_woothee` is there for comparison: the lightest user-agent parser, not used by the worker.
//! It is cheap natively but costs several times the whole hot path once compiled to wasm, and the
//! accurate parser (uaparser, uap-core's regexes) far more; so the edge forwards the raw (truncated)
//! string and the API classifies it (see README.md).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edge_worker::answer::Answer;
use edge_worker::bot::{is_bot, warm_up, BotSignals};
use edge_worker::click::{to_json, visit, Host, Outcome, RequestFacts, Target, VisitKind};
use edge_worker::redirect::{location, Destination};
use edge_worker::route::{route, Method, Route};
use rand::rngs::{OsRng, StdRng};
use rand::SeedableRng;
use shared::{ClickId, LinkRecord};
use uuid::Uuid;

const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
const INSTAGRAM_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 326.0.3.26.91 (iPhone15,2; iOS 17_4; en_US; en; scale=3.00; 1179x2556; 590452540)";

fn record_json() -> String {
    LinkRecord::new(
        Uuid::from_u128(0x2a),
        "https://shop.example/products/linen-shirt?variant=4411&utm_source=creator&utm_medium=ig#reviews".into(),
        7,
    )
    .to_json()
}

/// One click on a link read from KV just now, end to end, minus the runtime's own I/O.
fn click(path: &str, kv_value: &str, facts: &RequestFacts<'_>, ids: &mut StdRng) -> (Answer, String) {
    let target = Target::new(LinkRecord::from_json(kv_value).expect("record")).expect("destination");
    cached_click(path, &target, facts, ids)
}

/// One click on a link the isolate has cached (record and destination parsed already): what most
/// clicks cost.
fn cached_click(path: &str, target: &Target, facts: &RequestFacts<'_>, ids: &mut StdRng) -> (Answer, String) {
    let Route::Click(code) = route(Method::Get, path) else { panic!("not a click route") };
    let Outcome::Visit(mut visit) = visit(code, target, VisitKind::Click, facts, 1_764_000_000_000, ids) else {
        panic!("not a redirect")
    };
    let message = to_json(&visit.event.take().expect("event"));
    (Answer::redirect(visit), message)
}

fn hot_path(c: &mut Criterion) {
    warm_up();
    let kv_value = record_json();
    let new_visitor = RequestFacts {
        host: Host::Default,
        qr: false,
        cookie: Some("_ga=GA1.2.123.456; _fbp=fb.1.1700000000000.123"),
        user_agent: Some(CHROME_ANDROID),
        referer: Some("https://l.instagram.com/?u=https%3A%2F%2Ftrk.creatorscore.io%2Fk7m2p9qr&e=AT0"),
        country: Some("DE"),
        bot: BotSignals { score: Some(87), verified_bot: false },
    };
    let returning = RequestFacts {
        cookie: Some("_ga=GA1.2.123.456; _cs_pv=7c9e6679742540de944be07fc1f90ae7"),
        user_agent: Some(INSTAGRAM_IPHONE),
        ..new_visitor
    };
    // Ids come from ChaCha12 seeded once from the OS, as in the worker (one generator per isolate).
    let mut ids = StdRng::from_entropy();
    c.bench_function("click_new_visitor", |b| {
        b.iter(|| click(black_box("/k7m2p9qr"), black_box(&kv_value), black_box(&new_visitor), &mut ids))
    });
    c.bench_function("click_returning_visitor", |b| {
        b.iter(|| click(black_box("/K7M2P9QR"), black_box(&kv_value), black_box(&returning), &mut ids))
    });
    let target = Target::new(LinkRecord::from_json(&kv_value).expect("record")).expect("destination");
    c.bench_function("click_cached_link", |b| {
        b.iter(|| cached_click(black_box("/k7m2p9qr"), black_box(&target), black_box(&new_visitor), &mut ids))
    });

    let destination = "https://shop.example/products/linen-shirt?variant=4411&cs_ref=old&utm_source=creator#reviews";
    let click_id = ClickId::generate(&mut OsRng);
    c.bench_function("location", |b| b.iter(|| location(black_box(destination), click_id)));
    let parsed = Destination::parse(destination).expect("destination");
    c.bench_function("location_cached", |b| b.iter(|| black_box(&parsed).location(click_id)));
    c.bench_function("bot_check", |b| b.iter(|| is_bot(black_box(Some(INSTAGRAM_IPHONE)), BotSignals::default())));
    c.bench_function("ua_parse_woothee", |b| {
        let parser = woothee::parser::Parser::new();
        b.iter(|| parser.parse(black_box(INSTAGRAM_IPHONE)).map(|r| (r.name, r.os, r.category)))
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
