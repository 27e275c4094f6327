//! `/brand/attribution/links/import`: many links from a CSV file. The file is checked first and every
//! row shown with what is wrong with it, nothing created; confirming posts the same CSV back, and its
//! valid rows are created by the REST API's bulk creation ([`crate::links::bulk::create_many`]).
//!
//! Columns are named like the New Link form's fields, in any order, and only `destination_url` is
//! required; a campaign is given by name or id, a creator by name, handle or id.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use shared::{ContentType, Platform};

use super::super::error::Error;
use super::super::AppState;
use super::links::one_of;
use super::session::{CsrfForm, Posted, Session, UploadPart, Uploaded, MAX_UPLOAD_PART_BYTES};
use super::views::{self, Section};
use super::DashError;
use crate::links::bulk::{create_many, MAX_BATCH};
use crate::links::{CreateLink, Link};

/// The columns a file may have, in the order the preview and the help list them.
const COLUMNS: [&str; 15] = [
    "destination_url",
    "campaign",
    "creator",
    "platform",
    "content_type",
    "promo_code",
    "share_revenue",
    "domain",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "expires_at",
    "expired_url",
];

/// The column a header cell names: trimmed, any case, spaces as underscores; `creator_id` and
/// `campaign_id` are the `creator` and `campaign` columns.
fn column(header: &str) -> Option<&'static str> {
    let name = header.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    match name.as_str() {
        "campaign_id" => Some("campaign"),
        "creator_id" => Some("creator"),
        other => COLUMNS.iter().find(|c| **c == other).copied(),
    }
}

/// The brand's creators and campaigns, to resolve names, handles and ids.
struct Directory {
    /// (id, name, handle)
    creators: Vec<(Uuid, String, Option<String>)>,
    campaigns: Vec<(Uuid, String)>,
}

impl Directory {
    async fn load(state: &AppState, brand_id: Uuid) -> Result<Self, Error> {
        let creators =
            crate::creators::all(&state.db, brand_id).await?.into_iter().map(|c| (c.id, c.name, c.handle)).collect();
        let campaigns = crate::campaigns::all(&state.db, brand_id).await?.into_iter().map(|c| (c.id, c.name)).collect();
        Ok(Directory { creators, campaigns })
    }

    /// The one campaign with this id or name (any case).
    fn campaign(&self, raw: &str) -> Result<Uuid, String> {
        let found: Vec<Uuid> = match Uuid::parse_str(raw) {
            Ok(id) => self.campaigns.iter().filter(|(c, _)| *c == id).map(|(c, _)| *c).collect(),
            Err(_) => {
                self.campaigns.iter().filter(|(_, name)| name.eq_ignore_ascii_case(raw)).map(|(c, _)| *c).collect()
            }
        };
        one(found, "campaign", raw)
    }

    /// The one creator with this id, name or handle (any case, `@` optional).
    fn creator(&self, raw: &str) -> Result<Uuid, String> {
        let bare = |h: &str| h.trim_start_matches('@').to_ascii_lowercase();
        let found: Vec<Uuid> = match Uuid::parse_str(raw) {
            Ok(id) => self.creators.iter().filter(|(c, _, _)| *c == id).map(|(c, _, _)| *c).collect(),
            Err(_) => self
                .creators
                .iter()
                .filter(|(_, name, handle)| {
                    name.eq_ignore_ascii_case(raw) || handle.as_deref().is_some_and(|h| bare(h) == bare(raw))
                })
                .map(|(c, _, _)| *c)
                .collect(),
        };
        one(found, "creator", raw)
    }
}

fn one(found: Vec<Uuid>, what: &str, raw: &str) -> Result<Uuid, String> {
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(format!("{what} \"{raw}\" not found: add it first, or check the spelling")),
        _ => Err(format!("several {what}s are called \"{raw}\": give its id instead")),
    }
}

/// One row of the file, as typed and as a request.
struct Row {
    /// The row's line in the file (the header is line 1).
    line: u64,
    cells: HashMap<&'static str, String>,
    /// The link to create, or every reason the row cannot be.
    request: Result<CreateLink, Vec<String>>,
}

impl Row {
    fn cell(&self, column: &str) -> &str {
        self.cells.get(column).map_or("", String::as_str)
    }
}

