//! Signing in to the dashboard, sessions, and the checks every dashboard form passes.
//!
//! - A session is a 256-bit random token in an HttpOnly, SameSite=Lax cookie that expires with the
//!   session; the database keeps only its SHA-256 (looked up by hash, so no comparison leaks timing).
//!   Sessions end after [`IDLE_TIMEOUT`] without a request, after [`ABSOLUTE_LIFETIME`] whatever
//!   happens, and at sign-out, which deletes the row. `api user disable` and `api user reset-password`
//!   delete a user's sessions, and a disabled user's session is refused wherever it comes from.
//! - Cookies are `Secure` and `__Host-` prefixed (bound to this exact origin, never settable by a
//!   subdomain) whenever they can be: always, except on plain-http loopback development (see
//!   [`SecureCookies`]); browsers refuse `__Host-` cookies without `Secure`, hence the two names.
//! - Every POST carries the session's synchronizer token, compared in constant time, and must not
//!   come from another site (`Sec-Fetch-Site`, `Origin`). The sign-in form, which has no session yet,
//!   uses a double-submit token in its own short-lived cookie.
//! - Sign-in attempts are rate limited per client address and per (email, client address), so that
//!   nobody can lock another client out of an account; across all clients, a global rate and a bound
//!   on concurrent password hashes keep argon2 (19 MiB each) from exhausting the machine. A wrong email
//!   and a wrong password get the same answer after the same argon2 work.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use governor::Quota;
use rand::RngCore;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;
use uuid::Uuid;

use super::super::auth::Brand;
use super::super::error::Error;
use super::super::AppState;
use super::DashError;
use crate::client::ClientKey;
use crate::config::{Config, SecureCookies};
use crate::limits::{Backend, GlobalLimiter, KeyedLimiter};
use crate::secrets;

pub use crate::sessions::{Principal, Realm, ABSOLUTE_LIFETIME, IDLE_TIMEOUT};
/// How long the sign-in form's token stays valid.
const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// A signed-in person, acting for one brand: dashboard handlers pass `session.brand.id` to the same
/// functions the REST handlers call with an API key's brand, so a session reaches exactly what a key
/// of its brand reaches.
#[derive(Debug, Clone)]
pub struct Session {
    pub brand: Brand,
    pub user_id: Uuid,
    pub email: String,
    /// The synchronizer token this session's forms carry.
    pub csrf: String,
    pub(crate) token_hash: [u8; 32],
}

/// A signed-in session whose forms carry its synchronizer token: what [`Posted`] checks a form against.
pub trait FormSession: FromRequestParts<AppState, Rejection = DashError> + Send {
    fn csrf_matches(&self, presented: &str) -> bool;
}

impl FormSession for Session {
    fn csrf_matches(&self, presented: &str) -> bool {
        csrf_matches(&self.csrf, presented)
    }
}

/// 256 random bits, URL-safe base64 (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The host the request was addressed to: behind `X-Forwarded-For` proxies (`CLIENT_IP_SOURCE`), the
/// right-most `X-Forwarded-Host` entry (the nearest proxy's), else `Host`.
fn request_host<'a>(headers: &'a HeaderMap, state: &AppState) -> Option<&'a str> {
    let forwarded = state
        .config
        .client_ip_source
        .trusts_forwarded_host()
        .then(|| headers.get_all("x-forwarded-host").iter().next_back()?.to_str().ok()?.rsplit(',').next())
        .flatten();
    forwarded.or_else(|| headers.get(header::HOST)?.to_str().ok()).map(str::trim)
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether this request's cookies are `Secure` (and so `__Host-` prefixed).
pub fn secure_cookies(headers: &HeaderMap, state: &AppState) -> bool {
    match state.config.dashboard_secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => !request_host(headers, state).is_some_and(is_loopback),
    }
}

