//! What one visit to `/{code}` produces: where to send the visitor, which cookie to set, and the click
//! event to record. Pure: the runtime hands in the request's facts, the time and the random source.

use rand::{CryptoRng, RngCore};
use shared::{
    truncate_user_agent, ClickEvent, ClickId, ClickSource, Code, LinkRecord, Version, VisitorId, MAX_REFERRER_HOST_LEN,
};
use url::Url;

use crate::bot::{is_bot, BotSignals};
use crate::cookie::{set_visitor_cookie, visitor_from_cookie_header};
use crate::redirect::{checked_url, Destination, DestinationError};

/// The host a visit came in on, as the links' rules see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Host<'a> {
    /// The default tracking domain (or a loopback name, in development): every link is served on it.
    #[default]
    Default,
    /// A brand's own short domain (lowercase, without port): only that domain's links are served on it.
    Custom(&'a str),
}

/// What the worker reads from an incoming request for a click, borrowed from its headers and `cf`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The host the request came in on.
    pub host: Host<'a>,
    /// Whether the request's query carries the QR code's marker (`qr=1`).
    pub qr: bool,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The `Referer` header.
    pub referer: Option<&'a str>,
    /// The `CF-IPCountry` header, or `request.cf.country` where the header is missing.
    pub country: Option<&'a str>,
    /// Cloudflare Bot Management's verdict, where present.
    pub bot: BotSignals,
}

/// The answer to a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// The `Location` header: the destination with `cs_ref`.
    pub location: String,
    /// The `Set-Cookie` header; `None` for `HEAD`.
    pub set_cookie: Option<String>,
    /// The click to record; `None` for `HEAD`.
    pub event: Option<ClickEvent>,
}

/// What a visit of a known code comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The link redirects: `302` with a click id (and, for `GET`, a cookie and a click to record).
    Visit(Visit),
    /// The link has expired: `302` to its `expired_url`, no click id, no cookie, nothing recorded.
    Expired(String),
    /// The link is not served here (another host, or expired without an `expired_url`): the not-found page.
    NotFound,
}

/// Whether a visit is a real click (`GET`) or a look at where the link goes (`HEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitKind {
    /// Recorded, and the visitor cookie is set.
    Click,
    /// Same status and `Location`, nothing recorded, no cookie.
    Peek,
}

/// A link as clicks use it: its record, with the destination parsed once (kept in the isolate's cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub link: LinkRecord,
    /// The destination with the link's UTM tags, ready for a click id.
    pub destination: Destination,
    /// Where an expired link sends visitors, checked like the destination.
    pub expired_url: Option<String>,
}

impl Target {
    /// Fails when the stored destination or expiry URL is not one the worker redirects to (see
    /// [`checked_url`]; the API validates both, so that is a bug or a bad write to log, and the code
    /// answers 404).
    pub fn new(link: LinkRecord) -> Result<Self, DestinationError> {
        let destination = Destination::tagged(&link.destination_url, &link.utm)?;
        let expired_url = link.expired_url.as_deref().map(checked_url).transpose()?.map(String::from);
        Ok(Target { link, destination, expired_url })
    }

    /// Whether the link is served on `host`: on the default domain always, on a custom domain only when
    /// it is the link's own.
    pub fn serves(&self, host: Host<'_>) -> bool {
        match host {
            Host::Default => true,
            Host::Custom(host) => self.link.domain.as_deref() == Some(host),
        }
    }
}

/// Decides the answer to a visit of `code`, which resolved to `target`: not served on this host, expired,
/// or a redirect with a click.
pub fn visit<R: RngCore + CryptoRng + ?Sized>(
    code: Code,
    target: &Target,
    kind: VisitKind,
    facts: &RequestFacts<'_>,
    now_ms: i64,
    rng: &mut R,
) -> Outcome {
    if !target.serves(facts.host) {
        return Outcome::NotFound;
    }
    if target.link.expires_at_ms.is_some_and(|expires_at| now_ms >= expires_at) {
        return target.expired_url.clone().map_or(Outcome::NotFound, Outcome::Expired);
    }
    let click_id = ClickId::generate(rng);
    let location = target.destination.location(click_id);
    if kind == VisitKind::Peek {
        return Outcome::Visit(Visit { location, set_cookie: None, event: None });
    }
    let returning = visitor_from_cookie_header(facts.cookie);
    let visitor_id = returning.unwrap_or_else(|| VisitorId::generate(rng));
    let event = ClickEvent {
        v: Version,
        click_id,
        code,
        link_id: target.link.link_id,
        occurred_at_ms: now_ms,
        visitor_id,
        new_visitor: returning.is_none(),
        bot: is_bot(facts.user_agent, facts.bot),
        country: facts.country.and_then(country),
        referrer_host: facts.referer.and_then(referrer_host),
        user_agent: facts.user_agent.map(|ua| truncate_user_agent(ua).to_owned()).filter(|ua| !ua.is_empty()),
        source: if facts.qr { ClickSource::Qr } else { ClickSource::Link },
    };
    Outcome::Visit(Visit { location, set_cookie: Some(set_visitor_cookie(visitor_id)), event: Some(event) })
}

