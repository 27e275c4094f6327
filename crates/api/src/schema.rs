//! The OpenAPI schemas of the strings the API parses. Each pattern admits only strings its parser
//! accepts, so a client (or a fuzzer) that follows the document is never refused for a value's shape;
//! the tests below generate strings from each pattern and feed them to the parser.
//!
//! Patterns use the syntax ECMA-262, Python and Rust's `regex` share: no look-around, no `\s`
//! (whose meaning differs between them: whitespace is spelled out as Rust's `trim` sees it).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// Whitespace as `str::trim` removes it (Unicode `White_Space`).
macro_rules! ws {
    () => {
        r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    };
}
/// Anything but a control character (Unicode `Cc`, what `char::is_control` refuses).
macro_rules! visible {
    () => {
        r"[^\x00-\x1f\x7f-\x9f]"
    };
}
/// Neither a control character nor whitespace: what a trimmed text starts and ends with.
macro_rules! edge {
    () => {
        r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    };
}
/// A text that is 1 to `$max` characters once trimmed, with no control character in it (surrounding
/// whitespace is trimmed away first): what [`crate::domain::Name`] and the store ids accept.
macro_rules! trimmed_text {
    ($inner:literal) => {
        concat!("^", ws!(), "*", edge!(), "(?:", visible!(), "{0,", $inner, "}", edge!(), ")?", ws!(), "*$")
    };
}

/// A creator's or campaign's name (1–200 characters once trimmed).
pub const NAME_PATTERN: &str = trimmed_text!("198");
/// A creator's handle (1–100 characters once trimmed).
pub const HANDLE_PATTERN: &str = trimmed_text!("98");
/// An order or refund id from a store (1–128 characters once trimmed).
pub const STORE_ID_PATTERN: &str = trimmed_text!("126");
/// A discount code on an order (1–255 characters once trimmed).
pub const DISCOUNT_CODE_PATTERN: &str = trimmed_text!("253");
/// A Shopify webhook secret: 1–256 characters, kept exactly, so no surrounding whitespace at all.
pub const WEBHOOK_SECRET_PATTERN: &str = concat!("^", edge!(), "(?:", visible!(), "{0,254}", edge!(), ")?$");
/// An order id in a path: what a stored (trimmed) order id can be.
pub const ORDER_ID_PATH_PATTERN: &str = concat!("^", edge!(), "(?:", visible!(), "{0,126}", edge!(), ")?$");
/// A UTM tag value: 1–255 characters, no control characters.
pub const UTM_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]{1,255}$";
/// A promo code: 1–64 ASCII letters, digits, `-` or `_`, once trimmed.
pub const PROMO_CODE_PATTERN: &str = concat!("^", ws!(), "*[A-Za-z0-9_-]{1,64}", ws!(), "*$");

/// A host name label: letters, digits or inner hyphens (at most 62, so that four stay within 253).
macro_rules! label {
    () => {
        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,60}[A-Za-z0-9])?"
    };
}
/// A top-level label, which must not be all digits (then it would be an IPv4 address).
macro_rules! top_label {
    () => {
        r"[A-Za-z](?:[A-Za-z0-9-]{0,60}[A-Za-z0-9])?"
    };
}
/// A brand's own short domain: labels of at most 63 characters, at least two, the last not numeric, any case,
/// an optional trailing dot (and at most 253 characters, said by `maxLength`).
pub const HOSTNAME_PATTERN: &str = concat!(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,126}",
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
);
/// A shop's domain: two to four labels (the last not numeric), any case, an optional trailing dot.
pub const SHOP_DOMAIN_PATTERN: &str = concat!("^(?:", label!(), r"\.){1,3}", top_label!(), r"\.?$");

