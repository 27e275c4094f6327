//! Hostile input gets a 4xx, never a panic or a 500; stored data is kept only as long as configured.

mod support;

use api::retention::{self, Purged, Retention, BATCH, RETENTION_LOCK};
use api::shopify::{self, Delivery, Outcome, Rules, ShopDomain};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::PgPool;
use support::{Api, Click};
use tokio::sync::watch;
use uuid::Uuid;

/// Instants chrono parses but no report can hold: chrono's own limits, the years around them, and the
/// first instants outside 1970..=9999. `+` is percent-encoded, as a query string needs it to be.
fn out_of_range_dates() -> Vec<String> {
    let encode = |t: DateTime<Utc>| t.to_rfc3339().replace('+', "%2B");
    vec![
        encode(DateTime::<Utc>::MIN_UTC),
        encode(DateTime::<Utc>::MAX_UTC),
        "-262143-01-05T00:00:00Z".to_owned(),
        "%2B262142-06-01T00:00:00Z".to_owned(),
        "-0001-01-01T00:00:00Z".to_owned(),
        "1969-12-31T23:59:59Z".to_owned(),
        "%2B10000-01-01T00:00:00Z".to_owned(),
        "9999-12-31T23:59:59-01:00".to_owned(),
    ]
}

/// Every endpoint whose query takes `from` and `to`, with the rest of a valid query.
async fn dated_endpoints(api: &Api) -> Vec<String> {
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    vec![
        "/v1/attribution?group_by=creator&".to_owned(),
        format!("/v1/links/{}/stats?", link["id"].as_str().unwrap()),
        "/v1/conversions?".to_owned(),
    ]
}

