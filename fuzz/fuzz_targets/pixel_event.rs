//! Bodies of `POST /v1/pixel/events`, the public endpoint any page can post to. The body is read as the
//! handler reads it (`api::http::json::from_slice`), the pixel id's shape is checked as the
//! handler checks it first, then the handler's own validation runs on every field. Never a panic; what it
//! accepts is within bounds.
#![no_main]

use api::http::pixel::{validate, PixelEvent};
use api::money::MaxOrderValue;
use api::pixels::PixelId;
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = api::http::json::from_slice::<PixelEvent>(data) else { return };
    if let Some(id) = PixelId::parse(&body.pixel_id) {
        assert_eq!(PixelId::parse(id.as_str()).map(|again| again.as_str().to_owned()), Some(id.as_str().to_owned()));
    }
    let max = MaxOrderValue::default();
    let Ok(valid) = validate(body, max) else { return };
    if let Some(order_id) = &valid.order_id {
        assert!(!order_id.is_empty() && order_id.chars().count() <= 128);
    }
    if let Some(amount) = &valid.amount {
        assert!(amount.amount_minor >= 0 && max.allows(amount));
    }
    if let Some(url) = &valid.url {
        let url = Url::parse(url).expect("a stored page URL parses");
        assert!(url.query().is_none() && url.fragment().is_none() && url.password().is_none());
        assert!(matches!(url.scheme(), "http" | "https"));
    }
});
