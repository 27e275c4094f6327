//! The link-sync routes through which the API writes link records into KV and deletes them.
//!
//! The bodies have the shape of Cloudflare's KV REST bulk endpoints, so the API can talk to either.
//! Everything is checked before the first write: a batch is applied whole or not at all (as far as KV
//! allows), and a key or record this worker could not serve never reaches KV.
//!
//! Every entry carries its link's version, and a lower version than the one KV holds loses: the entry
//! is skipped and named in the answer (`stale`), so a push that arrives late (one whose answer was lost
//! and that the API has since overtaken) can never replace a newer record or bring a deactivated link
//! back. Deactivating a link therefore leaves a tombstone with its version (for
//! [`TOMBSTONE_TTL_SECONDS`]) rather than nothing.

use serde::{Deserialize, Serialize};
use shared::{supersedes, Code, LinkRecord, LinkTombstone, StoredLink};
use subtle::ConstantTimeEq;

use crate::redirect::Destination;

/// Most entries in one request. A Worker may make at most 1,000 KV operations per invocation, and each
/// versioned entry costs two: the read of what KV holds and the write.
pub const MAX_ENTRIES: usize = 500;

/// Largest body accepted: 500 records of a 2,048-character destination plus JSON fit with room to spare.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How long a deactivated link's tombstone stays in KV: far longer than any push can be in flight, and
/// longer than the API's reconciliation looks back (a day), after which KV forgets the code.
pub const TOMBSTONE_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;

/// One record to write, as in Cloudflare's KV bulk write body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    key: String,
    value: String,
}

/// One versioned delete: the code and the version that deactivated its link.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionedDelete {
    key: String,
    version: i64,
}

/// A checked record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The canonical code it is stored under.
    pub code: Code,
    /// The link's version, from the record.
    pub version: i64,
    /// The record's JSON, stored as sent.
    pub value: String,
}

/// A checked delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// The canonical code.
    pub code: Code,
    /// The version that deactivated the link (the API always sends it): a tombstone is written, and a
    /// newer record in KV wins. `None` for a bare code (Cloudflare's shape): the key is simply deleted.
    pub version: Option<i64>,
}

impl Delete {
    /// What to write instead of deleting: the tombstone of a versioned delete.
    pub fn tombstone(&self) -> Option<String> {
        self.version.map(|version| LinkTombstone::new(version).to_json())
    }
}

/// An entry skipped because KV holds a newer version of its link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stale {
    /// The code.
    pub key: String,
    /// The version KV holds.
    pub stored_version: i64,
}

/// Decides whether an entry of `version` may replace what KV holds under its code (`stored`, the raw
/// value, if any): `Err` with the stored version when that is newer. An unversioned delete always
/// applies, and so does an entry over a value that is not a link record at all (nothing to protect).
pub fn check_stored(version: Option<i64>, stored: Option<&str>) -> Result<(), i64> {
    let (Some(version), Some(stored)) = (version, stored) else { return Ok(()) };
    let Ok(stored) = StoredLink::from_json(stored) else { return Ok(()) };
    if supersedes(version, Some(stored.version())) {
        Ok(())
    } else {
        Err(stored.version())
    }
}

/// The JSON answer: how many entries were applied under `applied_name` (`written`, `deleted`) and,
/// only when there are any, the entries refused as stale.
pub fn summary(applied_name: &str, applied: usize, stale: &[Stale]) -> String {
    let mut answer = serde_json::Map::new();
    answer.insert(applied_name.to_owned(), applied.into());
    if !stale.is_empty() {
        answer.insert("stale".to_owned(), serde_json::to_value(stale).unwrap_or_default());
    }
    serde_json::Value::Object(answer).to_string()
}

/// A request that cannot be applied, with the status and error code it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// 401 `unauthorized`.
    Unauthorized,
    /// 413 `payload_too_large`.
    TooLarge(String),
    /// 400 `invalid_body`, saying which entry is wrong.
    Invalid(String),
    /// 500 `internal_error`: KV failed part-way; the caller retries (writes and deletes are idempotent).
    Internal,
}

impl SyncError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            SyncError::Unauthorized => 401,
            SyncError::TooLarge(_) => 413,
            SyncError::Invalid(_) => 400,
            SyncError::Internal => 500,
        }
    }

    /// The snake_case error code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Unauthorized => "unauthorized",
            SyncError::TooLarge(_) => "payload_too_large",
            SyncError::Invalid(_) => "invalid_body",
            SyncError::Internal => "internal_error",
        }
    }

    /// The human sentence of the JSON error body.
    pub fn message(&self) -> String {
        match self {
            SyncError::Unauthorized => "missing or invalid bearer token".to_owned(),
            SyncError::Internal => "the link store could not be updated; retry the request".to_owned(),
            SyncError::TooLarge(m) | SyncError::Invalid(m) => m.clone(),
        }
    }
}

