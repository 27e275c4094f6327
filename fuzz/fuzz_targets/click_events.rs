//! Click batches as the edge's queue consumer posts them to `/internal/clicks`: every event of a batch
//! ends up taken, rejected or left for a retry, one by one; a taken event is valid, and its user agent
//! classifies into the known families. Never a panic.
#![no_main]

use std::sync::OnceLock;

use api::ingest::ua::{Classifier, BROWSERS, OPERATING_SYSTEMS, OTHER};
use api::ingest::{parse_batch, Horizon};
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use shared::ClickEvent;

fn classifier() -> &'static Classifier {
    static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| Classifier::new(1_000).expect("the user-agent rules compile"))
}

fuzz_target!(|data: &[u8]| {
    // A fixed clock, so a failure replays exactly.
    let now = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).expect("a valid time");
    let horizon = Horizon { now, max_age: Duration::days(14) };
    if let Ok(events) = serde_json::from_slice::<Vec<Box<RawValue>>>(data) {
        let parsed = parse_batch(&events, horizon);
        assert_eq!(parsed.valid.len() + parsed.rejected.len() + parsed.retry_later.len(), events.len());
        for event in &parsed.valid {
            assert!(event.validate().is_ok(), "{event:?}");
            if let Some(ua) = &event.user_agent {
                let got = classifier().classify(ua);
                assert!(got.browser == OTHER || BROWSERS.contains(&got.browser.as_str()), "{ua:?}: {got:?}");
                assert!(got.os == OTHER || OPERATING_SYSTEMS.contains(&got.os.as_str()), "{ua:?}: {got:?}");
            }
        }
    }
    // One event on its own: a valid one survives a write and a read unchanged.
    if let Ok(event) = serde_json::from_slice::<ClickEvent>(data) {
        if event.validate().is_ok() {
            let written = serde_json::to_string(&event).expect("an event serialises");
            assert_eq!(serde_json::from_str::<ClickEvent>(&written).expect("it parses back"), event);
        }
    }
    // User agents the edge forwards are arbitrary text: classify this input as one.
    if let Ok(ua) = std::str::from_utf8(data) {
        let got = classifier().classify(shared::truncate_user_agent(ua));
        assert!(got.browser == OTHER || BROWSERS.contains(&got.browser.as_str()), "{ua:?}: {got:?}");
    }
});
