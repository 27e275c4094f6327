//! CSV exports: what they hold (the same orders, links and figures as the JSON they mirror), how cells
//! are quoted and neutralised, and that they page through any number of rows.

mod support;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use http_body_util::BodyExt;
use serde_json::json;
use sqlx::PgPool;
use support::{Api, Click};
use tower::ServiceExt;
use uuid::Uuid;

/// A CSV download: status, content type and the parsed records (header first).
async fn csv(api: &Api, uri: &str, key: &str) -> (StatusCode, String, Vec<Vec<String>>) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if status != StatusCode::OK {
        return (status, content_type, Vec::new());
    }
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.ends_with("\r\n"), "rows end with CRLF");
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    let records = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    (status, content_type, records)
}

/// The records as maps from column name to cell.
fn table(records: &[Vec<String>]) -> Vec<std::collections::HashMap<String, String>> {
    let header = &records[0];
    records[1..].iter().map(|r| header.iter().cloned().zip(r.iter().cloned()).collect()).collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_orders_export_explains_every_credited_dollar_and_neutralises_formulas(pool: PgPool) {
    let api = Api::new(pool).await;
    let creator = api.create("/v1/creators", json!({"name": "Jess, \"the\" Creator"})).await;
    let link =
        api.create("/v1/links", json!({"destination_url": "https://shop.example/", "creator_id": creator["id"]})).await;
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::minutes(5))]).await[0];
    api.report_order("A,1 \"quoted\"", 12_999, Some(click), &["=HYPERLINK(\"http://evil.example\")"]).await;
    api.report_order("B-2", 500, None, &[]).await;
    api.post("/v1/conversions/B-2/cancel", json!({})).await;

    let (status, content_type, records) = csv(&api, "/v1/conversions.csv", &api.key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let rows = table(&records);
    assert_eq!(rows.len(), 2);
    let (cancelled, credited) = (&rows[0], &rows[1]);
    assert_eq!(credited["order_id"], "A,1 \"quoted\"");
    assert_eq!(credited["status"], "verified");
    assert_eq!(credited["counted_as"], "revenue");
    assert_eq!((credited["amount"].as_str(), credited["net"].as_str()), ("129.99", "129.99"));
    assert_eq!(credited["method"], "click");
    assert_eq!(credited["click_id"], click.simple().to_string());
    assert_eq!(credited["link_code"], link["code"].as_str().unwrap());
    assert_eq!(credited["short_url"], link["short_url"].as_str().unwrap());
    assert_eq!(credited["creator_name"], "Jess, \"the\" Creator");
    assert_eq!(credited["discount_codes"], "'=HYPERLINK(\"http://evil.example\")", "a formula is neutralised");
    assert_eq!((cancelled["status"].as_str(), cancelled["counted_as"].as_str()), ("cancelled", "none"));
    assert_eq!(cancelled["method"], "");
    assert!(cancelled["cancelled_at"].ends_with('Z'));

    // The list's filters apply.
    let (_, _, only_cancelled) = csv(&api, "/v1/conversions.csv?status=cancelled", &api.key).await;
    assert_eq!(only_cancelled.len(), 2);
    let (bad, _, _) = csv(&api, "/v1/conversions.csv?status=lost", &api.key).await;
    assert_eq!(bad, StatusCode::BAD_REQUEST);
    let (unauthorized, _, _) = csv(&api, "/v1/conversions.csv", "nope").await;
    assert_eq!(unauthorized, StatusCode::UNAUTHORIZED);
    // Another brand's export holds nothing of this one.
    let other = api.other_brand().await;
    let (_, _, theirs) = csv(&other, "/v1/conversions.csv", &other.key).await;
    assert_eq!(theirs.len(), 1, "only the header");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_orders_export_pages_through_every_order_once(pool: PgPool) {
    let api = Api::new(pool).await;
    sqlx::query(
        "insert into conversions (id, brand_id, order_id, amount_minor, currency, occurred_at, source, amount_source,
                                  verified_at, status)
         select gen_random_uuid(), $1, 'o-' || g, g, 'USD', now() - interval '1 day', 'api', 'api', now(), 'verified'
         from generate_series(1, 2500) g",
    )
    .bind(api.brand_id)
    .execute(&api.pool)
    .await
    .unwrap();
    let (_, _, records) = csv(&api, "/v1/conversions.csv", &api.key).await;
    let rows = table(&records);
    assert_eq!(rows.len(), 2500);
    let mut ids: Vec<&str> = rows.iter().map(|r| r["order_id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2500);
    assert_eq!(rows[0]["order_id"], "o-2500", "newest first");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_links_and_attribution_exports_hold_the_figures_of_their_json(pool: PgPool) {
    let api = Api::new(pool).await;
    let creator = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let shared = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://shop.example/a", "creator_id": creator["id"], "share_revenue": true,
                   "promo_code": "-PROMO"}),
        )
        .await;
    let quiet = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://shop.example/b?x=1,2", "utm_source": "instagram",
                   "utm_campaign": "=spring", "expires_at": "2030-01-01T00:00:00Z",
                   "expired_url": "https://shop.example/over"}),
        )
        .await;
    let visitor = Uuid::new_v4();
    let clicks = api
        .click(&[
            Click::new(&shared, visitor, Utc::now() - Duration::minutes(9)),
            Click::new(&shared, Uuid::new_v4(), Utc::now() - Duration::minutes(8)),
        ])
        .await;
    api.report_order("1", 10_000, Some(clicks[0]), &[]).await;
    api.report_order("2", 2_550, Some(clicks[1]), &[]).await;

    let (_, _, records) = csv(&api, "/v1/links.csv", &api.key).await;
    let rows = table(&records);
    assert_eq!(rows.len(), 2);
    let (q, s) = (&rows[0], &rows[1]);
    assert_eq!(s["code"], shared["code"].as_str().unwrap());
    assert_eq!(s["promo_code"], "'-PROMO", "a leading minus is neutralised");
    assert_eq!((s["clicks"].as_str(), s["unique_clicks"].as_str()), ("2", "2"));
    assert_eq!((s["currency"].as_str(), s["conversions"].as_str(), s["revenue"].as_str()), ("USD", "2", "125.50"));
    assert_eq!(s["creator_name"], "Jess");
    assert_eq!(s["conversion_rate"], "1.0000");
    assert_eq!(q["code"], quiet["code"].as_str().unwrap());
    assert_eq!(q["destination_url"], "https://shop.example/b?x=1,2");
    assert_eq!((q["clicks"].as_str(), q["conversions"].as_str(), q["currency"].as_str()), ("0", "0", ""));
    // The link's settings follow its figures.
    assert_eq!((q["utm_source"].as_str(), q["utm_medium"].as_str()), ("instagram", ""));
    assert_eq!(q["utm_campaign"], "'=spring", "a formula is neutralised");
    assert_eq!(
        (q["expires_at"].as_str(), q["expired_url"].as_str()),
        ("2030-01-01T00:00:00Z", "https://shop.example/over")
    );
    assert_eq!((q["domain"].as_str(), q["destination_status"].as_str()), ("", ""));
    assert_eq!((s["utm_source"].as_str(), s["expires_at"].as_str()), ("", ""));
    let stats = api.get(&format!("/v1/links/{}/stats", shared["id"].as_str().unwrap())).await.body;
    assert_eq!(stats["clicks"], 2);
    assert_eq!(stats["conversions"], 2);
    let (_, _, only) =
        csv(&api, &format!("/v1/links.csv?creator_id={}", creator["id"].as_str().unwrap()), &api.key).await;
    assert_eq!(only.len(), 2);

    let json = api.get("/v1/attribution?group_by=creator").await.body;
    let (_, _, records) = csv(&api, "/v1/attribution.csv?group_by=creator", &api.key).await;
    let rows = table(&records);
    assert_eq!(rows.len(), json["data"].as_array().unwrap().len());
    let jess = rows.iter().find(|r| r["key"] == creator["id"].as_str().unwrap()).unwrap();
    let jess_json = json["data"].as_array().unwrap().iter().find(|r| r["key"] == creator["id"]).unwrap();
    assert_eq!(jess["clicks"], jess_json["clicks"].to_string());
    assert_eq!(jess["conversions"], jess_json["conversions"].to_string());
    assert_eq!((jess["currency"].as_str(), jess["revenue"].as_str()), ("USD", "125.50"));
    assert_eq!(jess["group_by"], "creator");
    let (bad, _, _) = csv(&api, "/v1/attribution.csv?group_by=planet", &api.key).await;
    assert_eq!(bad, StatusCode::BAD_REQUEST);
}
