//! A link's QR code (`GET /v1/links/{id}/qr`): SVG and PNG that decode back to the short URL marked as a
//! scan, exactly the size asked for, and the refusals of bad parameters and other brands' links.

mod support;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::Api;
use tower::ServiceExt;

struct Image {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Image {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn error_code(&self) -> String {
        let body: Value = serde_json::from_slice(&self.bytes).unwrap_or(Value::Null);
        body["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

async fn fetch(api: &Api, uri: &str) -> Image {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", api.key))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Image { status, headers, bytes }
}

/// A PNG's width, height and 8-bit grey pixels.
fn png_pixels(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Grayscale, png::BitDepth::Eight));
    let (width, height) = (info.width as usize, info.height as usize);
    let pixels = (0..height).flat_map(|y| buffer[y * info.line_size..][..width].to_vec()).collect();
    (width, height, pixels)
}

/// What a QR code in these pixels says.
fn decode(width: usize, height: usize, pixels: &[u8]) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// Draws our SVG (a white square, then one path of `M x y h w v s h -w z` rectangles) as pixels.
fn rasterize_svg(svg: &str) -> (usize, usize, Vec<u8>) {
    let attribute = |name: &str| {
        let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[start..].split('"').next().unwrap().to_owned()
    };
    let (width, height): (usize, usize) = (attribute("width").parse().unwrap(), attribute("height").parse().unwrap());
    assert_eq!(attribute("viewBox"), format!("0 0 {width} {height}"));
    let mut pixels = vec![255u8; width * height];
    let path = attribute("d");
    for rect in path.split('z').filter(|r| !r.is_empty()) {
        let numbers: Vec<usize> =
            rect.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()).map(|n| n.parse().unwrap()).collect();
        let [left, top, w, h, back] = numbers[..] else { panic!("not a rectangle: {rect}") };
        assert_eq!(w, back, "{rect}");
        for y in top..top + h {
            for x in left..left + w {
                pixels[y * width + x] = 0;
            }
        }
    }
    (width, height, pixels)
}

async fn link(api: &Api) -> Value {
    api.create("/v1/links", json!({"destination_url": "https://shop.example/products/serum"})).await
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn svg_and_png_codes_open_the_short_url_marked_as_a_scan(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api).await;
    let (id, code) = (link["id"].as_str().unwrap(), link["code"].as_str().unwrap());
    let scan = format!("{}?qr=1", link["short_url"].as_str().unwrap());

    let svg = fetch(&api, &format!("/v1/links/{id}/qr?format=svg&size=300")).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header(header::CONTENT_TYPE), "image/svg+xml");
    assert_eq!(svg.header(header::CACHE_CONTROL), "private, max-age=300");
    assert_eq!(svg.header(header::CONTENT_DISPOSITION), format!("inline; filename=\"{code}-qr.svg\""));
    let (width, height, pixels) = rasterize_svg(std::str::from_utf8(&svg.bytes).unwrap());
    assert_eq!((width, height), (300, 300));
    assert_eq!(decode(width, height, &pixels), scan);

    let png = fetch(&api, &format!("/v1/links/{id}/qr?format=png&size=300&download=1")).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.header(header::CONTENT_TYPE), "image/png");
    assert_eq!(png.header(header::CACHE_CONTROL), "private, max-age=300");
    assert_eq!(png.header(header::CONTENT_DISPOSITION), format!("attachment; filename=\"{code}-qr.png\""));
    let (width, height, pixels) = png_pixels(&png.bytes);
    assert_eq!((width, height), (300, 300));
    assert_eq!(decode(width, height, &pixels), scan);
    // The quiet zone: the image's border is white all round.
    assert!((0..300).all(|i| [pixels[i], pixels[i * 300], pixels[299 * 300 + i], pixels[i * 300 + 299]] == [255; 4]));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn sizes_from_128_to_2048_pixels_are_drawn_exactly_and_512_is_the_default(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api).await;
    let id = link["id"].as_str().unwrap();
    let scan = format!("{}?qr=1", link["short_url"].as_str().unwrap());
    for size in [128, 2048] {
        let png = fetch(&api, &format!("/v1/links/{id}/qr?format=png&size={size}")).await;
        assert_eq!(png.status, StatusCode::OK, "{size}");
        let (width, height, pixels) = png_pixels(&png.bytes);
        assert_eq!((width, height), (size, size));
        assert_eq!(decode(width, height, &pixels), scan, "{size}");
    }
    let default = fetch(&api, &format!("/v1/links/{id}/qr?format=png")).await;
    let (width, height, _) = png_pixels(&default.bytes);
    assert_eq!((width, height), (512, 512));
    // Without a format: SVG, 512 pixels.
    let svg = fetch(&api, &format!("/v1/links/{id}/qr")).await;
    assert_eq!(svg.header(header::CONTENT_TYPE), "image/svg+xml");
    let (width, height, _) = rasterize_svg(std::str::from_utf8(&svg.bytes).unwrap());
    assert_eq!((width, height), (512, 512));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn bad_parameters_are_refused_naming_them(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api).await;
    let id = link["id"].as_str().unwrap();
    for (query, parameter) in [
        ("size=127", "size"),
        ("size=2049", "size"),
        ("size=abc", "size"),
        ("format=png&size=-1", "size"),
        ("format=gif", "format"),
        ("format=", "format"),
        ("download=maybe", "download"),
    ] {
        let answer = fetch(&api, &format!("/v1/links/{id}/qr?{query}")).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_query"));
        let body: Value = serde_json::from_slice(&answer.bytes).unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(parameter), "{query}: {body}");
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn another_brands_link_has_no_qr_code(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = link(&api).await;
    let other = api.other_brand().await;
    let answer = fetch(&other, &format!("/v1/links/{}/qr", link["id"].as_str().unwrap())).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let missing = fetch(&api, &format!("/v1/links/{}/qr", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let malformed = fetch(&api, "/v1/links/not-an-id/qr").await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);
    // A deleted link no longer redirects, so a printed code would lead nowhere: it has none.
    let id = link["id"].as_str().unwrap();
    assert_eq!(fetch(&api, &format!("/v1/links/{id}/qr")).await.status, StatusCode::OK);
    assert_eq!(api.delete(&format!("/v1/links/{id}")).await.status, StatusCode::NO_CONTENT);
    let deleted = fetch(&api, &format!("/v1/links/{id}/qr")).await;
    assert_eq!((deleted.status, deleted.error_code().as_str()), (StatusCode::NOT_FOUND, "not_found"));
}
