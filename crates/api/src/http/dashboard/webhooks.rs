//! `/brand/webhooks`: the brand's outbound webhook endpoints: add one and pick its events (its secret
//! is shown once), see its recent deliveries and retry one, send a test event, pause, rotate the secret,
//! remove it. The rules are [`crate::webhooks`]'s, the same the REST API runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::super::error::Error;
use super::super::AppState;
use super::session::{CsrfForm, Posted, Session};
use super::views::{self, FieldAttrs, Section};
use super::DashError;
use crate::webhooks::{self, Endpoint, EndpointPatch, NewEndpoint, WebhookError, EVENT_TYPES};

/// What each event type means, for the form's checkboxes.
fn describe(event: &str) -> &'static str {
    match event {
        "link.created" => "A link was created",
        "link.updated" => "A link was changed",
        "link.deactivated" => "A link was deactivated",
        "conversion.created" => "An order was recorded",
        "conversion.status_changed" => "An order's status changed (verified, cancelled, …)",
        "conversion.refunded" => "An order was refunded",
        "link.destination_broken" => "A link's destination stopped working",
        _ => "",
    }
}

/// A posted form as its name/value pairs: the event checkboxes repeat one name.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

impl CsrfForm for Fields {
    fn csrf(&self) -> &str {
        self.get("csrf").unwrap_or_default()
    }
}

fn status_of(endpoint: &Endpoint) -> Markup {
    html! {
        @if endpoint.enabled {
            @if let Some(since) = endpoint.failing_since {
                span.badge.warn { "Failing since " (since.format("%Y-%m-%d %H:%M UTC")) }
            } @else {
                span.badge.ok { "Enabled" }
            }
        } @else if endpoint.disabled_reason.as_deref() == Some("failing") {
            span.badge.bad { "Disabled: failing for 5 days" }
        } @else {
            span.badge { "Paused" }
        }
    }
}

fn render_list(
    session: &Session,
    endpoints: &[Endpoint],
    form: &Fields,
    error: Option<&str>,
    secret: Option<&str>,
) -> Markup {
    let checked: Vec<String> = form.all("events");
    let content = html! {
        h1 { "Webhooks" }
        p.hint {
            "Your systems hear about links and orders as they change: each event is sent to your endpoint signed "
            "per the Standard Webhooks specification (headers webhook-id, webhook-timestamp, webhook-signature), "
            "in order, and retried for more than three days until your endpoint answers 2xx."
        }
        @if let Some(secret) = secret {
            div.notice role="status" {
                p { "Endpoint added. Its signing secret is shown only now: store it where your receiver can read it." }
                p { code.secret { (secret) } " " (views::copy_button(secret, "signing secret")) }
            }
        }
        @for e in endpoints.iter().filter(|e| e.disabled_reason.as_deref() == Some("failing")) {
            p.alert role="alert" {
                "Deliveries to " code { (e.url) } " failed for five days, so it was disabled. "
                a href=(format!("/brand/webhooks/{}", e.id)) { "Fix and enable it" }
            }
        }
        section aria-labelledby="add-endpoint" {
            h2 id="add-endpoint" { "Add an endpoint" }
            form.stacked method="post" action="/brand/webhooks" novalidate {
                (views::csrf_field(&session.csrf))
                (views::text_field("url", "Endpoint URL", form.get("url").unwrap_or_default(), error, FieldAttrs {
                    required: true, maxlength: Some(2048), hint: Some("https only; not a private or local address."),
                    ..FieldAttrs::text()
                }))
                (views::text_field("description", "Description", form.get("description").unwrap_or_default(), None,
                    FieldAttrs { maxlength: Some(500), ..FieldAttrs::text() }))
                fieldset {
                    legend { "Events" }
                    @for event in EVENT_TYPES {
                        div.check {
                            input type="checkbox" name="events" value=(event) id=(format!("event-{event}"))
                                checked[checked.iter().any(|c| c == event)];
                            label for=(format!("event-{event}")) { code { (event) } " — " (describe(event)) }
                        }
                    }
                }
                div.actions { button.primary type="submit" { "Add endpoint" } }
            }
        }
        h2 { "Endpoints" }
        @if endpoints.is_empty() {
            p.empty { "No endpoints yet." }
        } @else {
            div.table-scroll {
                table {
                    thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Status" } } }
                    tbody {
                        @for e in endpoints {
                            tr {
                                td { a href=(format!("/brand/webhooks/{}", e.id)) { (e.url) }
                                     @if let Some(d) = &e.description { br; span.muted { (d) } } }
                                td { (e.events.join(", ")) }
                                td { (status_of(e)) }
                            }
                        }
                    }
                }
            }
        }
    };
    views::page("Webhooks", session, Section::Webhooks, content)
}

