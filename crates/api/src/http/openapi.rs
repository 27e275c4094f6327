//! `GET /openapi.json`, generated from the handlers' annotations, then refined with what annotations
//! cannot say: limits that depend on the deployment's settings (the maximum order value, per currency)
//! and rules that tie fields together (a purchase carries an amount; a value comes with its currency).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    attribution, campaigns, conversions, creator_view, creators, domains, links, pixel, shopify, statements, webhooks,
    AppState,
};
use crate::money::MaxOrderValue;
use crate::schema::{CurrencyCode, Cursor, IdempotencyKey, Instant, OrderRef, ShopDomain, TokenPrefix};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tracking Links API", description = "Tracking links, clicks and attribution for brands and creators."),
    paths(
        creators::create, creators::list, creators::get, creators::invite, creators::unlink_account,
        campaigns::create, campaigns::list, campaigns::get,
        links::create, links::list, links::get, links::update, links::delete, links::stats::get,
        links::bulk::create, links::qr::get,
        creator_view::create_token, creator_view::list_tokens, creator_view::revoke_token, creator_view::my_links,
        attribution::report, attribution::export, conversions::export, links::export,
        conversions::list, conversions::create, conversions::refund, conversions::cancel,
        pixel::event,
        shopify::connect, shopify::list, shopify::disconnect, shopify::webhooks::receive,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete, webhooks::rotate_secret,
        webhooks::send_test, webhooks::deliveries, webhooks::retry,
        domains::create, domains::list, domains::get, domains::delete,
        statements::issue, statements::keys, statements::verify, statements::revoke, statements::list,
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
        // The creators' portal's session cookie (`cs_creator_session` on plain-http loopback development),
        // accepted from pages of this site.
        components.add_security_scheme(
            "creator_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("__Host-cs_creator_session"))),
        );
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
    outbound_webhooks(&mut doc);
    doc
}