/// The cookie that carries a realm's session token.
fn session_cookie(realm: Realm, secure: bool) -> &'static str {
    match (realm, secure) {
        (Realm::Brand, true) => "__Host-cs_session",
        (Realm::Brand, false) => "cs_session",
        (Realm::Creator, true) => "__Host-cs_creator_session",
        (Realm::Creator, false) => "cs_creator_session",
    }
}

/// A live session found by its cookie.
pub(crate) struct Found {
    /// The user (brand sessions) or the account (creator sessions).
    pub id: Uuid,
    pub brand_id: Option<Uuid>,
    pub csrf: String,
    pub email: String,
    pub token_hash: [u8; 32],
}

/// The live session of this realm the request's cookie names, if any: one that has ended is deleted,
/// one not seen for a minute is touched ([`crate::sessions::find`]).
pub(crate) async fn find(parts: &Parts, state: &AppState, realm: Realm) -> Result<Option<Found>, Error> {
    let secure = secure_cookies(&parts.headers, state);
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(token) = jar.get(session_cookie(realm, secure)).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    let token_hash = secrets::hash(&token);
    let found = crate::sessions::find(&state.db, realm, &token_hash).await?;
    Ok(found.map(|live| Found { id: live.id, brand_id: live.brand_id, csrf: live.csrf, email: live.email, token_hash }))
}

/// Whether a form's token is the session's, compared in constant time.
pub(crate) fn csrf_matches(expected: &str, presented: &str) -> bool {
    !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn sign_in_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-cs_signin"
    } else {
        "cs_signin"
    }
}

fn cookie(name: &'static str, value: String, secure: bool, max_age: Duration) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)))
        .build()
}

fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    cookie(name, String::new(), secure, Duration::ZERO)
}

/// Refuses requests another site made the browser send: `Sec-Fetch-Site`, when the browser sends it,
/// must say `same-origin`; `Origin`, when present, must name the host the request was addressed to.
/// (Clients that send neither, like curl, still need the form's token.)
pub fn from_this_site(headers: &HeaderMap, state: &AppState) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().ok().and_then(|o| Url::parse(o).ok());
    let (Some(origin), Some(host)) = (origin, request_host(headers, state)) else {
        return false;
    };
    let Some(origin_host) = origin.host_str() else {
        return false;
    };
    let authority = match origin.port() {
        Some(port) => format!("{origin_host}:{port}"),
        None => origin_host.to_owned(),
    };
    authority.eq_ignore_ascii_case(host)
}

impl FromRequestParts<AppState> for Session {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Inside `nest("/brand")` the URI has lost its prefix; the original one is where to come back to.
        let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |original| &original.0);
        let next = uri.path_and_query().map(|p| p.to_string());
        match find(parts, state, Realm::Brand).await? {
            Some(Found { id, brand_id: Some(brand_id), csrf, email, token_hash }) => {
                Ok(Session { brand: Brand { id: brand_id }, user_id: id, email, csrf, token_hash })
            }
            _ => Err(DashError::SignIn { next }),
        }
    }
}

/// A dashboard form that carries the session's token.
pub trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// A form POSTed by a signed-in page of this site (the brand's dashboard, or with `S` =
/// [`crate::http::portal::CreatorSession`] the creators' portal): from this site, with a live session,
/// and carrying that session's token. Handlers that take it cannot forget a check.
pub struct Posted<T, S = Session> {
    pub session: S,
    pub form: T,
}

/// The session of a form post, once the post is known to come from this site.
async fn posting_session<S: FormSession>(parts: &mut Parts, state: &AppState) -> Result<S, DashError> {
    if !from_this_site(&parts.headers, state) {
        return Err(DashError::Forbidden("This request came from another site."));
    }
    S::from_request_parts(parts, state).await
}

impl<T, S> FromRequest<AppState> for Posted<T, S>
where
    T: DeserializeOwned + CsrfForm + Send,
    S: FormSession,
{
    type Rejection = DashError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session: S = posting_session(&mut parts, state).await?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| DashError::BadRequest(e.body_text()))?;
        if !session.csrf_matches(form.csrf()) {
            return Err(DashError::Forbidden("This form has expired or did not come from your dashboard."));
        }
        Ok(Posted { session, form })
    }
}

