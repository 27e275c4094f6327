//! `/brand/attribution/links`: the Tracking Links page, the New Link form, one link's page, and
//! deactivation. Listing, validation, creation and deletion are the REST API's own functions.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use uuid::Uuid;

use shared::{ContentType, Platform};

use super::super::conversions::list_conversions;
use super::super::error::Error;
use super::super::extract::{List, Page};
use super::super::links as rest;
use super::super::AppState;
use super::session::{CsrfForm, Posted, Session};
use super::views::{self, FieldAttrs, Section};
use super::{attribution, DashError};
use crate::conversions::ConversionFilter;
use crate::links::qr::Format;
use crate::links::{self, CreateLink, Link, LinkError, LinkFilter};
use crate::reports::Window;

/// Links per page of the list.
const PAGE_SIZE: i64 = 25;

/// An id from a query string: empty means "none", anything else must be an id.
fn optional_id(raw: Option<&str>, name: &str) -> Result<Option<Uuid>, DashError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(raw) => Uuid::parse_str(raw).map(Some).map_err(|_| DashError::BadRequest(format!("{name} is not an id"))),
    }
}

/// The link id of a path; a malformed one names nothing, like another brand's.
pub fn link_id(path: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, DashError> {
    path.map(|Path(id)| id).map_err(|_| DashError::Api(Error::NotFound("link")))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    campaign_id: Option<String>,
    creator_id: Option<String>,
    cursor: Option<String>,
    deactivated: Option<String>,
    destination_status: Option<String>,
}

impl ListQuery {
    /// The links the list shows: those of the campaign and the creator it is filtered by, and whose
    /// destination's last check found what it is filtered by.
    fn filter(&self) -> Result<LinkFilter, DashError> {
        let destination_status =
            match self.destination_status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(raw) => Some(crate::links::DestinationStatus::parse(raw).ok_or_else(|| {
                    DashError::BadRequest("destination_status is not ok, broken or unreachable".into())
                })?),
            };
        Ok(LinkFilter {
            campaign_id: optional_id(self.campaign_id.as_deref(), "campaign_id")?,
            creator_id: optional_id(self.creator_id.as_deref(), "creator_id")?,
            destination_status,
            ..Default::default()
        })
    }
}

/// Names of the brand's creators and campaigns, for dropdowns and for rows.
pub struct Names {
    pub creators: Vec<(String, String)>,
    pub campaigns: Vec<(String, String)>,
}

impl Names {
    pub async fn load(state: &AppState, brand_id: Uuid) -> Result<Self, Error> {
        let creators = crate::creators::all(&state.db, brand_id)
            .await?
            .into_iter()
            .map(|c| {
                let label = match &c.handle {
                    Some(handle) => format!("{} ({handle})", c.name),
                    None => c.name.clone(),
                };
                (c.id.to_string(), label)
            })
            .collect();
        let campaigns =
            crate::campaigns::all(&state.db, brand_id).await?.into_iter().map(|c| (c.id.to_string(), c.name)).collect();
        Ok(Names { creators, campaigns })
    }

    pub fn creator(&self, id: Option<Uuid>) -> Option<&str> {
        let id = id?.to_string();
        self.creators.iter().find(|(k, _)| *k == id).map(|(_, v)| v.as_str())
    }

    pub fn campaign(&self, id: Option<Uuid>) -> Option<&str> {
        let id = id?.to_string();
        self.campaigns.iter().find(|(k, _)| *k == id).map(|(_, v)| v.as_str())
    }
}

fn list_url(filter: &LinkFilter, cursor: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(id) = filter.campaign_id {
        query.append_pair("campaign_id", &id.to_string());
    }
    if let Some(id) = filter.creator_id {
        query.append_pair("creator_id", &id.to_string());
    }
    if let Some(status) = filter.destination_status {
        query.append_pair("destination_status", status.as_str());
    }
    if let Some(cursor) = cursor {
        query.append_pair("cursor", cursor);
    }
    let query = query.finish();
    if query.is_empty() {
        "/brand/attribution/links".to_owned()
    } else {
        format!("/brand/attribution/links?{query}")
    }
}