async fn assert_refused(api: &Api, uri: &str) {
    let response = api.get(uri).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{uri}: {}", response.body);
    assert_eq!(response.error_code(), "invalid_query", "{uri}: {}", response.body);
    let message = response.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("out of range"), "{uri}: {message}");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn dates_outside_1970_to_9999_are_a_400_on_every_endpoint(pool: PgPool) {
    let api = Api::new(pool).await;
    for endpoint in dated_endpoints(&api).await {
        for date in out_of_range_dates() {
            assert_refused(&api, &format!("{endpoint}to={date}")).await;
            assert_refused(&api, &format!("{endpoint}from={date}")).await;
            assert_refused(&api, &format!("{endpoint}from=2026-01-01T00:00:00Z&to={date}")).await;
        }
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_year_minus_262143_no_longer_breaks_attribution(pool: PgPool) {
    let api = Api::new(pool).await;
    let response = api.get("/v1/attribution?group_by=creator&to=-262143-01-05T00:00:00Z").await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{}", response.body);
    assert_eq!(response.error_code(), "invalid_query");
    // The handler did not panic: the router answers the next request as usual.
    assert_eq!(api.get("/v1/attribution?group_by=creator").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn dates_that_are_not_dates_are_a_400(pool: PgPool) {
    let api = Api::new(pool).await;
    for endpoint in dated_endpoints(&api).await {
        for junk in ["yesterday", "2026-13-01T00:00:00Z", "%2B262142", "", "9999999999-01-01T00:00:00Z"] {
            let response = api.get(&format!("{endpoint}from={junk}")).await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{endpoint}{junk}: {}", response.body);
            assert_eq!(response.error_code(), "invalid_query", "{endpoint}{junk}");
        }
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_edges_of_the_accepted_range_answer_normally(pool: PgPool) {
    let api = Api::new(pool).await;
    for endpoint in dated_endpoints(&api).await {
        for query in [
            "to=9999-12-31T23:59:59Z",
            "to=9999-12-31T23:59:59.999999999Z",
            "from=1970-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
            "from=1970-01-01T00:00:00Z&to=1970-01-01T00:00:00Z",
            "to=1970-01-01T00:00:00Z",
            "from=9999-12-31T23:59:59Z&to=9999-12-31T23:59:59.999999Z",
            "from=2026-01-01T01:00:00%2B01:00&to=9999-12-31T23:59:59Z",
        ] {
            let response = api.get(&format!("{endpoint}{query}")).await;
            assert_eq!(response.status, StatusCode::OK, "{endpoint}{query}: {}", response.body);
        }
    }
    // Without a `to`, stats and conversions run to now; a `from` at the very end is simply empty.
    let link_stats = api.get("/v1/links").await.body["data"][0]["id"].as_str().unwrap().to_owned();
    let late = api.get(&format!("/v1/links/{link_stats}/stats?from=9999-12-31T23:59:59Z")).await;
    assert_eq!((late.status, late.body["clicks"].clone()), (StatusCode::OK, json!(0)), "{}", late.body);
    let conversions = api.get("/v1/conversions?from=9999-12-31T23:59:59Z").await;
    assert_eq!((conversions.status, conversions.body["data"].clone()), (StatusCode::OK, json!([])));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn made_up_user_agents_are_counted_as_other_in_link_stats(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let at = Utc::now() - Duration::hours(1);
    let made_up: Vec<String> = (0..50)
        .flat_map(|i| {
            [
                format!("Mozilla/5.0 (compatible; Evil{i}bot/1.0)"),
                format!("YandexMadeUp{i}/1.0"),
                format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Zz{i}favicon/2.0"),
            ]
        })
        .collect();
    let clicks: Vec<Click> = made_up
        .iter()
        .map(|ua| Click { user_agent: Some(ua), ..Click::new(&link, Uuid::new_v4(), at) })
        .chain([Click { user_agent: Some(CHROME), ..Click::new(&link, Uuid::new_v4(), at) }])
        .collect();
    api.click(&clicks).await;
    let stats = api.get(&format!("/v1/links/{}/stats", link["id"].as_str().unwrap())).await.body;
    assert_eq!(stats["by_browser"], json!({"Other": 150, "Chrome": 1}));
    let oses = stats["by_os"].as_object().unwrap();
    assert!(oses.keys().all(|os| ["Other", "Windows"].contains(&os.as_str())), "{oses:?}");
}

// --- Retention -----------------------------------------------------------------------------------------

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// A pass with the default retention (30, 7 and 90 days) at `now`, 1,000 rows per statement.
async fn purge_at(pool: &PgPool, now: DateTime<Utc>) -> Purged {
    purge_with(pool, now, BATCH).await.expect("no other process holds the retention lock")
}

async fn purge_with(pool: &PgPool, now: DateTime<Utc>, batch: i64) -> Option<Purged> {
    let (_stop, running) = watch::channel(false);
    retention::purge(pool, &Retention::default(), now, batch, &running).await.unwrap()
}

async fn pixel(api: &Api, event: &str, extra: serde_json::Value) {
    let mut body = json!({"pixel_id": api.pixel_id, "event": event});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let response = api.send(Method::POST, "/v1/pixel/events", None, Some(Body::from(body.to_string()))).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
}

async fn pixel_events(api: &Api) -> Vec<String> {
    sqlx::query_scalar("select event from pixel_events order by event").fetch_all(&api.pool).await.unwrap()
}

async fn latest(pool: &PgPool, sql: &str) -> DateTime<Utc> {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[test]
fn retention_defaults_to_30_7_90_and_30_days_and_refuses_nonsense() {
    let config = support::config(&[]);
    let defaults =
        Retention { shopify_bodies: days(30), outbox: days(7), page_views: days(90), webhook_deliveries: days(30) };
    assert_eq!(config.retention, defaults);
    assert_eq!(config.retention, Retention::default());
    let set = support::config(&[
        ("RETAIN_SHOPIFY_BODIES_DAYS", "3"),
        ("RETAIN_OUTBOX_DAYS", "1"),
        ("RETAIN_PAGE_VIEWS_DAYS", "36500"),
        ("RETAIN_WEBHOOK_DELIVERIES_DAYS", "2"),
    ]);
    let set_to =
        Retention { shopify_bodies: days(3), outbox: days(1), page_views: days(36_500), webhook_deliveries: days(2) };
    assert_eq!(set.retention, set_to);
    for name in
        ["RETAIN_SHOPIFY_BODIES_DAYS", "RETAIN_OUTBOX_DAYS", "RETAIN_PAGE_VIEWS_DAYS", "RETAIN_WEBHOOK_DELIVERIES_DAYS"]
    {
        for bad in ["0", "-1", "36501", "a week", "1.5"] {
            let err = api::Config::from_lookup(|n| (n == name).then(|| bad.to_owned())).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={bad}: {err}");
        }
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn processed_shopify_bodies_go_after_30_days_but_their_rows_and_failed_deliveries_stay(pool: PgPool) {
    let api = Api::new(pool).await;
    let shop = ShopDomain::parse("northwind-linen.myshopify.com").unwrap();
    let rules = Rules::of(&api.state.config);
    let deliver = |webhook_id: &'static str, topic: &'static str, body: &'static [u8]| {
        let delivery = Delivery { shop: &shop, brand_id: api.brand_id, webhook_id, topic, body };
        let pool = api.pool.clone();
        async move { shopify::receive(&pool, &delivery, rules).await.unwrap() }
    };
    assert_eq!(deliver("w-processed", "products/update", b"{\"id\": 1}").await, Outcome::Ignored);
    assert!(matches!(deliver("w-failed", "orders/create", b"not json").await, Outcome::Rejected(_)));
    let processed_at =
        latest(&api.pool, "select processed_at from shopify_deliveries where webhook_id = 'w-processed'").await;
    let bodies = || async {
        sqlx::query_as::<_, (String, Option<Vec<u8>>)>("select webhook_id, body from shopify_deliveries order by 1")
            .fetch_all(&api.pool)
            .await
            .unwrap()
    };
    let kept = vec![
        ("w-failed".to_owned(), Some(b"not json".to_vec())),
        ("w-processed".to_owned(), Some(b"{\"id\": 1}".to_vec())),
    ];

    let early = purge_at(&api.pool, processed_at + days(30) - Duration::seconds(1)).await;
    assert_eq!(early, Purged { batches: 5, ..Purged::default() });
    assert_eq!(bodies().await, kept);

    let due = purge_at(&api.pool, processed_at + days(30) + Duration::seconds(1)).await;
    assert_eq!(due.shopify_bodies, 1);
    assert_eq!(bodies().await, vec![kept[0].clone(), ("w-processed".to_owned(), None)]);
    // The row stays, so Shopify redelivering that webhook is still recognised as done.
    assert_eq!(deliver("w-processed", "products/update", b"{\"id\": 1}").await, Outcome::Duplicate);

    // A failed delivery keeps its body until it is processed, however old it gets...
    purge_at(&api.pool, processed_at + days(3650)).await;
    assert_eq!(bodies().await[0], kept[0]);
    // ...and the database refuses a failed delivery without one.
    let refused = sqlx::query("update shopify_deliveries set body = null where webhook_id = 'w-failed'")
        .execute(&api.pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("shopify_deliveries_failed_keep_body"), "{refused}");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn finished_outbox_rows_go_after_7_days_and_pending_ones_stay(pool: PgPool) {
    let api = Api::new(pool).await;
    api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    // The change reached KV...
    let done_at = latest(&api.pool, "update link_sync_outbox set done_at = now() returning done_at").await;
    // ...and a later one has not yet.
    api.create("/v1/links", json!({"destination_url": "https://b.example"})).await;
    assert_eq!(api.count("link_sync_outbox").await, 2);

    purge_at(&api.pool, done_at + days(7) - Duration::seconds(1)).await;
    assert_eq!(api.count("link_sync_outbox").await, 2);
    let due = purge_at(&api.pool, done_at + days(7) + Duration::seconds(1)).await;
    assert_eq!(due.outbox_rows, 1);
    let pending: i64 = sqlx::query_scalar("select count(*) from link_sync_outbox where done_at is null")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!((api.count("link_sync_outbox").await, pending), (1, 1));
    purge_at(&api.pool, done_at + days(3650)).await;
    assert_eq!(api.count("link_sync_outbox").await, 1, "a pending change is never removed");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn page_views_go_after_90_days_and_orders_and_their_evidence_stay(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    let click = api.click(&[Click::new(&link, Uuid::new_v4(), Utc::now() - Duration::hours(1))]).await[0];
    let cs_ref = click.simple().to_string();
    pixel(&api, "page_view", json!({"cs_ref": cs_ref, "url": "https://shop.example/a"})).await;
    pixel(&api, "page_view", json!({"url": "https://shop.example/b"})).await;
    pixel(&api, "add_to_cart", json!({"cs_ref": cs_ref})).await;
    pixel(&api, "begin_checkout", json!({})).await;
    pixel(&api, "purchase", json!({"cs_ref": cs_ref, "order_id": "1001", "value": "20.00", "currency": "USD"})).await;
    let received = latest(&api.pool, "select max(received_at) from pixel_events").await;
    let first = latest(&api.pool, "select min(received_at) from pixel_events").await;
    let everything = ["add_to_cart", "begin_checkout", "page_view", "page_view", "purchase"];
    assert_eq!(pixel_events(&api).await, everything);

    purge_at(&api.pool, first + days(90) - Duration::seconds(1)).await;
    assert_eq!(pixel_events(&api).await, everything);
    let due = purge_at(&api.pool, received + days(90) + Duration::seconds(1)).await;
    assert_eq!(due.page_views, 2);
    assert_eq!(pixel_events(&api).await, ["add_to_cart", "begin_checkout", "purchase"]);

    // Years later the order, its credit and the click it names are all still there.
    purge_at(&api.pool, received + days(3650)).await;
    assert_eq!(pixel_events(&api).await, ["add_to_cart", "begin_checkout", "purchase"]);
    let orders = api.get("/v1/conversions").await.body["data"].clone();
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders}");
    assert_eq!((orders[0]["order_id"].clone(), orders[0]["click_id"].clone()), (json!("1001"), json!(cs_ref)));
    assert_eq!((api.count("order_refs").await, api.count("clicks").await), (1, 1));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn retention_deletes_in_bounded_batches(pool: PgPool) {
    let api = Api::new(pool).await;
    for page in 0..5 {
        pixel(&api, "page_view", json!({"url": format!("https://shop.example/{page}")})).await;
    }
    let received = latest(&api.pool, "select max(received_at) from pixel_events").await;
    let purged = purge_with(&api.pool, received + days(91), 2).await.unwrap();
    // One statement each for bodies, outbox, webhook deliveries and events (nothing to do), three for
    // 2 + 2 + 1 page views.
    assert_eq!(purged, Purged { page_views: 5, batches: 7, ..Purged::default() });
    assert_eq!(api.count("pixel_events").await, 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn one_process_at_a_time_purges_and_a_stopping_one_stops_between_statements(pool: PgPool) {
    let api = Api::new(pool).await;
    pixel(&api, "page_view", json!({})).await;
    let later = latest(&api.pool, "select max(received_at) from pixel_events").await + days(91);

    let mut other = api.pool.acquire().await.unwrap();
    sqlx::query("select pg_advisory_lock($1)").bind(RETENTION_LOCK).execute(&mut *other).await.unwrap();
    assert_eq!(purge_with(&api.pool, later, BATCH).await, None);
    assert_eq!(api.count("pixel_events").await, 1);
    sqlx::query("select pg_advisory_unlock($1)").bind(RETENTION_LOCK).execute(&mut *other).await.unwrap();

    let (_stop, stopped) = watch::channel(true);
    let nothing = retention::purge(&api.pool, &Retention::default(), later, BATCH, &stopped).await.unwrap();
    assert_eq!(nothing, Some(Purged::default()));
    assert_eq!(api.count("pixel_events").await, 1);

    assert_eq!(purge_at(&api.pool, later).await.page_views, 1);
    // The lock was released: another session can take it at once.
    let free: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(RETENTION_LOCK)
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert!(free);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn ended_webhook_deliveries_go_after_30_days_and_pending_ones_stay(pool: PgPool) {
    let api = Api::new(pool).await;
    let created =
        api.create("/v1/webhooks", json!({"url": "https://hooks.example.com/in", "events": ["link.created"]})).await;
    api.create("/v1/links", json!({"destination_url": "https://a.example"})).await;
    api.create("/v1/links", json!({"destination_url": "https://b.example"})).await;
    // The first was delivered; the second is still being retried.
    let ended = latest(
        &api.pool,
        "update webhook_deliveries set status = 'delivered', last_attempt_at = now(), delivered_at = now()
         where seq = (select min(seq) from webhook_deliveries) returning last_attempt_at",
    )
    .await;
    purge_at(&api.pool, ended + days(30) - Duration::seconds(1)).await;
    assert_eq!((api.count("webhook_deliveries").await, api.count("webhook_events").await), (2, 2));
    let due = purge_at(&api.pool, ended + days(30) + Duration::seconds(1)).await;
    assert_eq!((due.webhook_deliveries, due.webhook_events), (1, 1));
    purge_at(&api.pool, ended + days(3650)).await;
    assert_eq!((api.count("webhook_deliveries").await, api.count("webhook_events").await), (1, 1));
    let deliveries = api.get(&format!("/v1/webhooks/{}/deliveries", created["id"].as_str().unwrap())).await.body;
    assert_eq!(deliveries["data"][0]["status"], "pending", "a pending delivery is never removed");
}