/// The largest part (a file, a field) of an [`Uploaded`] form that is kept; a larger one is cut off.
pub const MAX_UPLOAD_PART_BYTES: usize = 256 * 1024;

/// One part of an [`Uploaded`] form.
#[derive(Debug)]
pub enum UploadPart {
    /// The part's bytes, at most [`MAX_UPLOAD_PART_BYTES`].
    Bytes(Vec<u8>),
    /// The part was larger than [`MAX_UPLOAD_PART_BYTES`], or the request larger than the route's body
    /// limit: nothing of it is kept.
    TooLarge,
}

/// A `multipart/form-data` form (a file upload) POSTed by the signed-in brand's own dashboard, checked
/// like [`Posted`]: from this site, with a live session, and carrying that session's token in a `csrf`
/// field before the files. Its parts by name, the first of each name. A body over the route's limit
/// keeps the parts read before it; when its token is not among them, the whole form is refused (413).
pub struct Uploaded {
    pub session: Session,
    pub parts: std::collections::HashMap<String, UploadPart>,
}

impl FromRequest<AppState> for Uploaded {
    type Rejection = DashError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session: Session = posting_session(&mut parts, state).await?;
        let mut multipart = axum::extract::Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| DashError::BadRequest(e.body_text()))?;
        let mut read = std::collections::HashMap::new();
        let mut cut_short = false;
        'parts: loop {
            let mut field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                    cut_short = true;
                    break;
                }
                Err(e) => return Err(DashError::BadRequest(e.body_text())),
            };
            let name = field.name().unwrap_or_default().to_owned();
            let mut bytes = Vec::new();
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) if bytes.len() + chunk.len() <= MAX_UPLOAD_PART_BYTES => {
                        bytes.extend_from_slice(&chunk)
                    }
                    Ok(Some(_)) => {
                        read.entry(name).or_insert(UploadPart::TooLarge);
                        continue 'parts;
                    }
                    Ok(None) => break,
                    // A body over the route's limit: what was read still counts (the token comes first).
                    Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                        cut_short = true;
                        read.entry(name).or_insert(UploadPart::TooLarge);
                        break 'parts;
                    }
                    Err(e) => return Err(DashError::BadRequest(e.body_text())),
                }
            }
            read.entry(name).or_insert(UploadPart::Bytes(bytes));
        }
        let token = match read.get("csrf") {
            Some(UploadPart::Bytes(token)) => std::str::from_utf8(token).unwrap_or_default(),
            // The body went over the route's limit before its token could be read (the whole body can
            // arrive at once): refused as too large, before anything of it is looked at.
            _ if cut_short => return Err(DashError::Api(Error::PayloadTooLarge)),
            _ => "",
        };
        if !csrf_matches(&session.csrf, token) {
            return Err(DashError::Forbidden("This form has expired or did not come from your dashboard."));
        }
        Ok(Uploaded { session, parts: read })
    }
}

/// The sign-in form's double-submit token: the value already in this browser's sign-in cookie, or a
/// new one to set. Returns the token and the jar to answer with.
pub fn sign_in_token(headers: &HeaderMap, state: &AppState) -> (String, CookieJar) {
    let secure = secure_cookies(headers, state);
    let jar = CookieJar::from_headers(headers);
    match jar.get(sign_in_cookie_name(secure)).map(|c| c.value().to_owned()).filter(|v| v.len() == 43) {
        Some(token) => (token, jar),
        None => {
            let token = random_token();
            let jar = jar.add(cookie(sign_in_cookie_name(secure), token.clone(), secure, SIGN_IN_FORM_LIFETIME));
            (token, jar)
        }
    }
}