/// `GET /brand/attribution/links`: the brand's links, newest first, filtered by campaign and creator.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, DashError> {
    let filter = query.filter()?;
    let (campaign_id, creator_id) = (filter.campaign_id, filter.creator_id);
    let request = Page { limit: Some(PAGE_SIZE), cursor: query.cursor.clone().filter(|c| !c.is_empty()) };
    let request = request.parse().map_err(|e| DashError::BadRequest(e.to_string()))?;
    // Right after a deactivation the list reads the primary, so it shows the link inactive.
    let db = state.read_after_write(query.deactivated.is_some());
    let rows = links::list(db, &state.config, session.brand.id, &filter, request.before_seq, request.limit + 1)
        .await
        .map_err(Error::from)?;
    let page = List::from_rows(rows, request);
    let ids: Vec<Uuid> = page.data.iter().map(|l| l.id).collect();
    let totals: HashMap<Uuid, (i64, i64)> = crate::revenue::link_totals(db, session.brand.id, &ids)
        .await?
        .into_iter()
        .map(|(id, t)| (id, (t.clicks, t.per_currency.iter().map(|f| f.conversions).sum())))
        .collect();
    let names = Names::load(&state, session.brand.id).await?;
    let failing_webhooks = crate::webhooks::failing_count(&state.db, session.brand.id).await?;
    let selected = |id: Option<Uuid>| id.map(|i| i.to_string()).unwrap_or_default();
    let filtered = campaign_id.is_some() || creator_id.is_some() || filter.destination_status.is_some();
    // A New Link started from a filtered list starts with the same campaign and creator.
    let new_link = list_url(&filter, None).replacen("/links", "/links/new", 1);
    let content = html! {
        div.page-head {
            h1 { "Tracking Links" }
            div.head-actions {
                a.button href=(list_url(&filter, None).replacen("/links", "/links.csv", 1)) download {
                    "Export CSV"
                }
                a.button href="/brand/attribution/links/import" id="import-csv" { "Import CSV" }
                a.button.primary href=(new_link) { "New Link" }
            }
        }
        @if failing_webhooks > 0 {
            p.alert role="alert" {
                (failing_webhooks) @if failing_webhooks == 1 { " webhook endpoint was" } @else { " webhook endpoints were" }
                " disabled after five days of failed deliveries. "
                a href="/brand/webhooks" { "Review webhooks" }
            }
        }
        @if query.deactivated.is_some() {
            p.notice role="status" { "Link deactivated. It no longer redirects; its clicks and conversions are kept." }
        }
        form.filters method="get" action="/brand/attribution/links" data-autosubmit {
            (views::select_field("campaign_id", "Campaign", "All campaigns", &names.campaigns, &selected(campaign_id), None))
            (views::select_field("creator_id", "Creator", "All creators", &names.creators, &selected(creator_id), None))
            (views::select_field("destination_status", "Destination", "Any destination", &destination_choices(),
                filter.destination_status.map_or("", |s| s.as_str()), None))
            button type="submit" { "Filter" }
            @if filtered {
                a href="/brand/attribution/links" { "Clear filters" }
            }
        }
        @if page.data.is_empty() {
            p.empty { "No links yet" @if filtered { " match these filters" } "." }
        } @else {
            div.table-scroll {
                table.links {
                    caption.visually-hidden { "Tracking links, newest first" }
                    thead { tr {
                        th scope="col" { "Short URL" } th scope="col" { "Creator" } th scope="col" { "Campaign" }
                        th scope="col" { "Platform" } th scope="col" { "Content type" } th scope="col" { "Promo code" }
                        th scope="col" { "Share revenue" } th.num scope="col" { "Clicks" }
                        th.num scope="col" { "Conversions" } th scope="col" { "Status" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for link in &page.data {
                            (link_row(link, totals.get(&link.id).copied().unwrap_or_default(), &names))
                        }
                    }
                }
            }
        }
        nav.pagination aria-label="Pages" {
            @if query.cursor.as_deref().is_some_and(|c| !c.is_empty()) {
                a href=(list_url(&filter, None)) { "← First page" }
            }
            @if let Some(next) = &page.next_cursor {
                a href=(list_url(&filter, Some(next))) rel="next" { "Next page →" }
            }
        }
    };
    Ok(views::page("Tracking Links", &session, Section::Links, content).into_response())
}

/// `GET /brand/attribution/links.csv`: the listed links (same filters) with their all-time figures.
pub async fn export(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, DashError> {
    Ok(rest::export_csv(state, session.brand.id, query.filter()?))
}

/// The destination filter's choices.
fn destination_choices() -> Vec<(String, String)> {
    [("broken", "Broken"), ("unreachable", "Unreachable"), ("ok", "Working")]
        .into_iter()
        .map(|(value, label)| (value.to_owned(), label.to_owned()))
        .collect()
}

/// A mark on a link whose destination's last check failed: a broken destination burns a paid post.
fn destination_badge(link: &Link) -> Markup {
    use crate::links::DestinationStatus;
    html! {
        @match link.destination_status {
            Some(DestinationStatus::Broken) => {
                span.badge.broken title="The destination answered with an error at its last check" {
                    "Broken destination" @if let Some(status) = link.destination_http_status { " (" (status) ")" }
                }
            }
            Some(DestinationStatus::Unreachable) => {
                span.badge.broken title="The destination could not be reached at its last check" { "Destination unreachable" }
            }
            _ => {}
        }
    }
}

fn link_row(link: &Link, (clicks, conversions): (i64, i64), names: &Names) -> Markup {
    let dash = "—";
    html! {
        tr.inactive[!link.active] data-link-id=(link.id) data-code=(link.code) {
            td.short-url data-label="Short URL" {
                a href=(format!("/brand/attribution/links/{}", link.id)) { (link.short_url) }
                @if link.active { (views::copy_button(&link.short_url, &format!("short URL {}", link.short_url))) }
            }
            td data-label="Creator" { (names.creator(link.creator_id).unwrap_or(dash)) }
            td data-label="Campaign" { (names.campaign(link.campaign_id).unwrap_or(dash)) }
            td data-label="Platform" { (link.platform.map(views::platform_label).unwrap_or(dash)) }
            td data-label="Content type" { (link.content_type.map(views::content_type_label).unwrap_or(dash)) }
            td data-label="Promo code" { (link.promo_code.as_deref().unwrap_or(dash)) }
            td data-label="Share revenue" { @if link.share_revenue { "Shared" } @else { "Not shared" } }
            td.num.clicks data-label="Clicks" { (clicks) }
            td.num.conversions data-label="Conversions" { (conversions) }
            td.status data-label="Status" {
                @if link.active { span.badge.active { "Active" } } @else { span.badge.inactive { "Inactive" } }
                @if link.active { (destination_badge(link)) }
            }
            td.actions data-label="" {
                @if link.active {
                    a.icon-button.trash href=(format!("/brand/attribution/links/{}/deactivate", link.id))
                        aria-label=(format!("Deactivate link {}", link.code)) title="Deactivate" {
                        (PreEscaped(views::TRASH_ICON))
                    }
                }
            }
        }
    }
}

/// What the New Link form posts: every field as typed, so it can be shown again.
#[derive(Debug, Default, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    destination_url: String,
    #[serde(default)]
    campaign_id: String,
    #[serde(default)]
    creator_id: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    promo_code: String,
    share_revenue: Option<String>,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    utm_source: String,
    #[serde(default)]
    utm_medium: String,
    #[serde(default)]
    utm_campaign: String,
    #[serde(default)]
    utm_term: String,
    #[serde(default)]
    utm_content: String,
    #[serde(default)]
    expires_at: String,
    #[serde(default)]
    expired_url: String,
}

impl CsrfForm for LinkForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Messages beside the fields of the New Link form.
#[derive(Debug, Default)]
struct LinkErrors {
    destination_url: Option<String>,
    campaign_id: Option<String>,
    creator_id: Option<String>,
    platform: Option<String>,
    content_type: Option<String>,
    promo_code: Option<String>,
    domain: Option<String>,
    utm: Option<String>,
    expires_at: Option<String>,
    expired_url: Option<String>,
}

impl LinkErrors {
    fn any(&self) -> bool {
        [
            &self.destination_url,
            &self.campaign_id,
            &self.creator_id,
            &self.platform,
            &self.content_type,
            &self.promo_code,
            &self.domain,
            &self.utm,
            &self.expires_at,
            &self.expired_url,
        ]
        .iter()
        .any(|e| e.is_some())
    }

    /// Puts an error of the shared link code beside its field; errors about no field are given back.
    fn place(&mut self, error: LinkError) -> Result<(), Error> {
        let message = error.to_string();
        let slot = match &error {
            LinkError::Invalid { code: "invalid_destination_url", .. } => &mut self.destination_url,
            LinkError::Invalid { code: "invalid_promo_code", .. } => &mut self.promo_code,
            LinkError::Conflict { code: "promo_code_taken", .. } => &mut self.promo_code,
            LinkError::Invalid { code: "invalid_domain", .. } | LinkError::NotFound("domain") => &mut self.domain,
            LinkError::Invalid { code: "invalid_utm", .. } => &mut self.utm,
            LinkError::Invalid { code: "invalid_expired_url", .. } => &mut self.expired_url,
            LinkError::NotFound("creator") => &mut self.creator_id,
            LinkError::NotFound("campaign") => &mut self.campaign_id,
            _ => return Err(error.into()),
        };
        *slot = Some(message);
        Ok(())
    }
}

impl LinkForm {
    /// The REST API's request body for what was typed. A select the dashboard filled can only hold an
    /// id or a known value; anything else (a tampered form) is reported beside its field.
    fn to_request(&self, errors: &mut LinkErrors) -> CreateLink {
        let id = |raw: &str, what: &'static str, slot: &mut Option<String>| {
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            let parsed = Uuid::parse_str(raw).ok();
            if parsed.is_none() {
                *slot = Some(Error::NotFound(what).to_string());
            }
            parsed
        };
        let platform = match self.platform.trim() {
            "" => None,
            raw => raw.parse::<Platform>().map_err(|_| errors.platform = Some(one_of("platform", Platform::ALL))).ok(),
        };
        let content_type = match self.content_type.trim() {
            "" => None,
            raw => raw
                .parse::<ContentType>()
                .map_err(|_| errors.content_type = Some(one_of("content_type", ContentType::ALL)))
                .ok(),
        };
        CreateLink {
            destination_url: self.destination_url.clone(),
            campaign_id: id(&self.campaign_id, "campaign", &mut errors.campaign_id),
            creator_id: id(&self.creator_id, "creator", &mut errors.creator_id),
            platform,
            content_type,
            // An empty field means no promo code (the API refuses an empty string: a form cannot omit it).
            promo_code: filled(&self.promo_code),
            share_revenue: self.share_revenue.is_some(),
            domain: filled(&self.domain),
            utm_source: filled(&self.utm_source),
            utm_medium: filled(&self.utm_medium),
            utm_campaign: filled(&self.utm_campaign),
            utm_term: filled(&self.utm_term),
            utm_content: filled(&self.utm_content),
            expires_at: match self.expires_at.trim() {
                "" => None,
                raw => parse_local_utc(raw).map_err(|e| errors.expires_at = Some(e)).ok(),
            },
            expired_url: filled(&self.expired_url),
        }
    }
}

