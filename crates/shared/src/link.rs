use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::version::Version;

/// The version of the [`LinkRecord`] JSON layout. Bump it (and teach the edge both) on any change an
/// older worker would misread. Version 2 added the custom domain, UTM tags and expiry: a worker of
/// version 1 would redirect on any host, without the tags, forever.
pub const LINK_RECORD_VERSION: u8 = 2;

/// The oldest record layout this build still reads (version 2 only added optional fields).
pub const OLDEST_LINK_RECORD_VERSION: u8 = 1;

/// The version tag of link records and tombstones: written as [`LINK_RECORD_VERSION`], read back to
/// [`OLDEST_LINK_RECORD_VERSION`].
pub type RecordVersion = Version<LINK_RECORD_VERSION, OLDEST_LINK_RECORD_VERSION>;

/// A string that names no variant of one of the enums below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownVariant(pub String);

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case wire name, also used in storage.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(UnknownVariant(other.to_owned())),
                }
            }
        }
    };
}

wire_enum!(
    /// Where the creator shares the link.
    Platform {
        /// Instagram.
        Instagram = "instagram",
        /// TikTok.
        Tiktok = "tiktok",
        /// YouTube.
        Youtube = "youtube",
        /// X (formerly Twitter).
        X = "x",
        /// Facebook.
        Facebook = "facebook",
        /// LinkedIn.
        Linkedin = "linkedin",
    }
);

wire_enum!(
    /// What kind of content carries the link.
    ContentType {
        /// A paid, sponsored post.
        SponsoredPost = "sponsored_post",
        /// A story.
        Story = "story",
        /// A reel or short.
        Reel = "reel",
        /// A long-form video.
        Video = "video",
        /// The link in the creator's bio.
        BioLink = "bio_link",
        /// An affiliate link.
        Affiliate = "affiliate",
    }
);

wire_enum!(
    /// Where a click came from.
    ClickSource {
        /// The short link itself.
        Link = "link",
        /// A scan of the link's QR code (which carries `?qr=1`).
        Qr = "qr",
    }
);

impl ClickSource {
    /// The source of a click event that names none.
    pub fn link() -> Self {
        ClickSource::Link
    }

    /// Whether this is the default, [`ClickSource::Link`] (left out of click events).
    pub fn is_link(&self) -> bool {
        *self == ClickSource::Link
    }
}

/// What the edge stores in Workers KV under a link's code: what it needs to redirect a visitor and to
/// attribute the click, nothing more. Inactive links are not stored at all (their key is deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// Layout version, written as [`LINK_RECORD_VERSION`]; a record of an unknown version fails to parse.
    pub v: RecordVersion,
    /// The link the click is credited to.
    pub link_id: Uuid,
    /// Where the visitor is sent (an absolute http or https URL, validated by the API).
    pub destination_url: String,
    /// Monotonic version of the link: a sync carrying a lower version than the one stored loses.
    pub version: i64,
    /// The brand's own short domain the link is on (lowercase host name); `None`: the default domain only.
    /// The link redirects on this host and on the default domain, and is unknown on every other host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// UTM tags added to the destination, never replacing one the destination already carries.
    #[serde(default, skip_serializing_if = "Utm::is_empty")]
    pub utm: Utm,
    /// From this instant (milliseconds since the Unix epoch) the link no longer counts clicks: visitors go
    /// to `expired_url`, or get the not-found page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Where visitors of an expired link go (an absolute http or https URL), without a click id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_url: Option<String>,
}

/// The UTM tags a link adds to its destination, so that the brand's analytics credit the visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl Utm {
    /// Whether no tag is set.
    pub fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }

    /// The tags that are set, as query parameter names and values, in the conventional order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("utm_source", &self.source),
            ("utm_medium", &self.medium),
            ("utm_campaign", &self.campaign),
            ("utm_term", &self.term),
            ("utm_content", &self.content),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|value| (key, value)))
    }

    /// Appends `key=value&` to `out` for each tag whose parameter the raw query `existing` (the part after
    /// `?`, as written) lacks, the value form-encoded. A parameter already there, however its name is
    /// encoded and whatever its value, is the destination's own and stays as it is.
    pub fn append_missing(&self, existing: &str, out: &mut String) {
        for (key, value) in self.pairs() {
            let present = existing.split('&').any(|pair| {
                let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
                raw_key == key
                    || (raw_key.contains(['%', '+'])
                        && url::form_urlencoded::parse(raw_key.as_bytes()).next().is_some_and(|(k, _)| k == key))
            });
            if !present {
                out.push_str(key);
                out.push('=');
                out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
                out.push('&');
            }
        }
    }

    /// `destination` with the tags it lacks added at the end of its query (the fragment kept): where the
    /// edge sends a visitor, before the click id. A string that is not a URL is returned as it is.
    pub fn apply(&self, destination: &str) -> String {
        let Ok(mut url) = url::Url::parse(destination) else { return destination.to_owned() };
        let existing = url.query().unwrap_or_default().to_owned();
        let mut added = String::new();
        self.append_missing(&existing, &mut added);
        if added.is_empty() {
            return destination.to_owned();
        }
        added.pop();
        let query = if existing.is_empty() { added } else { format!("{existing}&{added}") };
        url.set_query(Some(&query));
        url.into()
    }
}

