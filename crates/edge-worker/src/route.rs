//! Which handler a request goes to, decided from its method and path alone (no I/O).

use shared::Code;

/// Path of the link-sync route that writes records into KV.
pub const KV_BULK_PATH: &str = "/_internal/kv/bulk";
/// Path of the link-sync route that deletes records from KV.
pub const KV_BULK_DELETE_PATH: &str = "/_internal/kv/bulk/delete";

/// The HTTP methods this worker tells apart; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// Any other method.
    Other,
}

impl Method {
    /// Classifies a method name as the runtime hands it over (upper case).
    pub fn parse(method: &str) -> Self {
        match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// Which link-sync operation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOp {
    /// Write link records.
    Write,
    /// Delete link records.
    Delete,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /{code}`: a click to resolve, record and redirect.
    Click(Code),
    /// `HEAD /{code}`: the same answer as a click, but nothing recorded and no cookie set.
    Peek(Code),
    /// `POST /_internal/kv/bulk[/delete]`.
    Sync(SyncOp),
    /// A link-sync path asked with another method than `POST`. Kept apart from
    /// [`Route::MethodNotAllowed`] because, with syncing disabled, these paths must not exist (404).
    SyncMethodNotAllowed,
    /// A path that can never be a link (including malformed codes). `head` says whether to omit the body.
    NotFound {
        /// The request was a `HEAD`.
        head: bool,
    },
    /// A known path asked with a method it does not serve.
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },
}

/// The path of a URL as the runtime serializes a request's (`https://host/path?query`), without its
/// query and fragment: the first `/` after the host starts it, and within it `?` and `#` always start
/// the query and the fragment. Borrowed, so routing a click allocates nothing.
pub fn path_of(url: &str) -> &str {
    let Some(after_scheme) = url.split_once(':').and_then(|(_, rest)| rest.strip_prefix("//")) else { return url };
    let Some(start) = after_scheme.find('/') else { return "/" };
    let path = &after_scheme[start..];
    path.find(['?', '#']).map_or(path, |end| &path[..end])
}

/// Routes a request. A malformed code is decided here, so it never costs a KV read.
pub fn route(method: Method, path: &str) -> Route {
    if path == KV_BULK_PATH || path == KV_BULK_DELETE_PATH {
        let op = if path == KV_BULK_PATH { SyncOp::Write } else { SyncOp::Delete };
        return match method {
            Method::Post => Route::Sync(op),
            _ => Route::SyncMethodNotAllowed,
        };
    }
    let head = method == Method::Head;
    // A code is the whole path after the leading slash: `/abc/def`, `/` or `/favicon.ico` are not links.
    let Some(code) = path.strip_prefix('/').and_then(|segment| Code::parse(segment).ok()) else {
        return Route::NotFound { head };
    };
    match method {
        Method::Get => Route::Click(code),
        Method::Head => Route::Peek(code),
        Method::Post | Method::Other => Route::MethodNotAllowed { allow: "GET, HEAD" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    #[test]
    fn the_path_is_what_a_url_parser_finds() {
        for url in [
            "https://trk.creatorscore.io/k7m2p9qr",
            "https://trk.creatorscore.io/k7m2p9qr?utm=1#x",
            "https://trk.creatorscore.io/k7m2p9qr#x?y",
            "https://trk.creatorscore.io",
            "https://trk.creatorscore.io/",
            "https://trk.creatorscore.io?q=/k7m2p9qr",
            "http://user:pw@127.0.0.1:8787/_internal/kv/bulk",
            "http://[::1]:8787/a/b%3Fc?d",
            "https://trk.creatorscore.io//k7m2p9qr",
        ] {
            let parsed = url::Url::parse(url).unwrap();
            assert_eq!(path_of(parsed.as_str()), parsed.path(), "{url}");
        }
    }

    #[test]
    fn a_code_path_is_a_click_for_get_and_a_peek_for_head() {
        assert_eq!(route(Method::Get, "/k7m2p9qr"), Route::Click(code("k7m2p9qr")));
        assert_eq!(route(Method::Head, "/k7m2p9qr"), Route::Peek(code("k7m2p9qr")));
    }

    #[test]
    fn uppercase_codes_route_to_their_canonical_form() {
        assert_eq!(route(Method::Get, "/K7M2P9QR"), Route::Click(code("k7m2p9qr")));
    }

    #[test]
    fn malformed_codes_and_other_paths_are_not_found() {
        for path in ["/", "", "/k7m2p9q", "/k7m2p9qr/", "/k7m2p9qr/x", "/k7m2p9q0", "/favicon.ico", "/_internal/kv"] {
            assert_eq!(route(Method::Get, path), Route::NotFound { head: false }, "{path}");
            assert_eq!(route(Method::Head, path), Route::NotFound { head: true }, "{path}");
        }
    }

    #[test]
    fn percent_encoded_paths_are_not_decoded_into_codes() {
        // The runtime hands over the raw path; an encoded code is not a code a link ever showed.
        assert_eq!(route(Method::Get, "/k7m2p9q%72"), Route::NotFound { head: false });
    }

    #[test]
    fn other_methods_on_a_code_are_not_allowed() {
        assert_eq!(route(Method::Post, "/k7m2p9qr"), Route::MethodNotAllowed { allow: "GET, HEAD" });
        assert_eq!(route(Method::Other, "/k7m2p9qr"), Route::MethodNotAllowed { allow: "GET, HEAD" });
    }

    #[test]
    fn sync_routes_take_only_post() {
        assert_eq!(route(Method::Post, KV_BULK_PATH), Route::Sync(SyncOp::Write));
        assert_eq!(route(Method::Post, KV_BULK_DELETE_PATH), Route::Sync(SyncOp::Delete));
        assert_eq!(route(Method::Get, KV_BULK_PATH), Route::SyncMethodNotAllowed);
        assert_eq!(route(Method::Head, KV_BULK_DELETE_PATH), Route::SyncMethodNotAllowed);
    }
}
