//! The `Location` a visitor is sent to: the link's destination with `cs_ref=<click id>` added.

use shared::ClickId;
use url::Url;

/// The query parameter that carries the click id to the destination, where the pixel picks it up.
pub const CLICK_PARAM: &str = "cs_ref";

/// Adds `cs_ref=<click id>` to `destination`, dropping any `cs_ref` already there.
///
/// Every other query pair is kept byte for byte and in order (re-encoding them could break signed or
/// oddly encoded shop URLs), and so is the fragment. The URL itself is normalised by the `url` crate
/// (lowercase scheme and host, `/` for an empty path), as any browser would.
pub fn location(destination: &str, click_id: ClickId) -> Result<String, url::ParseError> {
    Ok(Destination::parse(destination)?.location(click_id))
}

/// A destination parsed once and kept with its link, so that each click only joins three strings:
/// everything up to `cs_ref=`, the click id, and the fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The normalised URL, its query ending in `cs_ref=`, without the fragment.
    before_id: String,
    /// `#` and the fragment, or nothing.
    after_id: String,
}

impl Destination {
    pub fn parse(destination: &str) -> Result<Self, url::ParseError> {
        let mut url = Url::parse(destination)?;
        let mut query = String::with_capacity(url.query().map_or(0, str::len) + CLICK_PARAM.len() + 2);
        for pair in url.query().unwrap_or_default().split('&') {
            if pair.is_empty() || is_click_param(pair) {
                continue;
            }
            query.push_str(pair);
            query.push('&');
        }
        query.push_str(CLICK_PARAM);
        query.push('=');
        // The click id (32 lowercase hex digits) needs no encoding, so it can be appended afterwards.
        let after_id = url.fragment().map(|f| format!("#{f}")).unwrap_or_default();
        url.set_fragment(None);
        url.set_query(Some(&query));
        Ok(Destination { before_id: url.into(), after_id })
    }

    /// The `Location` for one click.
    pub fn location(&self, click_id: ClickId) -> String {
        let mut location = String::with_capacity(self.before_id.len() + 32 + self.after_id.len());
        location.push_str(&self.before_id);
        location.push_str(click_id.encode(&mut [0; 32]));
        location.push_str(&self.after_id);
        location
    }
}

/// Whether a raw `key=value` pair names `cs_ref`, however its key is encoded (`cs%5Fref`, `cs_ref` alone).
fn is_click_param(pair: &str) -> bool {
    let raw_key = pair.split_once('=').map_or(pair, |(key, _)| key);
    if raw_key == CLICK_PARAM {
        return true;
    }
    // Only decode when the key could be an encoded `cs_ref`; the common case stays a byte compare.
    raw_key.contains('%')
        && url::form_urlencoded::parse(raw_key.as_bytes()).next().is_some_and(|(key, _)| key == CLICK_PARAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click() -> ClickId {
        ClickId::parse("0f8fad5bd9cb469fa16570867728950e").unwrap()
    }
    const REF: &str = "cs_ref=0f8fad5bd9cb469fa16570867728950e";

    fn loc(destination: &str) -> String {
        location(destination, click()).unwrap()
    }

    #[test]
    fn a_destination_without_query_gets_cs_ref() {
        assert_eq!(loc("https://shop.example/product"), format!("https://shop.example/product?{REF}"));
    }

    #[test]
    fn an_existing_query_is_kept_in_order_and_cs_ref_appended() {
        assert_eq!(
            loc("https://shop.example/p?utm_source=ig&color=red"),
            format!("https://shop.example/p?utm_source=ig&color=red&{REF}")
        );
    }

    #[test]
    fn the_fragment_is_kept_after_the_query() {
        assert_eq!(loc("https://shop.example/p#reviews"), format!("https://shop.example/p?{REF}#reviews"));
        assert_eq!(loc("https://shop.example/p?a=1#top"), format!("https://shop.example/p?a=1&{REF}#top"));
    }

    #[test]
    fn every_existing_cs_ref_is_replaced() {
        assert_eq!(
            loc("https://shop.example/p?cs_ref=old&a=1&cs_ref=older&cs%5Fref=encoded&cs_ref#x"),
            format!("https://shop.example/p?a=1&{REF}#x")
        );
    }

    #[test]
    fn parameters_that_only_look_like_cs_ref_are_kept() {
        assert_eq!(
            loc("https://shop.example/p?cs_refx=1&xcs_ref=2&a=cs_ref"),
            format!("https://shop.example/p?cs_refx=1&xcs_ref=2&a=cs_ref&{REF}")
        );
    }

    #[test]
    fn other_parameters_keep_their_exact_encoding() {
        assert_eq!(
            loc("https://shop.example/p?q=a%20b+c&sig=abc%2F%3D%3D&empty=&flag"),
            format!("https://shop.example/p?q=a%20b+c&sig=abc%2F%3D%3D&empty=&flag&{REF}")
        );
    }

    #[test]
    fn empty_queries_and_stray_separators_leave_no_gaps() {
        assert_eq!(loc("https://shop.example/p?"), format!("https://shop.example/p?{REF}"));
        assert_eq!(loc("https://shop.example/p?&a=1&&"), format!("https://shop.example/p?a=1&{REF}"));
    }

    #[test]
    fn the_url_is_normalised_like_a_browser_would() {
        assert_eq!(loc("HTTPS://Shop.Example"), format!("https://shop.example/?{REF}"));
        assert_eq!(loc("http://shop.example:8080/a b"), format!("http://shop.example:8080/a%20b?{REF}"));
    }

    #[test]
    fn a_parsed_destination_gives_each_click_its_own_location() {
        let destination = Destination::parse("https://shop.example/p?cs_ref=old&a=1#top").unwrap();
        let other = ClickId::parse("7c9e6679742540de944be07fc1f90ae7").unwrap();
        assert_eq!(destination.location(click()), format!("https://shop.example/p?a=1&{REF}#top"));
        assert_eq!(
            destination.location(other),
            "https://shop.example/p?a=1&cs_ref=7c9e6679742540de944be07fc1f90ae7#top"
        );
        assert_eq!(loc("https://shop.example/p#"), format!("https://shop.example/p?{REF}#"));
    }

    #[test]
    fn a_destination_that_is_not_a_url_is_an_error() {
        assert!(location("not a url", click()).is_err());
        assert!(location("/relative", click()).is_err());
    }
}