/// An IPv4 octet without leading zeros (which WHATWG URLs would read as octal).
macro_rules! octet {
    () => {
        r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    };
}
/// `http(s)://`, a host name or an IPv4 address, and an optional port: never a user name or password.
/// Host names are up to four labels of at most 62 characters, inner hyphens single (never `xn--`, which
/// would be read as punycode), the last label starting with a letter (or it would be read as an IPv4
/// address).
macro_rules! authority {
    () => {
        concat!(
            r"https?://(?:(?:[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20}){0,2}\.){0,3}",
            r"[A-Za-z][A-Za-z0-9]{0,19}(?:-[A-Za-z0-9]{1,20}){0,2}|(?:",
            octet!(),
            r"\.){3}",
            octet!(),
            ")(?::[0-9]{1,4})?"
        )
    };
}
/// What may follow the authority: characters a URL keeps as they are when it is normalised, so the
/// stored URL is never longer than the one sent.
macro_rules! url_rest {
    () => {
        "[A-Za-z0-9._~:/?#@!$&()*+,;=%-]*"
    };
}
/// A page of a store, as the pixel reports it (at most 2048 characters).
pub const PAGE_URL_PATTERN: &str = concat!("^", authority!(), "(?:[/?#]", url_rest!(), ")?$");
/// A destination with a path: at most 2048 characters.
pub const DESTINATION_URL_PATTERN: &str = concat!("^", authority!(), "/", url_rest!(), "$");
/// A destination without a path (`https://shop.example`, `https://shop.example?x=1`): normalising adds
/// the `/`, so at most 2047 characters.
pub const BARE_DESTINATION_URL_PATTERN: &str = concat!("^", authority!(), "(?:[?#]", url_rest!(), ")?$");

/// A webhook endpoint: `https://`, a host name of two to four labels (never an address, which could be a
/// private one, and never a single label such as `localhost`), an optional port, and what may follow.
pub const WEBHOOK_URL_PATTERN: &str = concat!(
    r"^https://(?:[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20}){0,2}\.){1,3}",
    r"[A-Za-z][A-Za-z0-9]{0,19}(?:-[A-Za-z0-9]{1,20}){0,2}(?::[0-9]{1,4})?(?:[/?#]",
    url_rest!(),
    ")?$"
);

/// A click id: 32 hexadecimal digits, or a hyphenated UUID, of a version 4 UUID.
macro_rules! click_id {
    () => {
        concat!(
            "(?:[0-9A-Fa-f]{12}4[0-9A-Fa-f]{19}|",
            "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-4[0-9A-Fa-f]{3}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
        )
    };
}
/// A click id (surrounding whitespace is trimmed), or an empty string for none.
pub const CLICK_ID_PATTERN: &str = concat!("^(?:", ws!(), "*", click_id!(), ws!(), "*)?$");
/// A click id (surrounding whitespace is trimmed), or nothing but whitespace for none.
pub const TRIMMED_CLICK_ID_PATTERN: &str = concat!("^", ws!(), "*(?:", click_id!(), ")?", ws!(), "*$");

/// A brand's pixel id: `px_` and 16 lowercase code characters.
pub const PIXEL_ID_PATTERN: &str = "^px_[abcdefghjkmnpqrstuvwxyz23456789]{16}$";
/// A creator token's prefix, bare or as `cst_<prefix>`: 8 code characters, any case.
pub const TOKEN_PREFIX_PATTERN: &str = "^(?:cst_)?[abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789]{8}$";
/// An `Idempotency-Key`: 1–255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// Three digits of a sequence number, base64url-encoded (see `extract::encode_cursor`).
macro_rules! cursor_group {
    () => {
        "(?:[MN][DTjz]|O[DT])[AEIMQUYcgk]"
    };
}
/// A `next_cursor` as the API writes it: base64url (no padding) of `s:` and 1 to 18 digits.
pub const CURSOR_PATTERN: &str =
    concat!("^czo[w-z0-5](?:", cursor_group!(), "[w-z0-5]){0,5}(?:", cursor_group!(), "|[MN][AQgw]|O[AQ])?$");

/// An RFC 3339 instant from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z (see
/// [`crate::reports::in_range`]): years 1971–9998 with any offset; 1970 and 9999 only with an
/// offset that cannot carry them out of the range.
pub const INSTANT_PATTERN: &str = concat!(
    "^(?:1970-.*(?:[Zz]|[+]00:00|-[0-9]{2}:[0-9]{2})",
    "|(?:19[7-9][1-9]|19[89]0|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-.*",
    "|9999-.*(?:[Zz]|[+][0-9]{2}:[0-9]{2}|-00:00))$"
);

fn string(pattern: &str, description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).description(Some(description))
}

/// Declares a string schema component with a pattern (and optionally more): `$name` is both the Rust
/// type and the component's name in the document.
macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $description:literal $(, $extra:expr)?) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let builder = string($pattern, $description);
                $(let builder = $extra(builder);)?
                builder.into()
            }
        }

        impl ToSchema for $name {}
    };
}

