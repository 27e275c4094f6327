//! `GET /v1/links/{id}/qr`: a link's QR code as SVG or PNG. The rules and the drawing are
//! [`crate::links::qr`]'s; the answer is [`super::super::files::qr_image`], as for the dashboard.

use axum::extract::State;
use axum::response::Response;
use uuid::Uuid;

use super::super::auth::Brand;
use super::super::error::{Error, ErrorBody};
use super::super::extract::{Path, Query};
use super::super::files;
use super::super::AppState;
use crate::links::qr::{self, Format, QrQuery};

#[utoipa::path(get, path = "/v1/links/{id}/qr", tag = "links", operation_id = "get_link_qr",
    params(("id" = Uuid, Path, description = "the link"), QrQuery), security(("api_key" = [])),
    description = "The link's QR code, exactly `size` pixels square with its quiet zone. A scan opens the short URL \
        with `?qr=1`, and the click is recorded with the source `qr` (see the link's stats, `by_source`).",
    responses(
        (status = 200, description = "the image (`Cache-Control: private, max-age=300`; `Content-Disposition` names \
            it `<code>-qr.svg` or `<code>-qr.png`)",
            content((String = "image/svg+xml"), (Vec<u8> = "image/png"))),
        (status = 400, body = ErrorBody, description = "`invalid_query`: a malformed query string (a parameter \
            given twice, say)"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "not a link of this brand, or a deleted one (it no longer \
            redirects, so it has no QR code)"),
        (status = 422, body = ErrorBody, description = "`invalid_query`: an unknown `format`, a `size` outside \
            128–2048, or a `download` other than 1 or 0")))]
pub async fn get(
    State(state): State<AppState>,
    brand: Brand,
    Path(id): Path<Uuid>,
    Query(query): Query<QrQuery>,
) -> Result<Response, Error> {
    let request = query.parse(Format::Svg)?;
    let image = qr::code_of(&state.db, &state.config, brand.id, id, request).await?;
    files::qr_image(image)
}
