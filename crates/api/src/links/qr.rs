//! QR codes of links: pure functions from a text, a format and a size to the image's bytes. A scan opens
//! the link's short URL with the marker `?qr=1`, which the edge strips before recording the click with
//! the source `qr` (so a link's stats tell scans from taps).
//!
//! The image is exactly `size` pixels square. Every module is the same whole number of pixels, so the
//! code stays sharp at any size; what is left over widens the quiet zone (always at least the 4 modules
//! the standard asks for) around the centred code.

use qrcode::{Color, EcLevel, QrCode};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Link, LinkError};
use crate::config::Config;

/// The smallest image, in pixels.
pub const MIN_SIZE: u32 = 128;
/// The largest image, in pixels.
pub const MAX_SIZE: u32 = 2048;
/// The image's size when none is asked for.
pub const DEFAULT_SIZE: u32 = 512;
/// The light margin around the code, in modules (ISO/IEC 18004 asks for 4).
pub const QUIET_ZONE: u32 = 4;

/// The image formats a QR code comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Scalable; what print and design tools want.
    Svg,
    /// A 1-bit greyscale bitmap.
    Png,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Svg, Format::Png];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }

    /// The format named `svg` or `png` (any case).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(raw))
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Svg => "image/svg+xml",
            Format::Png => "image/png",
        }
    }
}

/// Why no image could be drawn.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("size must be between {MIN_SIZE} and {MAX_SIZE} pixels")]
    Size,
    /// The text needs more modules than the image has pixels (never for a short URL at 128 px or more).
    #[error("the text is too long for a QR code of {0} pixels")]
    TooLong(u32),
    #[error("the QR code could not be encoded: {0}")]
    Encode(String),
}

/// What a scan of a link's QR code opens: its short URL, marked as a scan.
pub fn scan_url(short_url: &str) -> String {
    format!("{short_url}?qr=1")
}

/// `text` as a QR code in `format`, exactly `size` pixels square (`MIN_SIZE..=MAX_SIZE`), dark on white.
pub fn render(text: &str, format: Format, size: u32) -> Result<Vec<u8>, QrError> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(QrError::Size);
    }
    let layout = Layout::new(text, size)?;
    match format {
        Format::Svg => Ok(layout.svg().into_bytes()),
        Format::Png => layout.png(),
    }
}

/// Where the modules go in the image.
struct Layout {
    size: u32,
    /// Modules per side, quiet zone excluded.
    modules: u32,
    /// Pixels per module.
    scale: u32,
    /// Pixels from the image's left and top edges to the first module.
    offset: u32,
    dark: Vec<bool>,
}

