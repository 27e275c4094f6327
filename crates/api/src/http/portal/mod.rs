//! The creators' portal, `/creator`: server-rendered pages for a creator's own account, like the brand
//! dashboard (the same sessions, CSRF checks, sign-in limits, page headers and stylesheet; it works
//! without JavaScript).
//!
//! A creator joins through a brand's invitation (`/creator/invitations/{token}`: create an account or
//! sign in to one), then sees, per brand that linked its creator record to the account, that record's
//! links with their figures for a chosen period, a per-day chart, and can get a signed statement of the
//! period. Figures are [`crate::creator_reports`]'s: the brand's own reports', revenue only on links that
//! share it. A brand that unlinks the record disappears at the next request.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, SubsecRound, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::dashboard::pages::{
    check_password, refusal_answer, Checked, SignInForm, SignInQuery, SignOutForm, WRONG_CREDENTIALS,
};
use super::dashboard::session::{self, FormSession, Found, Posted, Principal, Realm};
use super::dashboard::views::{self, FieldAttrs};
use super::dashboard::{page_headers, DashError};
use super::error::Error;
use super::extract::Client;
use super::AppState;
use crate::creator_accounts::{self, AccountError, InvitationInfo, Membership};
use crate::creator_reports::{self, CreatorReport};
use crate::limits::retry_after_secs;
use crate::money::Money;
use crate::statements::{self, IssueError};
use crate::users;

/// Where a signed-in creator lands.
const HOME: &str = "/creator";
/// The periods offered, in days (today included).
const PERIODS: [u64; 3] = [7, 30, 90];
/// The longest period a page shows.
const MAX_PERIOD_DAYS: i64 = 366;

/// A signed-in creator account.
#[derive(Debug, Clone)]
pub struct CreatorSession {
    pub account_id: Uuid,
    pub email: String,
    pub csrf: String,
    token_hash: [u8; 32],
}

impl FromRequestParts<AppState> for CreatorSession {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |original| &original.0);
        let next = uri.path_and_query().map(|p| p.to_string());
        match session::find(parts, state, Realm::Creator).await? {
            Some(Found { id, csrf, email, token_hash, .. }) => {
                Ok(CreatorSession { account_id: id, email, csrf, token_hash })
            }
            None => Err(DashError::PortalSignIn { next }),
        }
    }
}

impl FormSession for CreatorSession {
    fn csrf_matches(&self, presented: &str) -> bool {
        session::csrf_matches(&self.csrf, presented)
    }
}

/// `/creator/...`.
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/invitations/{token}", get(invitation))
        .route("/invitations/{token}/accept", post(accept))
        .route("/invitations/{token}/sign-up", post(invitation_sign_up))
        .route("/invitations/{token}/sign-in", post(invitation_sign_in))
        .route("/brands/{brand_id}", get(brand_page))
        .route("/brands/{brand_id}/statements", post(issue_statement))
        .fallback(|| async { DashError::Api(Error::NotFound("page")) })
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES));
    Router::new().nest("/creator", page_headers(pages))
}

/// Only the portal's own paths are followed after sign-in.
pub(crate) fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        (*n == HOME || n.starts_with("/creator/"))
            && !n.contains('\\')
            && n.bytes().all(|b| b.is_ascii_graphic())
            && n.parse::<axum::http::uri::PathAndQuery>().is_ok()
    })
}

/// A page of the signed-in portal.
fn page(title: &str, session: &CreatorSession, content: Markup) -> Markup {
    views::shell(
        title,
        html! {
            header.top {
                a.brand-mark href=(HOME) { "Tracking Links · Creators" }
                nav aria-label="Portal" { ul { li { a href=(HOME) { "Your brands" } } } }
                form.sign-out method="post" action="/creator/sign-out" {
                    (views::csrf_field(&session.csrf))
                    span.who { (session.email) }
                    button.link-button type="submit" { "Sign out" }
                }
            }
            main id="main" { (content) }
            p.toast id="status" role="status" aria-live="polite" {}
        },
    )
}

// ---- Signing in and out ----

fn sign_in_page(token: &str, email: &str, next: Option<&str>, notice: Option<&str>, error: Option<&str>) -> Markup {
    views::sign_in_page(views::SignInPage {
        title: "Sign in · Creators",
        heading: "Sign in to your creator portal",
        action: "/creator/sign-in",
        token,
        email,
        next,
        notice,
        error,
        hint: Some("New here? Open the invitation link a brand sent you to create your account."),
    })
}

