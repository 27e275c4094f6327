//! `GET /openapi.json`, generated from the handlers' annotations, then refined with what annotations
//! cannot say: limits that depend on the deployment's settings (the maximum order value, per currency)
//! and rules that tie fields together (a purchase carries an amount; a value comes with its currency).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{attribution, campaigns, conversions, creator_view, creators, links, pixel, shopify, webhooks, AppState};
use crate::money::MaxOrderValue;
use crate::schema::{CurrencyCode, Cursor, IdempotencyKey, Instant, OrderRef, ShopDomain, TokenPrefix};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tracking Links API", description = "Tracking links, clicks and attribution for brands and creators."),
    paths(
        creators::create, creators::list, creators::get,
        campaigns::create, campaigns::list, campaigns::get,
        links::create, links::list, links::get, links::update, links::delete, links::stats::get,
        creator_view::create_token, creator_view::list_tokens, creator_view::revoke_token, creator_view::my_links,
        attribution::report, attribution::export, conversions::export, links::export,
        conversions::list, conversions::create, conversions::refund, conversions::cancel,
        pixel::event,
        shopify::connect, shopify::list, shopify::disconnect, shopify::webhooks::receive,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete, webhooks::rotate_secret,
        webhooks::send_test, webhooks::deliveries, webhooks::retry,
    ),
    // What parameters refer to (bodies' schemas are collected from the bodies).
    components(schemas(Cursor, Instant, IdempotencyKey, OrderRef, TokenPrefix, ShopDomain)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api_key", "creator_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// `GET /openapi.json`: the document, with this deployment's limits.
pub async fn document(State(state): State<AppState>) -> Json<Value> {
    Json(refined(state.config.max_order_value))
}

/// The generated document with the refinements below applied.
pub fn refined(max: MaxOrderValue) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = &mut doc["components"]["schemas"];
    schemas["MoneyInput"]["anyOf"] = Value::Array(
        currency_groups()
            .into_iter()
            .map(|(exponent, codes)| {
                let maximum = codes.first().map_or(0, |code| max.minor(code));
                json!({"properties": {"currency": {"enum": codes, "description": format!("{exponent} minor-unit digits")},
                    "amount_minor": {"maximum": maximum}}})
            })
            .collect(),
    );
    pixel_rules(&mut schemas["PixelEvent"], max);
    // `expires_at` and `expires_in_days` are alternatives (a field sent as null counts as left out).
    schemas["CreateToken"]["anyOf"] = json!([
        {"properties": {"expires_at": {"type": "null"}}},
        {"properties": {"expires_in_days": {"type": "null"}}},
    ]);
    doc
}

/// The currencies with minor units, grouped by their number of minor-unit digits.
fn currency_groups() -> BTreeMap<u16, Vec<&'static str>> {
    let mut groups: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for (code, exponent) in CurrencyCode::all() {
        groups.entry(*exponent).or_default().push(code);
    }
    groups
}

/// A pixel event's amount: `value` and `currency` together or neither, the value exact in the currency's
/// minor units and at most the maximum order value; and a purchase carries an order id and an amount.
fn pixel_rules(event: &mut Value, max: MaxOrderValue) {
    let absent = json!({"type": "null"});
    let mut amounts = vec![json!({"properties": {"value": absent, "currency": absent}})];
    for (exponent, codes) in currency_groups() {
        amounts.push(json!({
            "required": ["value", "currency"],
            "properties": {"currency": {"enum": codes}, "value": {"oneOf": [
                {"type": "string", "pattern": decimal_pattern(max.0, exponent)},
                number_schema(max.0, exponent),
            ]}},
        }));
    }
    event["properties"]["value"] = json!({
        "description": "The amount in major units: a decimal string (\"129.99\") or a JSON number, exact in the \
            currency's minor units, at most the maximum order value (else 422 `amount_too_large`). Required for \
            purchases, and with `currency`.",
        "examples": ["129.99"],
    });
    event["properties"]["currency"] = json!({
        "type": ["string", "null"],
        "description": "ISO 4217 code of a currency with minor units; required with `value`.",
        "examples": ["USD"],
    });
    let not_null = json!({"not": {"type": "null"}});
    event["allOf"] = json!([
        {"anyOf": amounts},
        {"anyOf": [
            {"properties": {"event": {"enum": ["page_view", "add_to_cart", "begin_checkout"]}}},
            {"required": ["order_id", "value", "currency"],
             "properties": {"order_id": not_null, "value": not_null, "currency": not_null}},
        ]},
    ]);
}