/// The host of a URL as the runtime serializes a request's (`https://host[:port]/path`), without its
/// port: what [`Host`] is decided from. Borrowed, so a click allocates nothing for it.
pub fn host_of(url: &str) -> &str {
    let Some(after_scheme) = url.split_once(':').and_then(|(_, rest)| rest.strip_prefix("//")) else { return "" };
    let authority = after_scheme.find(['/', '?', '#']).map_or(after_scheme, |end| &after_scheme[..end]);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    match authority.rfind(':') {
        // A colon inside brackets belongs to an IPv6 address.
        Some(colon) if !authority[colon..].contains(']') => &authority[..colon],
        _ => authority,
    }
}

/// Whether a request's URL carries the QR code's marker: a query parameter `qr=1`.
pub fn is_qr_scan(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else { return false };
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    query.split('&').any(|pair| pair == "qr=1")
}

/// Which [`Host`] `host` (from [`host_of`]) is: the default when it is one of `default_hosts` (the
/// deployment's tracking domains) or a loopback name (development; the API never lets a brand add one),
/// else a brand's own domain.
pub fn host_kind<'a>(host: &'a str, default_hosts: &[String]) -> Host<'a> {
    let loopback = matches!(host, "localhost" | "[::1]") || host.starts_with("127.");
    if loopback || default_hosts.iter().any(|default| default.eq_ignore_ascii_case(host)) {
        Host::Default
    } else {
        Host::Custom(host)
    }
}

/// The longest a click's JSON gets without its user agent and referrer host (three ids, a code, the
/// field names, a country and a timestamp come to about 270 bytes).
const MESSAGE_LEN_WITHOUT_STRINGS: usize = 320;

/// A click as the JSON the queue carries, written into a buffer that is big enough from the start.
pub fn to_json(event: &ClickEvent) -> String {
    let strings =
        event.user_agent.as_ref().map_or(0, String::len) + event.referrer_host.as_ref().map_or(0, String::len);
    let mut json = Vec::with_capacity(MESSAGE_LEN_WITHOUT_STRINGS + strings);
    // Writing into a Vec cannot fail, and serde_json writes UTF-8.
    match serde_json::to_writer(&mut json, event).map(|()| String::from_utf8(json)) {
        Ok(Ok(json)) => json,
        _ => String::new(),
    }
}

/// A country code as the API accepts it: two uppercase letters. Cloudflare's `XX` (unknown) and `T1`
/// (Tor) say nothing about where the visitor is, so they are dropped.
pub fn country(raw: &str) -> Option<String> {
    let upper = raw.trim().to_ascii_uppercase();
    let is_code = upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase());
    (is_code && upper != "XX").then_some(upper)
}

/// The host of the referring page, lowercase, without scheme, port, path or query: the full referrer
/// URL can carry personal data and is never recorded.
pub fn referrer_host(referer: &str) -> Option<String> {
    let origin = origin_part(referer.trim());
    if let Some(host) = plain_host(origin) {
        return Some(host.to_ascii_lowercase());
    }
    let url = Url::parse(origin).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    (!host.is_empty() && host.len() <= MAX_REFERRER_HOST_LEN).then_some(host)
}

