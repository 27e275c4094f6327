//! The parts of Shopify's order and refund webhook payloads that attribution reads, and what they mean.
//!
//! Shopify sends far more than this (customers, addresses, line items...); unknown fields are ignored,
//! and fields we do not need are never parsed, so a change elsewhere in the payload cannot break us.

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;
use url::Url;
use uuid::Uuid;

use shared::ClickId;

use crate::attribution::{OrderReport, RefundReport, Source};
use crate::money::Money;

/// Why a verified payload cannot be used. It is kept with this message, and Shopify is answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// `orders/create` and `orders/paid` (both carry the whole order).
#[derive(Debug, Deserialize)]
pub struct Order {
    pub id: ShopifyId,
    pub created_at: DateTime<Utc>,
    /// The shop's currency, in which `total_price` is given.
    pub currency: String,
    /// What the customer paid at checkout: after discounts, with shipping and taxes. Decimal string.
    pub total_price: String,
    /// The path (and query) of the first page of the session that led to the order, e.g.
    /// `/products/tee?cs_ref=...`; absent or null for orders created outside the storefront.
    #[serde(default)]
    pub landing_site: Option<String>,
    /// Cart attributes, where the pixel writes `cs_ref`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub note_attributes: Vec<NoteAttribute>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub discount_codes: Vec<DiscountCode>,
}

#[derive(Debug, Deserialize)]
pub struct NoteAttribute {
    pub name: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Deserialize)]
pub struct DiscountCode {
    pub code: String,
}

/// `refunds/create`.
#[derive(Debug, Deserialize)]
pub struct Refund {
    pub id: ShopifyId,
    pub order_id: ShopifyId,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub transactions: Vec<Transaction>,
}

/// A payment transaction; a refund's money moved in those of kind `refund` with status `success`.
#[derive(Debug, Deserialize)]
pub struct Transaction {
    pub kind: String,
    #[serde(default)]
    pub status: Option<String>,
    /// Decimal string.
    pub amount: String,
    pub currency: String,
}

/// A Shopify object id: a JSON integer (up to 2^63, beyond what a float holds exactly, so it is read as
/// an integer and never through `f64`) or its decimal string, kept as that decimal string, which is what
/// the pixel reports as `order_id` too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyId(pub String);

impl<'de> Deserialize<'de> for ShopifyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ShopifyId(n.to_string())),
            Raw::Text(s) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(ShopifyId(s)),
            Raw::Text(_) => Err(de::Error::custom("expected a numeric id")),
        }
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Parses a payload, telling a body that is not JSON at all from JSON that lacks what we need.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => PayloadError(format!("unexpected payload: {e}")),
        _ => PayloadError(format!("body is not valid JSON: {e}")),
    })
}

/// The name of the cart attribute (and landing-page parameter) carrying the click id.
const CS_REF: &str = "cs_ref";

impl Order {
    /// Click ids the order carries: the cart attribute the pixel wrote, then the landing page's
    /// `cs_ref`. Values that are not click ids are ignored (anyone can type into a URL).
    pub fn click_refs(&self) -> Vec<Uuid> {
        let from_cart = self
            .note_attributes
            .iter()
            .filter(|a| a.name.trim().eq_ignore_ascii_case(CS_REF))
            .filter_map(|a| a.value.as_str())
            .map(str::to_owned);
        let mut refs: Vec<Uuid> = from_cart
            .chain(landing_refs(self.landing_site.as_deref()))
            .filter_map(|r| ClickId::parse(r.trim()).ok())
            .map(|c| c.as_uuid())
            .collect();
        refs.sort_unstable();
        refs.dedup();
        refs
    }

    /// The order as attribution sees it.
    pub fn report(&self, brand_id: Uuid) -> Result<OrderReport, PayloadError> {
        let amount = Money::parse(&self.total_price, &self.currency)
            .map_err(|e| PayloadError(format!("order {}: total_price: {e}", self.id.0)))?;
        Ok(OrderReport {
            brand_id,
            order_id: self.id.0.clone(),
            amount,
            occurred_at: self.created_at,
            source: Source::Shopify,
            refs: self.click_refs(),
            discount_codes: self
                .discount_codes
                .iter()
                .map(|d| d.code.trim().to_owned())
                .filter(|c| !c.is_empty() && c.chars().count() <= 255)
                .collect(),
        })
    }
}