/// The rows of a CSV file, each checked as the REST API would check it (without touching the database but
/// to read the brand's names and its promo codes in use); or why the file as a whole cannot be imported.
async fn read_file(state: &AppState, brand_id: Uuid, bytes: &[u8]) -> Result<Vec<Row>, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "The file is not UTF-8 text. Save it as “CSV UTF-8” and try again.".to_owned())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| format!("The file is not valid CSV: {e}"))?.clone();
    let mut columns = Vec::with_capacity(headers.len());
    for header in &headers {
        let Some(name) = column(header) else {
            return Err(format!("Unknown column “{header}”. The columns are: {}.", COLUMNS.join(", ")));
        };
        if columns.contains(&Some(name)) {
            return Err(format!("The column {name} appears twice."));
        }
        columns.push(Some(name));
    }
    if !columns.contains(&Some("destination_url")) {
        return Err("The file has no destination_url column (the first line must name the columns).".to_owned());
    }
    let directory = Directory::load(state, brand_id).await.map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("The file is not valid CSV: {e}"))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_BATCH {
            return Err(format!(
                "The file has more than {MAX_BATCH} rows: import at most {MAX_BATCH} links at a time."
            ));
        }
        let line = record.position().map_or(0, csv::Position::line);
        let mut cells = HashMap::new();
        let mut errors = Vec::new();
        for (i, value) in record.iter().enumerate() {
            match columns.get(i).copied().flatten() {
                Some(name) => {
                    cells.insert(name, value.to_owned());
                }
                None if value.is_empty() => {}
                None => errors.push("this row has more cells than the header has columns".to_owned()),
            }
        }
        let request = to_request(&cells, &directory, state, &mut errors);
        rows.push(Row { line, cells, request: if errors.is_empty() { Ok(request) } else { Err(errors) } });
    }
    if rows.is_empty() {
        return Err("The file has no links: add one row per link below the header.".to_owned());
    }
    promo_codes(state, brand_id, &mut rows).await.map_err(|e| e.to_string())?;
    Ok(rows)
}

/// A row's link, with every problem found on the way in `errors`, the REST API's validation included.
fn to_request(
    cells: &HashMap<&'static str, String>,
    directory: &Directory,
    state: &AppState,
    errors: &mut Vec<String>,
) -> CreateLink {
    let cell = |name: &str| cells.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let text = |name: &str| cell(name).map(str::to_owned);
    let campaign_id = cell("campaign").and_then(|c| note(errors, directory.campaign(c)));
    let creator_id = cell("creator").and_then(|c| note(errors, directory.creator(c)));
    let platform = cell("platform").and_then(|raw| {
        note(errors, raw.to_ascii_lowercase().parse::<Platform>().map_err(|_| one_of("platform", Platform::ALL)))
    });
    let content_type = cell("content_type").and_then(|raw| {
        note(
            errors,
            raw.to_ascii_lowercase().parse::<ContentType>().map_err(|_| one_of("content_type", ContentType::ALL)),
        )
    });
    let share_revenue = match cell("share_revenue").map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "no" | "0") => false,
        Some("true" | "yes" | "1") => true,
        Some(_) => {
            note(errors, Err::<(), _>("share_revenue must be true or false (or yes/no, 1/0)".to_owned()));
            false
        }
    };
    let expires_at = cell("expires_at").and_then(|raw| {
        note(
            errors,
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| "expires_at must be an RFC 3339 time such as 2026-12-31T23:59:00Z".to_owned()),
        )
    });
    let request = CreateLink {
        destination_url: text("destination_url").unwrap_or_default(),
        campaign_id,
        creator_id,
        platform,
        content_type,
        promo_code: text("promo_code"),
        share_revenue,
        domain: text("domain"),
        utm_source: text("utm_source"),
        utm_medium: text("utm_medium"),
        utm_campaign: text("utm_campaign"),
        utm_term: text("utm_term"),
        utm_content: text("utm_content"),
        expires_at,
        expired_url: text("expired_url"),
    };
    if let Err(invalid) = request.validate(&state.config) {
        errors.extend(invalid.iter().map(ToString::to_string));
    }
    request
}

