//! The link-sync routes through which the API writes link records into KV and deletes them.
//!
//! The bodies have the shape of Cloudflare's KV REST bulk endpoints, so the API can later talk to either.
//! Everything is checked before the first write: a batch is applied whole or not at all (as far as KV
//! allows), and a key or record this worker could not serve never reaches KV.

use serde::Deserialize;
use shared::{Code, LinkRecord};
use subtle::ConstantTimeEq;

/// Most entries in one request. A Worker may make at most 1,000 KV operations per invocation, and each
/// write or delete is one.
pub const MAX_ENTRIES: usize = 1_000;

/// Largest body accepted: 1,000 records of a 2,048-character destination plus JSON fit with room to spare.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One record to write, as in Cloudflare's KV bulk write body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    key: String,
    value: String,
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

/// Parses a bulk-write body into `(canonical code, record JSON)` pairs. The value is stored as sent
/// once it parses as a [`LinkRecord`] of this layout version.
pub fn parse_writes(body: &[u8]) -> Result<Vec<(Code, String)>, SyncError> {
    check_size(body.len())?;
    let entries: Vec<Entry> = serde_json::from_slice(body)
        .map_err(|e| SyncError::Invalid(format!("expected a JSON array of {{\"key\", \"value\"}} objects: {e}")))?;
    check_count(entries.len())?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let code = parse_key(i, &entry.key)?;
            LinkRecord::from_json(&entry.value)
                .map_err(|e| SyncError::Invalid(format!("[{i}].value is not a link record: {e}")))?;
            Ok((code, entry.value))
        })
        .collect()
}

/// Parses a bulk-delete body (a JSON array of codes) into canonical codes.
pub fn parse_deletes(body: &[u8]) -> Result<Vec<Code>, SyncError> {
    check_size(body.len())?;
    let keys: Vec<String> =
        serde_json::from_slice(body).map_err(|e| SyncError::Invalid(format!("expected a JSON array of codes: {e}")))?;
    check_count(keys.len())?;
    keys.iter().enumerate().map(|(i, key)| parse_key(i, key)).collect()
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
    fn writes_parse_to_canonical_codes_and_the_values_as_sent() {
        let value = record_json("https://shop.example/a");
        let parsed = parse_writes(&body(&[("K7M2P9QR", value.clone())])).unwrap();
        assert_eq!(parsed, vec![(Code::parse("k7m2p9qr").unwrap(), value)]);
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
    }

    #[test]
    fn deletes_parse_to_canonical_codes() {
        assert_eq!(
            parse_deletes(br#"["K7M2P9QR","abcdefgh"]"#).unwrap(),
            vec![Code::parse("k7m2p9qr").unwrap(), Code::parse("abcdefgh").unwrap()]
        );
        assert_eq!(parse_deletes(br#"["k7m2p9q0"]"#).unwrap_err().code(), "invalid_body");
        assert_eq!(parse_deletes(br#"[1]"#).unwrap_err().code(), "invalid_body");
    }

    #[test]
    fn too_many_entries_or_bytes_are_too_large() {
        let keys: Vec<String> = (0..=MAX_ENTRIES).map(|_| "abcdefgh".to_owned()).collect();
        let err = parse_deletes(&serde_json::to_vec(&keys).unwrap()).unwrap_err();
        assert_eq!((err.status(), err.code()), (413, "payload_too_large"));
        assert_eq!(check_size(MAX_BODY_BYTES + 1).unwrap_err().status(), 413);
        assert_eq!(check_size(MAX_BODY_BYTES), Ok(()));
    }
}