/// Whether a sign-in POST comes from this site and carries the token of this browser's sign-in cookie.
pub fn sign_in_token_matches(headers: &HeaderMap, state: &AppState, presented: &str) -> bool {
    let secure = secure_cookies(headers, state);
    let jar = CookieJar::from_headers(headers);
    let expected = jar.get(sign_in_cookie_name(secure)).map(|c| c.value().to_owned()).unwrap_or_default();
    from_this_site(headers, state)
        && !expected.is_empty()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// Starts a session and answers with its cookie (replacing the sign-in cookie).
pub async fn start(state: &AppState, headers: &HeaderMap, principal: Principal) -> Result<CookieJar, Error> {
    let secure = secure_cookies(headers, state);
    let realm = principal.realm();
    let token = random_token();
    crate::sessions::start(&state.db, principal, &secrets::hash(&token), &random_token()).await?;
    Ok(CookieJar::from_headers(headers).add(removal(sign_in_cookie_name(secure), secure)).add(cookie(
        session_cookie(realm, secure),
        token,
        secure,
        ABSOLUTE_LIFETIME,
    )))
}

/// Ends a session server-side (by its token's hash) and clears its cookie.
pub async fn end(
    state: &AppState,
    headers: &HeaderMap,
    realm: Realm,
    token_hash: &[u8; 32],
) -> Result<CookieJar, Error> {
    crate::sessions::end(&state.db, realm, token_hash).await?;
    let secure = secure_cookies(headers, state);
    Ok(CookieJar::from_headers(headers).add(removal(session_cookie(realm, secure), secure)))
}

/// Most clients, and most (email, client) pairs, the sign-in limits remember at once.
const MAX_SIGN_IN_KEYS: u64 = 50_000;

/// Why a sign-in attempt is not even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This client, or this email from this client, has used up its attempts (429).
    TooManyAttempts { retry_after: Duration },
    /// The server is hashing as many passwords as it allows at once, or has reached its sign-in rate (503).
    Busy { retry_after: Duration },
}

/// Sign-in attempts and the password hashing they cost. The rates are shared by every process through
/// Redis when `REDIS_URL` is set (else in memory, one process's share); the hashes at once are this
/// process's own (they bound its memory and CPU):
/// - per client address: 20 attempts, then one every 6 seconds (an office behind one address signs in
///   together in the morning);
/// - per email and client address: 5 attempts, then one a minute, so that guessing one account's
///   password backs off while the account's owner, from any other address, signs in as usual;
/// - across all clients: `SIGNIN_RATE_PER_SECOND` attempts a second (bursts of twice that) and
///   `SIGNIN_MAX_CONCURRENT_HASHES` argon2 hashes at once.
pub struct SignInLimits {
    per_client: KeyedLimiter<ClientKey>,
    per_account: KeyedLimiter<(String, ClientKey)>,
    global: GlobalLimiter,
    hashes: Arc<Semaphore>,
}

impl SignInLimits {
    pub fn new(config: &Config, backend: &Backend) -> Self {
        const FIVE: NonZeroU32 = NonZeroU32::new(5).expect("5 is not zero");
        const TWENTY: NonZeroU32 = NonZeroU32::new(20).expect("20 is not zero");
        const TWO: NonZeroU32 = NonZeroU32::new(2).expect("2 is not zero");
        let fallback = Quota::per_minute(FIVE);
        let per_client = Quota::with_period(Duration::from_secs(6)).map_or(fallback, |q| q.allow_burst(TWENTY));
        let per_account = Quota::with_period(Duration::from_secs(60)).map_or(fallback, |q| q.allow_burst(FIVE));
        let rate = config.signin_rate_per_second;
        SignInLimits {
            per_client: KeyedLimiter::new("signin:client", per_client, MAX_SIGN_IN_KEYS, backend),
            per_account: KeyedLimiter::new("signin:account", per_account, MAX_SIGN_IN_KEYS, backend),
            global: GlobalLimiter::new(
                "signin:global",
                Quota::per_second(rate).allow_burst(rate.saturating_mul(TWO)),
                1,
                backend,
            ),
            hashes: Arc::new(Semaphore::new(config.signin_max_concurrent_hashes.get())),
        }
    }