string_schema!(
    /// `cursor`: the `next_cursor` of the previous page.
    Cursor,
    CURSOR_PATTERN,
    "The `next_cursor` of the previous page, as returned. Opaque: the pattern only tells which strings are \
     well formed (any other is a 400 `invalid_cursor`)."
);
string_schema!(
    /// A report window's bound, or a list filter's.
    Instant,
    INSTANT_PATTERN,
    "RFC 3339, from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z.",
    |b: ObjectBuilder| b.format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
);
string_schema!(
    DisplayName,
    NAME_PATTERN,
    "1–200 characters once surrounding whitespace is trimmed, no control characters.",
    |b: ObjectBuilder| b.examples(["Jessica Alvarez"])
);
string_schema!(
    Handle,
    HANDLE_PATTERN,
    "1–100 characters once surrounding whitespace is trimmed, no control characters.",
    |b: ObjectBuilder| b.examples(["@jessica"])
);
string_schema!(
    StoreId,
    STORE_ID_PATTERN,
    "The store's id: 1–128 characters once surrounding whitespace is trimmed, no control characters.",
    |b: ObjectBuilder| b.examples(["1042"])
);
string_schema!(
    DiscountCode,
    DISCOUNT_CODE_PATTERN,
    "1–255 characters once surrounding whitespace is trimmed, no control characters.",
    |b: ObjectBuilder| b.examples(["JESS20"])
);
string_schema!(
    UtmText,
    UTM_PATTERN,
    "1–255 characters, no control characters; kept as written.",
    |b: ObjectBuilder| b.examples(["instagram"])
);
string_schema!(
    PromoCodeText,
    PROMO_CODE_PATTERN,
    "1–64 ASCII letters, digits, `-` or `_` (surrounding whitespace is trimmed). Unique among the brand's \
     active links, compared case-insensitively (else 409 `promo_code_taken`).",
    |b: ObjectBuilder| b.examples(["JESS20"])
);
/// A link's destination. Two shapes, because normalising a URL without a path adds one character.
pub struct DestinationUrl;

impl PartialSchema for DestinationUrl {
    fn schema() -> RefOr<Schema> {
        let max = crate::domain::MAX_URL_LEN;
        OneOfBuilder::new()
            .item(string(DESTINATION_URL_PATTERN, "With a path: at most 2048 characters.").max_length(Some(max)))
            .item(
                string(
                    BARE_DESTINATION_URL_PATTERN,
                    "Without a path: at most 2047 characters (normalising adds the `/`).",
                )
                .max_length(Some(max - 1)),
            )
            .description(Some(
                "An absolute http(s) URL, at most 2048 characters once normalised, without a user name or password, \
                 and not on the tracking domain (else 422 `invalid_destination_url`).",
            ))
            .examples(["https://shop.example/p/1?color=red"])
            .into()
    }
}

impl ToSchema for DestinationUrl {}

string_schema!(
    HostnameText,
    HOSTNAME_PATTERN,
    "A host name such as `go.brand.com`: ASCII labels (`xn--` for international names), at least two, any case.",
    |b: ObjectBuilder| b.max_length(Some(253)).examples(["go.brand.example"])
);
string_schema!(
    ShopDomain,
    SHOP_DOMAIN_PATTERN,
    "The shop's `*.myshopify.com` host name (what Shopify sends in `X-Shopify-Shop-Domain`), any case.",
    |b: ObjectBuilder| b.max_length(Some(253)).examples(["northwind-linen.myshopify.com"])
);
string_schema!(
    WebhookSecret,
    WEBHOOK_SECRET_PATTERN,
    "The secret Shopify signs this shop's webhooks with: 1–256 characters, no surrounding whitespace, no \
     control characters. Never returned.",
    |b: ObjectBuilder| b.examples(["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"])
);
string_schema!(
    TokenPrefix,
    TOKEN_PREFIX_PATTERN,
    "A creator token's prefix, bare or as `cst_<prefix>`, any case. Any other string names no token: 404.",
    |b: ObjectBuilder| b.examples(["k7m2p9qr"])
);
string_schema!(
    OrderRef,
    ORDER_ID_PATH_PATTERN,
    "The order's id as reported (1–128 characters, no control characters). Any other string names no order: 404.",
    |b: ObjectBuilder| b.examples(["1042"])
);
string_schema!(
    IdempotencyKey,
    IDEMPOTENCY_KEY_PATTERN,
    "1–255 visible ASCII characters (else 400 `invalid_idempotency_key`).",
    |b: ObjectBuilder| b.examples(["order-1042-attempt-1"])
);
string_schema!(
    PixelId,
    PIXEL_ID_PATTERN,
    "The brand's pixel id (`api brand create` prints it). Any other string names no pixel: 404.",
    |b: ObjectBuilder| b.examples(["px_2vnnh22f4y6dgu83"])
);
string_schema!(
    PageUrl,
    PAGE_URL_PATTERN,
    "The page, an absolute http(s) URL of at most 2048 characters; stored without query string or fragment.",
    |b: ObjectBuilder| b
        .max_length(Some(crate::domain::MAX_URL_LEN))
        .examples(["https://shop.example/checkout/thank-you"])
);

