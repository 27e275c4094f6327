//! `/brand/creators`: the brand's creators, a small form to add one (the REST API's validation), for
//! each creator with live tokens a form that revokes them all (`/v1/me` refuses them at once), and the
//! creators' portal: whether each creator has joined, an invitation link to copy, and unlinking.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::super::error::Error;
use super::super::AppState;
use super::session::{CsrfForm, Posted, Session};
use super::views::{self, FieldAttrs, Section};
use super::DashError;
use crate::creator_accounts::{self, AccountError, Invitation};
use crate::creator_tokens;
use crate::creators::{self, CreateCreator, Creator};
use crate::links::LinkError;

#[derive(Debug, Default, Deserialize)]
pub struct CreatorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    handle: String,
}

impl CsrfForm for CreatorForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The form that revokes a creator's tokens: nothing but the session's token.
#[derive(Debug, Default, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfForm for RevokeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    created: Option<String>,
    /// How many tokens the last revocation ended.
    revoked: Option<u64>,
    unlinked: Option<String>,
}

/// What the page says happened just before it.
#[derive(Debug, Clone, Default)]
enum Notice {
    #[default]
    None,
    Created,
    Revoked(u64),
    /// An invitation was just made: its link, shown this once.
    Invited {
        name: String,
        invitation: Invitation,
    },
    Unlinked,
}

/// The brand's creators with the number of live tokens each has.
struct Roster {
    creators: Vec<Creator>,
    live_tokens: HashMap<Uuid, i64>,
}

impl Roster {
    async fn load(db: &PgPool, brand_id: Uuid) -> Result<Self, DashError> {
        let creators = creators::all(db, brand_id).await?;
        let live_tokens = creator_tokens::live_counts(db, brand_id).await.map_err(Error::from)?.into_iter().collect();
        Ok(Roster { creators, live_tokens })
    }
}

/// Whether the creator has joined the portal, and the form that invites or unlinks them.
fn portal_cell(session: &Session, creator: &Creator) -> Markup {
    html! {
        @if let Some(joined) = creator.joined_at {
            form.inline-form method="post" action=(format!("/brand/creators/{}/unlink", creator.id)) {
                (views::csrf_field(&session.csrf))
                span.joined { "Joined " (joined.format("%b %-d, %Y")) " " }
                button.link-button type="submit" aria-label=(format!("Unlink the portal account of {}", creator.name)) {
                    "Unlink"
                }
            }
        } @else {
            form.inline-form method="post" action=(format!("/brand/creators/{}/invite", creator.id)) {
                (views::csrf_field(&session.csrf))
                span.not-joined { "Not joined " }
                button.link-button type="submit" aria-label=(format!("Create an invitation link for {}", creator.name)) {
                    "Invite"
                }
            }
        }
    }
}

/// A creator's live tokens, and the form that revokes them.
fn access_cell(session: &Session, creator: &Creator, live: i64) -> Markup {
    html! {
        @if live == 0 {
            "No active tokens"
        } @else {
            form.inline-form method="post" action=(format!("/brand/creators/{}/revoke-tokens", creator.id)) {
                (views::csrf_field(&session.csrf))
                span { (live) @if live == 1 { " active token " } @else { " active tokens " } }
                button.link-button type="submit" aria-label=(format!("Revoke every token of {}", creator.name)) {
                    "Revoke access"
                }
            }
        }
    }
}

fn render(
    session: &Session,
    roster: &Roster,
    form: &CreatorForm,
    errors: (Option<&str>, Option<&str>),
    notice: Notice,
) -> Markup {
    let creators = &roster.creators;
    let content = html! {
        h1 { "Creators" }
        @match &notice {
            Notice::Created => p.notice role="status" { "Creator added." },
            Notice::Unlinked => p.notice role="status" { "Unlinked: the creator no longer sees this brand in the portal." },
            Notice::Invited { name, invitation } => div.notice.invitation role="status" {
                p {
                    "Invitation link for " strong { (name) } ", valid until "
                    (invitation.expires_at.format("%b %-d, %Y %H:%M UTC")) ". Send it to them: it is shown only now."
                }
                p {
                    input.invitation-url type="text" readonly value=(invitation.url) aria-label="Invitation link";
                    " " (views::copy_button(&invitation.url, "invitation link"))
                }
            },
            Notice::Revoked(n) => p.notice role="status" {
                "Access revoked: " (n) @if *n == 1 { " token" } @else { " tokens" } " stopped working."
            },
            Notice::None => {},
        }
        section aria-labelledby="add-creator" {
            h2 id="add-creator" { "Add a creator" }
            form.stacked.inline-form method="post" action="/brand/creators" novalidate {
                (views::csrf_field(&session.csrf))
                (views::text_field("name", "Name", &form.name, errors.0, FieldAttrs { required: true, maxlength: Some(200), ..FieldAttrs::text() }))
                (views::text_field("handle", "Handle", &form.handle, errors.1, FieldAttrs {
                    hint: Some("Optional, e.g. @jessica"), maxlength: Some(100), ..FieldAttrs::text()
                }))
                div.actions { button.primary type="submit" { "Add creator" } }
            }
        }
        @if creators.is_empty() {
            p.empty { "No creators yet." }
        } @else {
            div.table-scroll {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Handle" } th scope="col" { "Links" }
                        th scope="col" { "Access" } th scope="col" { "Portal" }
                    } }
                    tbody {
                        @for c in creators {
                            tr {
                                td { (c.name) }
                                td { (c.handle.as_deref().unwrap_or("—")) }
                                td { a href=(format!("/brand/attribution/links?creator_id={}", c.id)) { "Links of " (c.name) } }
                                td { (access_cell(session, c, roster.live_tokens.get(&c.id).copied().unwrap_or(0))) }
                                td.portal { (portal_cell(session, c)) }
                            }
                        }
                    }
                }
            }
        }
    };
    views::page("Creators", session, Section::Creators, content)
}