/// A field's text, trimmed; `None` when empty (a form cannot leave a field out).
fn filled(raw: &str) -> Option<String> {
    Some(raw.trim()).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A `datetime-local` value (`2026-12-31T23:59`, seconds optional), read as UTC, as the form says.
fn parse_local_utc(raw: &str) -> Result<DateTime<Utc>, String> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(raw, format).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| "expires_at must be a date and time such as 2026-12-31T23:59 (UTC)".to_owned())
}

pub(super) fn one_of<T: std::fmt::Display>(field: &str, all: &[T]) -> String {
    format!("{field} must be one of {}", all.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

/// The short domains a new link can be on: the default tracking domain's host, and the brand's active
/// domains.
struct DomainChoice {
    default_host: String,
    active: Vec<(String, String)>,
}

async fn active_domains(state: &AppState, brand_id: Uuid) -> Result<DomainChoice, Error> {
    let active = state
        .domains
        .list(brand_id)
        .await?
        .into_iter()
        .filter(|d| d.status == crate::domains::DomainStatus::Active)
        .map(|d| (d.hostname.clone(), d.hostname))
        .collect();
    Ok(DomainChoice { default_host: state.config.tracking_base_url.host_str().unwrap_or_default().to_owned(), active })
}

fn link_form(session: &Session, names: &Names, domains: &DomainChoice, form: &LinkForm, errors: &LinkErrors) -> Markup {
    let platforms: Vec<(String, String)> =
        Platform::ALL.iter().map(|p| (p.as_str().to_owned(), views::platform_label(*p).to_owned())).collect();
    let content_types: Vec<(String, String)> =
        ContentType::ALL.iter().map(|c| (c.as_str().to_owned(), views::content_type_label(*c).to_owned())).collect();
    html! {
        h1 { "New Link" }
        @if errors.any() {
            p.error-summary role="alert" { "The link was not created: please correct the fields marked below." }
        }
        form.stacked method="post" action="/brand/attribution/links" novalidate {
            (views::csrf_field(&session.csrf))
            (views::text_field("destination_url", "Destination URL", &form.destination_url,
                errors.destination_url.as_deref(), FieldAttrs {
                    kind: "url", required: true, inputmode: Some("url"), maxlength: Some(crate::domain::MAX_URL_LEN),
                    hint: Some("Where visitors land, e.g. https://shop.example/products/serum"), ..FieldAttrs::text()
                }))
            (views::select_field("campaign_id", "Campaign", "No campaign", &names.campaigns, &form.campaign_id,
                errors.campaign_id.as_deref()))
            (views::select_field("creator_id", "Creator", "No creator", &names.creators, &form.creator_id,
                errors.creator_id.as_deref()))
            p.hint { "Missing one? " a href="/brand/creators" { "Add a creator" } " or " a href="/brand/campaigns" { "a campaign" } "." }
            (views::select_field("platform", "Platform", "Not set", &platforms, &form.platform, errors.platform.as_deref()))
            (views::select_field("content_type", "Content Type", "Not set", &content_types, &form.content_type,
                errors.content_type.as_deref()))
            (views::text_field("promo_code", "Promo Code", &form.promo_code, errors.promo_code.as_deref(), FieldAttrs {
                hint: Some("Optional: a discount code that credits this link when no click does."),
                maxlength: Some(64), autocomplete: Some("off"), ..FieldAttrs::text()
            }))
            div.field.toggle {
                input id="share_revenue" name="share_revenue" type="checkbox" role="switch" value="on"
                    checked[form.share_revenue.is_some()];
                label for="share_revenue" { "Share Revenue" }
                p.hint { "Let the creator see the revenue this link earns." }
            }
            @if !domains.active.is_empty() || !form.domain.is_empty() {
                (views::select_field("domain", "Short domain", &format!("{} (default)", domains.default_host),
                    &domains.active, &form.domain, errors.domain.as_deref()))
            }
            fieldset.utm data-utm-prefill {
                legend { "UTM tags" }
                p.hint { "Added to the destination so your analytics credit the visit; a tag the destination URL already "
                    "has is kept as it is." }
                @if let Some(error) = &errors.utm { p.error id="utm-error" { (error) } }
                @for (name, label, value, hint) in [
                    ("utm_source", "UTM source", &form.utm_source, "e.g. instagram: filled from the platform"),
                    ("utm_medium", "UTM medium", &form.utm_medium, "e.g. creator"),
                    ("utm_campaign", "UTM campaign", &form.utm_campaign, "filled from the campaign's name"),
                    ("utm_term", "UTM term", &form.utm_term, "optional"),
                    ("utm_content", "UTM content", &form.utm_content, "optional, e.g. the post"),
                ] {
                    (views::text_field(name, label, value, None, FieldAttrs {
                        hint: Some(hint), maxlength: Some(crate::links::MAX_UTM_LEN), autocomplete: Some("off"),
                        ..FieldAttrs::text()
                    }))
                }
            }
            fieldset.expiry {
                legend { "Expiry" }
                (views::text_field("expires_at", "Expires at (UTC)", &form.expires_at, errors.expires_at.as_deref(),
                    FieldAttrs { kind: "datetime-local", hint: Some("Optional: from then on the link records no clicks."),
                        ..FieldAttrs::text() }))
                (views::text_field("expired_url", "After expiry, send visitors to", &form.expired_url,
                    errors.expired_url.as_deref(), FieldAttrs {
                        kind: "url", inputmode: Some("url"), maxlength: Some(crate::domain::MAX_URL_LEN),
                        hint: Some("Optional: without it, an expired link shows a not-found page."), ..FieldAttrs::text()
                    }))
            }
            div.actions {
                button.primary type="submit" { "Create Link" }
                a href="/brand/attribution/links" { "Cancel" }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    campaign_id: Option<String>,
    creator_id: Option<String>,
}

/// `GET /brand/attribution/links/new` (a campaign or creator filter carries over).
pub async fn new_form(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<NewQuery>,
) -> Result<Response, DashError> {
    let names = Names::load(&state, session.brand.id).await?;
    let campaign_id = query.campaign_id.unwrap_or_default();
    // The campaign's name is the UTM campaign a brand would type; the script keeps it in step when the
    // campaign changes (pre-filled here for browsers without it).
    let utm_campaign = names.campaigns.iter().find(|(id, _)| *id == campaign_id).map(|(_, n)| n.clone());
    let form = LinkForm {
        creator_id: query.creator_id.unwrap_or_default(),
        utm_medium: "creator".to_owned(),
        utm_campaign: utm_campaign.unwrap_or_default(),
        campaign_id,
        ..Default::default()
    };
    let domains = active_domains(&state, session.brand.id).await?;
    let content = link_form(&session, &names, &domains, &form, &LinkErrors::default());
    Ok(views::page("New Link", &session, Section::Links, content).into_response())
}

/// `POST /brand/attribution/links`: the REST API's validation and creation; errors go beside their
/// fields, with everything typed kept.
pub async fn create(State(state): State<AppState>, posted: Posted<LinkForm>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    let mut errors = LinkErrors::default();
    let request = form.to_request(&mut errors);
    let created = match request.validate(&state.config) {
        Err(invalid) => {
            for e in invalid {
                errors.place(e)?;
            }
            None
        }
        Ok(_) if errors.any() => None,
        Ok(fields) => match links::create(&state.db, &state.config, &state.codes, session.brand.id, &fields).await {
            Ok(link) => Some(link),
            Err(e) => {
                errors.place(e)?;
                None
            }
        },
    };
    if let Some(link) = created {
        return Ok(Redirect::to(&format!("/brand/attribution/links/{}?created=1", link.id)).into_response());
    }
    let names = Names::load(&state, session.brand.id).await?;
    let domains = active_domains(&state, session.brand.id).await?;
    let content = link_form(&session, &names, &domains, &form, &errors);
    Ok((StatusCode::UNPROCESSABLE_ENTITY, views::page("New Link", &session, Section::Links, content)).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    created: Option<String>,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `GET /brand/attribution/links/{id}`: one link, its all-time figures and its orders.
pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<Uuid>, PathRejection>,
    Query(query): Query<DetailQuery>,
) -> Result<Response, DashError> {
    let id = link_id(path)?;
    // The link from the primary (the page a creation redirects to); its figures and orders are reports.
    let link = links::get(&state.db, &state.config, session.brand.id, id).await.map_err(Error::from)?;
    let figures = {
        let mut conn = state.read().acquire().await?;
        crate::links::stats::link_stats(&mut conn, id, Window { from: DateTime::<Utc>::UNIX_EPOCH, to: None }).await?
    };
    let filter = ConversionFilter { link_id: Some(id), limit: Some(50), ..Default::default() };
    let orders = list_conversions(&state, session.brand.id, &filter).await?;
    let names = Names::load(&state, session.brand.id).await?;
    let codes = HashMap::from([(link.id, link.code.clone())]);
    let orders_table = attribution::conversions_table(&state, session.brand.id, &orders.data, &codes, &names).await?;
    let dash = "—";
    let content = html! {
        @if query.created.is_some() {
            div.created role="status" {
                h2 { "Link created" }
                p.big-url { span.short-url-text { (link.short_url) } (views::copy_button(&link.short_url, "the new short URL")) }
            }
        }
        div.page-head {
            h1 { "Link " code { (link.code) } }
            @if link.active {
                a.button.danger href=(format!("/brand/attribution/links/{}/deactivate", link.id)) { "Deactivate" }
            }
        }
        dl.facts {
            dt { "Short URL" } dd.short-url { (link.short_url) @if link.active { (views::copy_button(&link.short_url, "short URL")) } }
            dt { "Destination URL" } dd { (link.destination_url) }
            dt { "Status" } dd { @if link.active { "Active" } @else { "Inactive since " (link.deleted_at.map(when).unwrap_or_default()) } }
            dt { "Creator" } dd { (names.creator(link.creator_id).unwrap_or(dash)) }
            dt { "Campaign" } dd { (names.campaign(link.campaign_id).unwrap_or(dash)) }
            dt { "Platform" } dd { (link.platform.map(views::platform_label).unwrap_or(dash)) }
            dt { "Content type" } dd { (link.content_type.map(views::content_type_label).unwrap_or(dash)) }
            dt { "Promo code" } dd { (link.promo_code.as_deref().unwrap_or(dash)) }
            dt { "Share revenue" } dd { @if link.share_revenue { "Shared" } @else { "Not shared" } }
            dt { "Created" } dd { (when(link.created_at)) }
            dt { "Destination check" } dd.destination-check {
                @match (link.destination_status, link.destination_checked_at) {
                    (Some(crate::links::DestinationStatus::Ok), Some(at)) => { "OK at " (when(at)) }
                    (Some(_), Some(at)) => { (destination_badge(&link)) " at " (when(at)) }
                    _ => { "Not checked yet" }
                }
            }
            @let utm = shared::Utm {
                source: link.utm_source.clone(), medium: link.utm_medium.clone(), campaign: link.utm_campaign.clone(),
                term: link.utm_term.clone(), content: link.utm_content.clone(),
            };
            @if !utm.is_empty() {
                dt { "UTM tags" } dd.utm { @for (key, value) in utm.pairs() { code { (key) "=" (value) } " " } }
                dt { "Visitors land on" } dd { (utm.apply(&link.destination_url)) }
            }
            @if let Some(expires_at) = link.expires_at {
                dt { "Expires" } dd.expiry {
                    (when(expires_at))
                    @if let Some(url) = &link.expired_url { ", then sends visitors to " (url) } @else { ", then shows a not-found page" }
                }
            }
        }
        @if link.active {
            section.qr aria-labelledby="qr-heading" {
                h2 id="qr-heading" { "QR code" }
                img.qr-code src=(format!("/brand/attribution/links/{}/qr.svg?size=256", link.id)) width="256" height="256"
                    alt=(format!("QR code that opens {}", link.short_url));
                p.hint { "Scans open the short URL and are counted as QR clicks in this link's stats." }
                p.qr-downloads {
                    a.button.qr-download-svg href=(format!("/brand/attribution/links/{}/qr.svg?size=1024&download=1", link.id))
                        download=(format!("{}-qr.svg", link.code)) { "Download SVG" }
                    " "
                    a.button.qr-download-png href=(format!("/brand/attribution/links/{}/qr.png?size=1024&download=1", link.id))
                        download=(format!("{}-qr.png", link.code)) { "Download PNG" }
                }
            }
        }
        h2 { "All time" }
        ul.totals {
            li { span.label { "Clicks" } span.value { (figures.clicks) } }
            li { span.label { "Unique clicks" } span.value { (figures.unique_clicks) } }
            li { span.label { "Conversions" } span.value { (figures.figures.conversions) } }
            li { span.label { "Revenue" } span.value { (views::moneys(&figures.figures.revenue)) } }
            li { span.label { "Conversion rate" } span.value { (views::percent(figures.conversion_rate)) } }
            li.pending {
                span.label { "Pending" } span.value { (figures.figures.pending_conversions) }
                span.sub { (views::moneys(&figures.figures.pending_revenue)) }
            }
        }
        h2 { "Orders credited to this link" }
        (orders_table)
    };
    Ok(views::page(&format!("Link {}", link.code), &session, Section::Links, content).into_response())
}

/// `GET /brand/attribution/links/{id}/qr.svg`: the link's QR code, as the REST API draws it (`size` and
/// `download` as there).
pub async fn qr_svg(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<Uuid>, PathRejection>,
    Query(query): Query<crate::links::qr::QrQuery>,
) -> Result<Response, DashError> {
    qr_image(&state, &session, link_id(path)?, query, Format::Svg).await
}

/// `GET /brand/attribution/links/{id}/qr.png`: the same as a PNG.
pub async fn qr_png(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<Uuid>, PathRejection>,
    Query(query): Query<crate::links::qr::QrQuery>,
) -> Result<Response, DashError> {
    qr_image(&state, &session, link_id(path)?, query, Format::Png).await
}

async fn qr_image(
    state: &AppState,
    session: &Session,
    id: Uuid,
    query: crate::links::qr::QrQuery,
    format: Format,
) -> Result<Response, DashError> {
    // The path names the format.
    let request = crate::links::qr::QrQuery { format: None, ..query }.parse(format).map_err(Error::from)?;
    let image = crate::links::qr::code_of(&state.db, &state.config, session.brand.id, id, request)
        .await
        .map_err(Error::from)?;
    Ok(super::super::files::qr_image(image)?)
}

/// `GET /brand/attribution/links/{id}/deactivate`: the confirmation (works without JavaScript).
pub async fn confirm_deactivate(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, DashError> {
    let link = links::get(&state.db, &state.config, session.brand.id, link_id(path)?).await.map_err(Error::from)?;
    let content = html! {
        h1 { "Deactivate link " code { (link.code) } "?" }
        @if link.active {
            p { (link.short_url) " will stop redirecting within about two minutes. Its clicks and conversions are kept, "
                "and it stays in the list as inactive. This cannot be undone." }
            form method="post" action=(format!("/brand/attribution/links/{}/deactivate", link.id)) {
                (views::csrf_field(&session.csrf))
                div.actions {
                    button.danger type="submit" { "Deactivate link" }
                    a href="/brand/attribution/links" { "Cancel" }
                }
            }
        } @else {
            p { "This link is already inactive." }
            p { a href="/brand/attribution/links" { "Back to Tracking Links" } }
        }
    };
    Ok(views::page("Deactivate link", &session, Section::Links, content).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DeactivateForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfForm for DeactivateForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /brand/attribution/links/{id}/deactivate`: the REST API's soft delete.
pub async fn deactivate(
    State(state): State<AppState>,
    path: Result<Path<Uuid>, PathRejection>,
    posted: Posted<DeactivateForm>,
) -> Result<Response, DashError> {
    let id = link_id(path)?;
    links::deactivate(&state.db, posted.session.brand.id, id).await.map_err(Error::from)?;
    Ok(Redirect::to("/brand/attribution/links?deactivated=1").into_response())
}