/// A pixel's `order_id`: the store's id as a string, or a number (written out as JSON writes it).
pub struct PixelOrderId;

impl PartialSchema for PixelOrderId {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string(STORE_ID_PATTERN, "The store's id: 1–128 characters once trimmed, no control characters."))
            .item(ObjectBuilder::new().schema_type(Type::Number).description(Some("A numeric id.")))
            .description(Some("The store's order id; required for purchases."))
            .examples(["1042"])
            .into()
    }
}

impl ToSchema for PixelOrderId {}

string_schema!(
    ClickRef,
    CLICK_ID_PATTERN,
    "The click id from the landing URL's `cs_ref` or the `_cs_ref` cookie (32 hexadecimal digits, or a hyphenated \
     UUID); empty for none.",
    |b: ObjectBuilder| b.examples(["5f0c6a3e9b2d4c1fa7e8d9c0b1a2f3e4"])
);
string_schema!(
    TrimmedClickRef,
    TRIMMED_CLICK_ID_PATTERN,
    "The click id the visitor arrived with (`cs_ref` from the landing URL: 32 hexadecimal digits, or a \
     hyphenated UUID); empty for none.",
    |b: ObjectBuilder| b.examples(["5f0c6a3e9b2d4c1fa7e8d9c0b1a2f3e4"])
);

string_schema!(
    WebhookUrl,
    WEBHOOK_URL_PATTERN,
    "An https URL, at most 2048 characters once normalised (an empty path becomes `/`), that is not and does not \
     resolve to a loopback, private or link-local address (else 422 `invalid_url`).",
    |b: ObjectBuilder| b.max_length(Some(2047)).examples(["https://hooks.brand.example/creatorscore"])
);

/// An event type an outbound webhook endpoint subscribes to.
pub struct WebhookEventType;

impl PartialSchema for WebhookEventType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(crate::webhooks::EVENT_TYPES))
            .description(Some("An event type (anything else: 422 `invalid_events`)."))
            .into()
    }
}

impl ToSchema for WebhookEventType {}

/// An ISO 4217 code of a currency with minor units, the ones [`crate::money::Money`] accepts (in any
/// case; the canonical uppercase codes are listed).
pub struct CurrencyCode;

impl CurrencyCode {
    /// The codes, each with its number of minor-unit digits, in alphabetical order.
    pub fn all() -> &'static [(String, u16)] {
        static CODES: std::sync::LazyLock<Vec<(String, u16)>> = std::sync::LazyLock::new(|| {
            // Every three-letter code, asked of the same table `Money` reads.
            let letters = || b'A'..=b'Z';
            letters()
                .flat_map(|a| letters().flat_map(move |b| letters().map(move |c| [a, b, c])))
                .filter_map(|code| {
                    let code = std::str::from_utf8(&code).ok()?;
                    let exponent = iso_currency::Currency::from_code(code)?.exponent()?;
                    Some((code.to_owned(), exponent))
                })
                .collect()
        });
        &CODES
    }
}

impl PartialSchema for CurrencyCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::all().iter().map(|(code, _)| code.as_str())))
            .description(Some("ISO 4217 code of a currency with minor units (any case is accepted)."))
            .examples(["USD"])
            .into()
    }
}

