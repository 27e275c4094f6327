//! Bodies of `POST /v1/pixel/events`, the public endpoint any page can post to. The body is read as the
//! handler reads it (`serde_json::from_slice::<PixelEvent>`), then each field goes through the parser the
//! handler's validation uses: the pixel id's shape, the click id, the order id's text, the amount and
//! currency, the page URL. Never a panic.
#![no_main]

use api::http::pixel::PixelEvent;
use api::money::{MaxOrderValue, Money};
use api::pixels::PixelId;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::ClickId;
use url::Url;

/// A JSON scalar as the handler reads a text field: a string (trimmed) or a number's digits.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<PixelEvent>(data) else { return };
    if let Some(id) = PixelId::parse(&body.pixel_id) {
        assert_eq!(PixelId::parse(id.as_str()).map(|again| again.as_str().to_owned()), Some(id.as_str().to_owned()));
    }
    if let Some(cs_ref) = body.cs_ref.as_deref().filter(|r| !r.is_empty()) {
        if let Ok(click) = ClickId::parse(cs_ref.trim()) {
            assert_eq!(ClickId::parse(&click.as_uuid().simple().to_string()).map(|c| c.as_uuid()), Ok(click.as_uuid()));
        }
    }
    if let Some(order_id) = body.order_id.as_ref().and_then(scalar_text) {
        let _ = order_id.chars().count() > 128 || order_id.chars().any(char::is_control);
    }
    if let (Some(value), Some(currency)) = (body.value.as_ref().and_then(scalar_text), body.currency.as_deref()) {
        if let Ok(amount) = Money::parse(&value, currency) {
            assert!(amount.amount_minor >= 0);
            let _ = MaxOrderValue::default().allows(&amount);
        }
    }
    if let Some(raw) = body.url.as_deref() {
        if let Ok(mut url) = Url::parse(raw) {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let _ = String::from(url);
        }
    }
});
