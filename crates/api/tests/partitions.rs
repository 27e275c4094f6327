//! Clicks and pixel events partitioned by UTC month: the migration keeps the rows already stored, months
//! are created ahead (and on demand for a click dated in a month without one), and retention drops whole
//! old months while the rollups keep reports over whole days exact.

mod support;

use std::borrow::Cow;

use api::partitions::{self, month_start, Policy, Table, PARTITIONS_LOCK};
use api::retention::{self, Retention, BATCH};
use chrono::{DateTime, Duration, Months, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::migrate::Migrator;
use sqlx::PgPool;
use support::{Api, Click};
use tokio::sync::watch;
use uuid::Uuid;

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn plus_months(t: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    t.checked_add_months(Months::new(n)).unwrap()
}

fn keep(clicks_months: Option<u32>, page_views_days: i64) -> Policy {
    Policy { clicks_months, page_views: Duration::days(page_views_days) }
}

async fn upkeep(pool: &PgPool, policy: Policy, now: DateTime<Utc>) -> partitions::Upkept {
    partitions::upkeep(pool, &policy, now).await.unwrap().expect("no other process holds the lock")
}

/// The partitions of `parent`, by name.
async fn partitions_of(pool: &PgPool, parent: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid
         where i.inhparent = $1::regclass order by 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Where each row of `table` is stored: (partition, rows).
async fn placement(pool: &PgPool, table: &str) -> Vec<(String, i64)> {
    sqlx::query_as(&format!("select tableoid::regclass::text, count(*) from {table} group by 1 order by 1"))
        .fetch_all(pool)
        .await
        .unwrap()
}

fn month_name(table: &str, t: DateTime<Utc>) -> String {
    format!("{table}_{}", t.format("y%Ym%m"))
}

/// The first monthly boundary a migration run now chooses: the start of a month at least a day ahead.
fn first_boundary(now: DateTime<Utc>) -> DateTime<Utc> {
    month_start(plus_months(now, 1) + Duration::days(1))
}

/// Drops the legacy partition of clicks, as on a database whose legacy rows retention has dropped:
/// every click is then stored in a monthly partition.
async fn without_legacy_clicks(pool: &PgPool) {
    sqlx::raw_sql("alter table clicks detach partition clicks_legacy; drop table clicks_legacy;")
        .execute(pool)
        .await
        .unwrap();
}

/// A click event with this id, as the edge sends it (and sends it again).
fn event(link: &Value, id: Uuid, at: DateTime<Utc>) -> Value {
    json!({"v": 1, "click_id": id.simple().to_string(), "code": link["code"], "link_id": link["id"],
           "occurred_at_ms": at.timestamp_millis(), "visitor_id": Uuid::new_v4().simple().to_string(),
           "new_visitor": true, "bot": false})
}

/// Every migration before partitioning.
fn before_partitioning() -> Migrator {
    let migrations = api::db::MIGRATOR.migrations.iter().filter(|m| m.version < 19).cloned().collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// A brand, a link, and on the schema before partitioning, three clicks, two page views and a purchase.
async fn history_before_partitioning(pool: &PgPool, now: DateTime<Utc>) -> (Api, Value, Vec<(Uuid, DateTime<Utc>)>) {
    before_partitioning().run(pool).await.unwrap();
    let api = Api::new(pool.clone()).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    // Times in milliseconds, as the edge sends them and ingestion stored them.
    let ms = |t: DateTime<Utc>| DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap();
    let clicks: Vec<(Uuid, DateTime<Utc>)> =
        [40, 2, 1].iter().map(|days| (Uuid::new_v4(), ms(now - Duration::days(*days)))).collect();
    for (id, at) in &clicks {
        sqlx::query(
            "insert into clicks (id, link_id, brand_id, occurred_at, visitor_id, new_visitor, bot)
             values ($1, $2, $3, $4, $5, true, false)",
        )
        .bind(id)
        .bind(Uuid::parse_str(link["id"].as_str().unwrap()).unwrap())
        .bind(api.brand_id)
        .bind(at)
        .bind(Uuid::new_v4())
        .execute(pool)
        .await
        .unwrap();
    }
    for event in ["page_view", "page_view", "purchase"] {
        sqlx::query("insert into pixel_events (id, brand_id, event, received_at) values ($1, $2, $3, $4)")
            .bind(Uuid::new_v4())
            .bind(api.brand_id)
            .bind(event)
            .bind(now - Duration::days(10))
            .execute(pool)
            .await
            .unwrap();
    }
    (api, link, clicks)
}

#[sqlx::test(migrations = false)]
async fn the_migration_keeps_stored_clicks_and_pixel_events_in_place_as_the_legacy_partition(pool: PgPool) {
    let now = Utc::now();
    let (api, link, clicks) = history_before_partitioning(&pool, now).await;
    api::db::MIGRATOR.run(&pool).await.unwrap();

    // Nothing moved: the old tables are the partitions of everything before the first monthly boundary.
    assert_eq!(placement(&pool, "clicks").await, [("clicks_legacy".to_string(), 3)]);
    assert_eq!(placement(&pool, "pixel_events").await, [("pixel_events_legacy".to_string(), 3)]);
    let first = first_boundary(now);
    let months = [month_name("clicks", first), month_name("clicks", plus_months(first, 1))];
    assert_eq!(partitions_of(&pool, "clicks").await, [vec!["clicks_legacy".to_string()], months.to_vec()].concat());
    let pixel_months = [month_name("pixel_events", first), month_name("pixel_events", plus_months(first, 1))];
    assert_eq!(
        partitions_of(&pool, "pixel_events").await,
        [vec!["pixel_events_legacy".to_string()], pixel_months.to_vec()].concat()
    );

    // A redelivery of a click stored before the migration is still a duplicate; a new click is stored.
    let (old_id, old_at) = clicks[1];
    let summary = api.ingest(vec![event(&link, old_id, old_at), event(&link, Uuid::new_v4(), now)]).await;
    assert_eq!((summary["stored"].clone(), summary["duplicates"].clone()), (json!(1), json!(1)), "{summary}");
    assert_eq!(placement(&pool, "clicks").await, [("clicks_legacy".to_string(), 4)]);

    // The legacy partition's page views are still deleted row by row after RETAIN_PAGE_VIEWS_DAYS.
    let (_stop, running) = watch::channel(false);
    let purged = retention::purge(&pool, &Retention::default(), now + Duration::days(81), BATCH, &running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(purged.page_views, 2);
    let left: Vec<String> = sqlx::query_scalar("select event from pixel_events").fetch_all(&pool).await.unwrap();
    assert_eq!(left, ["purchase"]);
}

#[sqlx::test(migrations = false)]
async fn the_migration_uses_the_key_and_range_an_operator_built_beforehand(pool: PgPool) {
    let now = Utc::now();
    let (_api, _link, _clicks) = history_before_partitioning(&pool, now).await;
    // What the migration's comment tells an operator to run on a very large live table, beforehand.
    let bound = plus_months(month_start(now), 3);
    for sql in [
        "create unique index concurrently clicks_legacy_id_time on clicks (id, occurred_at)".to_string(),
        format!("alter table clicks add constraint clicks_legacy_range check (occurred_at < '{bound}') not valid"),
        "alter table clicks validate constraint clicks_legacy_range".to_string(),
    ] {
        sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
    }
    api::db::MIGRATOR.run(&pool).await.unwrap();

    // Its range is the legacy partition's: monthly partitions start at its bound, not at the default one.
    assert_eq!(
        partitions_of(&pool, "clicks").await,
        ["clicks_legacy".to_string(), month_name("clicks", bound), month_name("clicks", plus_months(bound, 1))]
    );
    let key: String =
        sqlx::query_scalar("select pg_get_constraintdef(oid) from pg_constraint where conname = 'clicks_legacy_pkey'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(key, "PRIMARY KEY (id, occurred_at)");
    // The index the operator built is the key: none was built twice.
    let indexes: i64 = sqlx::query_scalar(
        "select count(*) from pg_indexes where tablename = 'clicks_legacy' and indexdef like '%(id, occurred_at)'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, 1);
    assert_eq!(placement(&pool, "clicks").await, [("clicks_legacy".to_string(), 3)]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn months_are_created_ahead_of_the_time_passed_in_once_and_by_one_process(pool: PgPool) {
    let now = utc(2031, 5, 20, 12);
    let done = upkeep(&pool, keep(None, 36_500), now).await;
    let months = ["y2031m05", "y2031m06", "y2031m07", "y2031m08"];
    let expected: Vec<String> =
        ["clicks", "pixel_events"].iter().flat_map(|t| months.iter().map(move |m| format!("{t}_{m}"))).collect();
    assert_eq!(done.created, expected);
    assert!(done.dropped.is_empty());
    // Each month of pixel events is split in two, page views and the rest.
    assert_eq!(
        partitions_of(&pool, "pixel_events_y2031m05").await,
        ["pixel_events_y2031m05_other", "pixel_events_y2031m05_page_views"]
    );
    // A pass later in the month creates nothing new; the next month brings one more.
    assert_eq!(upkeep(&pool, keep(None, 36_500), now + Duration::days(5)).await, partitions::Upkept::default());
    let next = upkeep(&pool, keep(None, 36_500), utc(2031, 6, 1, 0)).await;
    assert_eq!(next.created, ["clicks_y2031m09", "pixel_events_y2031m09"]);

    // Rows land in their month: the last instant of August in August's partition.
    let api = Api::new(pool.clone()).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let stored: String = sqlx::query_scalar(
        "insert into clicks (id, link_id, brand_id, occurred_at, visitor_id, new_visitor, bot)
         values ($1, $2, $3, $4, $1, true, false) returning tableoid::regclass::text",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::parse_str(link["id"].as_str().unwrap()).unwrap())
    .bind(api.brand_id)
    .bind(utc(2031, 9, 1, 0) - Duration::microseconds(1))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, "clicks_y2031m08");

    // While another process holds the lock, a pass skips its turn.
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("select pg_advisory_lock($1)").bind(PARTITIONS_LOCK).execute(&mut *other).await.unwrap();
    assert_eq!(partitions::upkeep(&pool, &keep(None, 90), utc(2032, 1, 1, 0)).await.unwrap(), None);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_click_dated_in_a_month_without_a_partition_is_stored_and_its_redelivery_counted_once(pool: PgPool) {
    without_legacy_clicks(&pool).await;
    let api = Api::new(pool.clone()).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let now = Utc::now();
    let far = now - Duration::days(3 * 365);
    let batch = vec![event(&link, Uuid::new_v4(), far), event(&link, Uuid::new_v4(), now - Duration::minutes(1))];
    let summary = api.ingest(batch.clone()).await;
    assert_eq!((summary["stored"].clone(), summary["duplicates"].clone()), (json!(2), json!(0)), "{summary}");
    let stored: Vec<String> = placement(&pool, "clicks").await.into_iter().map(|(p, _)| p).collect();
    let mut months = vec![month_name("clicks", far), month_name("clicks", now - Duration::minutes(1))];
    months.sort();
    assert_eq!(stored, months);

    let again = api.ingest(batch).await;
    assert_eq!((again["stored"].clone(), again["duplicates"].clone()), (json!(0), json!(2)), "{again}");
    assert_eq!(api.count("clicks").await, 2);

    // Two processes creating the same month at once: one creates it, the other finds it there.
    let month = [utc(2020, 2, 10, 0)];
    let (mut a, mut b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    let (x, y) = tokio::join!(
        partitions::create_missing(&mut a, Table::Clicks, &month),
        partitions::create_missing(&mut b, Table::Clicks, &month),
    );
    let mut created = [x.unwrap(), y.unwrap()].concat();
    created.sort();
    assert_eq!(created, ["clicks_y2020m02"]);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn retention_drops_whole_months_of_raw_clicks_and_reports_over_whole_days_stay_exact(pool: PgPool) {
    without_legacy_clicks(&pool).await;
    let api = Api::new(pool.clone()).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let id = link["id"].as_str().unwrap().to_string();
    // Three months, ten months ago and after: one click in each, at 10:00.
    let first = month_start(Utc::now()) - Months::new(10);
    let at = [
        first + Duration::days(14) + Duration::hours(10),
        plus_months(first, 1) + Duration::days(3) + Duration::hours(10),
        plus_months(first, 2) + Duration::days(26) + Duration::hours(10),
    ];
    let clicks: Vec<Click> = at.iter().map(|t| Click::new(&link, Uuid::new_v4(), *t)).collect();
    api.click(&clicks).await;

    // Keep two months: at the 10th of the fifth month, the first two months ended before the cutoff; the
    // third ends after it and stays whole, though its start is older.
    let now = plus_months(first, 4) + Duration::days(9);
    let done = upkeep(&pool, keep(Some(2), 90), now).await;
    assert_eq!(done.dropped, [month_name("clicks", first), month_name("clicks", plus_months(first, 1))]);
    assert_eq!(api.count("clicks").await, 1);
    // Nothing more to drop until the third month is wholly older than two months.
    assert!(upkeep(&pool, keep(Some(2), 90), plus_months(first, 5) - Duration::seconds(1)).await.dropped.is_empty());
    assert_eq!(
        upkeep(&pool, keep(Some(2), 90), plus_months(first, 5)).await.dropped,
        [month_name("clicks", plus_months(first, 2))]
    );
    assert_eq!(api.count("clicks").await, 0);

    // The rollups are never dropped: whole days still count every click, all time and day by day.
    let stats = api.get(&format!("/v1/links/{id}/stats")).await.body;
    assert_eq!((stats["clicks"].clone(), stats["unique_clicks"].clone()), (json!(3), json!(3)), "{stats}");
    let day = |t: DateTime<Utc>| t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let whole_day = format!(
        "/v1/links/{id}/stats?from={}&to={}",
        day(at[0]).format("%Y-%m-%dT%H:%M:%SZ"),
        (day(at[0]) + Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let stats = api.get(&whole_day).await.body;
    assert_eq!(stats["clicks"], 1, "{stats}");
    // A window's ragged ends are read from raw clicks: in a pruned month they read none.
    let ragged = format!(
        "/v1/links/{id}/stats?from={}&to={}",
        (at[0] - Duration::minutes(30)).format("%Y-%m-%dT%H:%M:%SZ"),
        (at[0] + Duration::minutes(30)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    assert_eq!(api.get(&ragged).await.body["clicks"], 0);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_months_page_views_go_once_all_of_it_is_older_than_the_setting_and_its_other_events_stay(pool: PgPool) {
    let api = Api::new(pool.clone()).await;
    upkeep(&pool, keep(None, 90), utc(2031, 1, 10, 0)).await;
    for (event, at) in [
        ("page_view", utc(2031, 1, 15, 0)),
        ("purchase", utc(2031, 1, 15, 0)),
        ("page_view", utc(2031, 3, 5, 0)),
        ("add_to_cart", utc(2031, 3, 5, 0)),
    ] {
        sqlx::query("insert into pixel_events (id, brand_id, event, received_at) values ($1, $2, $3, $4)")
            .bind(Uuid::new_v4())
            .bind(api.brand_id)
            .bind(event)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
    }
    let events = || async {
        sqlx::query_as::<_, (String, DateTime<Utc>)>("select event, received_at from pixel_events order by 2, 1")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    // On 30 April, the page view of 15 January is 105 days old, but January ends 90 days before 1 May:
    // its page views stay until then.
    assert!(upkeep(&pool, keep(None, 90), utc(2031, 4, 30, 23)).await.dropped.is_empty());
    assert_eq!(events().await.len(), 4);
    let done = upkeep(&pool, keep(None, 90), utc(2031, 5, 2, 0)).await;
    assert_eq!(done.dropped, ["pixel_events_y2031m01_page_views"]);
    assert_eq!(
        events().await,
        [
            ("purchase".to_string(), utc(2031, 1, 15, 0)),
            ("add_to_cart".to_string(), utc(2031, 3, 5, 0)),
            ("page_view".to_string(), utc(2031, 3, 5, 0)),
        ]
    );
    // January's other events stay in their partition for ever.
    assert_eq!(partitions_of(&pool, "pixel_events_y2031m01").await, ["pixel_events_y2031m01_other"]);
}
