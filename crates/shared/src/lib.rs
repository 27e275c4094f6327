//! The rules both sides of the product must agree on.
//!
//! The edge worker (wasm32) and the API (native) both depend on this crate, so everything here is plain
//! Rust: no I/O, no async runtime, no clock and no global randomness. Callers pass in the time and a
//! cryptographically secure random number generator.

mod click;
mod code;
mod ids;
mod link;
mod version;

pub use click::{
    truncate_user_agent, ClickEvent, ClickEventError, CLICK_EVENT_VERSION, MAX_REFERRER_HOST_LEN, MAX_USER_AGENT_LEN,
};
pub use code::{Code, CodeError, CODE_ALPHABET, CODE_LEN};
pub use ids::{ClickId, IdError, VisitorId};
pub use link::{
    supersedes, ClickSource, ContentType, LinkRecord, LinkRecordError, LinkTombstone, Platform, RecordVersion,
    StoredLink, UnknownVariant, Utm, LINK_RECORD_VERSION, OLDEST_LINK_RECORD_VERSION,
};
pub use version::Version;
