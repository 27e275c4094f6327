//! `GET /v1/links/{id}/qr`: a link's QR code as SVG or PNG. The drawing is [`crate::links::qr`]'s; the
//! dashboard's QR routes answer through [`image`] too.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::super::auth::Brand;
use super::super::error::{Error, ErrorBody};
use super::super::extract::{Path, Query};
use super::super::AppState;
use crate::links::qr::{self, Format, QrError};
use crate::links::{self, Link};

/// The image asked for. Every value is read as text so that a bad one is refused naming its parameter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// `svg` (default) or `png` (else 422 `invalid_query`).
    #[param(value_type = Option<Format>)]
    pub format: Option<String>,
    /// Width and height in pixels, quiet zone included (128–2048, default 512; else 422 `invalid_query`).
    #[param(value_type = Option<u32>, minimum = 128, maximum = 2048, default = 512)]
    pub size: Option<String>,
    /// `1` (or `true`): answer as a download (`Content-Disposition: attachment`) rather than inline.
    #[param(value_type = Option<bool>)]
    pub download: Option<String>,
}

/// A validated [`QrQuery`].
#[derive(Debug, Clone, Copy)]
pub struct QrRequest {
    pub format: Format,
    pub size: u32,
    pub download: bool,
}

impl QrQuery {
    pub fn parse(&self, default_format: Format) -> Result<QrRequest, Error> {
        let invalid = |message: String| Error::invalid_field("invalid_query", message);
        let format = match self.format.as_deref() {
            None => default_format,
            Some(raw) => Format::parse(raw).ok_or_else(|| invalid("format must be svg or png".into()))?,
        };
        let size = match self.size.as_deref() {
            None => qr::DEFAULT_SIZE,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|s| (qr::MIN_SIZE..=qr::MAX_SIZE).contains(s))
                .ok_or_else(|| invalid(QrError::Size.to_string()))?,
        };
        let download = match self.download.as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(_) => return Err(invalid("download must be 1 or 0".into())),
        };
        Ok(QrRequest { format, size, download })
    }
}

#[utoipa::path(get, path = "/v1/links/{id}/qr", tag = "links", operation_id = "get_link_qr",
    params(("id" = Uuid, Path, description = "the link"), QrQuery), security(("api_key" = [])),
    description = "The link's QR code, exactly `size` pixels square with its quiet zone. A scan opens the short URL \
        with `?qr=1`, and the click is recorded with the source `qr` (see the link's stats, `by_source`).",
    responses(
        (status = 200, description = "the image (`Cache-Control: private, max-age=300`; `Content-Disposition` names \
            it `<code>-qr.svg` or `<code>-qr.png`)",
            content((String = "image/svg+xml"), (Vec<u8> = "image/png"))),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a link of this brand"),
        (status = 422, body = ErrorBody, description = "`invalid_query`: an unknown `format`, a `size` outside \
            128–2048, or a `download` other than 1 or 0")))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Query(query): Query<QrQuery>,
) -> Result<Response, Error> {
    let request = query.parse(Format::Svg)?;
    let link = links::get(&state.db, &state.config, brand.id, id).await?;
    image(&link, request)
}

/// The link's QR code as an answer: its content type, a short private cache, and a file name.
pub fn image(link: &Link, request: QrRequest) -> Result<Response, Error> {
    let bytes = qr::render(&qr::scan_url(&link.short_url), request.format, request.size).map_err(|e| match e {
        QrError::Size | QrError::TooLong(_) => Error::invalid_field("invalid_query", e.to_string()),
        QrError::Encode(_) => Error::Internal(e.into()),
    })?;
    let disposition = if request.download { "attachment" } else { "inline" };
    // Codes are 8 characters of a fixed alphabet, so the header value is always valid.
    let filename = format!("{disposition}; filename=\"{}-qr.{}\"", link.code, request.format.as_str());
    let disposition = HeaderValue::from_str(&filename).map_err(|e| Error::Internal(e.into()))?;
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(request.format.content_type())),
        (CACHE_CONTROL, HeaderValue::from_static("private, max-age=300")),
        (CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, bytes).into_response())
}