    /// Admits an attempt: the permit to hash its password, to hold until the hash is done. A busy server
    /// refuses before counting anything; an attempt refused for its client counts against nothing else.
    pub async fn admit(&self, email: &str, client: ClientKey) -> Result<OwnedSemaphorePermit, Refusal> {
        let permit = Arc::clone(&self.hashes)
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy { retry_after: Duration::from_secs(1) })?;
        // Bounded keys, whatever is typed.
        let account: String = email.trim().to_lowercase().chars().take(254).collect();
        let too_many = |retry_after| Refusal::TooManyAttempts { retry_after };
        self.per_client.check(&client).await.map_err(too_many)?;
        self.per_account.check(&(account, client)).await.map_err(too_many)?;
        self.global.check(&()).await.map_err(|retry_after| Refusal::Busy { retry_after })?;
        Ok(permit)
    }

    /// The permits for password hashing: one per hash running now.
    pub fn hashing(&self) -> &Arc<Semaphore> {
        &self.hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised_with_or_without_a_port() {
        for host in ["127.0.0.1", "127.0.0.1:8080", "localhost:3000", "LOCALHOST", "[::1]:8080", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["app.creatorscore.io", "10.0.0.1:8080", "localhost.example.com", "[2001:db8::1]:443"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    fn limits(vars: &[(&str, &str)]) -> SignInLimits {
        let config = Config::from_lookup(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()));
        SignInLimits::new(&config.expect("a valid configuration"), &Backend::Memory)
    }

    fn too_many(result: Result<OwnedSemaphorePermit, Refusal>) -> bool {
        matches!(result, Err(Refusal::TooManyAttempts { .. }))
    }

    #[tokio::test]
    async fn an_email_gets_five_attempts_per_client_and_a_client_twenty() {
        let limits = limits(&[("SIGNIN_RATE_PER_SECOND", "1000")]);
        let client = ClientKey::from(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..5 {
            assert!(limits.admit("jess@example.com", client).await.is_ok());
        }
        assert!(too_many(limits.admit(" JESS@example.com", client).await), "the same email, however typed");
        let elsewhere = ClientKey::from(IpAddr::from([10, 0, 0, 3]));
        assert!(limits.admit("jess@example.com", elsewhere).await.is_ok(), "the same email from another client");
        let other = ClientKey::from(IpAddr::from([10, 0, 0, 2]));
        for i in 0..20 {
            assert!(limits.admit(&format!("user{i}@example.com"), other).await.is_ok());
        }
        assert!(too_many(limits.admit("fresh@example.com", other).await));
    }

    #[tokio::test]
    async fn beyond_the_global_rate_or_the_hashes_at_once_the_server_is_busy() {
        let limits = limits(&[("SIGNIN_RATE_PER_SECOND", "1"), ("SIGNIN_MAX_CONCURRENT_HASHES", "2")]);
        let client = |i: u8| ClientKey::from(IpAddr::from([10, 0, 1, i]));
        let first = limits.admit("a@example.com", client(1)).await.expect("admitted");
        let second = limits.admit("b@example.com", client(2)).await.expect("admitted");
        // Both permits are held: refused before anything is counted.
        assert_eq!(
            limits.admit("c@example.com", client(3)).await.err(),
            Some(Refusal::Busy { retry_after: Duration::from_secs(1) })
        );
        drop((first, second));
        // A burst of two a second was used by the first two.
        assert!(
            matches!(limits.admit("c@example.com", client(3)).await, Err(Refusal::Busy { retry_after }) if retry_after <= Duration::from_secs(1))
        );
        assert_eq!(limits.hashing().available_permits(), 2, "a refused attempt holds no permit");
    }
}
