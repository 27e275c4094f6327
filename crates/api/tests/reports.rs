//! Link stats and attribution reports: exact counts from rollups and raw edges alike.

mod support;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{Api, Click};
use uuid::Uuid;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn link_stats_count_humans_first_clicks_bots_and_breakdowns(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let at = |s| Click { country: Some("DE"), user_agent: Some(IPHONE), ..Click::new(&link, a, t(s)) };
    api.click(&[
        at("2026-11-01T10:00:00Z"),
        at("2026-11-01T11:00:00Z"),
        Click { user_agent: Some(WINDOWS), ..Click::new(&link, b, t("2026-11-02T09:00:00Z")) },
        Click { bot: true, country: Some("US"), ..Click::new(&link, Uuid::new_v4(), t("2026-11-02T09:30:00Z")) },
    ])
    .await;
    let id = link["id"].as_str().unwrap();
    let stats = api.get(&format!("/v1/links/{id}/stats")).await.body;
    assert_eq!(
        (stats["clicks"].clone(), stats["unique_clicks"].clone(), stats["bot_clicks"].clone()),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(stats["conversions"], 0);
    assert_eq!(stats["revenue"], json!([]));
    assert_eq!(stats["by_day"], json!([{"date": "2026-11-01", "clicks": 2}, {"date": "2026-11-02", "clicks": 1}]));
    assert_eq!(stats["by_country"], json!({"DE": 2, "unknown": 1}));
    assert_eq!(stats["by_device"], json!({"mobile": 2, "desktop": 1}));
    assert_eq!(stats["by_browser"], json!({"Mobile Safari": 2, "Chrome": 1}));
    assert_eq!(stats["by_os"], json!({"iOS": 2, "Windows": 1}));

    let window = api.get(&format!("/v1/links/{id}/stats?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z")).await.body;
    assert_eq!(
        (window["clicks"].clone(), window["unique_clicks"].clone(), window["bot_clicks"].clone()),
        (json!(1), json!(1), json!(1))
    );
    let backwards = api.get(&format!("/v1/links/{id}/stats?from=2026-11-03T00:00:00Z&to=2026-11-02T00:00:00Z")).await;
    assert_eq!(backwards.error_code(), "invalid_window");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn ragged_windows_count_exactly_what_aligned_ones_do(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    // One click every 5 hours over 5 days, alternating between three visitors, some from a bot.
    let start = t("2026-11-01T01:00:00Z");
    let visitors = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let clicks: Vec<Click> = (0..24)
        .map(|i| Click {
            bot: i % 7 == 0,
            country: Some(["DE", "FR"][i % 2]),
            ..Click::new(&link, visitors[i % 3], start + Duration::hours(5 * i as i64))
        })
        .collect();
    api.click(&clicks).await;
    let id = link["id"].as_str().unwrap();
    // Expected counts straight from the list above, for windows aligned and not.
    for (from, to) in [
        ("2026-11-01T00:00:00Z", "2026-11-06T00:00:00Z"),
        ("2026-11-01T07:30:00Z", "2026-11-04T13:00:00Z"),
        ("2026-11-02T03:00:00Z", "2026-11-02T21:00:00Z"),
        ("2026-11-03T00:00:00Z", "2026-11-05T17:59:59Z"),
    ] {
        let (f, to_t) = (t(from), t(to));
        let inside: Vec<&Click> = clicks.iter().filter(|c| c.at >= f && c.at < to_t).collect();
        let humans = inside.iter().filter(|c| !c.bot).count();
        let bots = inside.len() - humans;
        let firsts = visitors
            .iter()
            .filter(|v| {
                clicks
                    .iter()
                    .filter(|c| !c.bot && c.visitor == **v)
                    .map(|c| c.at)
                    .min()
                    .is_some_and(|first| first >= f && first < to_t)
            })
            .count();
        let de = inside.iter().filter(|c| !c.bot && c.country == Some("DE")).count();
        let stats = api.get(&format!("/v1/links/{id}/stats?from={from}&to={to}")).await.body;
        assert_eq!(stats["clicks"], humans, "{from}..{to}");
        assert_eq!(stats["bot_clicks"], bots, "{from}..{to}");
        assert_eq!(stats["unique_clicks"], firsts, "{from}..{to}");
        assert_eq!(stats["by_country"]["DE"].as_u64().unwrap_or(0), de as u64, "{from}..{to}");
        let by_day_total: i64 = stats["by_day"].as_array().unwrap().iter().map(|d| d["clicks"].as_i64().unwrap()).sum();
        assert_eq!(by_day_total, humans as i64);
        let report = api.get(&format!("/v1/attribution?group_by=link&from={from}&to={to}")).await.body;
        let row = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == link["id"])
            .cloned()
            .unwrap_or(json!({"clicks": 0, "unique_clicks": 0}));
        assert_eq!(
            (row["clicks"].clone(), row["unique_clicks"].clone()),
            (json!(humans), json!(firsts)),
            "{from}..{to}"
        );
    }
}

async fn purchase(api: &Api, order_id: &str, value: &str, cs_ref: Option<Uuid>) -> support::Response {
    let mut body =
        json!({"pixel_id": api.pixel_id, "event": "purchase", "order_id": order_id, "value": value, "currency": "USD"});
    if let Some(r) = cs_ref {
        body["cs_ref"] = json!(r.simple().to_string());
    }
    api.send(axum::http::Method::POST, "/v1/pixel/events", None, Some(axum::body::Body::from(body.to_string()))).await
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn attribution_groups_by_every_dimension(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = api.create("/v1/creators", json!({"name": "Jess"})).await;
    let sam = api.create("/v1/creators", json!({"name": "Sam"})).await;
    let spring = api.create("/v1/campaigns", json!({"name": "Spring"})).await;
    let a = api.create("/v1/links", json!({"destination_url": "https://a.example", "creator_id": jess["id"], "campaign_id": spring["id"], "platform": "tiktok", "content_type": "reel"})).await;
    let b = api.create("/v1/links", json!({"destination_url": "https://b.example", "creator_id": sam["id"], "platform": "youtube", "content_type": "video"})).await;
    let now = Utc::now();
    let ids = api
        .click(&[
            Click::new(&a, Uuid::new_v4(), now - Duration::hours(3)),
            Click::new(&a, Uuid::new_v4(), now - Duration::hours(2)),
            Click::new(&b, Uuid::new_v4(), now - Duration::hours(1)),
        ])
        .await;
    assert_eq!(purchase(&api, "1001", "59.90", Some(ids[0])).await.status, 202);
    assert_eq!(purchase(&api, "1002", "10.00", Some(ids[2])).await.status, 202);

    let expectations = [
        ("creator", jess["id"].clone(), sam["id"].clone()),
        ("link", a["id"].clone(), b["id"].clone()),
        ("campaign", spring["id"].clone(), Value::Null),
        ("platform", json!("tiktok"), json!("youtube")),
        ("content_type", json!("reel"), json!("video")),
    ];
    for (group, first, second) in expectations {
        let report = api.get(&format!("/v1/attribution?group_by={group}")).await;
        assert_eq!(report.status, 200, "{}", report.body);
        let rows = report.body["data"].as_array().unwrap().clone();
        let row = |key: &Value| rows.iter().find(|r| &r["key"] == key).cloned().unwrap();
        assert_eq!(row(&first)["clicks"], 2, "{group}");
        assert_eq!(row(&first)["unique_clicks"], 2, "{group}");
        assert_eq!(row(&first)["conversions"], 1, "{group}");
        assert_eq!(row(&first)["revenue"], json!([{"amount_minor": 5990, "currency": "USD"}]), "{group}");
        assert_eq!(row(&first)["conversion_rate"], 0.5, "{group}");
        assert_eq!(row(&second)["revenue"], json!([{"amount_minor": 1000, "currency": "USD"}]), "{group}");
    }
    assert_eq!(api.get("/v1/attribution?group_by=country").await.status, 400);
    assert_eq!(api.get("/v1/attribution").await.status, 400);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn folding_the_rollup_deltas_changes_no_report(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let id = link["id"].as_str().unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let day = t("2026-11-03T08:00:00Z");
    api.click(&[
        Click { country: Some("DE"), user_agent: Some(IPHONE), ..Click::new(&link, a, day) },
        Click { country: Some("DE"), ..Click::new(&link, a, day + Duration::hours(1)) },
        Click { bot: true, ..Click::new(&link, b, day + Duration::hours(2)) },
    ])
    .await;
    let uri = format!("/v1/links/{id}/stats");
    let before = api.get(&uri).await.body;
    assert_eq!((before["clicks"].clone(), before["unique_clicks"].clone()), (json!(2), json!(1)));
    let folded = api::rollups::fold(&api.pool).await.unwrap();
    assert!(folded > 0);
    assert_eq!(api.count("link_daily_delta").await + api.count("link_daily_dims_delta").await, 0);
    assert_eq!(api.get(&uri).await.body, before);

    // New deltas on top of folded rows add up, before and after the next fold.
    api.click(&[Click { country: Some("FR"), ..Click::new(&link, b, day + Duration::hours(3)) }]).await;
    let after = api.get(&uri).await.body;
    assert_eq!((after["clicks"].clone(), after["unique_clicks"].clone()), (json!(3), json!(2)));
    assert_eq!(after["by_country"], json!({"DE": 2, "FR": 1}));
    api::rollups::fold(&api.pool).await.unwrap();
    assert_eq!(api.get(&uri).await.body, after);
    let report = api.get("/v1/attribution?group_by=link&from=2026-11-01T00:00:00Z&to=2026-11-05T00:00:00Z").await.body;
    assert_eq!(report["data"][0]["clicks"], 3);
    assert_eq!(api::rollups::fold(&api.pool).await.unwrap(), 0);
}
