//! Signing in and out.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use serde::Deserialize;

use super::super::extract::Client;
use super::super::AppState;
use super::session::{self, CsrfForm, Posted, Principal, Realm, Refusal, Session};
use super::views;
use super::{safe_next, DashError, HOME};
use crate::limits::retry_after_secs;
use crate::users;

/// The same answer for an unknown email and a wrong password.
pub(crate) const WRONG_CREDENTIALS: &str = "Incorrect email or password.";
pub(crate) const TOO_MANY_ATTEMPTS: &str = "Too many sign-in attempts. Please wait a minute and try again.";
const BUSY: &str = "Sign-in is busy right now. Please try again in a few seconds.";

/// The sign-in page's query (the dashboard's and the creators' portal's).
#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    pub(crate) next: Option<String>,
    pub(crate) signed_out: Option<String>,
}

/// The sign-in form (the dashboard's and the creators' portal's).
#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub(crate) csrf: String,
    #[serde(default)]
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) password: String,
    #[serde(default)]
    pub(crate) next: String,
}

fn sign_in_page(token: &str, email: &str, next: Option<&str>, notice: Option<&str>, error: Option<&str>) -> Markup {
    views::sign_in_page(views::SignInPage {
        title: "Sign in",
        heading: "Sign in to Tracking Links",
        action: "/brand/sign-in",
        token,
        email,
        next,
        notice,
        error,
        hint: None,
    })
}

/// `GET /brand/sign-in`: the form (or straight on, for a browser already signed in).
pub async fn sign_in_form(
    State(state): State<AppState>,
    mut parts: Parts,
    Query(query): Query<SignInQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if Session::from_request_parts(&mut parts, &state).await.is_ok() {
        return Redirect::to(next.unwrap_or(HOME)).into_response();
    }
    let (token, jar) = session::sign_in_token(&parts.headers, &state);
    let notice = query.signed_out.is_some().then_some("You are signed out.");
    (jar, sign_in_page(&token, "", next, notice, None)).into_response()
}

/// `POST /brand/sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, DashError> {
    let Form(form) = form.map_err(|e| DashError::BadRequest(e.body_text()))?;
    if !session::sign_in_token_matches(&headers, &state, &form.csrf) {
        return Err(DashError::Forbidden(
            "This sign-in form has expired or did not come from this site. Please try again.",
        ));
    }
    let next = safe_next(Some(form.next.as_str()));
    let again = |status: StatusCode, error: &str| {
        (status, sign_in_page(&form.csrf, &form.email, next, None, Some(error))).into_response()
    };
    let db = &state.db;
    let checked = check_password(&state, client, &form.email, form.password.clone(), |email| async move {
        // A disabled user is treated like an unknown email: the same answer after the same work.
        Ok(users::credentials(db, &email).await?.map(|c| ((c.user_id, c.brand_id), c.password_hash)))
    })
    .await?;
    match checked {
        Checked::Refused(refusal) => {
            let (status, message, wait) = refusal_answer(refusal);
            Ok(([(RETRY_AFTER, retry_after_secs(wait).to_string())], again(status, message)).into_response())
        }
        Checked::Matches((user_id, brand_id)) => {
            let jar = session::start(&state, &headers, Principal::User { user_id, brand_id }).await?;
            Ok((jar, Redirect::to(next.unwrap_or(HOME))).into_response())
        }
        Checked::Wrong => Ok(again(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS)),
    }
}

/// What a sign-in attempt found.
pub(crate) enum Checked<T> {
    /// Refused before any password was checked.
    Refused(Refusal),
    /// The password matches the account's.
    Matches(T),
    /// An unknown email or a wrong password (the same answer after the same work).
    Wrong,
}

/// Checks a password under the sign-in limits (shared by the dashboard and the creators' portal): the
/// attempt is admitted, the account `lookup` finds by email (an id and an argon2id hash) is checked,
/// and an unknown email is checked against a dummy hash, so that it costs the same time.
pub(crate) async fn check_password<T, F, Fut>(
    state: &AppState,
    client: Client,
    email: &str,
    password: String,
    lookup: F,
) -> Result<Checked<T>, DashError>
where
    F: FnOnce(users::Email) -> Fut,
    Fut: std::future::Future<Output = Result<Option<(T, String)>, sqlx::Error>>,
{
    let permit = match state.signin_limits.admit(email, client.0).await {
        Ok(permit) => permit,
        Err(refusal) => {
            // The address is only a rate-limit key; the email is not logged.
            tracing::warn!(client = %client.0, ?refusal, "sign-in attempt refused before checking the password");
            return Ok(Checked::Refused(refusal));
        }
    };
    let account = match users::Email::parse(email) {
        Ok(email) => lookup(email).await?,
        Err(_) => None,
    };
    let stored = account.as_ref().map_or_else(|| users::dummy_hash().to_owned(), |(_, hash)| hash.clone());
    // The permit is held until the hash is done, even if the request is dropped meanwhile.
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        users::verify_password(&password, &stored)
    })
    .await
    .map_err(anyhow::Error::from)
    .map_err(super::super::Error::from)?;
    Ok(match account {
        Some((id, _)) if verified => Checked::Matches(id),
        _ => Checked::Wrong,
    })
}

/// The status, message and wait of a refused sign-in attempt.
pub(crate) fn refusal_answer(refusal: Refusal) -> (StatusCode, &'static str, std::time::Duration) {
    match refusal {
        Refusal::TooManyAttempts { retry_after } => (StatusCode::TOO_MANY_REQUESTS, TOO_MANY_ATTEMPTS, retry_after),
        Refusal::Busy { retry_after } => (StatusCode::SERVICE_UNAVAILABLE, BUSY, retry_after),
    }
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfForm for SignOutForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /brand/sign-out`: the session is deleted server-side, not only forgotten by the browser.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Posted { session, .. }: Posted<SignOutForm>,
) -> Result<Response, DashError> {
    let jar = session::end(&state, &headers, Realm::Brand, &session.token_hash).await?;
    Ok((jar, Redirect::to("/brand/sign-in?signed_out=1")).into_response())
}