/// Whitespace as `str::trim` removes it (see [`super::schema`]).
const WS: &str = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*";

/// A decimal string of at most `max` major units with at most `exponent` significant decimals (trailing
/// zeros beyond them are accepted), as [`crate::money::Money::parse`] reads it.
fn decimal_pattern(max: u64, exponent: u16) -> String {
    let fraction = if exponent == 0 { r"\.0+".to_owned() } else { format!(r"\.[0-9]{{1,{exponent}}}0*") };
    let below = below(max);
    let below = if below.is_empty() { String::new() } else { format!("(?:{below})(?:{fraction})?|") };
    format!(r"^{WS}0*(?:{below}{max}(?:\.0+)?){WS}$")
}

/// Alternatives matching the whole numbers below `max` (leading zeros are matched before them).
fn below(max: u64) -> String {
    let digits = max.to_string();
    let len = digits.len();
    let mut alternatives = Vec::new();
    if len > 1 {
        alternatives.push(format!("[0-9]{{1,{}}}", len - 1));
    }
    for (i, d) in digits.bytes().map(|b| b - b'0').enumerate() {
        if d > 0 {
            let rest = len - i - 1;
            let tail = if rest > 0 { format!("[0-9]{{{rest}}}") } else { String::new() };
            alternatives.push(format!("{}[0-{}]{tail}", &digits[..i], d - 1));
        }
    }
    alternatives.join("|")
}

/// A JSON number the pixel accepts: non-negative, at most `max`, and a whole number of minor units.
fn number_schema(max: u64, exponent: u16) -> Value {
    if exponent == 0 {
        return json!({"type": "integer", "minimum": 0, "maximum": max});
    }
    json!({"type": "number", "minimum": 0, "maximum": max, "multipleOf": 10f64.powi(-i32::from(exponent))})
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::money::Money;
    use crate::schema::tests::matching;

    #[test]
    fn whole_numbers_below_a_maximum_are_spelled_digit_by_digit() {
        assert_eq!(below(1_000_000), "[0-9]{1,6}|[0-0][0-9]{6}");
        assert_eq!(below(2_050), "[0-9]{1,3}|[0-1][0-9]{3}|20[0-4][0-9]{1}");
        assert_eq!(below(1), "[0-0]");
    }

    /// A maximum, a currency with its minor-unit digits, and a value the pattern for them admits.
    fn admitted_values() -> impl Strategy<Value = (u64, &'static str, String)> {
        let currencies = prop::sample::select(vec![("JPY", 0u16), ("USD", 2), ("KWD", 3), ("CLF", 4)]);
        (prop_oneof![Just(1_000_000u64), 1u64..100_000_000], currencies).prop_flat_map(|(max, (currency, exponent))| {
            let pattern = decimal_pattern(max, exponent);
            (Just(max), Just(currency), matching(&pattern))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decimal_strings_the_pattern_admits_are_accepted_and_within_the_maximum(
            (max, currency, value) in admitted_values(),
        ) {
            let amount = Money::parse(value.trim(), currency);
            prop_assert!(amount.as_ref().is_ok_and(|a| MaxOrderValue(max).allows(a)), "{value:?} {currency}: {amount:?}");
        }
    }

    #[test]
    fn the_maximum_itself_is_admitted_and_anything_above_refused_by_the_parser() {
        let max = MaxOrderValue::default();
        assert!(max.allows(&Money::parse("1000000.00", "USD").unwrap()));
        assert!(!max.allows(&Money::parse("1000000.01", "USD").unwrap()));
    }

    #[test]
    fn money_inputs_are_bounded_per_currency_and_token_expiries_are_alternatives() {
        let doc = refined(MaxOrderValue(500));
        let money = &doc["components"]["schemas"]["MoneyInput"]["anyOf"];
        let usd = money
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["properties"]["currency"]["enum"].as_array().unwrap().contains(&json!("USD")))
            .unwrap();
        assert_eq!(usd["properties"]["amount_minor"]["maximum"], 50_000);
        assert!(doc["components"]["schemas"]["CreateToken"]["anyOf"].is_array());
        assert!(doc["components"]["schemas"]["PixelEvent"]["allOf"].is_array());
    }
}