/// The value of a cell read, or `None` with the reason in `errors`.
fn note<T>(errors: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// Flags promo codes another active link already uses, and a code used again lower in the file (the
/// first row gets it, as the creation would decide).
async fn promo_codes(state: &AppState, brand_id: Uuid, rows: &mut [Row]) -> Result<(), sqlx::Error> {
    let wanted: Vec<String> =
        rows.iter().map(|r| r.cell("promo_code").to_lowercase()).filter(|p| !p.is_empty()).collect();
    let taken = crate::links::promo_codes_taken(&state.db, brand_id, &wanted).await?;
    let mut first_row: HashMap<String, u64> = HashMap::new();
    for row in rows {
        let code = row.cell("promo_code").to_lowercase();
        if code.is_empty() {
            continue;
        }
        let error = if taken.contains(&code) {
            Some("another active link of this brand already uses this promo code".to_owned())
        } else if let Some(first) = first_row.get(&code) {
            Some(format!("row {first} already uses this promo code"))
        } else {
            first_row.insert(code, row.line);
            None
        };
        if let Some(error) = error {
            match &mut row.request {
                Ok(_) => row.request = Err(vec![error]),
                Err(errors) => errors.push(error),
            }
        }
    }
    Ok(())
}

/// The upload form, with a message about the last file when it could not be read.
fn upload_form(session: &Session, error: Option<&str>) -> Markup {
    html! {
        h1 { "Import links from CSV" }
        @if let Some(error) = error {
            p.error-summary role="alert" id="import-error" { (error) }
        }
        p { "Create up to " (MAX_BATCH) " links at once from a CSV file (UTF-8, at most 256 KiB). The first line names "
            "the columns; only " code { "destination_url" } " is required. You will see every row checked before "
            "anything is created." }
        details.import-columns {
            summary { "Columns" }
            dl {
                dt { code { "destination_url" } } dd { "Where visitors land (required)." }
                dt { code { "campaign" } } dd { "A campaign's name or id." }
                dt { code { "creator" } } dd { "A creator's name, handle or id." }
                dt { code { "platform" } } dd { (Platform::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                dt { code { "content_type" } } dd { (ContentType::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")) }
                dt { code { "promo_code" } } dd { "Unique among your active links." }
                dt { code { "share_revenue" } } dd { "true or false (yes/no, 1/0); empty is false." }
                dt { code { "domain" } } dd { "One of your active short domains; empty is the default." }
                dt { code { "utm_source" } ", " code { "utm_medium" } ", " code { "utm_campaign" } ", " code { "utm_term" }
                    ", " code { "utm_content" } } dd { "UTM tags added to the destination." }
                dt { code { "expires_at" } } dd { "An RFC 3339 time, e.g. 2026-12-31T23:59:00Z." }
                dt { code { "expired_url" } } dd { "Where an expired link sends visitors." }
            }
        }
        form.stacked method="post" action="/brand/attribution/links/import" enctype="multipart/form-data" {
            (views::csrf_field(&session.csrf))
            div.field.invalid[error.is_some()] {
                label for="csv_file" { "CSV file " span.req aria-hidden="true" { "*" } }
                input id="csv_file" name="file" type="file" accept=".csv,text/csv" required
                    aria-describedby=[error.is_some().then_some("import-error")];
            }
            div.actions {
                button.primary type="submit" id="check-import" { "Check file" }
                a href="/brand/attribution/links" { "Cancel" }
            }
        }
    }
}

/// `GET /brand/attribution/links/import`: the upload form.
pub async fn form(session: Session) -> Result<Response, DashError> {
    let content = upload_form(&session, None);
    Ok(views::page("Import links", &session, Section::Links, content).into_response())
}

fn refused(session: &Session, status: StatusCode, error: &str) -> Response {
    (status, views::page("Import links", session, Section::Links, upload_form(session, Some(error)))).into_response()
}

/// `POST /brand/attribution/links/import`: the uploaded file's rows, each checked, nothing created.
pub async fn preview(State(state): State<AppState>, upload: Uploaded) -> Result<Response, DashError> {
    let Uploaded { session, parts } = upload;
    let too_large =
        format!("The file is larger than {} KiB: split it into smaller files.", MAX_UPLOAD_PART_BYTES / 1024);
    let bytes = match parts.get("file") {
        Some(UploadPart::Bytes(bytes)) if !bytes.is_empty() => bytes,
        Some(UploadPart::TooLarge) => return Ok(refused(&session, StatusCode::PAYLOAD_TOO_LARGE, &too_large)),
        _ => return Ok(refused(&session, StatusCode::UNPROCESSABLE_ENTITY, "Choose a CSV file to import.")),
    };
    let rows = match read_file(&state, session.brand.id, bytes).await {
        Ok(rows) => rows,
        Err(error) => return Ok(refused(&session, StatusCode::UNPROCESSABLE_ENTITY, &error)),
    };
    // Read as UTF-8 above, so this is the same text.
    let csv_text = String::from_utf8_lossy(bytes);
    let valid = rows.iter().filter(|r| r.request.is_ok()).count();
    let invalid = rows.len() - valid;
    let content = html! {
        h1 { "Import links: check the rows" }
        @if invalid > 0 {
            p.error-summary role="alert" {
                (invalid) @if invalid == 1 { " row has errors and will not be imported" } @else { " rows have errors and will not be imported" }
                ": correct the file and upload it again, or create the valid rows now."
            }
        }
        div.table-scroll {
            table.import-preview {
                caption { (rows.len()) " rows: " (valid) " ready, " (invalid) " with errors" }
                thead { tr {
                    th scope="col" { "Row" } th scope="col" { "Destination URL" } th scope="col" { "Campaign" }
                    th scope="col" { "Creator" } th scope="col" { "Platform" } th scope="col" { "Promo code" }
                    th scope="col" { "Check" }
                } }
                tbody {
                    @for row in &rows {
                        tr.invalid[row.request.is_err()] {
                            th scope="row" { (row.line) }
                            td { (row.cell("destination_url")) }
                            td { (row.cell("campaign")) }
                            td { (row.cell("creator")) }
                            td { (row.cell("platform")) }
                            td { (row.cell("promo_code")) }
                            td {
                                @match &row.request {
                                    Ok(_) => { span.badge.ok { "Ready" } }
                                    Err(errors) => { ul.errors { @for e in errors { li { (e) } } } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if valid > 0 {
            form method="post" action="/brand/attribution/links/import/create" {
                (views::csrf_field(&session.csrf))
                input type="hidden" name="csv" value=(csv_text);
                div.actions {
                    button.primary type="submit" id="confirm-import" {
                        "Create " (valid) @if valid == 1 { " link" } @else { " links" }
                    }
                    a href="/brand/attribution/links/import" { "Upload another file" }
                }
            }
        } @else {
            p.actions { a.button href="/brand/attribution/links/import" { "Upload another file" } }
        }
    };
    let status = if valid > 0 { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, views::page("Import links", &session, Section::Links, content)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    csv: String,
}

impl CsrfForm for ImportForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /brand/attribution/links/import/create`: the checked file's valid rows, created; every row's
/// outcome shown.
pub async fn create(State(state): State<AppState>, posted: Posted<ImportForm>) -> Result<Response, DashError> {
    let Posted { session, form } = posted;
    if form.csv.len() > MAX_UPLOAD_PART_BYTES {
        let error =
            format!("The file is larger than {} KiB: split it into smaller files.", MAX_UPLOAD_PART_BYTES / 1024);
        return Ok(refused(&session, StatusCode::PAYLOAD_TOO_LARGE, &error));
    }
    let rows = match read_file(&state, session.brand.id, form.csv.as_bytes()).await {
        Ok(rows) => rows,
        Err(error) => return Ok(refused(&session, StatusCode::UNPROCESSABLE_ENTITY, &error)),
    };
    // The rows checked again (names or codes may have changed since the preview); the valid ones created.
    let mut outcomes: Vec<(u64, String, Result<Link, Vec<String>>)> = Vec::with_capacity(rows.len());
    let mut requests = Vec::new();
    for row in rows {
        let destination = row.cell("destination_url").to_owned();
        match row.request {
            Ok(request) => {
                requests.push(Ok(request));
                outcomes.push((row.line, destination, Err(Vec::new())));
            }
            Err(errors) => outcomes.push((row.line, destination, Err(errors))),
        }
    }
    let created = create_many(&state.db, &state.config, &state.codes, session.brand.id, requests).await;
    let mut created = created.into_iter();
    for (_, _, outcome) in outcomes.iter_mut().filter(|(_, _, o)| matches!(o, Err(e) if e.is_empty())) {
        *outcome = match created.next() {
            Some(Ok(link)) => Ok(link),
            // A failure of the server itself is logged, and told as such.
            Some(Err(e)) => Err(vec![Error::from(e).detail().message]),
            None => Err(vec!["not created".to_owned()]),
        };
    }
    let done = outcomes.iter().filter(|(_, _, o)| o.is_ok()).count();
    let failed = outcomes.len() - done;
    let content = html! {
        h1 { "Import links: results" }
        p.notice role="status" { (done) @if done == 1 { " link created." } @else { " links created." } }
        @if failed > 0 {
            p.alert role="alert" {
                (failed) @if failed == 1 { " row was not imported" } @else { " rows were not imported" } ": see why below."
            }
        }
        div.table-scroll {
            table.import-results {
                caption { "What became of each row" }
                thead { tr {
                    th scope="col" { "Row" } th scope="col" { "Destination URL" } th scope="col" { "Result" }
                } }
                tbody {
                    @for (line, destination, outcome) in &outcomes {
                        tr.invalid[outcome.is_err()] {
                            th scope="row" { (line) }
                            td { (destination) }
                            td {
                                @match outcome {
                                    Ok(link) => {
                                        "Created: " a.short-url href=(format!("/brand/attribution/links/{}", link.id)) { (link.short_url) }
                                    }
                                    Err(errors) => { "Not created: " ul.errors { @for e in errors { li { (e) } } } }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.actions { a.button href="/brand/attribution/links" { "Back to Tracking Links" } }
    };
    Ok(views::page("Import links", &session, Section::Links, content).into_response())
}