/// The events outbound webhooks deliver (OpenAPI 3.1 `webhooks`): one operation per event type with an
/// example built from the same types the REST API answers with, the signature headers, and the event
/// envelope's schema.
fn outbound_webhooks(doc: &mut Value) {
    use crate::webhooks::deliver::render;
    let link = crate::links::LinkRow {
        id: uuid::Uuid::from_u128(0x8f14e45f_ceea_467f_a0e6_0f8a2b3c4d5e),
        seq: 1,
        code: "k7m2p9qa".into(),
        destination_url: "https://shop.example/products/linen-shirt".into(),
        campaign_id: None,
        creator_id: Some(uuid::Uuid::from_u128(0x3c59dc04_8e88_4a2b_9f1c_7d6e5f4a3b2c)),
        platform: Some("instagram".into()),
        content_type: Some("reel".into()),
        promo_code: Some("JESS20".into()),
        share_revenue: true,
        active: true,
        version: 1,
        created_at: "2026-11-20T15:58:02Z".parse().unwrap_or_default(),
        deleted_at: None,
        domain: None,
        utm_source: Some("instagram".into()),
        utm_medium: Some("creator".into()),
        utm_campaign: None,
        utm_term: None,
        utm_content: None,
        expires_at: None,
        expired_url: None,
        destination_status: Some("ok".into()),
        destination_http_status: Some(200),
        destination_checked_at: "2026-11-20T15:58:04Z".parse().ok(),
    };
    let order = json!({
        "seq": 1, "order_id": "1042", "status": "verified", "amount_minor": 12999, "refunded_minor": 0,
        "currency": "USD", "link_id": link.id, "creator_id": link.creator_id, "method": "click",
        "click_id": "5f0c6a3e-9b2d-4c1f-a7e8-d9c0b1a2f3e4", "occurred_at": "2026-11-20T16:05:41Z",
        "credited_at": "2026-11-20T16:05:42Z", "source": "api", "verified_at": "2026-11-20T16:05:42Z",
        "confirm_by": null, "cancelled_at": null, "discount_codes": ["JESS20"],
    });
    let config = crate::config::Config::from_lookup(|_| None).ok();
    // Events keep the stored row; rendering shows it as the REST API does.
    let link_object = serde_json::to_value(&link).unwrap_or(Value::Null);
    let mut broken = link_object.clone();
    broken["destination_status"] = json!("broken");
    broken["destination_http_status"] = json!(404);
    broken["destination_checked_at"] = json!("2026-11-27T03:41:09Z");
    let mut deactivated = link_object.clone();
    deactivated["active"] = json!(false);
    deactivated["deleted_at"] = json!("2026-11-28T09:12:00Z");
    let mut cancelled = order.clone();
    cancelled["status"] = json!("cancelled");
    cancelled["cancelled_at"] = json!("2026-11-21T10:00:00Z");
    let mut refunded = order.clone();
    refunded["refunded_minor"] = json!(2500);
    let at = "2026-11-20T16:05:42Z".parse().unwrap_or_default();
    let id = uuid::Uuid::from_u128(0x0b9d2c1e_4f6a_4e8b_9c3d_2a1b0c9d8e7f);
    let examples: Vec<(&str, &str, Value, Option<Value>)> = vec![
        ("link.created", "A link was created (REST or dashboard).", link_object.clone(), None),
        ("link.updated", "A link was changed.", link_object, None),
        ("link.deactivated", "A link was deactivated: it no longer redirects.", deactivated, None),
        ("conversion.created", "An order was recorded, whatever reported it; `data` is the order as             `GET /v1/conversions` lists it.", order.clone(), None),
        ("conversion.status_changed", "An order's status changed (pending → verified, cancelled, …);             `previous_attributes.status` is the status before.", cancelled, Some(json!({"status": "verified"}))),
        ("conversion.refunded", "An order's refunded amount grew; `previous_attributes.refunded` is what it was.",
            refunded, Some(json!({"refunded_minor": 0}))),
        ("link.destination_broken", "A link's destination stopped answering successfully: its check (on \
            creation, on a destination change, then daily) found it `broken` or `unreachable` after it was `ok` \
            or never checked; `previous_attributes.destination_status` is what it was.",
            broken, Some(json!({"destination_status": "ok"}))),
    ];
    let headers = json!([
        {"name": "webhook-id", "in": "header", "required": true, "schema": {"type": "string"},
         "description": "The event's id: the same on every retry; deduplicate by it."},
        {"name": "webhook-timestamp", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[0-9]+$"},
         "description": "Unix seconds when this attempt was sent; refuse ones far from your clock to stop replays."},
        {"name": "webhook-signature", "in": "header", "required": true, "schema": {"type": "string"},
         "description": "Space-separated `v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">`,              keyed with the base64-decoded part of the endpoint's secret after `whsec_`; two during a secret rotation."},
    ]);
    let mut webhooks = serde_json::Map::new();
    for (kind, description, object, previous) in examples {
        let example = match &config {
            Some(config) => {
                let body = render(config, id, kind, at, &object, previous.as_ref());
                serde_json::from_str(&body).unwrap_or(Value::Null)
            }
            None => json!({"id": id, "type": kind, "created_at": "2026-11-20T16:05:42.000Z", "data": object,
                "previous_attributes": previous}),
        };
        webhooks.insert(kind.to_owned(), json!({"post": {
            "operationId": format!("webhook_{}", kind.replace('.', "_")),
            "tags": ["webhooks"],
            "summary": kind,
            "description": format!("{description} Delivered at least once, in order per endpoint, retried with                 back-off for more than three days until the endpoint answers 2xx within the timeout (10 s)."),
            "parameters": headers,
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/WebhookEvent"}, "example": example}}},
            "responses": {"2XX": {"description": "received; any other answer (or none in time) is retried"}},
        }}));
    }
    doc["webhooks"] = Value::Object(webhooks);
    doc["components"]["schemas"]["WebhookEvent"] = json!({
        "type": "object",
        "required": ["id", "type", "created_at", "data"],
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "Also the `webhook-id` header."},
            "type": {"type": "string", "enum": crate::webhooks::EVENT_TYPES.iter().chain([&crate::webhooks::TEST_EVENT]).collect::<Vec<_>>()},
            "created_at": {"type": "string", "format": "date-time"},
            "data": {"type": "object", "description": "The object as the REST API shows it when the event happened:                 a link (`link.*`) or an order (`conversion.*`)."},
            "previous_attributes": {"type": "object", "description": "For changes: the changed attributes as they were."},
        },
    });
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

    #[test]
    fn every_outbound_event_type_is_documented_with_an_example_of_its_own() {
        let doc = refined(MaxOrderValue::default());
        let webhooks = doc["webhooks"].as_object().unwrap();
        assert_eq!(webhooks.len(), crate::webhooks::EVENT_TYPES.len());
        for (kind, item) in webhooks {
            let example = &item["post"]["requestBody"]["content"]["application/json"]["example"];
            assert_eq!(example["type"], json!(kind));
            assert!(example["data"].is_object(), "{kind}: {example}");
            assert_eq!(item["post"]["parameters"].as_array().unwrap().len(), 3);
        }
        let created = &webhooks["link.created"]["post"]["requestBody"]["content"]["application/json"]["example"];
        assert_eq!(created["data"]["short_url"], "https://trk.creatorscore.io/k7m2p9qa");
        let broken =
            &webhooks["link.destination_broken"]["post"]["requestBody"]["content"]["application/json"]["example"];
        assert_eq!(
            (&broken["data"]["destination_status"], &broken["data"]["destination_http_status"]),
            (&json!("broken"), &json!(404))
        );
        assert_eq!(broken["previous_attributes"], json!({"destination_status": "ok"}));
        let order = &webhooks["conversion.refunded"]["post"]["requestBody"]["content"]["application/json"]["example"];
        assert_eq!(order["data"]["net"], json!({"amount_minor": 10499, "currency": "USD"}));
        assert_eq!(order["previous_attributes"], json!({"refunded": {"amount_minor": 0, "currency": "USD"}}));
    }
}
