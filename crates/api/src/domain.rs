//! Values parsed once at the edge of the program; a value of these types is valid by construction.

use std::fmt;

use url::Url;

/// The longest destination URL we accept (what browsers and social apps reliably carry).
pub const MAX_URL_LEN: usize = 2048;

/// Why a destination URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("destination_url must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("destination_url is not an absolute URL")]
    NotAbsolute,
    #[error("destination_url must use http or https")]
    Scheme,
    #[error("destination_url must not contain a user name or password")]
    Credentials,
    #[error("destination_url must have a host")]
    NoHost,
    #[error("destination_url must not point at the tracking domain")]
    TrackingDomain,
}

/// Where a tracking link sends its visitors: an absolute http(s) URL with a host, no credentials,
/// at most [`MAX_URL_LEN`] characters, and not on the tracking domain (that would loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationUrl(Url);

impl DestinationUrl {
    /// `tracking` is the tracking base URL. Its host (and its subdomains) are refused; when it names an
    /// explicit port (local development, where everything is 127.0.0.1), only that origin is.
    pub fn parse(input: &str, tracking: &Url) -> Result<Self, UrlError> {
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(input.trim()).map_err(|_| UrlError::NotAbsolute)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(UrlError::NoHost)?;
        let host = host.trim_end_matches('.');
        let tracking_host = tracking.host_str().unwrap_or_default().trim_end_matches('.');
        let same_host = host.eq_ignore_ascii_case(tracking_host)
            || host.to_ascii_lowercase().ends_with(&format!(".{tracking_host}"));
        let same_port = tracking.port().is_none_or(|port| url.port_or_known_default() == Some(port));
        if same_host && same_port {
            return Err(UrlError::TrackingDomain);
        }
        // Normalisation (punycode, percent-encoding) can lengthen the URL.
        if url.as_str().len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        Ok(DestinationUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A promo code as shoppers type it at checkout: 1–64 letters, digits, `-` or `_`.
/// Stored as written; compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoCode(String);

impl PromoCode {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let code = input.trim();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if code.is_empty() || code.len() > 64 || !code.chars().all(ok_char) {
            return Err("promo_code must be 1 to 64 letters, digits, '-' or '_'");
        }
        Ok(PromoCode(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name (of a creator, campaign or brand): trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(input: &str, max: usize) -> Result<Self, String> {
        let name = input.trim();
        if name.is_empty() || name.chars().count() > max || name.chars().any(char::is_control) {
            return Err(format!("must be 1 to {max} characters without control characters"));
        }
        Ok(Name(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static TRK: std::sync::LazyLock<Url> =
        std::sync::LazyLock::new(|| Url::parse("https://trk.creatorscore.io").unwrap());

    #[test]
    fn ordinary_destinations_are_kept_with_query_and_fragment() {
        let url = DestinationUrl::parse("https://shop.example/p/1?color=red&size=m#reviews", &TRK).unwrap();
        assert_eq!(url.as_str(), "https://shop.example/p/1?color=red&size=m#reviews");
        assert!(DestinationUrl::parse("http://shop.example", &TRK).is_ok());
    }

    #[test]
    fn bad_destinations_are_refused_with_a_reason() {
        let cases = [
            ("ftp://shop.example/", UrlError::Scheme),
            ("javascript:alert(1)", UrlError::Scheme),
            ("data:text/html,hi", UrlError::Scheme),
            ("/relative/path", UrlError::NotAbsolute),
            ("shop.example", UrlError::NotAbsolute),
            ("https://user:pw@shop.example/", UrlError::Credentials),
            ("https://user@shop.example/", UrlError::Credentials),
            ("https://trk.creatorscore.io/abcd2345", UrlError::TrackingDomain),
            ("https://TRK.creatorscore.io./x", UrlError::TrackingDomain),
            ("https://a.trk.creatorscore.io/x", UrlError::TrackingDomain),
        ];
        for (input, expected) in cases {
            assert_eq!(DestinationUrl::parse(input, &TRK), Err(expected), "{input}");
        }
        let long = format!("https://shop.example/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(DestinationUrl::parse(&long, &TRK), Err(UrlError::TooLong));
    }

    #[test]
    fn with_a_local_tracking_origin_only_that_origin_is_refused() {
        let local = Url::parse("http://127.0.0.1:8787").unwrap();
        assert_eq!(DestinationUrl::parse("http://127.0.0.1:8787/abcd2345", &local), Err(UrlError::TrackingDomain));
        assert!(DestinationUrl::parse("http://127.0.0.1:9000/products/1", &local).is_ok());
        // Without an explicit port, every port of the tracking host is refused.
        assert_eq!(DestinationUrl::parse("http://trk.creatorscore.io:8080/x", &TRK), Err(UrlError::TrackingDomain));
    }

    #[test]
    fn the_length_limit_is_inclusive() {
        let base = "https://shop.example/";
        let exact = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert!(DestinationUrl::parse(&exact, &TRK).is_ok());
    }

    #[test]
    fn promo_codes_are_trimmed_and_restricted() {
        assert_eq!(PromoCode::parse(" JESS20 ").unwrap().as_str(), "JESS20");
        for bad in ["", "   ", "has space", "emoji😀", &"x".repeat(65)] {
            assert!(PromoCode::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn accepted_destinations_are_http_or_https_without_credentials(s in "\\PC{0,80}") {
            if let Ok(url) = DestinationUrl::parse(&s, &TRK) {
                let parsed = Url::parse(url.as_str()).unwrap();
                prop_assert!(matches!(parsed.scheme(), "http" | "https"));
                prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
                prop_assert!(url.as_str().len() <= MAX_URL_LEN);
            }
        }

        #[test]
        fn any_host_path_and_query_round_trips(
            host in "[a-z]{1,20}\\.(com|shop|example)",
            path in "[a-zA-Z0-9/_-]{0,40}",
            query in "[a-z]{1,8}=[a-z0-9]{0,8}",
        ) {
            let input = format!("https://{host}/{path}?{query}");
            let url = DestinationUrl::parse(&input, &TRK).unwrap();
            let parsed = Url::parse(url.as_str()).unwrap();
            prop_assert_eq!(parsed.host_str(), Some(host.as_str()));
        }

        #[test]
        fn nothing_on_the_tracking_domain_is_accepted(sub in "([a-z]{1,8}\\.)?", path in "[a-z0-9/]{0,20}") {
            let input = format!("https://{sub}trk.creatorscore.io/{path}");
            prop_assert_eq!(DestinationUrl::parse(&input, &TRK), Err(UrlError::TrackingDomain));
        }
    }
}
