//! The queue consumer's rules: which messages go to the API, in what body, and what to do after.
//!
//! The consumer judges only what it must to carry a message: that it is click events at all (JSON
//! objects). Whether an event is one the API can store (its version, its fields, its time) is the
//! API's decision, so a worker of another event version never drops what a newer or older API reads.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use url::Url;

/// Path of the API's ingest endpoint, appended to `INGEST_URL`.
pub const INGEST_PATH: &str = "/internal/clicks";

/// The body posted to the ingest endpoint.
#[derive(Debug, Serialize)]
pub struct IngestBody<'a> {
    /// The batch's click events, each exactly as its message carried it.
    pub clicks: &'a [&'a RawValue],
}

/// Most clicks in one post to the API (its ingest takes up to 1,000; 1,000 clicks of at most ~800 bytes
/// stay well under its 2 MiB body limit).
pub const MAX_CLICKS_PER_POST: usize = 1_000;

/// Parses a queue message body: the JSON text the fetch handler sent, an array of click events (one
/// click event alone is accepted too). Each event is kept as the exact JSON object it was, whatever
/// its version; anything that is not JSON objects is an error.
pub fn parse_message(body: Option<&str>) -> Result<Vec<Box<RawValue>>, String> {
    let text = body.ok_or_else(|| "message body is not a string".to_owned())?;
    let events = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<Box<RawValue>>>(text)
    } else {
        serde_json::from_str::<Box<RawValue>>(text).map(|event| vec![event])
    }
    .map_err(|e| format!("message body is not click events: {e}"))?;
    match events.iter().position(|event| !event.get().starts_with('{')) {
        Some(index) => Err(format!("message body is not click events: [{index}] is not a JSON object")),
        None => Ok(events),
    }
}

/// When a click happened, read leniently from an event of any version (`None` when it does not say).
pub fn occurred_at_ms(event: &RawValue) -> Option<i64> {
    #[derive(Deserialize)]
    struct When {
        occurred_at_ms: Option<i64>,
    }
    serde_json::from_str::<When>(event.get()).ok().and_then(|when| when.occurred_at_ms)
}

/// Splits a batch of messages (given by how many clicks each holds) into consecutive groups of at most
/// [`MAX_CLICKS_PER_POST`] clicks, one post each; a group's messages are settled by its post's answer.
pub fn plan_posts(clicks_per_message: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut posts = Vec::new();
    let (mut start, mut clicks) = (0, 0);
    for (i, &n) in clicks_per_message.iter().enumerate() {
        if i > start && clicks + n > MAX_CLICKS_PER_POST {
            posts.push(start..i);
            (start, clicks) = (i, 0);
        }
        clicks += n;
    }
    if start < clicks_per_message.len() {
        posts.push(start..clicks_per_message.len());
    }
    posts
}

/// The full ingest URL for an `INGEST_URL` such as `http://127.0.0.1:8081` or `https://api.example/`.
pub fn ingest_endpoint(base: &str) -> Result<Url, String> {
    let base = Url::parse(base.trim()).map_err(|e| format!("INGEST_URL is not a URL: {e}"))?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err("INGEST_URL must be an http or https URL".to_owned());
    }
    let mut endpoint = base;
    let path = format!("{}{INGEST_PATH}", endpoint.path().trim_end_matches('/'));
    endpoint.set_path(&path);
    endpoint.set_query(None);
    endpoint.set_fragment(None);
    Ok(endpoint)
}

/// What becomes of one message once the API has answered the post that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The API stored (or rejected for good) every click it holds: acknowledge.
    Ack,
    /// Deliver it again later; after `max_retries` it goes to the dead-letter queue.
    Retry,
}

/// The API's `503 retry_later` answer, of which only the events' indexes matter here.
#[derive(Deserialize)]
struct RetryLater {
    error: ErrorCode,
    retry_later: Vec<Indexed>,
}

#[derive(Deserialize)]
struct ErrorCode {
    code: String,
}

#[derive(Deserialize)]
struct Indexed {
    index: usize,
}

/// Settles each message of a post (given by how many clicks each holds, in the order they were
/// posted) by the API's answer: `status` and body, or `None` when there was no answer.
///
/// - 2xx: the API answers it only once the batch is durably stored (and ignores click ids it already
///   has, so a retry after a lost answer is harmless): acknowledge all.
/// - `503` with `{"error": {"code": "retry_later"}, "retry_later": [{"index"}, ...]}`: the API stored and
///   committed every other event; retry only the messages holding a listed event, acknowledge the rest.
/// - anything else (an outage, a refused token, an answer that does not say which events): retry all.
pub fn settle(status: Option<u16>, body: Option<&str>, clicks_per_message: &[usize]) -> Vec<Settle> {
    let all = |settle| vec![settle; clicks_per_message.len()];
    match status {
        Some(200..=299) => all(Settle::Ack),
        Some(503) => match body.and_then(|b| serde_json::from_str::<RetryLater>(b).ok()) {
            Some(answer) if answer.error.code == "retry_later" => {
                retry_only(clicks_per_message, answer.retry_later.iter().map(|e| e.index))
                    .unwrap_or_else(|| all(Settle::Retry))
            }
            _ => all(Settle::Retry),
        },
        _ => all(Settle::Retry),
    }
}

