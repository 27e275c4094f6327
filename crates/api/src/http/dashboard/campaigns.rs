//! `/brand/campaigns`: the brand's campaigns and a small form to add one (the REST API's validation).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::super::error::Error;
use super::super::AppState;
use super::session::{CsrfForm, Posted, Session};
use super::views::{self, FieldAttrs, Section};
use super::DashError;
use crate::campaigns::{self, Campaign, CreateCampaign};
use crate::links::LinkError;

#[derive(Debug, Default, Deserialize)]
pub struct CampaignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

impl CsrfForm for CampaignForm {
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
    campaigns: &[Campaign],
    form: &CampaignForm,
    error: Option<&str>,
    created: bool,
) -> Markup {
    let content = html! {
        h1 { "Campaigns" }
        @if created { p.notice role="status" { "Campaign added." } }
        section aria-labelledby="add-campaign" {
            h2 id="add-campaign" { "Add a campaign" }
            form.stacked.inline-form method="post" action="/brand/campaigns" novalidate {
                (views::csrf_field(&session.csrf))
                (views::text_field("name", "Name", &form.name, error, FieldAttrs {
                    required: true, maxlength: Some(200), ..FieldAttrs::text()
                }))
                div.actions { button.primary type="submit" { "Add campaign" } }
            }
        }
        @if campaigns.is_empty() {
            p.empty { "No campaigns yet." }
        } @else {
            div.table-scroll {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Started" } th scope="col" { "Links" } } }
                    tbody {
                        @for c in campaigns {
                            tr {
                                td { (c.name) }
                                td { (c.created_at.format("%Y-%m-%d")) }
                                td { a href=(format!("/brand/attribution/links?campaign_id={}", c.id)) { "Links of " (c.name) } }
                            }
                        }
                    }
                }
            }
        }
    };
    views::page("Campaigns", session, Section::Campaigns, content)
}

/// `GET /brand/campaigns`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PageQuery>,
) -> Result<Response, DashError> {
    let campaigns = campaigns::all(state.read_after_write(query.created.is_some()), session.brand.id).await?;
    Ok(render(&session, &campaigns, &CampaignForm::default(), None, query.created.is_some()).into_response())
}

/// `POST /brand/campaigns`.
pub async fn create(State(state): State<AppState>, posted: Posted<CampaignForm>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    let body = CreateCampaign { name: form.name.clone() };
    let error = match campaigns::create(&state.db, session.brand.id, &body).await {
        Ok(_) => return Ok(Redirect::to("/brand/campaigns?created=1").into_response()),
        Err(e @ LinkError::Invalid { .. }) => e.to_string(),
        Err(e) => return Err(Error::from(e).into()),
    };
    let campaigns = campaigns::all(&state.db, session.brand.id).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&session, &campaigns, &form, Some(&error), false)).into_response())
}
