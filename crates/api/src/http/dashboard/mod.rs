//! The brand dashboard: server-rendered pages under `/brand`, for a brand's people signed in with a
//! session, backed by the same functions as the REST handlers (link validation, listing, deletion,
//! reports), so the browser and `/v1` can never disagree.
//!
//! Pages are maud templates; a few lines of plain JavaScript (`/static/dashboard.js`) add copy buttons
//! and auto-submitting filters, and everything works without it.

use axum::extract::DefaultBodyLimit;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use super::error::Error;
use super::AppState;

mod attribution;
mod campaigns;
mod creators;
mod domains;
mod import;
mod links;
pub(crate) mod pages;
pub mod session;
pub(crate) mod views;
mod webhooks;

pub use session::SignInLimits;

static DASHBOARD_CSS: &str = include_str!("../../../static/dashboard.css");
static DASHBOARD_JS: &str = include_str!("../../../static/dashboard.js");

/// The largest body of the CSV import's forms.
const IMPORT_BODY_BYTES: usize = 1024 * 1024;

/// Where a signed-in person lands.
const HOME: &str = "/brand/attribution/links";

/// Why a dashboard request was not answered with its page. Rendered as HTML: the REST API's JSON
/// errors stay for `/v1`.
#[derive(Debug)]
pub enum DashError {
    /// No live session: off to the sign-in page, coming back to `next` afterwards.
    SignIn { next: Option<String> },
    /// A cross-site request or a missing or wrong form token.
    Forbidden(&'static str),
    /// No live session of the creators' portal: off to its sign-in page, coming back to `next`.
    PortalSignIn { next: Option<String> },
    /// A form or query the dashboard's own pages never send.
    BadRequest(String),
    /// What a link pointed to is no longer there (a used or expired invitation).
    Gone(&'static str),
    /// The request conflicts with what exists (an invitation for a creator who already joined).
    Conflict(String),
    /// What the shared code said (not found, conflicts, internal errors...).
    Api(Error),
}

impl From<Error> for DashError {
    fn from(e: Error) -> Self {
        DashError::Api(e)
    }
}

impl From<sqlx::Error> for DashError {
    fn from(e: sqlx::Error) -> Self {
        DashError::Api(e.into())
    }
}

/// Only paths of the dashboard itself are followed after sign-in (never another site), written as a
/// browser sends them: visible ASCII (anything else percent-encoded) forming a path and query. Anything
/// else leads to the default page.
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        n.starts_with("/brand/")
            && !n.contains('\\')
            && n.bytes().all(|b| b.is_ascii_graphic())
            && n.parse::<axum::http::uri::PathAndQuery>().is_ok()
    })
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            DashError::SignIn { next } => {
                let target = match safe_next(next.as_deref()) {
                    Some(next) => format!(
                        "/brand/sign-in?next={}",
                        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                    ),
                    None => "/brand/sign-in".to_owned(),
                };
                return Redirect::to(&target).into_response();
            }
            DashError::PortalSignIn { next } => {
                let target = match super::portal::safe_next(next.as_deref()) {
                    Some(next) => format!(
                        "/creator/sign-in?next={}",
                        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                    ),
                    None => "/creator/sign-in".to_owned(),
                };
                return Redirect::to(&target).into_response();
            }
            DashError::Forbidden(why) => (StatusCode::FORBIDDEN, "Request refused", why.to_owned()),
            DashError::Gone(why) => (StatusCode::GONE, "Link no longer valid", why.to_owned()),
            DashError::Conflict(why) => (StatusCode::CONFLICT, "Not possible", why),
            DashError::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", why),
            DashError::Api(Error::NotFound(what)) => {
                (StatusCode::NOT_FOUND, "Not found", format!("This {what} does not exist or is not yours."))
            }
            DashError::Api(Error::PayloadTooLarge) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "What you sent is larger than this page accepts: a CSV file can be at most 256 KiB.".to_owned(),
            ),
            DashError::Api(Error::RateLimited { .. }) => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many requests", "Please wait a minute and try again.".to_owned())
            }
            DashError::Api(e @ (Error::Database(_) | Error::Internal(_))) => {
                // Logged (and answered) exactly as the REST API would, then shown as a page.
                let status = e.into_response().status();
                (status, "Something went wrong", "An internal error occurred; please try again.".to_owned())
            }
            DashError::Api(e) => {
                let message = e.to_string();
                (e.into_response().status(), "Request refused", message)
            }
        };
        (status, views::error_page(title, &message)).into_response()
    }
}