/// Retry for the messages that hold one of `indexes` (positions in the posted `clicks`), acknowledge the
/// others; `None` when an index is outside the post or none is given, which the API never answers.
fn retry_only(clicks_per_message: &[usize], indexes: impl Iterator<Item = usize>) -> Option<Vec<Settle>> {
    let mut ends = Vec::with_capacity(clicks_per_message.len());
    let mut total = 0;
    for &n in clicks_per_message {
        total += n;
        ends.push(total);
    }
    let mut settles = vec![Settle::Ack; clicks_per_message.len()];
    let mut any = false;
    for index in indexes {
        // The first message whose clicks end after the index holds it.
        let message = ends.partition_point(|&end| end <= index);
        *settles.get_mut(message)? = Settle::Retry;
        any = true;
    }
    any.then_some(settles)
}

/// How long a click waits before its next delivery after the API did not take it: as long as it has
/// already waited since the click (at least 5 s, at most `max_delay`, `QUEUE_RETRY_MAX_DELAY`). Every
/// retry so doubles the time the click has been kept, like an exponential backoff keyed on the
/// message's age (the runtime's attempt counter is not exposed to Rust): with `max_retries = 10` and
/// the default 10 minutes a click outlives about half an hour of API outage before it moves to the
/// dead-letter queue, where retrying at once would burn every retry within seconds of an outage
/// starting. A `max_delay` under 5 s (local tests) lowers the minimum too.
pub fn retry_delay_seconds(click_ms: i64, now_ms: i64, max_delay: u32) -> u32 {
    const FIRST: i64 = 5;
    let max = i64::from(max_delay);
    let waited = now_ms.saturating_sub(click_ms) / 1000;
    u32::try_from(waited.clamp(FIRST.min(max), max)).unwrap_or(max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use shared::{ClickEvent, ClickId, ClickSource, Code, Version, VisitorId};
    use uuid::Uuid;

    fn event() -> ClickEvent {
        let mut rng = StdRng::seed_from_u64(3);
        ClickEvent {
            v: Version,
            click_id: ClickId::generate(&mut rng),
            code: Code::parse("k7m2p9qr").unwrap(),
            link_id: Uuid::from_u128(7),
            occurred_at_ms: 1_764_000_000_000,
            visitor_id: VisitorId::generate(&mut rng),
            new_visitor: true,
            bot: false,
            country: Some("US".into()),
            referrer_host: None,
            user_agent: Some("Mozilla/5.0".into()),
            source: ClickSource::Link,
        }
    }

    fn texts(events: &[Box<RawValue>]) -> Vec<&str> {
        events.iter().map(|e| e.get()).collect()
    }

    #[test]
    fn messages_carry_the_events_exactly_as_the_fetch_handler_sent_them() {
        let one = serde_json::to_string(&event()).unwrap();
        assert_eq!(texts(&parse_message(Some(&format!("[{one},{one}]"))).unwrap()), vec![one.as_str(), &one]);
        assert_eq!(texts(&parse_message(Some(&format!(" [{one}]"))).unwrap()), vec![one.as_str()]);
        assert_eq!(texts(&parse_message(Some(&one)).unwrap()), vec![one.as_str()]);
        let parsed: ClickEvent = serde_json::from_str(parse_message(Some(&one)).unwrap()[0].get()).unwrap();
        assert_eq!(parsed, event());
    }

    #[test]
    fn events_of_any_version_are_carried_for_the_api_to_judge() {
        let newer = r#"[{"v":2,"click_id":"x","occurred_at_ms":5},{"v":1}]"#;
        assert_eq!(
            texts(&parse_message(Some(newer)).unwrap()),
            vec![r#"{"v":2,"click_id":"x","occurred_at_ms":5}"#, r#"{"v":1}"#]
        );
        assert_eq!(occurred_at_ms(&parse_message(Some(newer)).unwrap()[0]), Some(5));
        assert_eq!(occurred_at_ms(&parse_message(Some(newer)).unwrap()[1]), None);
    }

    #[test]
    fn messages_that_are_not_json_objects_are_errors() {
        for bad in [None, Some(""), Some("not json"), Some("[1, {}]"), Some(r#"["{}"]"#), Some("42"), Some("[{}")] {
            assert!(parse_message(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn posts_hold_at_most_a_thousand_clicks_and_keep_messages_whole() {
        assert_eq!(plan_posts(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(plan_posts(&[1, 1, 1]), vec![0..3]);
        assert_eq!(plan_posts(&[100; 25]), vec![0..10, 10..20, 20..25]);
        assert_eq!(plan_posts(&[600, 400, 1, 999, 1000]), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn the_ingest_body_wraps_the_events_unchanged() {
        let events = parse_message(Some(r#"[{"v":2,"b":[1, 2]},{"v":1}]"#)).unwrap();
        let refs: Vec<&RawValue> = events.iter().map(AsRef::as_ref).collect();
        let json = serde_json::to_string(&IngestBody { clicks: &refs }).unwrap();
        assert_eq!(json, r#"{"clicks":[{"v":2,"b":[1, 2]},{"v":1}]}"#);
    }

    #[test]
    fn the_ingest_endpoint_is_appended_to_the_base_url() {
        let cases = [
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081/internal/clicks"),
            ("https://api.example/", "https://api.example/internal/clicks"),
            ("https://api.example/prefix/", "https://api.example/prefix/internal/clicks"),
        ];
        for (base, want) in cases {
            assert_eq!(ingest_endpoint(base).unwrap().as_str(), want);
        }
        assert!(ingest_endpoint("").is_err());
        assert!(ingest_endpoint("ftp://api.example").is_err());
        assert!(ingest_endpoint("mailto:ops@example.com").is_err());
    }

    #[test]
    fn only_a_2xx_acknowledges_a_whole_post() {
        use Settle::{Ack, Retry};
        assert_eq!(settle(Some(200), None, &[1, 2]), vec![Ack, Ack]);
        assert_eq!(settle(Some(204), None, &[3]), vec![Ack]);
        for status in [None, Some(301), Some(400), Some(401), Some(500), Some(503)] {
            assert_eq!(settle(status, Some("{}"), &[1, 2]), vec![Retry, Retry], "{status:?}");
        }
    }

    #[test]
    fn a_retry_later_answer_retries_only_the_messages_holding_the_listed_events() {
        use Settle::{Ack, Retry};
        let answer = |indexes: &[usize]| {
            let listed: Vec<_> = indexes.iter().map(|i| serde_json::json!({"index": i, "error": "v2"})).collect();
            serde_json::json!({"error": {"code": "retry_later", "message": "m"}, "retry_later": listed, "stored": 1})
                .to_string()
        };
        // Messages of 2, 1 and 3 clicks: indexes 0-1, 2, 3-5.
        let sizes = [2, 1, 3];
        assert_eq!(settle(Some(503), Some(&answer(&[1])), &sizes), vec![Retry, Ack, Ack]);
        assert_eq!(settle(Some(503), Some(&answer(&[2, 5])), &sizes), vec![Ack, Retry, Retry]);
        assert_eq!(settle(Some(503), Some(&answer(&[3, 4])), &[0, 2, 1, 3]), vec![Ack, Ack, Ack, Retry]);
        // An answer the consumer cannot map to its messages retries them all.
        for unclear in [answer(&[]), answer(&[6]), r#"{"error":{"code":"unavailable"}}"#.into(), "<html>".into()] {
            assert_eq!(settle(Some(503), Some(&unclear), &sizes), vec![Retry; 3], "{unclear}");
        }
        // The same body with another status is not a retry_later answer.
        assert_eq!(settle(Some(500), Some(&answer(&[1])), &sizes), vec![Retry; 3]);
    }

    #[test]
    fn retries_wait_as_long_as_the_click_has_waited_within_bounds() {
        let click = 1_764_000_000_000;
        assert_eq!(retry_delay_seconds(click, click, 600), 5);
        assert_eq!(retry_delay_seconds(click, click + 2_000, 600), 5);
        assert_eq!(retry_delay_seconds(click, click + 40_000, 600), 40);
        assert_eq!(retry_delay_seconds(click, click + 3_600_000, 600), 600);
        // A click stamped in the future (clock skew) still waits the minimum.
        assert_eq!(retry_delay_seconds(click, click - 60_000, 600), 5);
        // Each retry waits the age so far, so the age doubles: 10 retries span about half an hour.
        let mut age = 0i64;
        for _ in 0..10 {
            age += i64::from(retry_delay_seconds(0, age * 1000, 600));
        }
        assert_eq!(age, 5 + 5 + 10 + 20 + 40 + 80 + 160 + 320 + 600 + 600);
        // A lower ceiling lowers the minimum with it; 0 retries at once.
        assert_eq!(retry_delay_seconds(click, click + 40_000, 30), 30);
        assert_eq!(retry_delay_seconds(click, click, 2), 2);
        assert_eq!(retry_delay_seconds(click, click + 40_000, 0), 0);
    }
}