/// Why bytes read from KV are not a link record this worker understands.
#[derive(Debug, thiserror::Error)]
#[error("invalid link record: {0}")]
pub struct LinkRecordError(#[from] serde_json::Error);

impl LinkRecord {
    /// A record of the current layout.
    pub fn new(link_id: Uuid, destination_url: String, version: i64) -> Self {
        LinkRecord {
            v: Version,
            link_id,
            destination_url,
            version,
            domain: None,
            utm: Utm::default(),
            expires_at_ms: None,
            expired_url: None,
        }
    }

    /// The JSON stored in KV.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a KV value.
    pub fn from_json(json: &str) -> Result<Self, LinkRecordError> {
        Ok(serde_json::from_str(json)?)
    }
}

/// Whether a change of a link at `incoming` version may replace what KV holds at `stored` (`None`: nothing,
/// or nothing readable). A lower version loses; an equal one is the same change sent again and applies.
pub fn supersedes(incoming: i64, stored: Option<i64>) -> bool {
    stored.is_none_or(|stored| incoming >= stored)
}

/// What a deactivated link leaves in KV for a while instead of nothing: the version that deactivated it,
/// so that a write of an older version arriving late (a push whose answer was lost, still in flight)
/// loses instead of bringing the link back. The edge answers a tombstone as it answers an unknown code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkTombstone {
    /// Layout version, written as [`LINK_RECORD_VERSION`].
    pub v: RecordVersion,
    /// The link's version when it was deactivated.
    pub deleted_version: i64,
}

impl LinkTombstone {
    /// The tombstone of a link deactivated at `version`.
    pub fn new(version: i64) -> Self {
        LinkTombstone { v: Version, deleted_version: version }
    }

    /// The JSON stored in KV.
    pub fn to_json(&self) -> String {
        // Serialising a struct of integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What KV holds under a code: a link to redirect to, or the tombstone of a deactivated one.
// One value lives for one request at a time: boxing the live record would save nothing worth a
// pointer (and the edge's wasm reads it on every redirect).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredLink {
    /// An active link.
    Live(LinkRecord),
    /// A deactivated link, remembered for its version.
    Deleted(LinkTombstone),
}

impl StoredLink {
    /// Parses a KV value: a [`LinkRecord`] (tried first: it is what nearly every read finds), else a
    /// [`LinkTombstone`]. The error is the record's, which says more about a value that is neither.
    pub fn from_json(json: &str) -> Result<Self, LinkRecordError> {
        match LinkRecord::from_json(json) {
            Ok(record) => Ok(StoredLink::Live(record)),
            Err(e) => serde_json::from_str(json).map(StoredLink::Deleted).map_err(|_| e),
        }
    }