/// The scheme and authority of a URL, cut where its path, query or fragment begins (for `http` and
/// `https`, the authority starts after any run of `/` and `\\` and ends at the next `/`, `\\`, `?` or
/// `#`). Only the host is kept, so only this much is parsed: a referrer's query can be long
/// (Instagram's carries the whole link).
fn origin_part(url: &str) -> &str {
    let Some(after_scheme) = url.split_once(':').and_then(|(_, rest)| rest.strip_prefix("//")) else { return url };
    let authority = url.len() - after_scheme.trim_start_matches(['/', '\\']).len();
    match url[authority..].find(['/', '\\', '?', '#']) {
        // The parser trims trailing spaces and controls, which inside the URL make the host invalid.
        Some(end) if !url[..authority + end].ends_with(|c: char| c <= ' ') => &url[..authority + end],
        _ => url,
    }
}

/// The host of `http://host[:port]` or `https://host[:port]` when it is a plain DNS name that the URL
/// parser would keep as it is, but for case: ASCII letters, digits and hyphens in non-empty labels,
/// the last starting with a letter (so that it is not read as an IPv4 address) and none an
/// internationalised `xn--` label. Anything else (the parser's work) gets `None`.
fn plain_host(origin: &str) -> Option<&str> {
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"))?;
    let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
    let port_ok = port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().map_or(port.is_empty(), |p| p <= 65_535);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("xn--"))
    };
    let last_ok = host.rsplit('.').next().is_some_and(|last| last.starts_with(|c: char| c.is_ascii_alphabetic()));
    (port_ok && last_ok && host.len() <= MAX_REFERRER_HOST_LEN && host.split('.').all(label_ok)).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use shared::MAX_USER_AGENT_LEN;
    use uuid::Uuid;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const VISITOR: &str = "7c9e6679742540de944be07fc1f90ae7";

    fn link() -> Target {
        Target::new(LinkRecord::new(Uuid::from_u128(42), "https://shop.example/p?a=1#top".into(), 3)).unwrap()
    }

    fn code() -> Code {
        Code::parse("k7m2p9qr").unwrap()
    }

    fn click(facts: &RequestFacts<'_>) -> Visit {
        match visit(code(), &link(), VisitKind::Click, facts, 1_764_000_000_000, &mut StdRng::seed_from_u64(1)) {
            Outcome::Visit(visit) => visit,
            other => panic!("not a redirect: {other:?}"),
        }
    }

    fn on_domain(domain: Option<&str>, expires_at_ms: Option<i64>, expired_url: Option<&str>) -> Target {
        let mut record = LinkRecord::new(Uuid::from_u128(42), "https://shop.example/p".into(), 3);
        record.domain = domain.map(str::to_owned);
        record.expires_at_ms = expires_at_ms;
        record.expired_url = expired_url.map(str::to_owned);
        Target::new(record).unwrap()
    }

    fn outcome(target: &Target, kind: VisitKind, facts: &RequestFacts<'_>, now_ms: i64) -> Outcome {
        visit(code(), target, kind, facts, now_ms, &mut StdRng::seed_from_u64(1))
    }

    #[test]
    fn a_custom_domain_serves_its_own_links_and_the_default_domain_serves_all() {
        let custom = on_domain(Some("go.brand.example"), None, None);
        let plain = on_domain(None, None, None);
        let own = RequestFacts { host: Host::Custom("go.brand.example"), ..RequestFacts::default() };
        let other = RequestFacts { host: Host::Custom("go.other.example"), ..RequestFacts::default() };
        let default = RequestFacts::default();
        for kind in [VisitKind::Click, VisitKind::Peek] {
            assert!(matches!(outcome(&custom, kind, &own, 0), Outcome::Visit(_)));
            assert!(matches!(outcome(&custom, kind, &default, 0), Outcome::Visit(_)));
            assert_eq!(outcome(&custom, kind, &other, 0), Outcome::NotFound);
            assert_eq!(outcome(&plain, kind, &own, 0), Outcome::NotFound);
            assert!(matches!(outcome(&plain, kind, &default, 0), Outcome::Visit(_)));
        }
    }

    #[test]
    fn hosts_are_read_from_the_request_url_and_sorted_into_default_and_custom() {
        assert_eq!(host_of("https://go.brand.example/k7m2p9qr?qr=1"), "go.brand.example");
        assert_eq!(host_of("http://127.0.0.1:8787/k7m2p9qr"), "127.0.0.1");
        assert_eq!(host_of("http://[::1]:8787/x"), "[::1]");
        assert_eq!(host_of("https://trk.creatorscore.io"), "trk.creatorscore.io");
        let defaults = vec!["trk.creatorscore.io".to_owned()];
        assert_eq!(host_kind("trk.creatorscore.io", &defaults), Host::Default);
        assert_eq!(host_kind("127.0.0.1", &defaults), Host::Default);
        assert_eq!(host_kind("localhost", &defaults), Host::Default);
        assert_eq!(host_kind("go.brand.example", &defaults), Host::Custom("go.brand.example"));
    }

    #[test]
    fn the_qr_marker_is_a_query_parameter_of_its_own() {
        assert!(is_qr_scan("https://trk.creatorscore.io/k7m2p9qr?qr=1"));
        assert!(is_qr_scan("https://trk.creatorscore.io/k7m2p9qr?a=b&qr=1#x"));
        for url in [
            "https://t.example/k7m2p9qr",
            "https://t.example/k7m2p9qr?qr=10",
            "https://t.example/k?xqr=1",
            "https://t.example/k#qr=1",
        ] {
            assert!(!is_qr_scan(url), "{url}");
        }
        let scan = click(&RequestFacts { qr: true, ..RequestFacts::default() });
        assert_eq!(scan.event.unwrap().source, ClickSource::Qr);
        assert_eq!(click(&RequestFacts::default()).event.unwrap().source, ClickSource::Link);
    }

    #[test]
    fn an_expired_link_sends_visitors_to_its_expired_url_without_a_click() {
        let expires = 1_800_000_000_000;
        let with_url = on_domain(None, Some(expires), Some("https://shop.example/ended"));
        let without = on_domain(None, Some(expires), None);
        let facts = RequestFacts::default();
        // Up to the last millisecond before `expires_at`, a click as ever.
        assert!(
            matches!(outcome(&with_url, VisitKind::Click, &facts, expires - 1), Outcome::Visit(v) if v.event.is_some())
        );
        for kind in [VisitKind::Click, VisitKind::Peek] {
            assert_eq!(
                outcome(&with_url, kind, &facts, expires),
                Outcome::Expired("https://shop.example/ended".into())
            );
            assert_eq!(outcome(&without, kind, &facts, expires + 1), Outcome::NotFound);
        }
        let bad = LinkRecord {
            expired_url: Some("javascript:alert(1)".into()),
            ..LinkRecord::new(Uuid::from_u128(1), "https://a.example/".into(), 1)
        };
        assert!(Target::new(bad).is_err());
    }

    #[test]
    fn a_first_click_makes_a_visitor_and_records_everything_the_contract_lists() {
        let facts = RequestFacts {
            user_agent: Some(CHROME),
            referer: Some("https://l.instagram.com/?u=https%3A%2F%2Ftrk&e=secret"),
            country: Some("DE"),
            ..RequestFacts::default()
        };
        let visit = click(&facts);
        let event = visit.event.unwrap();
        assert_eq!(visit.location, format!("https://shop.example/p?a=1&cs_ref={}#top", event.click_id));
        assert_eq!(visit.set_cookie, Some(set_visitor_cookie(event.visitor_id)));
        assert_eq!(event.code, code());
        assert_eq!(event.link_id, Uuid::from_u128(42));
        assert_eq!(event.occurred_at_ms, 1_764_000_000_000);
        assert!(event.new_visitor);
        assert!(!event.bot);
        assert_eq!(event.country.as_deref(), Some("DE"));
        assert_eq!(event.referrer_host.as_deref(), Some("l.instagram.com"));
        assert_eq!(event.user_agent.as_deref(), Some(CHROME));
        assert_eq!(event.validate(), Ok(()));
    }

    #[test]
    fn the_json_of_a_click_reads_back_as_the_same_click() {
        let ua = "\"quoted\" \u{1F600} \\ ".repeat(30);
        let facts = RequestFacts { user_agent: Some(&ua), country: Some("DE"), ..RequestFacts::default() };
        for facts in [facts, RequestFacts::default()] {
            let event = click(&facts).event.unwrap();
            assert_eq!(serde_json::from_str::<ClickEvent>(&to_json(&event)).unwrap(), event);
        }
    }

    #[test]
    fn the_largest_click_fits_the_buffer_it_is_written_into() {
        let referer = format!("https://{}.example/", "r".repeat(MAX_REFERRER_HOST_LEN - 8));
        let ua = "M".repeat(MAX_USER_AGENT_LEN);
        let facts = RequestFacts {
            user_agent: Some(&ua),
            referer: Some(&referer),
            country: Some("DE"),
            ..RequestFacts::default()
        };
        let event = click(&facts).event.unwrap();
        assert_eq!(event.referrer_host.as_ref().map(String::len), Some(MAX_REFERRER_HOST_LEN));
        assert!(to_json(&event).len() <= MESSAGE_LEN_WITHOUT_STRINGS + MAX_USER_AGENT_LEN + MAX_REFERRER_HOST_LEN);
    }

    #[test]
    fn a_returning_visitor_keeps_their_id_and_gets_it_refreshed() {
        let cookie = format!("other=1; _cs_pv={VISITOR}");
        let visit = click(&RequestFacts { cookie: Some(&cookie), user_agent: Some(CHROME), ..RequestFacts::default() });
        let event = visit.event.unwrap();
        assert_eq!(event.visitor_id.to_string(), VISITOR);
        assert!(!event.new_visitor);
        assert_eq!(visit.set_cookie, Some(set_visitor_cookie(event.visitor_id)));
    }

    #[test]
    fn an_invalid_visitor_cookie_is_replaced_by_a_new_visitor() {
        let visit = click(&RequestFacts { cookie: Some("_cs_pv=forged"), ..RequestFacts::default() });
        let event = visit.event.unwrap();
        assert!(event.new_visitor);
        assert_ne!(event.visitor_id.to_string(), "forged");
    }

    #[test]
    fn a_peek_redirects_the_same_way_but_records_nothing_and_sets_no_cookie() {
        let facts = RequestFacts { user_agent: Some(CHROME), ..RequestFacts::default() };
        let Outcome::Visit(peek) = visit(code(), &link(), VisitKind::Peek, &facts, 0, &mut StdRng::seed_from_u64(1))
        else {
            panic!("not a redirect")
        };
        assert!(peek.location.starts_with("https://shop.example/p?a=1&cs_ref="), "{}", peek.location);
        assert!(peek.location.ends_with("#top"));
        assert_eq!(peek.set_cookie, None);
        assert_eq!(peek.event, None);
    }

    #[test]
    fn every_click_gets_its_own_click_id() {
        let mut rng = StdRng::seed_from_u64(5);
        let facts = RequestFacts::default();
        let redirect = |rng: &mut StdRng| match visit(code(), &link(), VisitKind::Click, &facts, 0, rng) {
            Outcome::Visit(visit) => visit,
            other => panic!("not a redirect: {other:?}"),
        };
        let (a, b) = (redirect(&mut rng), redirect(&mut rng));
        assert_ne!(a.event.unwrap().click_id, b.event.unwrap().click_id);
        assert_ne!(a.location, b.location);
    }

    #[test]
    fn bots_are_redirected_and_flagged() {
        let visit = click(&RequestFacts { user_agent: Some("Twitterbot/1.0"), ..RequestFacts::default() });
        assert!(visit.location.starts_with("https://shop.example/p?a=1&cs_ref="));
        assert!(visit.event.unwrap().bot);
        let scored = click(&RequestFacts {
            user_agent: Some(CHROME),
            bot: BotSignals { score: Some(2), verified_bot: false },
            ..RequestFacts::default()
        });
        assert!(scored.event.unwrap().bot);
    }

    #[test]
    fn long_user_agents_are_truncated_and_empty_ones_dropped() {
        let long = format!("{CHROME} {}", "x".repeat(1000));
        let event = click(&RequestFacts { user_agent: Some(&long), ..RequestFacts::default() }).event.unwrap();
        assert_eq!(event.user_agent.as_ref().map(String::len), Some(MAX_USER_AGENT_LEN));
        assert_eq!(event.validate(), Ok(()));
        let event = click(&RequestFacts { user_agent: Some(""), ..RequestFacts::default() }).event.unwrap();
        assert_eq!(event.user_agent, None);
        assert!(event.bot);
    }

    #[test]
    fn a_destination_that_is_not_a_url_is_an_error() {
        let broken = LinkRecord::new(Uuid::from_u128(1), "nope".into(), 1);
        assert!(Target::new(broken).is_err());
    }

    #[test]
    fn countries_are_two_letters_and_unknown_or_tor_is_dropped() {
        assert_eq!(country("DE"), Some("DE".into()));
        assert_eq!(country("us"), Some("US".into()));
        assert_eq!(country("XX"), None);
        assert_eq!(country("T1"), None);
        assert_eq!(country(""), None);
        assert_eq!(country("DEU"), None);
    }

    #[test]
    fn only_the_referrer_host_is_kept() {
        assert_eq!(referrer_host("https://www.TikTok.com/@jessica/video/1?lang=en"), Some("www.tiktok.com".into()));
        assert_eq!(referrer_host("http://localhost:3000/x"), Some("localhost".into()));
        assert_eq!(referrer_host("android-app://com.google.android.gm/"), None);
        assert_eq!(referrer_host("not a url"), None);
        assert_eq!(referrer_host(""), None);
    }

    /// What [`referrer_host`] must give: the host of the whole URL, parsed.
    fn host_of_full_parse(referer: &str) -> Option<String> {
        Url::parse(referer.trim()).ok().filter(|u| matches!(u.scheme(), "http" | "https")).and_then(|u| {
            u.host_str().map(str::to_ascii_lowercase).filter(|h| !h.is_empty() && h.len() <= MAX_REFERRER_HOST_LEN)
        })
    }

    proptest::proptest! {
        #[test]
        fn the_host_of_any_host_like_referrer_is_the_same_as_a_full_parse_would_give(
            scheme in "(https?|HTTP)",
            host in "(xn--|XN--|[0-9]|0x)?[a-zA-Z0-9.-]{0,24}",
            port in "(:[0-9]{0,6})?",
            rest in "([/?#].{0,8})?",
        ) {
            let referer = format!("{scheme}://{host}{port}{rest}");
            proptest::prop_assert_eq!(referrer_host(&referer), host_of_full_parse(&referer));
        }

        #[test]
        fn the_host_of_any_referrer_is_the_same_as_a_full_parse_would_give(
            scheme in "(https?|HTTPS|ftp|android-app)",
            rest in "[a-zA-Z0-9./\\\\?#@:%\\[\\] \t\u{1}\u{fc}_-]{0,40}",
        ) {
            let referer = format!("{scheme}://{rest}");
            proptest::prop_assert_eq!(referrer_host(&referer), host_of_full_parse(&referer));
        }
    }

    #[test]
    fn the_host_is_the_same_as_a_full_parse_would_give() {
        let full = host_of_full_parse;
        for referer in [
            "https://l.instagram.com/?u=https%3A%2F%2Ftrk.creatorscore.io%2Fk7m2p9qr&e=AT0",
            "https://user:secret@Shop.Example:8443/p?q#f",
            "https://a.example\\evil.example/",
            "https://a.example?x=/evil",
            "https://a.example#/evil",
            "http://a.example",
            "HTTPS://WWW.EXAMPLE.COM./",
            "https://xn--bcher-kva.example/",
            "https://xn--invalid.example/",
            "https://WWW.Example.COM:443/",
            "https://www.example.com:65536/",
            "https://www.example.com:/",
            "https://www.example.com:08080/",
            "https://a-.example/",
            "https://example.1a/",
            "https://1.2.3.4/",
            "https://0x7f.1/",
            "http://localhost:3000/",
            &format!("https://{}.example/", "a".repeat(250)),
            "https://bücher.example/",
            "https://[::1]/x",
            "https://127.1/x",
            "https://a b.example/",
            "https:/a.example/x",
            "https:a.example",
            "https://",
            "https:///x",
            "https://\\/x.example/y",
            "https://@/x",
            "https://%41.example/",
            "file:///etc/passwd",
            "android-app://com.google.android.gm/",
            "  https://padded.example/  ",
        ] {
            assert_eq!(referrer_host(referer), full(referer), "{referer}");
        }
    }

    #[test]
    fn recorded_clicks_pass_the_apis_validation() {
        let facts = RequestFacts {
            user_agent: Some(CHROME),
            referer: Some("https://[2001:db8::1]:8443/p"),
            country: Some("fr"),
            cookie: Some("_cs_pv=bad"),
            ..RequestFacts::default()
        };
        let event = click(&facts).event.unwrap();
        assert_eq!(event.referrer_host.as_deref(), Some("[2001:db8::1]"));
        assert_eq!(event.validate(), Ok(()));
    }
}
