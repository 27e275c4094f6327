//! `/brand/domains`: the brand's own short domains: add one, see what to publish in its DNS and whether
//! it is active yet, remove one. The rules are [`crate::domains`]'s.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::super::error::Error;
use super::super::AppState;
use super::session::{CsrfForm, Posted, Session};
use super::views::{self, FieldAttrs, Section};
use super::DashError;
use crate::domains::{Domain, DomainError, DomainStatus};

#[derive(Debug, Default, Deserialize)]
pub struct DomainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hostname: String,
}

impl CsrfForm for DomainForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    added: Option<String>,
    removed: Option<String>,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn render(
    session: &Session,
    domains: &[Domain],
    form: &DomainForm,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    let content = html! {
        h1 { "Domains" }
        p { "Put your links on your own domain (go.yourbrand.com): followers trust a name they know. "
            "Links on the default tracking domain keep working." }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        section aria-labelledby="add-domain" {
            h2 id="add-domain" { "Add a domain" }
            form.stacked.inline-form method="post" action="/brand/domains" novalidate {
                (views::csrf_field(&session.csrf))
                (views::text_field("hostname", "Domain", &form.hostname, error, FieldAttrs {
                    required: true, maxlength: Some(253), autocomplete: Some("off"),
                    hint: Some("A subdomain you control, e.g. go.yourbrand.com"), ..FieldAttrs::text()
                }))
                div.actions { button.primary type="submit" { "Add domain" } }
            }
        }
        @if domains.is_empty() {
            p.empty { "No domains yet." }
        } @else {
            @for domain in domains {
                section.domain aria-labelledby=(format!("domain-{}", domain.hostname)) data-hostname=(domain.hostname) {
                    h2 id=(format!("domain-{}", domain.hostname)) {
                        (domain.hostname) " "
                        @match domain.status {
                            DomainStatus::Active => span.badge.active { "Active" },
                            DomainStatus::Pending => span.badge.inactive { "Pending" },
                        }
                    }
                    @match domain.status {
                        DomainStatus::Active => {
                            p { "Active since " (domain.activated_at.map(when).unwrap_or_default())
                                ". Choose it as the short domain of new links." }
                        }
                        DomainStatus::Pending => {
                            p { "Publish these records in the domain's DNS. The domain becomes active once they are "
                                "found (checked every minute); keep the CNAME afterwards." }
                            @if let Some(error) = &domain.last_error { p.error role="alert" { "Last check: " (error) } }
                        }
                    }
                    div.table-scroll {
                        table.dns-records {
                            caption.visually-hidden { "DNS records for " (domain.hostname) }
                            thead { tr { th scope="col" { "Type" } th scope="col" { "Name" } th scope="col" { "Value" } } }
                            tbody {
                                @for record in &domain.dns_records {
                                    tr { td { (record.r#type) } td { code { (record.name) } } td { code { (record.value) } } }
                                }
                            }
                        }
                    }
                    form method="post" action=(format!("/brand/domains/{}/remove", domain.hostname)) {
                        (views::csrf_field(&session.csrf))
                        button.danger type="submit" { "Remove " (domain.hostname) }
                    }
                }
            }
        }
    };
    views::page("Domains", session, Section::Domains, content)
}

/// `GET /brand/domains`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PageQuery>,
) -> Result<Response, DashError> {
    let domains = state.domains.list(session.brand.id).await.map_err(Error::from)?;
    let notice = match (query.added.is_some(), query.removed.is_some()) {
        (true, _) => Some("Domain added. Publish its DNS records below."),
        (_, true) => Some("Domain removed."),
        _ => None,
    };
    Ok(render(&session, &domains, &DomainForm::default(), None, notice).into_response())
}

/// `POST /brand/domains`.
pub async fn create(State(state): State<AppState>, posted: Posted<DomainForm>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    let error = match state.domains.add(session.brand.id, form.hostname.trim()).await {
        Ok(_) => return Ok(Redirect::to("/brand/domains?added=1").into_response()),
        Err(
            e @ (DomainError::Invalid(_) | DomainError::Taken(_) | DomainError::TooMany | DomainError::Provider(_)),
        ) => e.to_string(),
        Err(e) => return Err(Error::from(e).into()),
    };
    let domains = state.domains.list(session.brand.id).await.map_err(Error::from)?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&session, &domains, &form, Some(&error), None)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfForm for RemoveForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /brand/domains/{hostname}/remove`: refused, with the reason on the page, while active links use it.
pub async fn remove(
    State(state): State<AppState>,
    Path(hostname): Path<String>,
    posted: Posted<RemoveForm>,
) -> Result<Response, DashError> {
    let session = posted.session;
    match state.domains.remove(session.brand.id, &hostname).await {
        Ok(()) => Ok(Redirect::to("/brand/domains?removed=1").into_response()),
        Err(e @ DomainError::InUse(_)) => {
            let domains = state.domains.list(session.brand.id).await.map_err(Error::from)?;
            let message = format!("{hostname} was not removed: {e}.");
            let page = render(&session, &domains, &DomainForm::default(), None, Some(&message));
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(e) => Err(Error::from(e).into()),
    }
}
