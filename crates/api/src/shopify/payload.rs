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
use crate::money::{MaxOrderValue, Money};

/// Why a verified payload cannot be used. It is kept with this message, and Shopify is answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// `orders/create`, `orders/paid` and `orders/cancelled` (each carries the whole order).
#[derive(Debug, Deserialize)]
pub struct Order {
    pub id: ShopifyId,
    pub created_at: DateTime<Utc>,
    /// The shop's currency, in which `total_price` is given.
    pub currency: String,
    /// What the customer paid at checkout: after discounts, with shipping and taxes. Decimal string.
    pub total_price: String,
    /// The same in the shop's money and in the customer's (`presentment_money`). The order is recorded in
    /// shop money, as its refunds are.
    #[serde(default)]
    pub total_price_set: Option<MoneySet>,
    /// A test order (Shopify's Bogus gateway, or a store's test mode): never revenue.
    #[serde(default, deserialize_with = "null_as_false")]
    pub test: bool,
    /// When the order was cancelled; null while it stands.
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
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

/// An amount in the shop's money and in the customer's (`*_set` fields).
#[derive(Debug, Deserialize)]
pub struct MoneySet {
    pub shop_money: Option<MoneyBag>,
    #[serde(default)]
    pub presentment_money: Option<MoneyBag>,
}

#[derive(Debug, Deserialize)]
pub struct MoneyBag {
    /// Decimal string.
    pub amount: String,
    pub currency_code: String,
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
    /// Refunded line items: only their money sets are read, to learn the shop's and the customer's
    /// currencies.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub refund_line_items: Vec<RefundLineItem>,
    #[serde(default)]
    pub total_duties_set: Option<MoneySet>,
}

#[derive(Debug, Deserialize)]
pub struct RefundLineItem {
    #[serde(default)]
    pub subtotal_set: Option<MoneySet>,
}

/// A payment transaction; a refund's money moved in those of kind `refund` with status `success`.
#[derive(Debug, Deserialize)]
pub struct Transaction {
    pub kind: String,
    #[serde(default)]
    pub status: Option<String>,
    /// Decimal string.
    pub amount: String,
    /// The currency the money moved in: the customer's. Shopify's published samples (API 2025-01 and
    /// 2026-04) send null here; it then means the order's currency.
    #[serde(default)]
    pub currency: Option<String>,
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

fn null_as_false<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
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