impl Layout {
    fn new(text: &str, size: u32) -> Result<Self, QrError> {
        // Level M survives a smudged or partly covered print (15 % of the code), and short URLs stay small.
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|e| QrError::Encode(e.to_string()))?;
        let modules = u32::try_from(code.width()).map_err(|e| QrError::Encode(e.to_string()))?;
        let scale = size / (modules + 2 * QUIET_ZONE);
        if scale == 0 {
            return Err(QrError::TooLong(size));
        }
        let offset = (size - modules * scale) / 2;
        let dark = code.to_colors().into_iter().map(|c| c == Color::Dark).collect();
        Ok(Layout { size, modules, scale, offset, dark })
    }

    fn is_dark(&self, x: u32, y: u32) -> bool {
        self.dark.get((y * self.modules + x) as usize).copied().unwrap_or(false)
    }

    /// One path of horizontal runs of dark modules, on a white square.
    fn svg(&self) -> String {
        let (size, scale) = (self.size, self.scale);
        let mut path = String::new();
        for y in 0..self.modules {
            let mut x = 0;
            while x < self.modules {
                if !self.is_dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < self.modules && self.is_dark(x, y) {
                    x += 1;
                }
                let (left, top, width) = (self.offset + start * scale, self.offset + y * scale, (x - start) * scale);
                path.push_str(&format!("M{left} {top}h{width}v{scale}h-{width}z"));
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>\n"
        )
    }

    /// A 1-bit greyscale PNG (a set bit is white).
    fn png(&self) -> Result<Vec<u8>, QrError> {
        let size = self.size;
        let stride = size.div_ceil(8) as usize;
        let mut pixels = vec![0xff_u8; stride * size as usize];
        let end = self.offset + self.modules * self.scale;
        for py in self.offset..end {
            let row = &mut pixels[py as usize * stride..(py as usize + 1) * stride];
            for px in self.offset..end {
                if self.is_dark((px - self.offset) / self.scale, (py - self.offset) / self.scale) {
                    row[px as usize / 8] &= !(0x80 >> (px % 8));
                }
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, size, size);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        let encode = |e: png::EncodingError| QrError::Encode(e.to_string());
        let mut writer = encoder.write_header().map_err(encode)?;
        writer.write_image_data(&pixels).map_err(encode)?;
        writer.finish().map_err(encode)?;
        Ok(out)
    }
}

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
    pub fn parse(&self, default_format: Format) -> Result<QrRequest, LinkError> {
        let invalid = |message: String| LinkError::invalid("invalid_query", message);
        let format = match self.format.as_deref() {
            None => default_format,
            Some(raw) => Format::parse(raw).ok_or_else(|| invalid("format must be svg or png".into()))?,
        };
        let size = match self.size.as_deref() {
            None => DEFAULT_SIZE,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|s| (MIN_SIZE..=MAX_SIZE).contains(s))
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

/// A link's QR code, drawn.
#[derive(Debug)]
pub struct QrImage {
    pub bytes: Vec<u8>,
    pub format: Format,
    /// `<code>-qr.svg` or `<code>-qr.png`.
    pub filename: String,
    /// Whether it is asked for as a download rather than to show.
    pub download: bool,
}

/// The QR code of the brand's link `id`. A deleted link has none (it no longer redirects, so a printed
/// code would lead nowhere): not found, like another brand's.
pub async fn code_of(
    db: &PgPool,
    config: &Config,
    brand_id: Uuid,
    id: Uuid,
    request: QrRequest,
) -> Result<QrImage, LinkError> {
    let link: Link = super::get(db, config, brand_id, id).await?;
    if !link.active {
        return Err(LinkError::NotFound("link"));
    }
    let bytes = render(&scan_url(&link.short_url), request.format, request.size).map_err(|e| match e {
        QrError::Size | QrError::TooLong(_) => LinkError::invalid("invalid_query", e.to_string()),
        QrError::Encode(_) => LinkError::Internal(e.into()),
    })?;
    Ok(QrImage {
        bytes,
        format: request.format,
        filename: format!("{}-qr.{}", link.code, request.format.as_str()),
        download: request.download,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_outside_the_range_are_refused() {
        for size in [0, MIN_SIZE - 1, MAX_SIZE + 1] {
            assert!(matches!(render("https://x.example/abc", Format::Png, size), Err(QrError::Size)), "{size}");
        }
    }

    #[test]
    fn the_code_is_centred_with_at_least_the_quiet_zone() {
        for size in [MIN_SIZE, 129, 333, DEFAULT_SIZE, MAX_SIZE] {
            let layout = Layout::new("https://trk.creatorscore.io/k7m2p9qa?qr=1", size).unwrap();
            assert!(layout.offset >= QUIET_ZONE * layout.scale, "{size}");
            let right = size - layout.offset - layout.modules * layout.scale;
            assert!(right >= QUIET_ZONE * layout.scale && right.abs_diff(layout.offset) <= 1, "{size}");
        }
    }

    #[test]
    fn svgs_say_their_size() {
        let svg = String::from_utf8(render("https://x.example/abc?qr=1", Format::Svg, 300).unwrap()).unwrap();
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300""#), "{svg}");
        assert_eq!(Format::parse("PNG"), Some(Format::Png));
        assert_eq!(Format::parse("gif"), None);
    }
}