/// Checks `Authorization: Bearer <token>` against the configured token in constant time, so the
/// answer's timing says nothing about how much of a guess was right.
pub fn authorize(authorization: Option<&str>, token: &str) -> Result<(), SyncError> {
    let presented = authorization
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .unwrap_or_default();
    let equal: bool = presented.as_bytes().ct_eq(token.as_bytes()).into();
    if token.is_empty() || !equal {
        return Err(SyncError::Unauthorized);
    }
    Ok(())
}

/// Refuses a body larger than [`MAX_BODY_BYTES`], by its declared or actual length.
pub fn check_size(len: usize) -> Result<(), SyncError> {
    if len > MAX_BODY_BYTES {
        return Err(SyncError::TooLarge(format!("the body must be at most {MAX_BODY_BYTES} bytes")));
    }
    Ok(())
}

/// Parses a bulk-write body into checked writes. A value is stored as sent once it parses as a
/// [`LinkRecord`] of this layout version whose destination this worker would redirect to.
pub fn parse_writes(body: &[u8]) -> Result<Vec<Write>, SyncError> {
    check_size(body.len())?;
    let entries: Vec<Entry> = serde_json::from_slice(body)
        .map_err(|e| SyncError::Invalid(format!("expected a JSON array of {{\"key\", \"value\"}} objects: {e}")))?;
    check_count(entries.len())?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let code = parse_key(i, &entry.key)?;
            let record = LinkRecord::from_json(&entry.value)
                .map_err(|e| SyncError::Invalid(format!("[{i}].value is not a link record: {e}")))?;
            Destination::parse(&record.destination_url)
                .map_err(|e| SyncError::Invalid(format!("[{i}].value has a destination the edge refuses: {e}")))?;
            Ok(Write { code, version: record.version, value: entry.value })
        })
        .collect()
}

/// Parses a bulk-delete body: a JSON array of codes, or of `{"key", "version"}` objects.
pub fn parse_deletes(body: &[u8]) -> Result<Vec<Delete>, SyncError> {
    check_size(body.len())?;
    let entries: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        SyncError::Invalid(format!("expected a JSON array of codes or {{\"key\", \"version\"}} objects: {e}"))
    })?;
    check_count(entries.len())?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| match entry {
            serde_json::Value::String(key) => Ok(Delete { code: parse_key(i, &key)?, version: None }),
            other => {
                let versioned: VersionedDelete = serde_json::from_value(other).map_err(|e| {
                    SyncError::Invalid(format!("[{i}] is neither a code nor a {{\"key\", \"version\"}} object: {e}"))
                })?;
                Ok(Delete { code: parse_key(i, &versioned.key)?, version: Some(versioned.version) })
            }
        })
        .collect()
}

fn check_count(n: usize) -> Result<(), SyncError> {
    if n > MAX_ENTRIES {
        return Err(SyncError::TooLarge(format!("at most {MAX_ENTRIES} entries per request")));
    }
    Ok(())
}

