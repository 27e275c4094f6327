//! Money as integer minor units of an ISO 4217 currency, parsed exactly from decimal strings.

use iso_currency::Currency;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"amount_minor": 12999, "currency": "USD"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be an ISO 4217 code with minor units, like USD")]
    Currency,
    #[error("amount must be a non-negative decimal number like 129.99")]
    Syntax,
    #[error("amount has more decimal places than {currency} allows ({places})")]
    Precision { currency: String, places: u16 },
    #[error("amount is too large")]
    Overflow,
    #[error("amount_minor must be a non-negative integer")]
    Negative,
}

/// The largest amount one order (or one refund) may carry, in major units of its currency
/// (`MAX_ORDER_VALUE`, 1,000,000 by default: 1,000,000.00 USD, 1,000,000 JPY, 1,000,000.000 KWD).
///
/// It is what keeps every figure computable: with amounts bounded, a report would have to sum billions
/// of orders before a 64-bit total could overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxOrderValue(pub u64);

impl Default for MaxOrderValue {
    fn default() -> Self {
        MaxOrderValue(1_000_000)
    }
}

impl MaxOrderValue {
    /// The limit in minor units of `currency` (saturating: a limit too large for 64 bits is no limit).
    pub fn minor(self, currency: &str) -> i64 {
        let places = Currency::from_code(currency).and_then(|c| c.exponent()).unwrap_or(0);
        let minor = u128::from(self.0) * 10u128.pow(u32::from(places));
        i64::try_from(minor).unwrap_or(i64::MAX)
    }

    /// Whether `money` is within the limit.
    pub fn allows(self, money: &Money) -> bool {
        money.amount_minor <= self.minor(&money.currency)
    }
}

impl Money {
    /// An amount already in minor units (`{"amount_minor": 12999, "currency": "USD"}`): a non-negative
    /// integer of a currency with minor units.
    pub fn from_minor(amount_minor: i64, currency: &str) -> Result<Self, MoneyError> {
        let code = currency.trim().to_ascii_uppercase();
        Currency::from_code(&code).and_then(|c| c.exponent()).ok_or(MoneyError::Currency)?;
        if amount_minor < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Money { amount_minor, currency: code })
    }

    /// `"129.99"`: the amount in major units, with the currency's own number of decimals.
    pub fn decimal(&self) -> String {
        let places = u32::from(Currency::from_code(&self.currency).and_then(|c| c.exponent()).unwrap_or(2));
        let scale = 10u64.checked_pow(places).unwrap_or(1);
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let minor = self.amount_minor.unsigned_abs();
        let (whole, fraction) = (minor / scale, minor % scale);
        if places == 0 {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{fraction:0width$}", width = places as usize)
        }
    }

    /// Parses `"129.99"` in `"USD"` into 12999 minor units, digit by digit: no floating point anywhere.
    /// Trailing zeros beyond the currency's precision are accepted (`"10.500"` USD is 1050); any other
    /// extra digit is refused rather than rounded (`"19.999"` USD).
    pub fn parse(amount: &str, currency: &str) -> Result<Self, MoneyError> {
        let code = currency.trim().to_ascii_uppercase();
        let places = Currency::from_code(&code).and_then(|c| c.exponent()).ok_or(MoneyError::Currency)?;
        let amount = amount.trim();
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || (amount.ends_with('.')) {
            return Err(MoneyError::Syntax);
        }
        let significant = fraction.trim_end_matches('0');
        if significant.len() > usize::from(places) {
            return Err(MoneyError::Precision { currency: code, places });
        }
        let mut minor: i64 = 0;
        let padded = format!("{significant:0<width$}", width = usize::from(places));
        for b in whole.bytes().chain(padded.bytes()) {
            minor =
                minor.checked_mul(10).and_then(|m| m.checked_add(i64::from(b - b'0'))).ok_or(MoneyError::Overflow)?;
        }
        Ok(Money { amount_minor: minor, currency: code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn minor(amount: &str, currency: &str) -> Result<i64, MoneyError> {
        Money::parse(amount, currency).map(|m| m.amount_minor)
    }

    #[test]
    fn decimal_strings_convert_exactly() {
        assert_eq!(minor("129.99", "USD"), Ok(12999));
        assert_eq!(minor("0.1", "USD"), Ok(10));
        assert_eq!(minor("0.2", "usd"), Ok(20));
        assert_eq!(minor("0.1", "USD").unwrap() + minor("0.2", "USD").unwrap(), 30);
        assert_eq!(minor("10.500", "USD"), Ok(1050));
        assert_eq!(minor("7", "EUR"), Ok(700));
        assert_eq!(minor("1500", "JPY"), Ok(1500));
        assert_eq!(minor("1.234", "KWD"), Ok(1234));
        assert_eq!(Money::parse("5", "eur").unwrap().currency, "EUR");
    }

    #[test]
    fn extra_precision_and_bad_syntax_are_refused() {
        assert_eq!(minor("19.999", "USD"), Err(MoneyError::Precision { currency: "USD".into(), places: 2 }));
        assert!(matches!(minor("1.5", "JPY"), Err(MoneyError::Precision { .. })));
        for bad in ["", ".5", "5.", "-1", "+1", "1e3", "1,00", "NaN", "0x10", " 1 2", "1.2.3"] {
            assert_eq!(minor(bad, "USD"), Err(MoneyError::Syntax), "{bad:?}");
        }
        assert_eq!(minor("1", "XXX"), Err(MoneyError::Currency));
        assert_eq!(minor("1", "XAU"), Err(MoneyError::Currency));
        assert_eq!(minor("1", "US"), Err(MoneyError::Currency));
        assert_eq!(minor("99999999999999999999", "USD"), Err(MoneyError::Overflow));
    }

    #[test]
    fn the_maximum_order_value_scales_with_the_currency() {
        let max = MaxOrderValue::default();
        assert_eq!(max.minor("USD"), 100_000_000);
        assert_eq!(max.minor("JPY"), 1_000_000);
        assert_eq!(max.minor("KWD"), 1_000_000_000);
        assert!(max.allows(&Money::parse("1000000.00", "USD").unwrap()));
        assert!(!max.allows(&Money::parse("1000000.01", "USD").unwrap()));
        assert!(!max.allows(&Money::parse("92233720368547758.07", "USD").unwrap()));
        assert_eq!(MaxOrderValue(u64::MAX).minor("KWD"), i64::MAX);
    }

    #[test]
    fn minor_amounts_need_a_currency_and_a_sign() {
        assert_eq!(Money::from_minor(12999, "usd"), Ok(Money { amount_minor: 12999, currency: "USD".into() }));
        assert_eq!(Money::from_minor(-1, "USD"), Err(MoneyError::Negative));
        assert_eq!(Money::from_minor(1, "XXX"), Err(MoneyError::Currency));
    }

    proptest! {
        #[test]
        fn cents_round_trip(cents in 0i64..1_000_000_000_000) {
            let text = format!("{}.{:02}", cents / 100, cents % 100);
            prop_assert_eq!(minor(&text, "USD"), Ok(cents));
        }
    }
}
