//! The queue consumer's rules: which messages go to the API, in what body, and what to do after.

use serde::Serialize;
use shared::ClickEvent;
use url::Url;

/// Path of the API's ingest endpoint, appended to `INGEST_URL`.
pub const INGEST_PATH: &str = "/internal/clicks";

/// The body posted to the ingest endpoint.
#[derive(Debug, Serialize)]
pub struct IngestBody<'a> {
    /// The batch's clicks, as the edge recorded them.
    pub clicks: &'a [ClickEvent],
}

/// Most clicks in one post to the API (its ingest takes up to 1,000; 1,000 clicks of at most ~800 bytes
/// stay well under its 2 MiB body limit).
pub const MAX_CLICKS_PER_POST: usize = 1_000;

/// Parses a queue message body: the JSON text the fetch handler sent, an array of click events (one
/// click event alone is accepted too).
pub fn parse_message(body: Option<&str>) -> Result<Vec<ClickEvent>, String> {
    let text = body.ok_or_else(|| "message body is not a string".to_owned())?;
    // Not an untagged enum: the shared id types parse from borrowed strings, which serde's buffering loses.
    let parsed = if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
    } else {
        serde_json::from_str(text).map(|click| vec![click])
    };
    parsed.map_err(|e| format!("message body is not click events: {e}"))
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

/// The full ingest URL for an `INGEST_URL` such as `http://127.0.0.1:8080` or `https://api.example/`.
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

/// What becomes of a batch's well-formed messages once the API has answered with `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The API stored them: acknowledge.
    Ack,
    /// Anything else (including no answer): retry them; after `max_retries` they go to the dead-letter queue.
    Retry,
}

/// Acknowledge only on 2xx: the API answers 2xx once the batch is durably stored, and ignores click ids
/// it already has, so a retry after a lost answer is harmless.
pub fn settle(status: Option<u16>) -> Settle {
    match status {
        Some(200..=299) => Settle::Ack,
        _ => Settle::Retry,
    }
}

/// How long a click waits before its next delivery after the API did not take it: as long as it has
/// already waited since the click (at least 5 s, at most 10 minutes). Every retry so doubles the time
/// the click has been kept, like an exponential backoff keyed on the message's age (the runtime's
/// attempt counter is not exposed to Rust): with `max_retries = 10` a click outlives about half an
/// hour of API outage before it moves to the dead-letter queue, where retrying at once would burn
/// every retry within seconds of an outage starting.
pub fn retry_delay_seconds(click_ms: i64, now_ms: i64) -> u32 {
    const FIRST: i64 = 5;
    const MAX: i64 = 600;
    let waited = now_ms.saturating_sub(click_ms) / 1000;
    u32::try_from(waited.clamp(FIRST, MAX)).unwrap_or(600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use shared::{ClickId, Code, Version, VisitorId};
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
        }
    }

    #[test]
    fn messages_round_trip_from_the_json_the_fetch_handler_sends() {
        let e = event();
        let one = serde_json::to_string(&e).unwrap();
        assert_eq!(parse_message(Some(&format!("[{one},{one}]"))), Ok(vec![e.clone(), e.clone()]));
        assert_eq!(parse_message(Some(&format!(" [{one}]"))), Ok(vec![e.clone()]));
        assert_eq!(parse_message(Some(&one)), Ok(vec![e]));
    }

    #[test]
    fn posts_hold_at_most_a_thousand_clicks_and_keep_messages_whole() {
        assert_eq!(plan_posts(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(plan_posts(&[1, 1, 1]), vec![0..3]);
        assert_eq!(plan_posts(&[100; 25]), vec![0..10, 10..20, 20..25]);
        assert_eq!(plan_posts(&[600, 400, 1, 999, 1000]), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn messages_that_are_not_click_events_are_errors() {
        assert!(parse_message(None).is_err());
        assert!(parse_message(Some("{}")).is_err());
        assert!(parse_message(Some(r#"{"v":2}"#)).is_err());
        assert!(parse_message(Some(r#"[{"v":1}]"#)).is_err());
    }

    #[test]
    fn the_ingest_body_wraps_the_clicks() {
        let e = event();
        let json = serde_json::to_value(IngestBody { clicks: std::slice::from_ref(&e) }).unwrap();
        assert_eq!(json, serde_json::json!({"clicks": [serde_json::to_value(&e).unwrap()]}));
    }

    #[test]
    fn the_ingest_endpoint_is_appended_to_the_base_url() {
        let cases = [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/internal/clicks"),
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
    fn only_a_2xx_acknowledges_a_batch() {
        assert_eq!(settle(Some(200)), Settle::Ack);
        assert_eq!(settle(Some(204)), Settle::Ack);
        for status in [None, Some(301), Some(400), Some(401), Some(500), Some(503)] {
            assert_eq!(settle(status), Settle::Retry, "{status:?}");
        }
    }

    #[test]
    fn retries_wait_as_long_as_the_click_has_waited_within_bounds() {
        let click = 1_764_000_000_000;
        assert_eq!(retry_delay_seconds(click, click), 5);
        assert_eq!(retry_delay_seconds(click, click + 2_000), 5);
        assert_eq!(retry_delay_seconds(click, click + 40_000), 40);
        assert_eq!(retry_delay_seconds(click, click + 3_600_000), 600);
        // A click stamped in the future (clock skew) still waits the minimum.
        assert_eq!(retry_delay_seconds(click, click - 60_000), 5);
        // Each retry waits the age so far, so the age doubles: 10 retries span about half an hour.
        let mut age = 0i64;
        for _ in 0..10 {
            age += i64::from(retry_delay_seconds(0, age * 1000));
        }
        assert_eq!(age, 5 + 5 + 10 + 20 + 40 + 80 + 160 + 320 + 600 + 600);
    }
}