fn parse_key(i: usize, key: &str) -> Result<Code, SyncError> {
    Code::parse(key).map_err(|e| SyncError::Invalid(format!("[{i}].key {key:?} is not a tracking code: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn record_json(dest: &str) -> String {
        LinkRecord::new(Uuid::from_u128(9), dest.into(), 1).to_json()
    }

    fn body(entries: &[(&str, String)]) -> Vec<u8> {
        let array: Vec<_> = entries.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect();
        serde_json::to_vec(&array).unwrap()
    }

    #[test]
    fn the_right_bearer_token_is_authorized() {
        assert_eq!(authorize(Some("Bearer s3cret"), "s3cret"), Ok(()));
    }

    #[test]
    fn missing_wrong_or_malformed_tokens_are_unauthorized() {
        for header in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            assert_eq!(authorize(header, "s3cret"), Err(SyncError::Unauthorized), "{header:?}");
        }
        // An empty configured token never matches, not even an empty presented one.
        assert_eq!(authorize(Some("Bearer "), ""), Err(SyncError::Unauthorized));
    }

    #[test]
    fn writes_parse_to_canonical_codes_their_versions_and_the_values_as_sent() {
        let value = record_json("https://shop.example/a");
        let parsed = parse_writes(&body(&[("K7M2P9QR", value.clone())])).unwrap();
        assert_eq!(parsed, vec![Write { code: Code::parse("k7m2p9qr").unwrap(), version: 1, value }]);
        assert_eq!(parse_writes(b"[]").unwrap(), vec![]);
    }

    #[test]
    fn a_write_with_a_bad_key_or_value_is_refused_whole_and_names_the_entry() {
        let good = record_json("https://shop.example/a");
        let err = parse_writes(&body(&[("k7m2p9qr", good.clone()), ("nope", good.clone())])).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message().contains("[1].key"), "{}", err.message());
        let err = parse_writes(&body(&[("k7m2p9qr", "{\"v\":9}".into())])).unwrap_err();
        assert!(err.message().contains("[0].value"), "{}", err.message());
        assert_eq!(parse_writes(b"{\"key\":\"k7m2p9qr\"}").unwrap_err().code(), "invalid_body");
        assert_eq!(parse_writes(b"not json").unwrap_err().code(), "invalid_body");
        let extra = br#"[{"key":"k7m2p9qr","value":"{}","expiration_ttl":60}]"#;
        assert_eq!(parse_writes(extra).unwrap_err().code(), "invalid_body");
        // A tombstone is not a record to write: deletes make them.
        let tombstone = LinkTombstone::new(3).to_json();
        assert_eq!(parse_writes(&body(&[("k7m2p9qr", tombstone)])).unwrap_err().code(), "invalid_body");
    }

    #[test]
    fn a_record_the_edge_would_not_redirect_to_never_reaches_kv() {
        let good = record_json("https://shop.example/a");
        for destination in ["javascript:alert(1)", "data:text/html,x", "https://user:pw@shop.example/", "/relative"] {
            let err =
                parse_writes(&body(&[("abcdefgh", good.clone()), ("k7m2p9qr", record_json(destination))])).unwrap_err();
            assert_eq!(err.status(), 400, "{destination}");
            assert!(err.message().contains("[1].value has a destination"), "{destination}: {}", err.message());
        }
    }

    #[test]
    fn deletes_parse_bare_codes_and_versioned_entries() {
        assert_eq!(
            parse_deletes(br#"["K7M2P9QR",{"key":"abcdefgh","version":4}]"#).unwrap(),
            vec![
                Delete { code: Code::parse("k7m2p9qr").unwrap(), version: None },
                Delete { code: Code::parse("abcdefgh").unwrap(), version: Some(4) },
            ]
        );
        for bad in [
            &br#"["k7m2p9q0"]"#[..],
            br#"[1]"#,
            br#"[{"key":"abcdefgh"}]"#,
            br#"[{"key":"abcdefgh","version":"4"}]"#,
            br#"[{"key":"abcdefgh","version":4,"x":1}]"#,
            br#"[{"key":"abcdefg0","version":4}]"#,
        ] {
            let err = parse_deletes(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_body", "{}", String::from_utf8_lossy(bad));
            assert!(err.message().contains("[0]"), "{}", err.message());
        }
    }

    #[test]
    fn a_versioned_delete_leaves_a_tombstone_and_a_bare_one_deletes() {
        let versioned = Delete { code: Code::parse("abcdefgh").unwrap(), version: Some(4) };
        assert_eq!(versioned.tombstone(), Some(r#"{"v":2,"deleted_version":4}"#.to_owned()));
        assert_eq!(Delete { version: None, ..versioned }.tombstone(), None);
    }

    #[test]
    fn a_lower_version_than_kv_holds_is_stale_and_an_equal_or_higher_one_applies() {
        let stored = LinkRecord::new(Uuid::from_u128(9), "https://shop.example/".into(), 5).to_json();
        assert_eq!(check_stored(Some(4), Some(&stored)), Err(5));
        assert_eq!(check_stored(Some(5), Some(&stored)), Ok(()));
        assert_eq!(check_stored(Some(6), Some(&stored)), Ok(()));
        // A tombstone keeps its version: an older record cannot bring the link back.
        let tombstone = LinkTombstone::new(7).to_json();
        assert_eq!(check_stored(Some(6), Some(&tombstone)), Err(7));
        assert_eq!(check_stored(Some(7), Some(&tombstone)), Ok(()));
        // Nothing stored, something unreadable stored, or a bare delete: nothing to protect.
        assert_eq!(check_stored(Some(1), None), Ok(()));
        assert_eq!(check_stored(Some(1), Some("stale")), Ok(()));
        assert_eq!(check_stored(None, Some(&stored)), Ok(()));
    }

    #[test]
    fn the_answer_names_stale_entries_only_when_there_are_some() {
        assert_eq!(summary("written", 2, &[]), r#"{"written":2}"#);
        let stale = [Stale { key: "abcdefgh".into(), stored_version: 9 }];
        assert_eq!(summary("deleted", 0, &stale), r#"{"deleted":0,"stale":[{"key":"abcdefgh","stored_version":9}]}"#);
    }

    #[test]
    fn too_many_entries_or_bytes_are_too_large() {
        let keys: Vec<String> = (0..=MAX_ENTRIES).map(|_| "abcdefgh".to_owned()).collect();
        let err = parse_deletes(&serde_json::to_vec(&keys).unwrap()).unwrap_err();
        assert_eq!((err.status(), err.code()), (413, "payload_too_large"));
        assert_eq!(parse_deletes(&serde_json::to_vec(&keys[1..]).unwrap()).unwrap().len(), MAX_ENTRIES);
        assert_eq!(check_size(MAX_BODY_BYTES + 1).unwrap_err().status(), 413);
        assert_eq!(check_size(MAX_BODY_BYTES), Ok(()));
    }
}
