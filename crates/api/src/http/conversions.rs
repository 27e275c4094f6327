//! `/v1/conversions`: every order with its status and credit, and the Conversions API that reports
//! orders server-side. The rules live in [`crate::conversions`]; this is their HTTP face.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;

use super::auth::Brand;
use super::error::{Error, ErrorBody};
use super::extract::{List, Page, Path, Query};
use super::json::Json;
use super::AppState;
use crate::attribution::{Judged, Status};
use crate::conversions::server::{self, ConversionError, NewConversion, NewRefund};
use crate::conversions::{self, Conversion, ConversionFilter};
use crate::schema::{Cursor, IdempotencyKey, Instant, OrderRef};

impl From<ConversionError> for Error {
    fn from(e: ConversionError) -> Self {
        match e {
            ConversionError::Invalid { code, .. } if code.ends_with("idempotency_key") => {
                Error::bad_request(code, e.to_string())
            }
            ConversionError::Invalid { code, ref message } => Error::invalid_field(code, message.clone()),
            ConversionError::AmountTooLarge { .. } => Error::invalid_field("amount_too_large", e.to_string()),
            ConversionError::IdempotencyConflict => {
                Error::Conflict { code: "idempotency_conflict", message: e.to_string() }
            }
            ConversionError::RefundConflict(_) => Error::Conflict { code: "refund_conflict", message: e.to_string() },
            ConversionError::OrderNotFound => Error::NotFound("conversion"),
            ConversionError::Database(db) => Error::Database(db),
        }
    }
}

// The filter's parameters are spelled out (rather than `params(ConversionFilter)`) to state the
// constraints its parsing enforces.
#[utoipa::path(get, path = "/v1/conversions", tag = "attribution", operation_id = "list_conversions",
    params(
        ("from" = Option<Instant>, Query, description = "Orders placed at or after this time."),
        ("to" = Option<Instant>, Query, description = "Orders placed before this time."),
        ("creator_id" = Option<Uuid>, Query, description = "Only orders credited to this creator."),
        ("link_id" = Option<Uuid>, Query, description = "Only orders credited to this link."),
        ("status" = Option<Status>, Query, description = "Only orders of this status."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200,
            description = "At most this many orders (1–200, default 50; else 400 `invalid_limit`)."),
        ("cursor" = Option<Cursor>, Query, description = "`next_cursor` of the previous page."),
    ),
    security(("api_key" = [])),
    responses((status = 200, body = List<Conversion>, description = "the brand's orders matching the filters, newest first"),
        (status = 400, body = ErrorBody, description = "`invalid_limit`, `invalid_cursor`, or `invalid_query` (a \
            malformed filter or an out-of-range date)"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<ConversionFilter>,
) -> Result<axum::Json<List<Conversion>>, Error> {
    Ok(axum::Json(list_conversions(&state, brand.id, &filter).await?))
}

/// One page of the brand's orders matching `filter`, newest first.
pub async fn list_conversions(
    state: &AppState,
    brand_id: uuid::Uuid,
    filter: &ConversionFilter,
) -> Result<List<Conversion>, Error> {
    let page = Page { limit: filter.limit, cursor: filter.cursor.clone() }.parse()?;
    let rows = conversions::list(state.read(), brand_id, filter, page.before_seq, page.limit + 1).await?;
    Ok(List::from_rows(rows, page))
}

/// The answer of a reporting request: 201 when it recorded something new, 200 when it was known.
fn answer(created: bool, conversion: Conversion) -> (StatusCode, axum::Json<Conversion>) {
    (if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(conversion))
}

#[utoipa::path(post, path = "/v1/conversions", tag = "conversions", operation_id = "report_conversion",
    request_body = NewConversion,
    params(("Idempotency-Key" = IdempotencyKey, Header, description = "Required (else 400 \
        `missing_idempotency_key`); 1–255 visible ASCII characters. The same key with the same body answers the \
        same; with another body, 409 `idempotency_conflict`.")),
    security(("api_key" = [])),
    responses(
        (status = 201, body = Conversion, description = "recorded: the order as `/v1/conversions` lists it, `verified`"),
        (status = 200, body = Conversion, description = "a server-side source already reported this order (or this \
            key's first request found it so): the order as it stands, counted once"),
        (status = 400, body = ErrorBody, description = "`missing_idempotency_key`, `invalid_idempotency_key`, \
            `malformed_json`"),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`idempotency_conflict`: the key was used with another body"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_order_id`, `invalid_amount`, `invalid_occurred_at`, \
            `invalid_cs_ref`, `invalid_discount_codes`, `amount_too_large`, or `invalid_body` (a missing, mistyped or \
            unknown field)")))]
