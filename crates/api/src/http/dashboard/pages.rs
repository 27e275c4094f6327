//! Signing in and out.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::super::extract::Client;
use super::super::AppState;
use super::session::{self, CsrfForm, Posted, Refusal, Session};
use super::views::{self, FieldAttrs};
use super::{safe_next, DashError, HOME};
use crate::limits::retry_after_secs;
use crate::users;

/// The same answer for an unknown email and a wrong password.
const WRONG_CREDENTIALS: &str = "Incorrect email or password.";
const TOO_MANY_ATTEMPTS: &str = "Too many sign-in attempts. Please wait a minute and try again.";
const BUSY: &str = "Sign-in is busy right now. Please try again in a few seconds.";

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

fn sign_in_page(token: &str, email: &str, next: Option<&str>, notice: Option<&str>, error: Option<&str>) -> Markup {
    views::shell(
        "Sign in",
        html! {
            main.narrow id="main" {
                h1 { "Sign in to Tracking Links" }
                @if let Some(notice) = notice { p.notice role="status" { (notice) } }
                @if let Some(error) = error { p.error-summary role="alert" { (error) } }
                form method="post" action="/brand/sign-in" {
                    (views::csrf_field(token))
                    @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                    (views::text_field("email", "Email", email, None, FieldAttrs {
                        kind: "email", required: true, autocomplete: Some("username"), ..FieldAttrs::text()
                    }))
                    (views::text_field("password", "Password", "", None, FieldAttrs {
                        kind: "password", required: true, autocomplete: Some("current-password"), ..FieldAttrs::text()
                    }))
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
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
    let permit = match state.signin_limits.admit(&form.email, client.0).await {
        Ok(permit) => permit,
        Err(refusal) => {
            let (status, message, wait) = match refusal {
                Refusal::TooManyAttempts { retry_after } => {
                    (StatusCode::TOO_MANY_REQUESTS, TOO_MANY_ATTEMPTS, retry_after)
                }
                Refusal::Busy { retry_after } => (StatusCode::SERVICE_UNAVAILABLE, BUSY, retry_after),
            };
            // The address is only a rate-limit key; the email is not logged.
            tracing::warn!(client = %client.0, %status, "sign-in attempt refused before checking the password");
            return Ok(([(RETRY_AFTER, retry_after_secs(wait).to_string())], again(status, message)).into_response());
        }
    };
    // A disabled user is treated like an unknown email: the same answer after the same work.
    let user: Option<(Uuid, Uuid, String)> = match users::Email::parse(&form.email) {
        Ok(email) => users::credentials(&state.db, &email).await?.map(|c| (c.user_id, c.brand_id, c.password_hash)),
        Err(_) => None,
    };
    // An unknown email is verified against a dummy hash: the same argon2 work, so the same time.
    let stored = user.as_ref().map_or_else(|| users::dummy_hash().to_owned(), |(_, _, hash)| hash.clone());
    let password = form.password.clone();
    // The permit is held until the hash is done, even if the request is dropped meanwhile.
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        users::verify_password(&password, &stored)
    })
    .await
    .map_err(anyhow::Error::from)
    .map_err(super::super::Error::from)?;
    match user {
        Some((user_id, brand_id, _)) if verified => {
            let jar = session::start(&state, &headers, user_id, brand_id).await?;
            Ok((jar, Redirect::to(next.unwrap_or(HOME))).into_response())
        }
        _ => Ok(again(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS)),
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
    let jar = session::end(&state, &headers, &session).await?;
    Ok((jar, Redirect::to("/brand/sign-in?signed_out=1")).into_response())
}
