use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::version::Version;
use crate::{ClickId, ClickSource, Code, VisitorId};

/// The version of the [`ClickEvent`] JSON layout.
pub const CLICK_EVENT_VERSION: u8 = 1;

/// Longest user-agent string the edge forwards; longer ones are cut (at a character boundary).
pub const MAX_USER_AGENT_LEN: usize = 512;
/// Longest referrer host (a DNS name is at most 253 characters).
pub const MAX_REFERRER_HOST_LEN: usize = 253;

/// One click, as the edge sends it through the queue to the API.
///
/// It carries no IP address. The user-agent string travels only so that the API can classify it into
/// device type, browser and OS; the API stores those and drops the string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickEvent {
    /// Layout version, always [`CLICK_EVENT_VERSION`].
    pub v: Version<CLICK_EVENT_VERSION>,
    /// Unique per click; the API ignores a click id it already stored, so redelivery is harmless.
    pub click_id: ClickId,
    /// The code that was visited.
    pub code: Code,
    /// The link the code resolved to at the edge.
    pub link_id: Uuid,
    /// When the edge answered, in milliseconds since the Unix epoch.
    pub occurred_at_ms: i64,
    /// The visitor's `_cs_pv` id (kept from the cookie or newly made).
    pub visitor_id: VisitorId,
    /// Whether the visitor id was made for this click.
    pub new_visitor: bool,
    /// Whether the click came from a bot or a link-preview crawler.
    pub bot: bool,
    /// ISO 3166-1 alpha-2 country from Cloudflare's request metadata, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Host of the referring page, never its full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_host: Option<String>,
    /// The raw user agent, at most [`MAX_USER_AGENT_LEN`] bytes; classified and dropped by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Where the click came from: the link (the default, left out) or a scan of its QR code.
    #[serde(default = "ClickSource::link", skip_serializing_if = "ClickSource::is_link")]
    pub source: ClickSource,
}

/// Why a click event cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClickEventError {
    /// `country` is not two ASCII uppercase letters.
    #[error("country must be two uppercase letters")]
    Country,
    /// `referrer_host` is empty, too long or not a host name.
    #[error("referrer_host must be a host name of at most 253 characters")]
    ReferrerHost,
    /// `user_agent` is longer than [`MAX_USER_AGENT_LEN`].
    #[error("user_agent must be at most 512 bytes")]
    UserAgent,
    /// `occurred_at_ms` is negative.
    #[error("occurred_at_ms must not be negative")]
    Time,
}

impl ClickEvent {
    /// Checks the fields whose types do not already guarantee them.
    pub fn validate(&self) -> Result<(), ClickEventError> {
        if self.occurred_at_ms < 0 {
            return Err(ClickEventError::Time);
        }
        if let Some(country) = &self.country {
            if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ClickEventError::Country);
            }
        }
        if let Some(host) = &self.referrer_host {
            let host_like = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']');
            if host.is_empty() || host.len() > MAX_REFERRER_HOST_LEN || !host.bytes().all(host_like) {
                return Err(ClickEventError::ReferrerHost);
            }
        }
        if self.user_agent.as_ref().is_some_and(|ua| ua.len() > MAX_USER_AGENT_LEN) {
            return Err(ClickEventError::UserAgent);
        }
        Ok(())
    }
}

/// Cuts a user-agent string to at most [`MAX_USER_AGENT_LEN`] bytes without splitting a character.
pub fn truncate_user_agent(ua: &str) -> &str {
    if ua.len() <= MAX_USER_AGENT_LEN {
        return ua;
    }
    let mut end = MAX_USER_AGENT_LEN;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn event() -> ClickEvent {
        let mut rng = StdRng::seed_from_u64(9);
        ClickEvent {
            v: Version,
            click_id: ClickId::generate(&mut rng),
            code: Code::parse("k7m2p9qr").unwrap(),
            link_id: Uuid::from_u128(7),
            occurred_at_ms: 1_764_000_000_000,
            visitor_id: VisitorId::generate(&mut rng),
            new_visitor: true,
            bot: false,
            country: Some("DE".into()),
            referrer_host: Some("l.instagram.com".into()),
            user_agent: Some("Mozilla/5.0".into()),
            source: ClickSource::Link,
        }
    }

    #[test]
    fn click_events_round_trip() {
        let e = event();
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.starts_with("{\"v\":1,"));
        assert_eq!(serde_json::from_str::<ClickEvent>(&json).unwrap(), e);
        assert_eq!(e.validate(), Ok(()));
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let mut e = event();
        e.country = None;
        e.referrer_host = None;
        e.user_agent = None;
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("country") && !json.contains("user_agent"));
        assert_eq!(serde_json::from_str::<ClickEvent>(&json).unwrap(), e);
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut e = event();
        e.country = Some("de".into());
        assert_eq!(e.validate(), Err(ClickEventError::Country));
        let mut e = event();
        e.referrer_host = Some("https://evil.example/path?q".into());
        assert_eq!(e.validate(), Err(ClickEventError::ReferrerHost));
        let mut e = event();
        e.user_agent = Some("x".repeat(513));
        assert_eq!(e.validate(), Err(ClickEventError::UserAgent));
        let mut e = event();
        e.occurred_at_ms = -1;
        assert_eq!(e.validate(), Err(ClickEventError::Time));
    }

    #[test]
    fn long_user_agents_are_cut_at_a_character_boundary() {
        let ua = "é".repeat(400);
        let cut = truncate_user_agent(&ua);
        assert!(cut.len() <= MAX_USER_AGENT_LEN);
        assert!(ua.starts_with(cut));
        assert_eq!(truncate_user_agent("short"), "short");
    }
}
