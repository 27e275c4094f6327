//! `/brand/creators`: the brand's creators and a small form to add one (the REST API's validation).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::super::creators::{create_creator, list_creators, CreateCreator, Creator};
use super::super::error::Error;
use super::super::extract::{Page, MAX_LIMIT};
use super::super::AppState;
use super::session::{CsrfForm, Posted, Session};
use super::views::{self, FieldAttrs, Section};
use super::DashError;

/// Every creator of the brand, newest first (for dropdowns), page by page through the REST listing.
pub async fn all(db: &PgPool, brand_id: Uuid) -> Result<Vec<Creator>, Error> {
    let mut creators = Vec::new();
    let mut cursor = None;
    loop {
        let page = list_creators(db, brand_id, Page { limit: Some(MAX_LIMIT), cursor }.parse()?).await?;
        creators.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(creators),
        }
    }
}

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

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    created: Option<String>,
}

fn render(
    session: &Session,
    creators: &[Creator],
    form: &CreatorForm,
    errors: (Option<&str>, Option<&str>),
    created: bool,
) -> Markup {
    let content = html! {
        h1 { "Creators" }
        @if created { p.notice role="status" { "Creator added." } }
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
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Handle" } th scope="col" { "Links" } } }
                    tbody {
                        @for c in creators {
                            tr {
                                td { (c.name) }
                                td { (c.handle.as_deref().unwrap_or("—")) }
                                td { a href=(format!("/brand/attribution/links?creator_id={}", c.id)) { "Links of " (c.name) } }
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
    let creators = all(&state.db, session.brand.id).await?;
    Ok(render(&session, &creators, &CreatorForm::default(), (None, None), query.created.is_some()).into_response())
}

/// `POST /brand/creators`.
pub async fn create(State(state): State<AppState>, posted: Posted<CreatorForm>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    let handle = Some(form.handle.trim()).filter(|h| !h.is_empty()).map(str::to_owned);
    let body = CreateCreator { name: form.name.clone(), handle };
    let error = match create_creator(&state.db, session.brand.id, &body).await {
        Ok(_) => return Ok(Redirect::to("/brand/creators?created=1").into_response()),
        Err(e @ Error::Invalid { code: "invalid_name" | "invalid_handle", .. }) => e,
        Err(e) => return Err(e.into()),
    };
    let message = error.to_string();
    let errors = match error {
        Error::Invalid { code: "invalid_handle", .. } => (None, Some(message.as_str())),
        _ => (Some(message.as_str()), None),
    };
    let creators = all(&state.db, session.brand.id).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&session, &creators, &form, errors, false)).into_response())
}
