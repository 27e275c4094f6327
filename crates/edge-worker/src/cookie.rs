//! The `_cs_pv` visitor cookie that tells a returning browser from a new one.
//!
//! Reading one cookie out of a `Cookie` header is a split on `;` and `=`; the `cookie` crate would do
//! the same while bringing the `time` crate into the wasm binary, so it is done here.

use shared::VisitorId;

/// Name of the visitor cookie.
pub const VISITOR_COOKIE: &str = "_cs_pv";

/// How long the visitor cookie lives: 30 days, refreshed on every click.
pub const VISITOR_COOKIE_MAX_AGE_SECS: u32 = 30 * 24 * 60 * 60;

/// The visitor id from a request's `Cookie` header, if it carries a `_cs_pv` this product made.
///
/// Browsers may send the same name twice (for example one cookie per path); the first valid one wins.
pub fn visitor_from_cookie_header(header: Option<&str>) -> Option<VisitorId> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == VISITOR_COOKIE)
        .find_map(|(_, value)| VisitorId::parse(value.trim_matches('"')).ok())
}

/// The `Set-Cookie` value that stores (or refreshes) a visitor id.
///
/// `Secure` because the tracking domain is HTTPS-only; `HttpOnly` because no script needs it;
/// `SameSite=Lax` because the click is a top-level navigation from another site.
pub fn set_visitor_cookie(visitor: VisitorId) -> String {
    let mut cookie = String::with_capacity(VISITOR_COOKIE.len() + 1 + 32 + COOKIE_ATTRIBUTES.len());
    cookie.push_str(VISITOR_COOKIE);
    cookie.push('=');
    cookie.push_str(visitor.encode(&mut [0; 32]));
    cookie.push_str(COOKIE_ATTRIBUTES);
    cookie
}

/// What follows the value in `Set-Cookie`, written out once (`Max-Age` is
/// [`VISITOR_COOKIE_MAX_AGE_SECS`], which a test checks) so that each click only joins strings.
const COOKIE_ATTRIBUTES: &str = "; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=Lax";

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7c9e6679742540de944be07fc1f90ae7";

    fn id() -> VisitorId {
        VisitorId::parse(ID).unwrap()
    }

    #[test]
    fn the_cookie_lives_thirty_days() {
        assert_eq!(VISITOR_COOKIE_MAX_AGE_SECS, 2_592_000);
        assert!(COOKIE_ATTRIBUTES.starts_with(&format!("; Max-Age={VISITOR_COOKIE_MAX_AGE_SECS};")));
    }

    #[test]
    fn the_cookie_has_the_contract_attributes() {
        assert_eq!(
            set_visitor_cookie(id()),
            format!("_cs_pv={ID}; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=Lax")
        );
    }

    #[test]
    fn a_valid_visitor_cookie_is_found_among_others() {
        assert_eq!(visitor_from_cookie_header(Some(&format!("_cs_pv={ID}"))), Some(id()));
        assert_eq!(visitor_from_cookie_header(Some(&format!("a=1; _cs_pv={ID}; b=2"))), Some(id()));
        assert_eq!(visitor_from_cookie_header(Some(&format!("a=1;_cs_pv=\"{ID}\""))), Some(id()));
    }

    #[test]
    fn missing_or_invalid_visitor_cookies_give_nothing() {
        assert_eq!(visitor_from_cookie_header(None), None);
        assert_eq!(visitor_from_cookie_header(Some("")), None);
        assert_eq!(visitor_from_cookie_header(Some("_cs_pv=")), None);
        assert_eq!(visitor_from_cookie_header(Some("_cs_pv=not-an-id")), None);
        assert_eq!(visitor_from_cookie_header(Some(&format!("x_cs_pv={ID}"))), None);
        assert_eq!(visitor_from_cookie_header(Some(&format!("_cs_pvx={ID}"))), None);
        // A version 1 UUID was not made by us.
        assert_eq!(visitor_from_cookie_header(Some("_cs_pv=6ba7b8109dad11d180b400c04fd430c8")), None);
    }

    #[test]
    fn the_first_valid_of_several_visitor_cookies_wins() {
        let header = format!("_cs_pv=garbage; _cs_pv={ID}; _cs_pv=0f8fad5bd9cb469fa16570867728950e");
        assert_eq!(visitor_from_cookie_header(Some(&header)), Some(id()));
    }
}