/// `GET /brand/creators`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PageQuery>,
) -> Result<Response, DashError> {
    let just_wrote = query.created.is_some() || query.revoked.is_some() || query.unlinked.is_some();
    let roster = Roster::load(state.read_after_write(just_wrote), session.brand.id).await?;
    let notice = match (query.created, query.revoked, query.unlinked) {
        (_, Some(n), _) => Notice::Revoked(n),
        (_, None, Some(_)) => Notice::Unlinked,
        (Some(_), None, None) => Notice::Created,
        (None, None, None) => Notice::None,
    };
    Ok(render(&session, &roster, &CreatorForm::default(), (None, None), notice).into_response())
}

/// `POST /brand/creators`.
pub async fn create(State(state): State<AppState>, posted: Posted<CreatorForm>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    let handle = Some(form.handle.trim()).filter(|h| !h.is_empty()).map(str::to_owned);
    let body = CreateCreator { name: form.name.clone(), handle };
    let error = match creators::create(&state.db, session.brand.id, &body).await {
        Ok(_) => return Ok(Redirect::to("/brand/creators?created=1").into_response()),
        Err(e @ LinkError::Invalid { code: "invalid_name" | "invalid_handle", .. }) => e,
        Err(e) => return Err(Error::from(e).into()),
    };
    let message = error.to_string();
    let errors = match error {
        LinkError::Invalid { code: "invalid_handle", .. } => (None, Some(message.as_str())),
        _ => (Some(message.as_str()), None),
    };
    let roster = Roster::load(&state.db, session.brand.id).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&session, &roster, &form, errors, Notice::None)).into_response())
}

/// `POST /brand/creators/{id}/revoke-tokens`: every live token of the creator stops working at once.
pub async fn revoke_tokens(
    State(state): State<AppState>,
    path: Result<Path<Uuid>, PathRejection>,
    posted: Posted<RevokeForm>,
) -> Result<Response, DashError> {
    let Path(creator_id) = path.map_err(|_| DashError::Api(Error::NotFound("creator")))?;
    let revoked =
        creator_tokens::revoke_all(&state.db, posted.session.brand.id, creator_id).await.map_err(Error::from)?;
    Ok(Redirect::to(&format!("/brand/creators?revoked={revoked}")).into_response())
}

/// `POST /brand/creators/{id}/invite`: a new invitation link, shown once on the page.
pub async fn invite(
    State(state): State<AppState>,
    path: Result<Path<Uuid>, PathRejection>,
    posted: Posted<RevokeForm>,
) -> Result<Response, DashError> {
    let Path(creator_id) = path.map_err(|_| DashError::Api(Error::NotFound("creator")))?;
    let session = posted.session;
    let brand = session.brand.id;
    let invitation = match creator_accounts::invite(&state.db, &state.config, brand, creator_id).await {
        Ok(invitation) => invitation,
        Err(e @ AccountError::AlreadyJoined) => return Err(DashError::Conflict(e.to_string())),
        Err(e) => return Err(Error::from(e).into()),
    };
    let roster = Roster::load(&state.db, brand).await?;
    let name = roster.creators.iter().find(|c| c.id == creator_id).map(|c| c.name.clone()).unwrap_or_default();
    let notice = Notice::Invited { name, invitation };
    Ok(render(&session, &roster, &CreatorForm::default(), (None, None), notice).into_response())
}

/// `POST /brand/creators/{id}/unlink`: the creator's portal account stops seeing this brand at once.
pub async fn unlink(
    State(state): State<AppState>,
    path: Result<Path<Uuid>, PathRejection>,
    posted: Posted<RevokeForm>,
) -> Result<Response, DashError> {
    let Path(creator_id) = path.map_err(|_| DashError::Api(Error::NotFound("creator")))?;
    creator_accounts::unlink(&state.db, posted.session.brand.id, creator_id).await.map_err(Error::from)?;
    Ok(Redirect::to("/brand/creators?unlinked=1").into_response())
}