/// `GET /creator/sign-in`.
pub async fn sign_in_form(
    State(state): State<AppState>,
    mut parts: Parts,
    Query(query): Query<SignInQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if CreatorSession::from_request_parts(&mut parts, &state).await.is_ok() {
        return Redirect::to(next.unwrap_or(HOME)).into_response();
    }
    let (token, jar) = session::sign_in_token(&parts.headers, &state);
    let notice = query.signed_out.is_some().then_some("You are signed out.");
    (jar, sign_in_page(&token, "", next, notice, None)).into_response()
}

/// The sign-in form's fields, once its double-submit token is checked.
fn checked_form<T: SignInToken>(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, DashError> {
    let Form(form) = form.map_err(|e| DashError::BadRequest(e.body_text()))?;
    if !session::sign_in_token_matches(headers, state, form.token()) {
        return Err(DashError::Forbidden(
            "This sign-in form has expired or did not come from this site. Please try again.",
        ));
    }
    Ok(form)
}

/// A form signed by the sign-in page's double-submit token.
trait SignInToken {
    fn token(&self) -> &str;
}

impl SignInToken for SignInForm {
    fn token(&self) -> &str {
        &self.csrf
    }
}

/// Checks a creator account's password under the sign-in limits.
async fn check_account(
    state: &AppState,
    client: Client,
    email: &str,
    password: &str,
) -> Result<Checked<Uuid>, DashError> {
    let db = &state.db;
    check_password(state, client, email, password.to_owned(), |email| async move {
        creator_accounts::credentials(db, &email).await
    })
    .await
}

/// A refused attempt's answer: its status and `Retry-After`, with the page to show.
fn refused(refusal: session::Refusal, render: impl FnOnce(StatusCode, &str) -> Response) -> Response {
    let (status, message, wait) = refusal_answer(refusal);
    ([(RETRY_AFTER, retry_after_secs(wait).to_string())], render(status, message)).into_response()
}

/// `POST /creator/sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, DashError> {
    let form = checked_form(&state, &headers, form)?;
    let next = safe_next(Some(form.next.as_str()));
    let again = |status: StatusCode, error: &str| {
        (status, sign_in_page(&form.csrf, &form.email, next, None, Some(error))).into_response()
    };
    match check_account(&state, client, &form.email, &form.password).await? {
        Checked::Refused(refusal) => Ok(refused(refusal, again)),
        Checked::Matches(account_id) => {
            let jar = session::start(&state, &headers, Principal::Creator { account_id }).await?;
            Ok((jar, Redirect::to(next.unwrap_or(HOME))).into_response())
        }
        Checked::Wrong => Ok(again(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS)),
    }
}

/// `POST /creator/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Posted { session, .. }: Posted<SignOutForm, CreatorSession>,
) -> Result<Response, DashError> {
    let jar = session::end(&state, &headers, Realm::Creator, &session.token_hash).await?;
    Ok((jar, Redirect::to("/creator/sign-in?signed_out=1")).into_response())
}

// ---- Invitations ----

fn gone_invitation() -> DashError {
    DashError::Gone("This invitation link is not valid any more: it was used, withdrawn, or it expired. Ask the brand for a new one.")
}

/// The invitation a path names, if it is still open.
async fn open_invitation(state: &AppState, token: &str) -> Result<InvitationInfo, DashError> {
    creator_accounts::invitation(&state.db, token).await?.ok_or_else(gone_invitation)
}

/// What the invitation page shows around its forms.
struct InvitationView<'a> {
    token: &'a str,
    info: &'a InvitationInfo,
    /// The sign-in token of the page's forms (not signed in) or the session (signed in).
    signed_in: Option<&'a CreatorSession>,
    form_token: &'a str,
    email: &'a str,
    sign_up_error: Option<&'a str>,
    sign_in_error: Option<&'a str>,
}