    /// The link's version this value was written at.
    pub fn version(&self) -> i64 {
        match self {
            StoredLink::Live(record) => record.version,
            StoredLink::Deleted(tombstone) => tombstone.deleted_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_snake_case_wire_names() {
        assert_eq!(serde_json::to_string(&Platform::Tiktok).unwrap(), "\"tiktok\"");
        assert_eq!(serde_json::to_string(&ContentType::SponsoredPost).unwrap(), "\"sponsored_post\"");
        assert_eq!("bio_link".parse::<ContentType>(), Ok(ContentType::BioLink));
        assert!("Instagram".parse::<Platform>().is_err());
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>(), Ok(*p));
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{p}\""));
        }
        for c in ContentType::ALL {
            assert_eq!(c.as_str().parse::<ContentType>(), Ok(*c));
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{c}\""));
        }
    }

    #[test]
    fn link_records_round_trip_with_their_version() {
        let record = LinkRecord::new(Uuid::from_u128(42), "https://shop.example/p?x=1#top".into(), 3);
        let json = record.to_json();
        assert!(json.starts_with("{\"v\":2,"), "{json}");
        assert_eq!(LinkRecord::from_json(&json).unwrap(), record);
        // Unset optional fields are left out, so a plain link's record stays as small as before.
        assert!(!json.contains("utm") && !json.contains("domain") && !json.contains("expire"), "{json}");
    }

    #[test]
    fn records_of_the_previous_layout_still_read() {
        let json = r#"{"v":1,"link_id":"00000000-0000-0000-0000-00000000002a","destination_url":"https://a.example/","version":4}"#;
        assert_eq!(
            LinkRecord::from_json(json).unwrap(),
            LinkRecord::new(Uuid::from_u128(42), "https://a.example/".into(), 4)
        );
        let tombstone = StoredLink::from_json(r#"{"v":1,"deleted_version":4}"#).unwrap();
        assert_eq!(tombstone.version(), 4);
    }

    #[test]
    fn records_carry_domain_utm_and_expiry() {
        let mut record = LinkRecord::new(Uuid::from_u128(42), "https://shop.example/".into(), 3);
        record.domain = Some("go.brand.example".into());
        record.utm = Utm { source: Some("instagram".into()), medium: Some("creator".into()), ..Utm::default() };
        record.expires_at_ms = Some(1_800_000_000_000);
        record.expired_url = Some("https://shop.example/sale-over".into());
        let json = record.to_json();
        assert!(json.contains(r#""utm":{"source":"instagram","medium":"creator"}"#), "{json}");
        assert_eq!(LinkRecord::from_json(&json).unwrap(), record);
    }

    #[test]
    fn utm_tags_never_replace_the_destinations_own() {
        let utm = Utm {
            source: Some("instagram".into()),
            medium: Some("creator".into()),
            campaign: Some("Spring drop & more".into()),
            ..Utm::default()
        };
        assert_eq!(
            utm.apply("https://shop.example/p"),
            "https://shop.example/p?utm_source=instagram&utm_medium=creator&utm_campaign=Spring+drop+%26+more"
        );
        assert_eq!(
            utm.apply("https://shop.example/p?utm_source=newsletter&a=1#top"),
            "https://shop.example/p?utm_source=newsletter&a=1&utm_medium=creator&utm_campaign=Spring+drop+%26+more#top"
        );
        // An encoded name is the same parameter; an empty value is still the destination's choice.
        assert_eq!(
            utm.apply("https://shop.example/p?utm%5Fsource=x&utm_medium=&utm_campaign"),
            "https://shop.example/p?utm%5Fsource=x&utm_medium=&utm_campaign"
        );
        assert_eq!(Utm::default().apply("https://shop.example/p?a=1"), "https://shop.example/p?a=1");
        assert!(Utm::default().is_empty() && !utm.is_empty());
    }

    #[test]
    fn a_lower_version_loses_and_an_equal_one_applies_again() {
        assert!(supersedes(3, None));
        assert!(supersedes(3, Some(2)));
        assert!(supersedes(3, Some(3)));
        assert!(!supersedes(3, Some(4)));
    }

    #[test]
    fn kv_values_are_live_records_or_tombstones_with_their_versions() {
        let record = LinkRecord::new(Uuid::from_u128(42), "https://shop.example/".into(), 3);
        let live = StoredLink::from_json(&record.to_json()).unwrap();
        assert_eq!((live.version(), &live), (3, &StoredLink::Live(record)));
        let json = LinkTombstone::new(4).to_json();
        assert_eq!(json, r#"{"v":2,"deleted_version":4}"#);
        let deleted = StoredLink::from_json(&json).unwrap();
        assert_eq!((deleted.version(), &deleted), (4, &StoredLink::Deleted(LinkTombstone::new(4))));
        // A tombstone is never half-read as a record, nor anything else as a tombstone.
        assert!(LinkRecord::from_json(&json).is_err());
        for other in [r#"{"v":3,"deleted_version":4}"#, r#"{"v":2,"deleted_version":4,"x":1}"#, "[]", "stale"] {
            assert!(StoredLink::from_json(other).is_err(), "{other}");
        }
    }

    #[test]
    fn link_records_of_another_version_are_refused() {
        let json = r#"{"v":3,"link_id":"00000000-0000-0000-0000-00000000002a","destination_url":"https://a.example/","version":1}"#;
        assert!(LinkRecord::from_json(json).is_err());
        assert!(LinkRecord::from_json("not json").is_err());
    }
}