/// Headers on every dashboard page: nothing from other origins (no CDN, no inline script), no
/// framing, no caching of pages that show a brand's data, no referrer leaking link ids.
pub(crate) fn page_headers(router: Router<AppState>) -> Router<AppState> {
    let set = |name, value: &'static str| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    router
        .layer(set(
            CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .layer(set(X_FRAME_OPTIONS, "DENY"))
        .layer(set(X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(REFERRER_POLICY, "same-origin"))
        .layer(set(CACHE_CONTROL, "no-store"))
}

/// `/brand/...` and the dashboard's static files.
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to(HOME) }))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in))
        .route("/sign-out", axum::routing::post(pages::sign_out))
        .route("/attribution", get(attribution::page))
        .route("/attribution.csv", get(attribution::export))
        .route("/attribution/orders.csv", get(attribution::export_orders))
        .route("/attribution/links", get(links::list).post(links::create))
        .route("/attribution/links.csv", get(links::export))
        .route("/attribution/links/new", get(links::new_form))
        // A CSV file of up to 256 KiB, and its text posted back (url-encoded, so up to three times longer).
        .route(
            "/attribution/links/import",
            get(import::form).post(import::preview).layer(DefaultBodyLimit::max(IMPORT_BODY_BYTES)),
        )
        .route(
            "/attribution/links/import/create",
            axum::routing::post(import::create).layer(DefaultBodyLimit::max(IMPORT_BODY_BYTES)),
        )
        .route("/attribution/links/{id}", get(links::detail))
        .route("/attribution/links/{id}/qr.svg", get(links::qr_svg))
        .route("/attribution/links/{id}/qr.png", get(links::qr_png))
        .route("/attribution/links/{id}/deactivate", get(links::confirm_deactivate).post(links::deactivate))
        .route("/creators", get(creators::page).post(creators::create))
        .route("/creators/{id}/revoke-tokens", axum::routing::post(creators::revoke_tokens))
        .route("/creators/{id}/invite", axum::routing::post(creators::invite))
        .route("/creators/{id}/unlink", axum::routing::post(creators::unlink))
        .route("/campaigns", get(campaigns::page).post(campaigns::create))
        .route("/domains", get(domains::page).post(domains::create))
        .route("/domains/{hostname}/remove", axum::routing::post(domains::remove))
        .route("/webhooks", get(webhooks::page).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::detail))
        .route("/webhooks/{id}/{action}", axum::routing::post(webhooks::act))
        .route("/webhooks/{id}/deliveries/{delivery_id}/retry", axum::routing::post(webhooks::retry))
        .fallback(|| async { DashError::Api(Error::NotFound("page")) })
        .layer(DefaultBodyLimit::max(super::MAX_BODY_BYTES));
    let assets = Router::new()
        .route("/static/dashboard.css", get(|| async { asset("text/css; charset=utf-8", DASHBOARD_CSS) }))
        .route("/static/dashboard.js", get(|| async { asset("application/javascript; charset=utf-8", DASHBOARD_JS) }));
    Router::new().nest("/brand", page_headers(pages)).merge(assets)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/brand/attribution?days=7")), Some("/brand/attribution?days=7"));
        assert_eq!(safe_next(Some("/brand/links?q=caf%C3%A9")), Some("/brand/links?q=caf%C3%A9"));
        for bad in [
            "https://evil.example/",
            "//evil.example/brand/",
            "/v1/links",
            "/brand\\..\\x",
            "/brand/café",
            "/brand/a b",
            "/brand/a\r\nSet-Cookie: x=1",
            "/brand/\u{7f}",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
    }
}