fn invitation_page(view: InvitationView<'_>) -> Markup {
    let info = view.info;
    let action = |what: &str| format!("/creator/invitations/{}/{what}", view.token);
    let body = html! {
        main.narrow id="main" {
            h1 { (info.brand_name) " invites you to the creator portal" }
            p {
                "See the clicks, conversions and, where " (info.brand_name) " shares it, the revenue of your links as "
                strong { (info.creator_name) } @if let Some(handle) = &info.handle { " (" (handle) ")" }
                ", and get signed statements you can show anyone."
            }
            p.hint { "This invitation expires on " (info.expires_at.format("%b %-d, %Y at %H:%M UTC")) "." }
            @if let Some(session) = view.signed_in {
                form method="post" action=(action("accept")) {
                    (views::csrf_field(&session.csrf))
                    button.primary type="submit" { "Accept as " (session.email) }
                }
                p.hint { "Not you? Sign out first, then open this link again." }
            } @else {
                section aria-labelledby="sign-up" {
                    h2 id="sign-up" { "New here? Create your account" }
                    @if let Some(error) = view.sign_up_error { p.error-summary role="alert" { (error) } }
                    form.stacked method="post" action=(action("sign-up")) {
                        (views::csrf_field(view.form_token))
                        (views::text_field("new-email", "Email", view.email, None, FieldAttrs {
                            kind: "email", required: true, autocomplete: Some("username"), ..FieldAttrs::text()
                        }))
                        (views::text_field("new-password", "Password", "", None, FieldAttrs {
                            kind: "password", required: true, autocomplete: Some("new-password"),
                            hint: Some("At least 12 characters."), ..FieldAttrs::text()
                        }))
                        (views::text_field("new-password-again", "Password again", "", None, FieldAttrs {
                            kind: "password", required: true, autocomplete: Some("new-password"), ..FieldAttrs::text()
                        }))
                        button.primary type="submit" { "Create account and accept" }
                    }
                }
                section aria-labelledby="sign-in" {
                    h2 id="sign-in" { "Already have an account? Sign in" }
                    @if let Some(error) = view.sign_in_error { p.error-summary role="alert" { (error) } }
                    form.stacked method="post" action=(action("sign-in")) {
                        (views::csrf_field(view.form_token))
                        (views::sign_in_fields(if view.sign_up_error.is_some() { "" } else { view.email }))
                        button type="submit" { "Sign in and accept" }
                    }
                }
            }
        }
    };
    views::shell("Invitation · Creators", body)
}

/// `GET /creator/invitations/{token}`.
pub async fn invitation(
    State(state): State<AppState>,
    mut parts: Parts,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, DashError> {
    let Path(token) = path.map_err(|_| gone_invitation())?;
    let info = open_invitation(&state, &token).await?;
    let signed_in = CreatorSession::from_request_parts(&mut parts, &state).await.ok();
    let (form_token, jar) = session::sign_in_token(&parts.headers, &state);
    let view = InvitationView {
        token: &token,
        info: &info,
        signed_in: signed_in.as_ref(),
        form_token: &form_token,
        email: "",
        sign_up_error: None,
        sign_in_error: None,
    };
    Ok((jar, invitation_page(view)).into_response())
}

/// Accepting went wrong in a way the person can act on: a page that says how.
fn accept_error(e: AccountError) -> DashError {
    match e {
        AccountError::InvitationUnusable => gone_invitation(),
        e @ (AccountError::AlreadyJoined | AccountError::OtherCreatorOfBrand) => DashError::Conflict(e.to_string()),
        AccountError::Database(db) => DashError::Api(Error::Database(db)),
        e => DashError::BadRequest(e.to_string()),
    }
}

/// Links the invitation's creator record to the account and opens that brand's page.
async fn accept_for(state: &AppState, token: &str, account_id: Uuid) -> Result<Redirect, DashError> {
    let brand_id = creator_accounts::accept(&state.db, token, account_id).await.map_err(accept_error)?;
    Ok(Redirect::to(&format!("/creator/brands/{brand_id}?joined=1")))
}

/// Signs the account in and accepts the invitation for it: the session stands even if the invitation was
/// used meanwhile (the page then says so).
async fn signed_in_accepting(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    account_id: Uuid,
) -> Result<Response, DashError> {
    let jar = session::start(state, headers, Principal::Creator { account_id }).await?;
    match accept_for(state, token, account_id).await {
        Ok(redirect) => Ok((jar, redirect).into_response()),
        Err(e) => Ok((jar, e).into_response()),
    }
}

/// `POST /creator/invitations/{token}/accept`: a signed-in creator accepts.
pub async fn accept(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    Posted { session, .. }: Posted<SignOutForm, CreatorSession>,
) -> Result<Response, DashError> {
    let Path(token) = path.map_err(|_| gone_invitation())?;
    Ok(accept_for(&state, &token, session.account_id).await?.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "new-email")]
    email: String,
    #[serde(default, rename = "new-password")]
    password: String,
    #[serde(default, rename = "new-password-again")]
    password_again: String,
}

