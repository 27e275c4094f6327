//! Money as integer minor units of an ISO 4217 currency, parsed exactly from decimal strings.

use iso_currency::Currency;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"amount_minor": 12999, "currency": "USD"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
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
}

impl Money {
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

    proptest! {
        #[test]
        fn cents_round_trip(cents in 0i64..1_000_000_000_000) {
            let text = format!("{}.{:02}", cents / 100, cents % 100);
            prop_assert_eq!(minor(&text, "USD"), Ok(cents));
        }
    }
}
