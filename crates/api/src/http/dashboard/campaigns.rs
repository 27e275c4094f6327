//! `/brand/campaigns`: the brand's campaigns and a small form to add one (the REST API's validation).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::super::campaigns::{create_campaign, list_campaigns, Campaign, CreateCampaign};
use super::super::error::Error;
use super::super::extract::{Page, MAX_LIMIT};
use super::super::AppState;
use super::session::{CsrfForm, Posted, Session};
use super::views::{self, FieldAttrs, Section};
use super::DashError;

/// Every campaign of the brand, newest first (for dropdowns), page by page through the REST listing.
pub async fn all(db: &PgPool, brand_id: Uuid) -> Result<Vec<Campaign>, Error> {
    let mut campaigns = Vec::new();
    let mut cursor = None;
    loop {
        let page = list_campaigns(db, brand_id, Page { limit: Some(MAX_LIMIT), cursor }.parse()?).await?;
        campaigns.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(campaigns),
        }
    }
}

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
    let campaigns = all(&state.db, session.brand.id).await?;
    Ok(render(&session, &campaigns, &CampaignForm::default(), None, query.created.is_some()).into_response())
}

/// `POST /brand/campaigns`.
pub async fn create(State(state): State<AppState>, posted: Posted<CampaignForm>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    let body = CreateCampaign { name: form.name.clone() };
    let error = match create_campaign(&state.db, session.brand.id, &body).await {
        Ok(_) => return Ok(Redirect::to("/brand/campaigns?created=1").into_response()),
        Err(e @ Error::Invalid { .. }) => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    let campaigns = all(&state.db, session.brand.id).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&session, &campaigns, &form, Some(&error), false)).into_response())
}