/// `cs_ref` values in a landing site, which Shopify gives as a path with its query (older payloads,
/// and some apps, give an absolute URL: both resolve against a dummy base).
fn landing_refs(landing_site: Option<&str>) -> Vec<String> {
    let Some(site) = landing_site.map(str::trim).filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let Ok(base) = Url::parse("https://shop.invalid/") else {
        return Vec::new();
    };
    match base.join(site) {
        Ok(url) => url.query_pairs().filter(|(k, _)| k == CS_REF).map(|(_, v)| v.into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

impl Refund {
    /// The money this refund returned: the sum of its successful refund transactions. `None` when no
    /// money moved (a refund that only restocks items). Line-item subtotals are not used: they are
    /// JSON floats, and they leave out refunded shipping and include amounts never paid back.
    pub fn report(&self, brand_id: Uuid) -> Result<Option<RefundReport>, PayloadError> {
        let mut total: Option<Money> = None;
        let successful = self.transactions.iter().filter(|t| {
            t.kind.eq_ignore_ascii_case("refund")
                && t.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("success"))
        });
        for transaction in successful {
            let money = Money::parse(&transaction.amount, &transaction.currency)
                .map_err(|e| PayloadError(format!("refund {}: transaction amount: {e}", self.id.0)))?;
            total = Some(match total {
                None => money,
                Some(sum) if sum.currency == money.currency => Money {
                    amount_minor: sum
                        .amount_minor
                        .checked_add(money.amount_minor)
                        .ok_or_else(|| PayloadError(format!("refund {}: amount is too large", self.id.0)))?,
                    currency: sum.currency,
                },
                Some(_) => {
                    return Err(PayloadError(format!("refund {}: transactions in several currencies", self.id.0)))
                }
            });
        }
        Ok(total.map(|amount| RefundReport {
            brand_id,
            refund_id: self.id.0.clone(),
            order_id: self.order_id.0.clone(),
            amount,
            refunded_at: self.created_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(extra: Value) -> Order {
        let mut body = json!({
            "id": 820982911946154508u64, "created_at": "2026-03-01T10:00:00-05:00", "currency": "USD",
            "total_price": "129.99",
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    const CLICK: &str = "5f0c6a3e9b2d4c1fa7e8d9c0b1a2f3e4";

    #[test]
    fn large_ids_stay_exact_and_times_become_utc() {
        let o = order(json!({}));
        assert_eq!(o.id.0, "820982911946154508");
        assert_eq!(o.created_at, "2026-03-01T15:00:00Z".parse::<DateTime<Utc>>().unwrap());
        let report = o.report(Uuid::nil()).unwrap();
        assert_eq!(report.amount, Money { amount_minor: 12999, currency: "USD".into() });
        assert!(serde_json::from_value::<ShopifyId>(json!("12a")).is_err());
        assert!(serde_json::from_value::<ShopifyId>(json!(1.5)).is_err());
        assert_eq!(serde_json::from_value::<ShopifyId>(json!("42")).unwrap().0, "42");
    }

    #[test]
    fn click_ids_come_from_cart_attributes_and_the_landing_site() {
        let click = Uuid::parse_str(CLICK).unwrap();
        let cart =
            order(json!({"note_attributes": [{"name": "gift", "value": "yes"}, {"name": "cs_ref", "value": CLICK}]}));
        assert_eq!(cart.click_refs(), vec![click]);
        for site in [
            format!("/products/tee?utm_source=ig&cs_ref={CLICK}"),
            format!("https://shop.example/?cs_ref={CLICK}#top"),
            format!("/?cs_ref={}", CLICK.to_uppercase()),
        ] {
            assert_eq!(order(json!({ "landing_site": site })).click_refs(), vec![click], "{site}");
        }
        let both = order(
            json!({"landing_site": format!("/?cs_ref={CLICK}"), "note_attributes": [{"name": "cs_ref", "value": CLICK}]}),
        );
        assert_eq!(both.click_refs(), vec![click]);
    }

    #[test]
    fn junk_refs_and_nulls_are_ignored() {
        let o = order(json!({
            "landing_site": "/?cs_ref=not-a-click&cs_ref=", "note_attributes": [{"name": "cs_ref", "value": null}],
            "discount_codes": null,
        }));
        assert!(o.click_refs().is_empty());
        assert!(o.report(Uuid::nil()).unwrap().discount_codes.is_empty());
        assert!(order(json!({"landing_site": null, "note_attributes": null})).click_refs().is_empty());
        assert!(order(json!({"landing_site": "::::"})).click_refs().is_empty());
    }

    #[test]
    fn amounts_are_exact_or_refused() {
        assert!(order(json!({"total_price": "12.999"})).report(Uuid::nil()).is_err());
        assert!(order(json!({"currency": "ZZZ"})).report(Uuid::nil()).is_err());
        let yen = order(json!({"total_price": "1500", "currency": "JPY"})).report(Uuid::nil()).unwrap();
        assert_eq!(yen.amount.amount_minor, 1500);
    }

    fn refund(transactions: Value) -> Refund {
        serde_json::from_value(json!({"id": 509562969, "order_id": 450789469, "transactions": transactions})).unwrap()
    }

    #[test]
    fn a_refund_is_its_successful_refund_transactions() {
        let r = refund(json!([
            {"kind": "refund", "status": "success", "amount": "10.00", "currency": "USD"},
            {"kind": "refund", "status": "failure", "amount": "99.00", "currency": "USD"},
            {"kind": "refund", "status": "pending", "amount": "99.00", "currency": "USD"},
            {"kind": "sale", "status": "success", "amount": "99.00", "currency": "USD"},
            {"kind": "refund", "status": "success", "amount": "2.50", "currency": "USD"},
        ]))
        .report(Uuid::nil())
        .unwrap()
        .unwrap();
        assert_eq!((r.refund_id.as_str(), r.order_id.as_str()), ("509562969", "450789469"));
        assert_eq!(r.amount, Money { amount_minor: 1250, currency: "USD".into() });
        assert_eq!(refund(json!([])).report(Uuid::nil()).unwrap().map(|r| r.amount), None);
        let mixed = refund(json!([
            {"kind": "refund", "status": "success", "amount": "1.00", "currency": "USD"},
            {"kind": "refund", "status": "success", "amount": "1.00", "currency": "EUR"},
        ]));
        assert!(mixed.report(Uuid::nil()).is_err());
    }

    #[test]
    fn garbage_is_not_json_and_missing_fields_are_data_errors() {
        assert!(parse::<Order>(b"<html>").unwrap_err().0.starts_with("body is not valid JSON"));
        assert!(parse::<Order>(br#"{"id": 1, "created_at": "2026"#)
            .unwrap_err()
            .0
            .starts_with("body is not valid JSON"));
        assert!(parse::<Order>(br#"{"id": 1}"#).unwrap_err().0.starts_with("unexpected payload"));
    }
}
