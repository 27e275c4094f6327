//! Every response the worker gives, described as plain data; the wasm glue only copies it into a
//! runtime `Response`. Keeping them here lets native tests pin statuses and headers exactly.

use std::borrow::Cow;

use serde_json::json;

use crate::click::Visit;

/// `Cache-Control` on every answer: a redirect carries a fresh click id and cookie, and a 404 may turn
/// into a link tomorrow, so no browser or shared cache may keep either.
pub const NO_STORE: &str = "private, no-store";

/// The page a visitor sees for an unknown, malformed or deactivated link.
pub const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\">\
<title>Link not found</title></head>\n<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">\
<h1>Link not found</h1><p>This link does not exist or is no longer active.</p></body></html>\n";

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body (redirects, and every answer to `HEAD`).
    Empty,
    /// An HTML page.
    Html(&'static str),
    /// A JSON document.
    Json(String),
}

/// A response, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order, each name at most once (the glue hands them to the runtime as an object).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// Body.
    pub body: Body,
}

impl Answer {
    /// `302` to the visit's location, with its cookie if any (the visit's event is recorded apart).
    pub fn redirect(visit: Visit) -> Self {
        let mut headers = Vec::with_capacity(3);
        headers.push(("Location", Cow::Owned(visit.location)));
        headers.push(("Cache-Control", Cow::Borrowed(NO_STORE)));
        if let Some(cookie) = visit.set_cookie {
            headers.push(("Set-Cookie", Cow::Owned(cookie)));
        }
        Answer { status: 302, headers, body: Body::Empty }
    }

    /// `302` to an expired link's `expired_url`: no click id, no cookie.
    pub fn expired(location: String) -> Self {
        Answer {
            status: 302,
            headers: vec![("Location", Cow::Owned(location)), ("Cache-Control", Cow::Borrowed(NO_STORE))],
            body: Body::Empty,
        }
    }

    /// `404` with the small HTML page (no body for `HEAD`).
    pub fn not_found(head: bool) -> Self {
        Answer {
            status: 404,
            headers: vec![
                ("Content-Type", Cow::Borrowed("text/html; charset=utf-8")),
                ("Cache-Control", Cow::Borrowed(NO_STORE)),
            ],
            body: if head { Body::Empty } else { Body::Html(NOT_FOUND_PAGE) },
        }
    }

    /// `405` naming the methods the path does serve.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut answer = Self::json_error(405, "method_not_allowed", &format!("this path only answers {allow}"));
        answer.headers.push(("Allow", Cow::Borrowed(allow)));
        answer
    }

    /// A JSON error in the product's shape: `{"error": {"code", "message"}}`.
    pub fn json_error(status: u16, code: &str, message: &str) -> Self {
        Self::json(status, json!({"error": {"code": code, "message": message}}).to_string())
    }

    /// `503` when the worker cannot reach KV; the visitor may retry. (A record it cannot read is a 404.)
    pub fn unavailable() -> Self {
        Self::json_error(503, "unavailable", "the link service is temporarily unavailable, please retry")
    }

    /// A JSON document.
    pub fn json(status: u16, body: String) -> Self {
        Answer {
            status,
            headers: vec![
                ("Content-Type", Cow::Borrowed("application/json")),
                ("Cache-Control", Cow::Borrowed(NO_STORE)),
            ],
            body: Body::Json(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(answer: &'a Answer, name: &str) -> Vec<&'a str> {
        answer.headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_ref()).collect()
    }

    #[test]
    fn no_answer_names_a_header_twice() {
        let visit = Visit { location: "https://a.example/".into(), set_cookie: Some("_cs_pv=y".into()), event: None };
        for answer in [
            Answer::redirect(visit),
            Answer::not_found(false),
            Answer::not_found(true),
            Answer::method_not_allowed("POST"),
            Answer::unavailable(),
            Answer::json(200, "{}".into()),
        ] {
            let mut names: Vec<_> = answer.headers.iter().map(|(name, _)| name.to_ascii_lowercase()).collect();
            let all = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all, "{answer:?}");
        }
    }

    #[test]
    fn a_redirect_is_a_302_that_no_cache_keeps() {
        let visit =
            Visit { location: "https://a.example/?cs_ref=x".into(), set_cookie: Some("_cs_pv=y".into()), event: None };
        let answer = Answer::redirect(visit);
        assert_eq!(answer.status, 302);
        assert_eq!(header(&answer, "Location"), ["https://a.example/?cs_ref=x"]);
        assert_eq!(header(&answer, "Cache-Control"), ["private, no-store"]);
        assert_eq!(header(&answer, "Set-Cookie"), ["_cs_pv=y"]);
        assert_eq!(answer.body, Body::Empty);
    }

    #[test]
    fn a_redirect_without_cookie_sets_none() {
        let visit = Visit { location: "https://a.example/".into(), set_cookie: None, event: None };
        assert!(header(&Answer::redirect(visit), "Set-Cookie").is_empty());
    }

    #[test]
    fn not_found_is_a_small_html_page_without_body_for_head() {
        let get = Answer::not_found(false);
        assert_eq!(get.status, 404);
        assert_eq!(header(&get, "Content-Type"), ["text/html; charset=utf-8"]);
        assert!(matches!(get.body, Body::Html(page) if page.contains("Link not found") && page.len() < 1024));
        assert_eq!(Answer::not_found(true).body, Body::Empty);
    }

    #[test]
    fn errors_use_the_products_json_shape() {
        let answer = Answer::method_not_allowed("GET, HEAD");
        assert_eq!(answer.status, 405);
        assert_eq!(header(&answer, "Allow"), ["GET, HEAD"]);
        let Body::Json(body) = answer.body else { panic!("not json") };
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["error"]["code"], "method_not_allowed");
        assert!(value["error"]["message"].is_string());
    }
}