    /// The order as attribution sees it, in the shop's money. An order cancelled without a time (an
    /// `orders/cancelled` delivery always has one) counts as cancelled when received.
    pub fn report(&self, brand_id: Uuid, topic_cancels: bool, max: MaxOrderValue) -> Result<OrderReport, PayloadError> {
        let shop_money = self.total_price_set.as_ref().and_then(|set| set.shop_money.as_ref());
        let (price, currency) = match shop_money {
            Some(bag) => (bag.amount.as_str(), bag.currency_code.as_str()),
            None => (self.total_price.as_str(), self.currency.as_str()),
        };
        let amount = Money::parse(price, currency)
            .map_err(|e| PayloadError(format!("order {}: total price: {e}", self.id.0)))?;
        if !max.allows(&amount) {
            return Err(PayloadError(format!(
                "order {}: total price is above the maximum order value ({} {})",
                self.id.0, max.0, amount.currency
            )));
        }
        // A signed payload is still input: a time PostgreSQL cannot hold, or that date arithmetic would
        // overflow near, is refused like any other unusable field.
        let time = |what: &str, t: DateTime<Utc>| {
            crate::reports::in_range(t).map_err(|e| PayloadError(format!("order {}: {what}: {e}", self.id.0)))
        };
        let occurred_at = time("created_at", self.created_at)?;
        let cancelled_at = self.cancelled_at.map(|t| time("cancelled_at", t)).transpose()?;
        let cancelled_at = cancelled_at.or_else(|| topic_cancels.then(Utc::now));
        Ok(OrderReport {
            brand_id,
            order_id: self.id.0.clone(),
            amount,
            occurred_at,
            source: Source::Shopify,
            refs: self.click_refs(),
            discount_codes: self
                .discount_codes
                .iter()
                .map(|d| d.code.trim().to_owned())
                .filter(|c| !c.is_empty() && c.chars().count() <= 255)
                .collect(),
            cancelled_at,
            test: self.test,
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

/// A refund as the payload gives it: its money is summed in its currency once that is known (the
/// payload's own, or, where the payload names none, its order's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyRefund {
    pub refund_id: String,
    pub order_id: String,
    pub refunded_at: Option<DateTime<Utc>>,
    /// The currency the payload names, if any.
    pub currency: Option<String>,
    /// The successful refund transactions' decimal amounts.
    pub amounts: Vec<String>,
}

impl ShopifyRefund {
    /// The refund in `currency` (its own, else `order_currency`), as attribution records it.
    pub fn report(
        &self,
        brand_id: Uuid,
        order_currency: Option<&str>,
        max: MaxOrderValue,
    ) -> Result<RefundReport, PayloadError> {
        let err = |what: String| PayloadError(format!("refund {}: {what}", self.refund_id));
        let currency = self.currency.as_deref().or(order_currency).ok_or_else(|| {
            err("its transactions name no currency and its order is not recorded yet; it is applied when a \
                 redelivery finds the order"
                .into())
        })?;
        let mut total = Money::parse("0", currency).map_err(|e| err(format!("currency: {e}")))?;
        for amount in &self.amounts {
            let money = Money::parse(amount, currency).map_err(|e| err(format!("transaction amount: {e}")))?;
            total.amount_minor =
                total.amount_minor.checked_add(money.amount_minor).ok_or_else(|| err("amount is too large".into()))?;
        }
        if !max.allows(&total) {
            return Err(err(format!("amount is above the maximum order value ({} {})", max.0, total.currency)));
        }
        let refunded_at =
            self.refunded_at.map(crate::reports::in_range).transpose().map_err(|e| err(format!("created_at: {e}")))?;
        Ok(RefundReport {
            brand_id,
            refund_id: self.refund_id.clone(),
            order_id: self.order_id.clone(),
            amount: total,
            refunded_at,
        })
    }
}

impl Refund {
    /// The shop's and the customer's currencies, as the refund's money sets name them.
    fn currencies(&self) -> (Option<&str>, Option<&str>) {
        let sets = self
            .refund_line_items
            .iter()
            .filter_map(|item| item.subtotal_set.as_ref())
            .chain(self.total_duties_set.as_ref());
        let mut shop = None;
        let mut presentment = None;
        for set in sets {
            shop = shop.or(set.shop_money.as_ref().map(|b| b.currency_code.as_str()));
            presentment = presentment.or(set.presentment_money.as_ref().map(|b| b.currency_code.as_str()));
        }
        (shop, presentment)
    }

    /// The money this refund returned: its successful refund transactions, to be recorded in the shop's
    /// money like its order. `None` when no money moved (a refund that only restocks items).
    /// Line-item subtotals are not summed: they leave out refunded shipping and include amounts never
    /// paid back. Transactions move the customer's money: when that is not the shop's currency, the
    /// refund cannot be recorded exactly in shop money and is refused with the reason (kept for a
    /// replay), never left silently unsubtracted.
    pub fn refund(&self) -> Result<Option<ShopifyRefund>, PayloadError> {
        let (shop, presentment) = self.currencies();
        let successful: Vec<&Transaction> = self
            .transactions
            .iter()
            .filter(|t| {
                t.kind.eq_ignore_ascii_case("refund")
                    && t.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("success"))
            })
            .collect();
        if successful.is_empty() {
            return Ok(None);
        }
        let err = |what: String| PayloadError(format!("refund {}: {what}", self.id.0));
        // A transaction's currency: its own, else the customer's as the money sets name it, else the shop's.
        let named: Vec<Option<String>> = successful
            .iter()
            .map(|t| {
                t.currency
                    .as_deref()
                    .filter(|c| !c.trim().is_empty())
                    .or(presentment)
                    .or(shop)
                    .map(|c| c.trim().to_ascii_uppercase())
            })
            .collect();
        let currency = named.first().cloned().flatten();
        if named.iter().any(|c| *c != currency) {
            return Err(err("transactions in several currencies".into()));
        }
        if let (Some(currency), Some(shop)) = (currency.as_deref(), shop) {
            if !currency.eq_ignore_ascii_case(shop) {
                return Err(err(format!(
                    "refunded in the customer's currency {currency}, not the shop's {shop}: it cannot be converted \
                     exactly"
                )));
            }
        }
        Ok(Some(ShopifyRefund {
            refund_id: self.id.0.clone(),
            order_id: self.order_id.0.clone(),
            refunded_at: self.created_at,
            currency,
            amounts: successful.iter().map(|t| t.amount.clone()).collect(),
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
        let report = o.report(Uuid::nil(), false, MaxOrderValue::default()).unwrap();
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
        assert!(o.report(Uuid::nil(), false, MaxOrderValue::default()).unwrap().discount_codes.is_empty());
        assert!(order(json!({"landing_site": null, "note_attributes": null})).click_refs().is_empty());
        assert!(order(json!({"landing_site": "::::"})).click_refs().is_empty());
    }

    #[test]
    fn amounts_are_exact_or_refused() {
        assert!(order(json!({"total_price": "12.999"})).report(Uuid::nil(), false, MaxOrderValue::default()).is_err());
        assert!(order(json!({"currency": "ZZZ"})).report(Uuid::nil(), false, MaxOrderValue::default()).is_err());
        let yen = order(json!({"total_price": "1500", "currency": "JPY"}))
            .report(Uuid::nil(), false, MaxOrderValue::default())
            .unwrap();
        assert_eq!(yen.amount.amount_minor, 1500);
    }

    fn refund_report(r: &Refund) -> Result<Option<RefundReport>, PayloadError> {
        r.refund()?.map(|r| r.report(Uuid::nil(), None, MaxOrderValue::default())).transpose()
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
        ]));
        let r = refund_report(&r).unwrap().unwrap();
        assert_eq!((r.refund_id.as_str(), r.order_id.as_str()), ("509562969", "450789469"));
        assert_eq!(r.amount, Money { amount_minor: 1250, currency: "USD".into() });
        assert_eq!(refund_report(&refund(json!([]))).unwrap().map(|r| r.amount), None);
        let mixed = refund(json!([
            {"kind": "refund", "status": "success", "amount": "1.00", "currency": "USD"},
            {"kind": "refund", "status": "success", "amount": "1.00", "currency": "EUR"},
        ]));
        assert!(refund_report(&mixed).is_err());
    }

    #[test]
    fn shop_money_is_what_an_order_and_its_refunds_are_recorded_in() {
        let set = |shop: &str, customer: &str| {
            json!({"shop_money": {"amount": shop, "currency_code": "USD"},
                   "presentment_money": {"amount": customer, "currency_code": "EUR"}})
        };
        let o = order(json!({"total_price_set": set("129.99", "119.50"), "presentment_currency": "EUR"}));
        assert_eq!(o.report(Uuid::nil(), false, MaxOrderValue::default()).unwrap().amount.amount_minor, 12999);
        // A refund whose transactions moved euros cannot be subtracted exactly from a dollar order.
        let in_euros: Refund = serde_json::from_value(json!({"id": 1, "order_id": 2,
            "transactions": [{"kind": "refund", "status": "success", "amount": "10.00", "currency": "EUR"}],
            "refund_line_items": [{"subtotal_set": set("10.90", "10.00")}]}))
        .unwrap();
        assert!(in_euros.refund().unwrap_err().0.contains("cannot be converted exactly"));
    }

    #[test]
    fn transactions_without_a_currency_take_the_refunds_then_the_orders() {
        let null_currency = json!([{"kind": "refund", "status": "success", "amount": "75.00", "currency": null},
                                   {"kind": "refund", "status": "success", "amount": "10.00"}]);
        let bare = refund(null_currency.clone());
        let pending = bare.refund().unwrap().unwrap();
        assert_eq!(pending.currency, None);
        assert!(pending.report(Uuid::nil(), None, MaxOrderValue::default()).is_err());
        let resolved = pending.report(Uuid::nil(), Some("USD"), MaxOrderValue::default()).unwrap();
        assert_eq!(resolved.amount, Money { amount_minor: 8500, currency: "USD".into() });
        let with_sets: Refund = serde_json::from_value(json!({"id": 1, "order_id": 2, "transactions": null_currency,
            "refund_line_items": [{"subtotal_set": {"shop_money": {"amount": "1.00", "currency_code": "CAD"},
                                                    "presentment_money": {"amount": "1.00", "currency_code": "CAD"}}}]}))
        .unwrap();
        assert_eq!(with_sets.refund().unwrap().unwrap().currency.as_deref(), Some("CAD"));
    }

    #[test]
    fn test_and_cancelled_orders_say_so() {
        let max = MaxOrderValue::default();
        assert!(order(json!({"test": true})).report(Uuid::nil(), false, max).unwrap().test);
        assert!(!order(json!({"test": null})).report(Uuid::nil(), false, max).unwrap().test);
        let cancelled = order(json!({"cancelled_at": "2026-03-02T10:00:00Z"})).report(Uuid::nil(), false, max).unwrap();
        assert_eq!(cancelled.cancelled_at, Some("2026-03-02T10:00:00Z".parse().unwrap()));
        assert!(order(json!({})).report(Uuid::nil(), true, max).unwrap().cancelled_at.is_some());
        assert!(order(json!({})).report(Uuid::nil(), false, max).unwrap().cancelled_at.is_none());
        assert!(order(json!({"total_price": "1000000.01"})).report(Uuid::nil(), false, max).is_err());
    }

    #[test]
    fn times_outside_what_can_be_stored_are_refused_not_sent_to_the_database() {
        let max = MaxOrderValue::default();
        for far in ["-262143-01-05T00:00:00Z", "+262142-12-31T23:59:59Z", "1969-12-31T23:59:59Z"] {
            let created = order(json!({"created_at": far})).report(Uuid::nil(), false, max).unwrap_err();
            assert!(created.0.contains("created_at") && created.0.contains("out of range"), "{created}");
            let cancelled = order(json!({"cancelled_at": far})).report(Uuid::nil(), false, max).unwrap_err();
            assert!(cancelled.0.contains("cancelled_at"), "{cancelled}");
            let r: Refund = serde_json::from_value(json!({"id": 1, "order_id": 2, "created_at": far,
                "transactions": [{"kind": "refund", "status": "success", "amount": "1.00", "currency": "USD"}]}))
            .unwrap();
            let refund = r.refund().unwrap().unwrap().report(Uuid::nil(), None, max).unwrap_err();
            assert!(refund.0.contains("created_at"), "{refund}");
        }
        let edge = order(json!({"created_at": "9999-12-31T23:59:59Z"})).report(Uuid::nil(), false, max).unwrap();
        assert_eq!(edge.occurred_at, "9999-12-31T23:59:59Z".parse::<DateTime<Utc>>().unwrap());
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
