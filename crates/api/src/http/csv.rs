//! CSV exports: RFC 4180 (CRLF line ends, fields quoted when they need it), UTF-8, a header row. They
//! are streamed a page at a time, so an export of any size is made in bounded memory. A cell that a
//! spreadsheet would run as a formula (one starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
//! is written with a leading `'`, as OWASP advises for CSV injection.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{Stream, StreamExt};

use super::Error;
use crate::money::Money;

/// Rows of one page of an export.
pub type Rows = Vec<Vec<String>>;

/// A cell as written: a formula trigger at its start is neutralised.
pub fn neutralised(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// Rows as CSV text.
pub fn encode(rows: &[Vec<String>]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    for row in rows {
        writer.write_record(row.iter().map(|cell| neutralised(cell).into_owned()))?;
    }
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// A streamed `text/csv` download named `filename`: the header row, then each page as it is read. A
/// failure after the first bytes were sent can no longer change the status: it is logged and the body
/// ends early, which a client sees as a broken transfer, never as a complete file.
pub fn download<S>(filename: &str, header_row: &[&str], pages: S) -> Response
where
    S: Stream<Item = Result<Rows, Error>> + Send + 'static,
{
    let head = encode(&[header_row.iter().map(|h| (*h).to_owned()).collect()]).unwrap_or_default();
    let body = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(head)) }).chain(
        pages.map(|page| {
            let bytes = page.and_then(|rows| encode(&rows).map_err(|e| Error::Internal(e.into())));
            bytes.map(Bytes::from).map_err(|e| {
                tracing::error!(error = %e, "a CSV export failed part way; its body ends early");
                std::io::Error::other("export failed")
            })
        }),
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The pages of an export read one after the other: `page(cursor)` answers a page's rows and the next
/// page's cursor (`None` after the last page); the first page is read with `None`. A failure ends the
/// stream after yielding it.
pub fn paged<C, F, Fut>(page: F) -> impl Stream<Item = Result<Rows, Error>> + Send + 'static
where
    C: Send + 'static,
    F: Fn(Option<C>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Rows, Option<C>), Error>> + Send + 'static,
{
    futures_util::stream::unfold(Some(None), move |cursor: Option<Option<C>>| {
        let next_page = cursor.map(&page);
        async move {
            let (rows, next) = match next_page?.await {
                Ok((rows, next)) => (Ok(rows), next.map(Some)),
                Err(e) => (Err(e), None),
            };
            Some((rows, next))
        }
    })
}

/// An instant as exported: RFC 3339, UTC, whole seconds.
pub fn instant(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default()
}

/// An amount as exported: major units with the currency's decimals (`129.99`).
pub fn amount(money: &Money) -> String {
    money.decimal()
}

/// An optional value's text, or an empty cell.
pub fn text<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_as_rfc_4180_says_and_formulas_are_neutralised() {
        let rows = vec![
            vec!["plain".into(), "a,b".into(), "say \"hi\"".into(), "two\nlines".into()],
            vec!["=HYPERLINK(\"http://evil\")".into(), "+1".into(), "-2".into(), "@SUM(A1)".into()],
            vec!["\tx".into(), "ünïcode ✓".into(), String::new(), "12.50".into()],
        ];
        let text = String::from_utf8(encode(&rows).unwrap()).unwrap();
        assert_eq!(
            text,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n\
             \"'=HYPERLINK(\"\"http://evil\"\")\",'+1,'-2,'@SUM(A1)\r\n\
             '\tx,ünïcode ✓,,12.50\r\n"
        );
    }
}
