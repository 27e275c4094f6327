//! Shopify webhook bodies (after their signature verified: the shop's own JSON, whatever it holds):
//! orders and refunds parse and turn into what attribution records, or are refused with a reason;
//! never a panic, and what is accepted is within the deployment's limits.
#![no_main]

use api::money::MaxOrderValue;
use api::shopify::payload::{self, Order, Refund};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let brand = Uuid::from_u128(1);
    let max = MaxOrderValue::default();
    if let Ok(order) = payload::parse::<Order>(data) {
        let _ = order.click_refs();
        for cancels in [false, true] {
            if let Ok(report) = order.report(brand, cancels, max) {
                assert!(report.amount.amount_minor >= 0 && max.allows(&report.amount), "{:?}", report.amount);
                assert!(!report.order_id.is_empty());
            }
        }
    }
    if let Ok(refund) = payload::parse::<Refund>(data) {
        if let Ok(Some(refund)) = refund.refund() {
            for order_currency in [None, Some("USD"), Some("JPY"), Some("KWD")] {
                if let Ok(report) = refund.report(brand, order_currency, max) {
                    assert!(report.amount.amount_minor >= 0 && max.allows(&report.amount), "{:?}", report.amount);
                }
            }
        }
    }
});