pub async fn create(
    State(state): State<AppState>,
    brand: Brand,
    headers: HeaderMap,
    Json(body): Json<NewConversion>,
) -> Result<(StatusCode, axum::Json<Conversion>), Error> {
    let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or("\u{0}"));
    let key = server::idempotency_key(key)?;
    let judged = Judged::now(&state.config);
    let result = server::report(&state.db, brand.id, key, &body, state.config.max_order_value, judged).await?;
    Ok(answer(result.created, result.conversion))
}

#[utoipa::path(post, path = "/v1/conversions/{order_id}/refunds", tag = "conversions", operation_id = "refund_conversion",
    request_body = NewRefund,
    params(("order_id" = OrderRef, Path, description = "The order's id as reported")),
    security(("api_key" = [])),
    responses(
        (status = 201, body = Conversion, description = "refund recorded; the order with its new refunded and net amounts"),
        (status = 200, body = Conversion, description = "this refund id was recorded before: counted once"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the brand has no such order"),
        (status = 409, body = ErrorBody, description = "`refund_conflict`: the refund id belongs to another order"),
        (status = 413, body = ErrorBody, description = "a body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_refund_id`, `invalid_amount`, `invalid_occurred_at`, \
            `currency_mismatch`, `amount_too_large`, or `invalid_body` (a missing, mistyped or unknown field)")))]
pub async fn refund(
    State(state): State<AppState>,
    brand: Brand,
    Path(order_id): Path<String>,
    Json(body): Json<NewRefund>,
) -> Result<(StatusCode, axum::Json<Conversion>), Error> {
    let order_id = order_in_path(&order_id)?;
    let result = server::refund(&state.db, brand.id, order_id, &body, state.config.max_order_value, Utc::now()).await?;
    Ok(answer(result.created, result.conversion))
}

