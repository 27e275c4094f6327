//! Answers that are files rather than JSON or pages, for the REST API and the dashboard alike.

use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::error::Error;
use crate::links::qr::QrImage;

/// A QR code: its content type, a short private cache, and its file name (as a download when asked).
pub fn qr_image(image: QrImage) -> Result<Response, Error> {
    let disposition = if image.download { "attachment" } else { "inline" };
    // The file name is a code (8 characters of a fixed alphabet) and an extension: always a valid value.
    let disposition = HeaderValue::from_str(&format!("{disposition}; filename=\"{}\"", image.filename))
        .map_err(|e| Error::Internal(e.into()))?;
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(image.format.content_type())),
        (CACHE_CONTROL, HeaderValue::from_static("private, max-age=300")),
        (CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, image.bytes).into_response())
}