/// `GET /brand/webhooks`.
pub async fn page(State(state): State<AppState>, session: Session) -> Result<Response, DashError> {
    let endpoints = webhooks::list(&state.db, session.brand.id).await.map_err(Error::from)?;
    Ok(render_list(&session, &endpoints, &Fields::default(), None, None).into_response())
}

/// `POST /brand/webhooks`: adds an endpoint and shows its secret once.
pub async fn create(State(state): State<AppState>, posted: Posted<Fields>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    let new = NewEndpoint {
        url: form.get("url").unwrap_or_default().to_owned(),
        events: form.all("events"),
        description: form.get("description").map(str::to_owned),
    };
    let brand = session.brand.id;
    match webhooks::create(&state.db, state.config.target_policy(), brand, &new).await {
        Ok(created) => {
            let endpoints = webhooks::list(&state.db, brand).await.map_err(Error::from)?;
            Ok(render_list(&session, &endpoints, &Fields::default(), None, Some(&created.secret)).into_response())
        }
        Err(e @ (WebhookError::Invalid { .. } | WebhookError::TooMany)) => {
            let endpoints = webhooks::list(&state.db, brand).await.map_err(Error::from)?;
            let message = e.to_string();
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render_list(&session, &endpoints, &form, Some(&message), None))
                .into_response())
        }
        Err(e) => Err(Error::from(e).into()),
    }
}

fn endpoint_id(raw: &str) -> Result<Uuid, DashError> {
    Uuid::parse_str(raw).map_err(|_| DashError::Api(Error::NotFound("webhook endpoint")))
}

/// A button that posts one action about the endpoint.
fn action(session: &Session, href: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(href) {
            (views::csrf_field(&session.csrf))
            button type="submit" class=(class) { (label) }
        }
    }
}