#[utoipa::path(post, path = "/v1/conversions/{order_id}/cancel", tag = "conversions", operation_id = "cancel_conversion",
    params(("order_id" = OrderRef, Path, description = "The order's id as reported")),
    security(("api_key" = [])),
    responses(
        (status = 200, body = Conversion, description = "the order, `cancelled`: counted nowhere from now on"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the brand has no such order")))]
pub async fn cancel(
    State(state): State<AppState>,
    brand: Brand,
    Path(order_id): Path<String>,
) -> Result<axum::Json<Conversion>, Error> {
    Ok(axum::Json(server::cancel(&state.db, brand.id, order_in_path(&order_id)?, Utc::now()).await?))
}

/// The order id in a path, if it is one an order can have (stored ids are trimmed, 1–128 characters,
/// without control characters): anything else names no order, and may hold bytes (NUL) the database
/// would refuse to compare.
fn order_in_path(order_id: &str) -> Result<&str, Error> {
    let stored_shape = order_id.trim() == order_id
        && (1..=128).contains(&order_id.chars().count())
        && !order_id.chars().any(char::is_control);
    stored_shape.then_some(order_id).ok_or(Error::NotFound("conversion"))
}

/// Which orders an export holds: the list's filters, every matching order.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportFilter {
    /// Orders placed at or after this time.
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    #[param(value_type = Option<Instant>)]
    pub from: Option<chrono::DateTime<Utc>>,
    /// Orders placed before this time.
    #[serde(default, deserialize_with = "crate::reports::optional_instant")]
    #[param(value_type = Option<Instant>)]
    pub to: Option<chrono::DateTime<Utc>>,
    /// Only orders credited to this creator.
    pub creator_id: Option<uuid::Uuid>,
    /// Only orders credited to this link.
    pub link_id: Option<uuid::Uuid>,
    /// Only orders of this status.
    pub status: Option<Status>,
}

/// Orders read per page of an export.
const EXPORT_PAGE: i64 = 1000;

const EXPORT_COLUMNS: [&str; 21] = [
    "order_id",
    "status",
    "occurred_at",
    "currency",
    "amount",
    "refunded",
    "net",
    "counted_as",
    "method",
    "click_id",
    "credited_at",
    "link_id",
    "link_code",
    "short_url",
    "creator_id",
    "creator_name",
    "source",
    "verified_at",
    "confirm_by",
    "cancelled_at",
    "discount_codes",
];

#[utoipa::path(get, path = "/v1/conversions.csv", tag = "attribution", operation_id = "export_conversions",
    params(ExportFilter), security(("api_key" = [])),
    description = "Every order matching the filters, newest first, as CSV (RFC 4180, UTF-8, header row), streamed: \
        one row per order with its status, amounts (major units), the credit that explains it (method, click, link, \
        creator, times) and whether it counts in revenue. Cells a spreadsheet would run as formulas start with `'`.",
    responses((status = 200, content_type = "text/csv", body = String, description = "the CSV file"),
        (status = 400, body = ErrorBody, description = "`invalid_query`: a malformed filter or an out-of-range date"),
        (status = 401, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    brand: Brand,
    Query(filter): Query<ExportFilter>,
) -> axum::response::Response {
    export_csv(state, brand.id, filter)
}

/// The orders export, for the REST API and the dashboard alike.
pub fn export_csv(state: AppState, brand_id: uuid::Uuid, filter: ExportFilter) -> axum::response::Response {
    let list_filter = ConversionFilter {
        from: filter.from,
        to: filter.to,
        creator_id: filter.creator_id,
        link_id: filter.link_id,
        status: filter.status,
        limit: None,
        cursor: None,
    };
    let pages = super::csv::paged(move |before: Option<i64>| {
        let (state, filter) = (state.clone(), list_filter.clone());
        async move { export_page(&state, brand_id, &filter, before).await }
    });
    super::csv::download("conversions.csv", &EXPORT_COLUMNS, pages)
}

/// Where an order counts in reports: `revenue` (`conversions` and `revenue`), `pending` (apart), or `none`.
fn counted_as(status: Status) -> &'static str {
    if crate::revenue::counts(status) {
        "revenue"
    } else if status == crate::revenue::PENDING {
        "pending"
    } else {
        "none"
    }
}

/// One page of the export before `before` (a sequence number), and where the next one starts.
async fn export_page(
    state: &AppState,
    brand_id: uuid::Uuid,
    filter: &ConversionFilter,
    before: Option<i64>,
) -> Result<(super::csv::Rows, Option<i64>), Error> {
    use super::csv::{amount, instant, text};
    let orders = conversions::list(state.read(), brand_id, filter, before, EXPORT_PAGE).await?;
    let next = if orders.len() as i64 == EXPORT_PAGE { orders.last().map(|(seq, _)| *seq) } else { None };
    let ids: Vec<uuid::Uuid> = orders.iter().filter_map(|(_, c)| c.link_id).collect();
    let labels = crate::links::labels(state.read(), brand_id, &ids).await?;
    let rows = orders
        .into_iter()
        .map(|(_, c)| {
            let label = c.link_id.and_then(|id| labels.get(&id));
            vec![
                c.order_id,
                c.status.to_string(),
                instant(Some(c.occurred_at)),
                c.amount.currency.clone(),
                amount(&c.amount),
                amount(&c.refunded),
                amount(&c.net),
                counted_as(c.status).to_owned(),
                text(c.method),
                text(c.click_id),
                instant(c.credited_at),
                text(c.link_id),
                text(label.map(|l| l.code.clone())),
                text(label.map(|l| state.config.link_url(l.domain.as_deref(), &l.code))),
                text(c.creator_id),
                text(label.and_then(|l| l.creator_name.clone())),
                c.source,
                instant(c.verified_at),
                instant(c.confirm_by),
                instant(c.cancelled_at),
                c.discount_codes.join(" "),
            ]
        })
        .collect();
    Ok((rows, next))
}