impl SignInToken for SignUpForm {
    fn token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /creator/invitations/{token}/sign-up`: a new account, which accepts the invitation.
pub async fn invitation_sign_up(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Result<Response, DashError> {
    let Path(token) = path.map_err(|_| gone_invitation())?;
    let form = checked_form(&state, &headers, form)?;
    let info = open_invitation(&state, &token).await?;
    let again = |status: StatusCode, error: &str| {
        let view = InvitationView {
            token: &token,
            info: &info,
            signed_in: None,
            form_token: &form.csrf,
            email: &form.email,
            sign_up_error: Some(error),
            sign_in_error: None,
        };
        (status, invitation_page(view)).into_response()
    };
    let email = match creator_accounts::check_new_account(&form.email, &form.password) {
        Ok(email) if form.password == form.password_again => email,
        Ok(_) => return Ok(again(StatusCode::UNPROCESSABLE_ENTITY, "The two passwords differ.")),
        Err(e) => return Ok(again(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())),
    };
    // Hashing costs what a sign-in costs: it counts against the same limits.
    let permit = match state.signin_limits.admit(email.as_str(), client.0).await {
        Ok(permit) => permit,
        Err(refusal) => return Ok(refused(refusal, again)),
    };
    let password = form.password.clone();
    let hash = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        users::hash_password(&password)
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|hash| hash)
    .map_err(Error::from)?;
    let account_id = match creator_accounts::create_account(&state.db, &email, &hash).await {
        Ok(id) => id,
        Err(e @ AccountError::EmailTaken) => return Ok(again(StatusCode::CONFLICT, &e.to_string())),
        Err(e) => return Err(accept_error(e)),
    };
    signed_in_accepting(&state, &headers, &token, account_id).await
}

/// `POST /creator/invitations/{token}/sign-in`: an existing account signs in and accepts.
pub async fn invitation_sign_in(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, DashError> {
    let Path(token) = path.map_err(|_| gone_invitation())?;
    let form = checked_form(&state, &headers, form)?;
    let info = open_invitation(&state, &token).await?;
    let again = |status: StatusCode, error: &str| {
        let view = InvitationView {
            token: &token,
            info: &info,
            signed_in: None,
            form_token: &form.csrf,
            email: &form.email,
            sign_up_error: None,
            sign_in_error: Some(error),
        };
        (status, invitation_page(view)).into_response()
    };
    match check_account(&state, client, &form.email, &form.password).await? {
        Checked::Refused(refusal) => Ok(refused(refusal, again)),
        Checked::Wrong => Ok(again(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS)),
        Checked::Matches(account_id) => signed_in_accepting(&state, &headers, &token, account_id).await,
    }
}

// ---- Figures ----

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// A period of whole UTC days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    first: NaiveDate,
    last: NaiveDate,
}

impl Period {
    /// The last `days` days, today included.
    fn last_days(today: NaiveDate, days: u64) -> Self {
        Period { first: today.checked_sub_days(Days::new(days.saturating_sub(1))).unwrap_or(today), last: today }
    }

    /// `from` and `to` as a form sends them (`YYYY-MM-DD`, both included), checked: in order, at most
    /// [`MAX_PERIOD_DAYS`] long, not before 1970 and not after today.
    fn parse(from: &str, to: &str, today: NaiveDate) -> Result<Self, String> {
        let day = |text: &str, what: &str| {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| format!("{what} must be a date (YYYY-MM-DD)"))
        };
        let (first, last) = (day(from, "The start")?, day(to, "The end")?);
        if first > last {
            return Err("The start must not be after the end.".into());
        }
        if midnight(first) < crate::reports::EARLIEST || last > today {
            return Err("The period must lie between 1970-01-01 and today.".into());
        }
        if (last - first).num_days() >= MAX_PERIOD_DAYS {
            return Err(format!("A period can be at most {MAX_PERIOD_DAYS} days."));
        }
        Ok(Period { first, last })
    }

    /// `[from, to)`: the first day's midnight to the midnight after the last day, or `now` if sooner.
    fn window(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = self.last.checked_add_days(Days::new(1)).map(midnight).unwrap_or(now);
        (midnight(self.first), end.min(now))
    }

    fn days(self) -> Vec<NaiveDate> {
        self.first.iter_days().take_while(|d| *d <= self.last).collect()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct BrandQuery {
    days: Option<u64>,
    from: Option<String>,
    to: Option<String>,
    joined: Option<String>,
}

/// `GET /creator`: the brands the account follows, with the last 30 days at a glance.
pub async fn home(State(state): State<AppState>, session: CreatorSession) -> Result<Response, DashError> {
    // Which brands the account follows is read from the primary (an unlinked brand disappears at once, a
    // joined one appears); the figures are reports, read from the replica when there is one.
    let memberships = creator_accounts::memberships(&state.db, session.account_id).await?;
    let now = Utc::now();
    let (from, to) = Period::last_days(now.date_naive(), 30).window(now);
    let mut rows = Vec::with_capacity(memberships.len());
    for m in &memberships {
        let report = creator_reports::report(state.read(), &state.config, m.brand_id, m.creator_id, from, to).await?;
        rows.push((m, report.totals()));
    }
    let content = html! {
        h1 { "Your brands" }
        @if rows.is_empty() {
            p.empty { "No brand shares its figures with you yet. Open the invitation link a brand sent you to see your links here." }
        } @else {
            p.hint { "The last 30 days, today included (UTC)." }
            div.table-scroll {
                table {
                    thead { tr {
                        th scope="col" { "Brand" } th scope="col" { "As" } th.num scope="col" { "Clicks" }
                        th.num scope="col" { "Conversions" } th.num scope="col" { "Revenue" }
                    } }
                    tbody {
                        @for (m, totals) in &rows {
                            tr {
                                th scope="row" { a href=(format!("/creator/brands/{}", m.brand_id)) { (m.brand_name) } }
                                td { (m.creator_name) @if let Some(h) = &m.handle { " (" (h) ")" } }
                                td.num { (totals.clicks) }
                                td.num { (totals.conversions) }
                                td.num { (revenue_text(totals.revenue.as_deref())) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Your brands", &session, content).into_response())
}

/// Revenue where it is shared, else a plain statement that it is not.
fn revenue_text(revenue: Option<&[Money]>) -> String {
    match revenue {
        Some([]) => "0".to_owned(),
        Some(list) => views::moneys(list),
        None => "Not shared".to_owned(),
    }
}

/// The account's creator record at this brand, or a 404 like any page that is not its own.
async fn membership_of(state: &AppState, session: &CreatorSession, brand_id: Uuid) -> Result<Membership, DashError> {
    creator_accounts::membership(&state.db, session.account_id, brand_id)
        .await?
        .ok_or(DashError::Api(Error::NotFound("brand")))
}

fn brand_path(brand_id: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, DashError> {
    brand_id.map(|Path(id)| id).map_err(|_| DashError::Api(Error::NotFound("brand")))
}

/// `GET /creator/brands/{brand_id}?days=` or `?from=&to=`: the creator's links at the brand, their
/// figures for the period, a per-day chart, and signed statements.
pub async fn brand_page(
    State(state): State<AppState>,
    session: CreatorSession,
    brand_id: Result<Path<Uuid>, PathRejection>,
    Query(query): Query<BrandQuery>,
) -> Result<Response, DashError> {
    let brand_id = brand_path(brand_id)?;
    let membership = membership_of(&state, &session, brand_id).await?;
    let now = Utc::now();
    let today = now.date_naive();
    let (period, period_error) = match (query.from.as_deref(), query.to.as_deref()) {
        (Some(from), Some(to)) => match Period::parse(from, to, today) {
            Ok(period) => (period, None),
            Err(e) => (Period::last_days(today, 30), Some(e)),
        },
        _ => (Period::last_days(today, query.days.filter(|d| PERIODS.contains(d)).unwrap_or(30)), None),
    };
    let (from, to) = period.window(now);
    let report =
        creator_reports::report(state.read(), &state.config, brand_id, membership.creator_id, from, to).await?;
    let issued =
        statements::list(state.read(), brand_id, Some(membership.creator_id), None, 20).await.map_err(Error::from)?;
    let status = if period_error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let content = brand_view(BrandView {
        session: &session,
        membership: &membership,
        period,
        period_error: period_error.as_deref(),
        report: &report,
        issued: &issued,
        joined: query.joined.is_some(),
        preset: query.from.is_none().then(|| query.days.filter(|d| PERIODS.contains(d)).unwrap_or(30)),
    });
    Ok((status, page(&membership.brand_name, &session, content)).into_response())
}

struct BrandView<'a> {
    session: &'a CreatorSession,
    membership: &'a Membership,
    period: Period,
    period_error: Option<&'a str>,
    report: &'a CreatorReport,
    issued: &'a [(i64, statements::StatementInfo)],
    joined: bool,
    preset: Option<u64>,
}

fn brand_view(view: BrandView<'_>) -> Markup {
    let BrandView { session, membership: m, period, report, .. } = view;
    let totals = report.totals();
    let shares = totals.revenue.is_some();
    let base = format!("/creator/brands/{}", m.brand_id);
    html! {
        @if view.joined { p.notice role="status" { "Welcome! " (m.brand_name) " now shares your results with you." } }
        div.page-head {
            h1 { (m.brand_name) }
            nav.periods aria-label="Period" {
                @for d in PERIODS {
                    a href=(format!("{base}?days={d}")) aria-current=[(view.preset == Some(d)).then_some("page")] { "Last " (d) " days" }
                }
            }
        }
        p { "Your links as " strong { (m.creator_name) } @if let Some(h) = &m.handle { " (" (h) ")" } "." }
        form.inline-form.period-form method="get" action=(base) {
            @if let Some(error) = view.period_error { p.error-summary role="alert" { (error) } }
            div.field { label for="from" { "From" } input id="from" name="from" type="date" value=(period.first) required; }
            div.field { label for="to" { "To" } input id="to" name="to" type="date" value=(period.last) required; }
            button type="submit" { "Show" }
        }
        p.period { (period.first.format("%b %-d, %Y")) " – " (period.last.format("%b %-d, %Y")) " (UTC, both days included)" }
        ul.totals aria-label="Totals for the period" {
            li { span.label { "Clicks" } span.value data-total="clicks" { (totals.clicks) } }
            li { span.label { "Unique clicks" } span.value data-total="unique_clicks" { (totals.unique_clicks) } }
            li { span.label { "Conversions" } span.value data-total="conversions" { (totals.conversions) } }
            @if shares {
                li { span.label { "Revenue" } span.value data-total="revenue" { (revenue_text(totals.revenue.as_deref())) } }
            }
            li.pending {
                span.label { "Pending" }
                span.value data-total="pending_conversions" { (totals.pending_conversions) }
                @if let Some(pending) = &totals.pending_revenue { span.sub data-total="pending_revenue" { (views::moneys(pending)) } }
            }
        }
        p.hint {
            "Conversions count orders the store confirmed; pending ones wait for the store's confirmation. "
            @if shares { "Revenue is net of refunds, shown for links whose revenue " (m.brand_name) " shares with you." }
            @else { (m.brand_name) " does not share revenue on your links." }
        }
        h2 { "Per day" }
        (views::chart(&period.days(), &report.by_day))
        h2 { "Your links" }
        @if report.links.is_empty() {
            p.empty { "No links yet." }
        } @else {
            div.table-scroll {
                table.creator-links {
                    thead { tr {
                        th scope="col" { "Short URL" } th scope="col" { "Platform" } th scope="col" { "Content" }
                        th.num scope="col" { "Clicks" } th.num scope="col" { "Unique clicks" }
                        th.num scope="col" { "Conversions" } th.num scope="col" { "Pending" }
                        th.num scope="col" { "Revenue" }
                    } }
                    tbody {
                        @for link in &report.links {
                            tr data-code=(link.code) {
                                th scope="row" {
                                    span.short-url { (link.short_url) } " " (views::copy_button(&link.short_url, "short URL"))
                                    @if !link.active { " " span.status { "Inactive" } }
                                }
                                td { (link.platform.as_deref().and_then(|p| p.parse().ok()).map_or("—", views::platform_label)) }
                                td { (link.content_type.as_deref().and_then(|c| c.parse().ok()).map_or("—", views::content_type_label)) }
                                td.num.clicks { (link.clicks) }
                                td.num.unique { (link.unique_clicks) }
                                td.num.conversions { (link.conversions()) }
                                td.num.pending { (link.pending_conversions()) }
                                td.num.revenue { (revenue_text(link.revenue())) }
                            }
                        }
                    }
                }
            }
        }
        h2 id="statements" { "Signed statements" }
        p {
            "A statement of this period's figures, signed by Tracking Links: anyone can check it at "
            a href="/verify" { "/verify" } ", or offline with the published keys."
        }
        form method="post" action=(format!("{base}/statements")) {
            (views::csrf_field(&session.csrf))
            input type="hidden" name="from" value=(period.first);
            input type="hidden" name="to" value=(period.last);
            button.primary type="submit" { "Get a signed statement for this period" }
        }
        @if !view.issued.is_empty() {
            div.table-scroll {
                table {
                    thead { tr { th scope="col" { "Statement" } th scope="col" { "Period" } th scope="col" { "Issued" } th scope="col" { "Status" } } }
                    tbody {
                        @for (_, s) in view.issued {
                            tr {
                                td { a href=(format!("/statements/{}", s.id)) { (s.id) } }
                                td { (s.period_from.format("%Y-%m-%d %H:%M")) " – " (s.period_to.format("%Y-%m-%d %H:%M")) " UTC" }
                                td { (s.issued_at.format("%Y-%m-%d %H:%M UTC")) }
                                td { @if s.revoked_at.is_some() { "Revoked by the brand" } @else { "Valid" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StatementForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

impl session::CsrfForm for StatementForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /creator/brands/{brand_id}/statements`: a signed statement of the period (up to now, when it
/// ends today), then its page.
pub async fn issue_statement(
    State(state): State<AppState>,
    brand_id: Result<Path<Uuid>, PathRejection>,
    Posted { session, form }: Posted<StatementForm, CreatorSession>,
) -> Result<Response, DashError> {
    let brand_id = brand_path(brand_id)?;
    let membership = membership_of(&state, &session, brand_id).await?;
    let now = Utc::now().trunc_subsecs(0);
    let period = Period::parse(&form.from, &form.to, now.date_naive()).map_err(DashError::BadRequest)?;
    let (from, to) = period.window(now);
    match statements::issue(&state.db, &state.config, membership.creator_id, brand_id, from, to).await {
        Ok(issued) => Ok(Redirect::to(&format!("/statements/{}", issued.id)).into_response()),
        Err(IssueError::InvalidPeriod(why)) => Err(DashError::BadRequest(why)),
        Err(e) => Err(DashError::Api(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_portal_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/creator")), Some("/creator"));
        assert_eq!(safe_next(Some("/creator/brands/x?days=7")), Some("/creator/brands/x?days=7"));
        for bad in [
            "/brand/attribution",
            "//evil.example/creator/",
            "https://evil.example/creator",
            "/creatorx",
            "/creator/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn a_period_is_whole_days_up_to_today_and_at_most_a_year() {
        let today: NaiveDate = "2026-12-06".parse().unwrap();
        let period = Period::parse("2026-11-01", "2026-11-30", today).unwrap();
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        assert_eq!(
            period.window(now),
            ("2026-11-01T00:00:00Z".parse().unwrap(), "2026-12-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(period.days().len(), 30);
        let to_today = Period::parse("2026-12-01", "2026-12-06", today).unwrap();
        assert_eq!(to_today.window(now).1, now, "a period ending today ends now");
        assert_eq!(Period::last_days(today, 7).first, "2026-11-30".parse::<NaiveDate>().unwrap());
        for (from, to) in [
            ("2026-11-30", "2026-11-01"),
            ("2026-12-01", "2026-12-07"),
            ("1969-12-31", "1970-01-02"),
            ("2025-01-01", "2026-01-02"),
            ("yesterday", "2026-12-01"),
            ("2026-12-01", ""),
        ] {
            assert!(Period::parse(from, to, today).is_err(), "{from} {to}");
        }
    }
}
