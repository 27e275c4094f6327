//! A browser for tests of the server-rendered pages: keeps cookies between requests, sends `Host`, and
//! posts forms url-encoded (or files as `multipart/form-data`) with the headers a browser sends for a
//! form of the same site.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::Api;

/// The host tests browse on: plain-http loopback, where cookies are neither `Secure` nor `__Host-`.
pub const LOCAL: &str = "127.0.0.1:8080";

/// A browser: keeps cookies, sends `Host`, and on POST the `Origin` and `Sec-Fetch-Site` a browser sends
/// for a form of the same site.
pub struct Browser<'a> {
    api: &'a Api,
    pub host: String,
    pub cookies: HashMap<String, String>,
    /// `X-Forwarded-For`, when set.
    pub client: Option<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The value of the page's first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let start = self.body.find(r#"name="csrf" value=""#).expect("a csrf field") + r#"name="csrf" value=""#.len();
        self.body[start..].split('"').next().unwrap_or_default().to_owned()
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect()
    }
}

impl<'a> Browser<'a> {
    pub fn new(api: &'a Api) -> Self {
        Browser { api, host: LOCAL.to_owned(), cookies: HashMap::new(), client: None }
    }

    pub async fn send(
        &mut self,
        method: Method,
        uri: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let body = form.map(|fields| {
            let mut encoded = url::form_urlencoded::Serializer::new(String::new());
            encoded.extend_pairs(fields.iter());
            ("application/x-www-form-urlencoded".to_owned(), Body::from(encoded.finish()))
        });
        self.send_body(method, uri, body, headers).await
    }

    /// A request with this body of this content type.
    pub async fn send_body(
        &mut self,
        method: Method,
        uri: &str,
        body: Option<(String, Body)>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = Request::builder().method(method).uri(uri).header(header::HOST, &self.host);
        if !self.cookies.is_empty() {
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(client) = &self.client {
            request = request.header("x-forwarded-for", client);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some((content_type, body)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => Body::empty(),
        };
        let response = self.api.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let page = Page { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() };
        for set in page.set_cookies() {
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        page
    }

    pub async fn get(&mut self, uri: &str) -> Page {
        self.send(Method::GET, uri, None, &[]).await
    }

    /// A form post from a page of this site.
    pub async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Page {
        let origin = format!("http://{}", self.host);
        self.send(Method::POST, uri, Some(form), &[("origin", &origin), ("sec-fetch-site", "same-origin")]).await
    }

    /// A file upload (`multipart/form-data`) from a page of this site: the fields, then the file.
    pub async fn upload(&mut self, uri: &str, fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> Page {
        let boundary = "----tracking-links-test-boundary";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        let (name, filename, contents) = file;
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                 Content-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(contents);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let origin = format!("http://{}", self.host);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let headers = [("origin", origin.as_str()), ("sec-fetch-site", "same-origin")];
        // Sent in pieces, as a browser streams a file: the body limit cuts it off part-way, not at once.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        self.send_body(Method::POST, uri, Some((content_type, body)), &headers).await
    }
}