async fn render_detail(
    state: &AppState,
    session: &Session,
    endpoint: &Endpoint,
    notice: Option<&str>,
    secret: Option<&str>,
) -> Result<Markup, DashError> {
    let deliveries =
        webhooks::deliveries(&state.db, session.brand.id, endpoint.id, None, 50).await.map_err(Error::from)?;
    let base = format!("/brand/webhooks/{}", endpoint.id);
    let content = html! {
        p { a href="/brand/webhooks" { "← Webhooks" } }
        h1 { "Endpoint " code { (endpoint.url) } }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        @if let Some(secret) = secret {
            div.notice role="status" {
                p { "New signing secret, shown only now. For 24 hours deliveries are signed with the old one too." }
                p { code.secret { (secret) } " " (views::copy_button(secret, "signing secret")) }
            }
        }
        @if endpoint.disabled_reason.as_deref() == Some("failing") {
            p.alert role="alert" { "Every delivery failed for five days, so this endpoint was disabled. Fix the \
                receiver, enable it again, and the waiting deliveries go out in order." }
        }
        dl.facts {
            dt { "Status" } dd { (status_of(endpoint)) }
            dt { "Events" } dd { (endpoint.events.join(", ")) }
            @if let Some(d) = &endpoint.description { dt { "Description" } dd { (d) } }
            dt { "Added" } dd { (endpoint.created_at.format("%Y-%m-%d %H:%M UTC")) }
        }
        div.actions {
            (action(session, &format!("{base}/test"), "Send test event", "primary"))
            @if endpoint.enabled {
                (action(session, &format!("{base}/disable"), "Pause", ""))
            } @else {
                (action(session, &format!("{base}/enable"), "Enable", ""))
            }
            (action(session, &format!("{base}/rotate-secret"), "Rotate secret", ""))
            (action(session, &format!("{base}/delete"), "Remove endpoint", "danger"))
        }
        h2 { "Recent deliveries" }
        @if deliveries.is_empty() {
            p.empty { "Nothing sent yet." }
        } @else {
            div.table-scroll {
                table {
                    thead { tr {
                        th scope="col" { "Event" } th scope="col" { "Status" } th.num scope="col" { "Attempts" }
                        th scope="col" { "Last answer" } th scope="col" { "Last attempt" } th scope="col" { "Next attempt" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for (_, d) in &deliveries {
                            tr {
                                td { code { (d.event_type) } }
                                td { (d.status) }
                                td.num { (d.attempts) }
                                td {
                                    @if let Some(code) = d.last_status_code { (code) }
                                    @if let Some(error) = &d.last_error { " " span.muted { (error) } }
                                }
                                td { @if let Some(t) = d.last_attempt_at { (t.format("%Y-%m-%d %H:%M:%S")) } }
                                td { @if let Some(t) = d.next_attempt_at { (t.format("%Y-%m-%d %H:%M:%S")) } }
                                td { (action(session, &format!("{base}/deliveries/{}/retry", d.id), "Retry", "")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(views::page("Webhook endpoint", session, Section::Webhooks, content))
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

/// `GET /brand/webhooks/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<DetailQuery>,
) -> Result<Response, DashError> {
    let endpoint = webhooks::get(&state.db, session.brand.id, endpoint_id(&id)?).await.map_err(Error::from)?;
    let notice = match query.done.as_deref() {
        Some("test") => Some("Test event queued: it is sent within a second."),
        Some("retry") => Some("Delivery queued for another attempt now."),
        Some("enabled") => Some("Endpoint enabled."),
        Some("paused") => Some("Endpoint paused: nothing is sent, and new events are not kept for it."),
        _ => None,
    };
    Ok(render_detail(&state, &session, &endpoint, notice, None).await?.into_response())
}

/// `POST /brand/webhooks/{id}/{action}`: test, enable, disable, rotate-secret, delete.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> Result<Response, DashError> {
    let Posted { session, .. } = posted;
    let (brand, id) = (session.brand.id, endpoint_id(&id)?);
    let back = |done: &str| Redirect::to(&format!("/brand/webhooks/{id}?done={done}")).into_response();
    let patch = |enabled: bool| EndpointPatch { enabled: Some(enabled), ..Default::default() };
    let policy = state.config.target_policy();
    let outcome = match action.as_str() {
        "test" => webhooks::send_test(&state.db, brand, id).await.map(|_| back("test")),
        "enable" => webhooks::update(&state.db, policy, brand, id, &patch(true)).await.map(|_| back("enabled")),
        "disable" => webhooks::update(&state.db, policy, brand, id, &patch(false)).await.map(|_| back("paused")),
        "delete" => {
            webhooks::delete(&state.db, brand, id).await.map(|()| Redirect::to("/brand/webhooks").into_response())
        }
        "rotate-secret" => {
            let rotated = webhooks::rotate_secret(&state.db, brand, id, Utc::now()).await.map_err(Error::from)?;
            let page = render_detail(&state, &session, &rotated.endpoint, None, Some(&rotated.secret)).await?;
            return Ok(page.into_response());
        }
        _ => return Err(DashError::Api(Error::NotFound("page"))),
    };
    outcome.map_err(|e| DashError::Api(e.into()))
}

/// `POST /brand/webhooks/{id}/deliveries/{delivery_id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    Path((id, delivery)): Path<(String, String)>,
    posted: Posted<Fields>,
) -> Result<Response, DashError> {
    let Posted { session, .. } = posted;
    let id = endpoint_id(&id)?;
    let delivery = Uuid::parse_str(&delivery).map_err(|_| DashError::Api(Error::NotFound("delivery")))?;
    webhooks::retry(&state.db, session.brand.id, id, delivery).await.map_err(Error::from)?;
    Ok(Redirect::to(&format!("/brand/webhooks/{id}?done=retry")).into_response())
}
