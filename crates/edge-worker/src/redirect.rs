//! The `Location` a visitor is sent to: the link's destination with `cs_ref=<click id>` added.

use shared::{ClickId, Utm};
use url::Url;

/// The query parameter that carries the click id to the destination, where the pixel picks it up.
pub const CLICK_PARAM: &str = "cs_ref";

/// Why a destination read from KV is not one this worker redirects to. The API only stores absolute
/// http(s) URLs with a host and no credentials; the worker checks again, so that a record written by
/// anything else (a bug, a hand edit, a compromised token) can never send a visitor to `javascript:`,
/// `data:` or a URL with a user name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationError {
    /// Not an absolute URL at all.
    NotAUrl(url::ParseError),
    /// A scheme other than `http` or `https`.
    Scheme(String),
    /// A user name or password in the URL.
    Credentials,
    /// No host.
    NoHost,
}

impl std::fmt::Display for DestinationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestinationError::NotAUrl(e) => write!(f, "not an absolute URL: {e}"),
            DestinationError::Scheme(scheme) => write!(f, "scheme {scheme:?} is not http or https"),
            DestinationError::Credentials => f.write_str("a user name or password in the URL"),
            DestinationError::NoHost => f.write_str("no host"),
        }
    }
}

impl std::error::Error for DestinationError {}

/// Adds `cs_ref=<click id>` to `destination`, dropping any `cs_ref` already there.
///
/// Every other query pair is kept byte for byte and in order (re-encoding them could break signed or
/// oddly encoded shop URLs), and so is the fragment. The URL itself is normalised by the `url` crate
/// (lowercase scheme and host, `/` for an empty path), as any browser would.
pub fn location(destination: &str, click_id: ClickId) -> Result<String, DestinationError> {
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

/// Parses and checks a URL the worker may send a visitor to: absolute `http` or `https`, with a host and
/// no credentials.
pub fn checked_url(destination: &str) -> Result<Url, DestinationError> {
    let url = Url::parse(destination).map_err(DestinationError::NotAUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DestinationError::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::Credentials);
    }
    if url.host().is_none() {
        return Err(DestinationError::NoHost);
    }
    Ok(url)
}

impl Destination {
    /// Parses and checks a destination (see [`checked_url`]). Done once per record read from KV (the
    /// isolate caches the result), never per click.
    pub fn parse(destination: &str) -> Result<Self, DestinationError> {
        Self::tagged(destination, &Utm::default())
    }

    /// [`Destination::parse`], with the link's UTM tags added after the destination's own query where the
    /// destination does not already carry them (its own always win).
    pub fn tagged(destination: &str, utm: &Utm) -> Result<Self, DestinationError> {
        let mut url = checked_url(destination)?;
        let mut query = String::with_capacity(url.query().map_or(0, str::len) + CLICK_PARAM.len() + 2);
        for pair in url.query().unwrap_or_default().split('&') {
            if pair.is_empty() || is_click_param(pair) {
                continue;
            }
            query.push_str(pair);
            query.push('&');
        }
        utm.append_missing(url.query().unwrap_or_default(), &mut query);
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
        assert!(matches!(location("not a url", click()), Err(DestinationError::NotAUrl(_))));
        assert!(matches!(location("/relative", click()), Err(DestinationError::NotAUrl(_))));
        assert!(matches!(location("https://", click()), Err(DestinationError::NotAUrl(_))));
    }

    #[test]
    fn only_http_and_https_destinations_are_redirected_to() {
        for destination in [
            "javascript:alert(document.cookie)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "java\nscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "ftp://shop.example/",
            "mailto:a@shop.example",
        ] {
            assert!(
                matches!(Destination::parse(destination), Err(DestinationError::Scheme(_))),
                "{destination:?}: {:?}",
                Destination::parse(destination)
            );
        }
        assert!(Destination::parse("http://shop.example/").is_ok());
        assert!(Destination::parse("https://shop.example/").is_ok());
    }

    #[test]
    fn utm_tags_are_added_before_the_click_id_without_replacing_the_destinations_own() {
        let utm = Utm { source: Some("tiktok".into()), medium: Some("creator".into()), ..Utm::default() };
        let tagged = Destination::tagged("https://shop.example/p?utm_source=newsletter&a=1#top", &utm).unwrap();
        assert_eq!(
            tagged.location(click()),
            format!("https://shop.example/p?utm_source=newsletter&a=1&utm_medium=creator&{REF}#top")
        );
        let tagged = Destination::tagged("https://shop.example/p", &utm).unwrap();
        assert_eq!(
            tagged.location(click()),
            format!("https://shop.example/p?utm_source=tiktok&utm_medium=creator&{REF}")
        );
    }

    #[test]
    fn destinations_with_credentials_are_refused() {
        for destination in ["https://user@shop.example/", "https://user:pw@shop.example/", "https://:pw@shop.example/"]
        {
            assert_eq!(Destination::parse(destination), Err(DestinationError::Credentials), "{destination}");
        }
    }
}