impl ToSchema for CurrencyCode {}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use proptest::string::string_regex;
    use url::Url;

    use super::*;
    use crate::domain::{self, Name, PromoCode};
    use crate::http::extract::decode_cursor;

    /// Strings matching a pattern (every pattern is anchored at both ends, and is the whole string).
    pub(crate) fn matching(pattern: &str) -> impl Strategy<Value = String> {
        let whole = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).expect("an anchored pattern");
        string_regex(whole).unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn names_and_handles_the_patterns_admit_are_accepted(
            name in matching(NAME_PATTERN),
            handle in matching(HANDLE_PATTERN),
        ) {
            prop_assert!(Name::parse(&name, 200).is_ok(), "{name:?}");
            prop_assert!(Name::parse(&handle, 100).is_ok(), "{handle:?}");
        }

        #[test]
        fn store_ids_and_discount_codes_the_patterns_admit_are_accepted(
            id in matching(STORE_ID_PATTERN),
            code in matching(DISCOUNT_CODE_PATTERN),
            path_id in matching(ORDER_ID_PATH_PATTERN),
        ) {
            // The store ids' and discount codes' rule is `Name`'s, with their own lengths.
            prop_assert!(Name::parse(&id, 128).is_ok(), "{id:?}");
            prop_assert!(Name::parse(&code, 255).is_ok(), "{code:?}");
            prop_assert!(Name::parse(&path_id, 128).is_ok_and(|n| n.into_inner() == path_id), "{path_id:?}");
        }

        #[test]
        fn promo_codes_the_pattern_admits_are_accepted(code in matching(PROMO_CODE_PATTERN)) {
            prop_assert!(PromoCode::parse(&code).is_ok(), "{code:?}");
        }

        #[test]
        fn destinations_the_patterns_admit_are_accepted_up_to_their_lengths(
            with_path in matching(DESTINATION_URL_PATTERN),
            bare in matching(BARE_DESTINATION_URL_PATTERN),
        ) {
            let tracking = Url::parse("https://trk.creatorscore.io").unwrap();
            let longest = |url: &str, max: usize| format!("{url}{}", "a".repeat(max.saturating_sub(url.len())));
            let bare_longest = if bare.contains(['?', '#']) { longest(&bare, domain::MAX_URL_LEN - 1) } else { bare.clone() };
            for url in [longest(&with_path, domain::MAX_URL_LEN), with_path, bare_longest, bare] {
                prop_assert!(domain::DestinationUrl::parse(&url, &tracking).is_ok(), "{url:?}");
            }
        }

        #[test]
        fn webhook_urls_the_pattern_admits_are_accepted_when_saved(url in matching(WEBHOOK_URL_PATTERN)) {
            let strict = crate::webhooks::TargetPolicy { allow_private: false };
            prop_assert!(strict.check_url(&url, true).is_ok(), "{url:?}");
        }

        #[test]
        fn hostnames_the_pattern_admits_are_accepted(
            // The pattern with at most four labels, so that nearly every name fits in 253 characters.
            host in matching(&HOSTNAME_PATTERN.replace("{1,126}", "{1,3}")),
        ) {
            prop_assume!(host.len() <= 253);
            prop_assert!(crate::domains::Hostname::parse(&host).is_ok(), "{host:?}");
        }

        #[test]
        fn shop_domains_and_secrets_the_patterns_admit_are_accepted(
            shop in matching(SHOP_DOMAIN_PATTERN),
            secret in matching(WEBHOOK_SECRET_PATTERN),
        ) {
            prop_assert!(crate::shopify::ShopDomain::parse(&shop).is_ok(), "{shop:?}");
            prop_assert!(crate::shopify::WebhookSecret::parse(&secret).is_ok(), "{secret:?}");
        }

        #[test]
        fn click_ids_and_pixel_ids_the_patterns_admit_are_accepted(
            click in matching(CLICK_ID_PATTERN),
            trimmed in matching(TRIMMED_CLICK_ID_PATTERN),
            pixel in matching(PIXEL_ID_PATTERN),
            prefix in matching(TOKEN_PREFIX_PATTERN),
        ) {
            prop_assert!(click.is_empty() || shared::ClickId::parse(click.trim()).is_ok(), "{click:?}");
            let trimmed = trimmed.trim();
            prop_assert!(trimmed.is_empty() || shared::ClickId::parse(trimmed).is_ok(), "{trimmed:?}");
            prop_assert!(crate::pixels::PixelId::parse(&pixel).is_some(), "{pixel:?}");
            prop_assert!(shared::Code::parse(prefix.strip_prefix("cst_").unwrap_or(&prefix)).is_ok(), "{prefix:?}");
        }

        #[test]
        fn page_urls_the_pattern_admits_are_accepted(url in matching(PAGE_URL_PATTERN)) {
            let parsed = Url::parse(&url);
            prop_assert!(parsed.is_ok_and(|u| matches!(u.scheme(), "http" | "https")), "{url:?}");
        }

        #[test]
        fn cursors_the_pattern_admits_are_read(cursor in matching(CURSOR_PATTERN)) {
            prop_assert!(decode_cursor(&cursor).is_ok(), "{cursor:?}");
        }
    }
}
