//! Decimal amounts and currencies (pixel values, Shopify prices and refunds): never a panic, never a
//! negative amount, and an accepted amount written back with its currency's decimals parses to itself.
//! The input is `amount` and `currency` separated by the first NUL byte.
#![no_main]

use api::money::Money;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let (amount, currency) = input.split_once('\0').unwrap_or((input, "USD"));
    let Ok(money) = Money::parse(amount, currency) else { return };
    assert!(money.amount_minor >= 0, "{amount:?} -> {money:?}");
    assert!(money.currency.len() == 3 && money.currency.bytes().all(|b| b.is_ascii_uppercase()), "{money:?}");
    // One major unit, in minor units: 10^decimals.
    let unit = Money::parse("1", currency).expect("the currency was accepted").amount_minor;
    let decimals = unit.ilog10() as usize;
    let written = if decimals == 0 {
        money.amount_minor.to_string()
    } else {
        format!("{}.{:0decimals$}", money.amount_minor / unit, money.amount_minor % unit)
    };
    assert_eq!(Money::parse(&written, currency).as_ref(), Ok(&money), "{amount:?} written as {written}");
    assert_eq!(Money::from_minor(money.amount_minor, currency).as_ref(), Ok(&money));
});
