//! Extractors that answer their rejections in our JSON error shape.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::Error;
use super::AppState;
use crate::client::ClientKey;

/// `axum::Json`, with rejections as [`Error`]s (422 for bad fields, 400 for bad JSON, 413 for size): the
/// fast path for the edge's click batches. Public bodies are read by [`super::json::Json`], as their
/// OpenAPI schemas describe them.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Json<T>(pub T);

/// `axum::extract::Query`, with rejections as 400 [`Error`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, where a malformed id is a 404 like any id the caller cannot see.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

/// The client a request comes from, as the rate limits count it: from the header `CLIENT_IP_SOURCE`
/// names, else the TCP peer (see [`crate::client`]). Only ever a key in memory; never stored.
pub struct Client(pub ClientKey);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let source = state.config.client_ip_source;
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        // A line that is not text keeps its place (entries are counted from the right) but names nobody.
        let lines = source.header().into_iter().flat_map(|name| parts.headers.get_all(name));
        let address = source.client_address(peer, lines.map(|v| v.to_str().unwrap_or("")));
        Ok(Client(ClientKey::from(address)))
    }
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `limit` and `cursor`, shared by every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many items (1–200, default 50; else 400 `invalid_limit`).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<crate::schema::Cursor>)]
    pub cursor: Option<String>,
}

/// A validated page request: lists are ordered newest first by an internal sequence number, and the
/// cursor is that number, opaque to clients.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub before_seq: Option<i64>,
}

impl Page {
    pub fn parse(&self) -> Result<PageRequest, Error> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::bad_request("invalid_limit", format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let before_seq = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(PageRequest { limit, before_seq })
    }
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<i64, Error> {
    let invalid = || Error::bad_request("invalid_cursor", "cursor is not one this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    text.strip_prefix("s:").and_then(|n| n.parse().ok()).ok_or_else(invalid)
}

fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s:{seq}"))
}

/// `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// Builds a page from rows fetched with `limit + 1`, each paired with its sequence number: the
    /// extra row only tells whether there is a next page.
    pub fn from_rows(mut rows: Vec<(i64, T)>, page: PageRequest) -> Self {
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more { rows.last().map(|(seq, _)| encode_cursor(*seq)) } else { None };
        List { data: rows.into_iter().map(|(_, item)| item).collect(), next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:1")).is_err());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        for limit in [0, -1, 201] {
            assert!(Page { limit: Some(limit), cursor: None }.parse().is_err());
        }
        assert_eq!(Page::default().parse().unwrap().limit, 50);
    }
}
