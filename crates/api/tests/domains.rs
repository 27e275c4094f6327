//! Brands' own short domains through the REST API, against a stand-in of Cloudflare for SaaS; the link
//! fields that ride along (domain, UTM tags, expiry) and where they end up (the link, its short URL, the
//! KV record the edge reads); clicks counted by source.

mod support;

use api::http::AppState;
use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::cloudflare::StandIn;
use support::saas::SaasStandIn;
use support::{Api, Click};
use uuid::Uuid;

async fn with_saas(pool: PgPool) -> (Api, SaasStandIn) {
    let saas = SaasStandIn::start().await;
    let settings = saas.settings();
    let overrides: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (Api::with_state(AppState::new(pool, support::config(&overrides))).await, saas)
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_domain_is_pending_until_its_dns_is_published_then_carries_links_until_removed(pool: PgPool) {
    let (api, saas) = with_saas(pool).await;
    let created = api.post("/v1/domains", json!({"hostname": "Go.Brand.example"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["hostname"], "go.brand.example");
    assert_eq!(created.body["status"], "pending");
    let records: Vec<(String, String)> = created.body["dns_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["type"].as_str().unwrap().to_owned(), r["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        records,
        [
            ("CNAME".into(), "go.brand.example".into()),
            ("TXT".into(), "_cf-custom-hostname.go.brand.example".into()),
            ("TXT".into(), "_acme-challenge.go.brand.example".into()),
        ]
    );
    assert_eq!(created.body["dns_records"][0]["value"], "trk.creatorscore.io");
    assert!(created.body["last_error"].is_null());
    assert_eq!(saas.hostnames(), ["go.brand.example"]);

    // A pending domain carries no link.
    let refused =
        api.post("/v1/links", json!({"destination_url": "https://shop.example/", "domain": "go.brand.example"})).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::NOT_FOUND, "not_found"));

    // Still pending: Cloudflare says why.
    let checked = api.get("/v1/domains/go.brand.example").await;
    assert_eq!(checked.body["status"], "pending");
    assert_eq!(checked.body["last_error"], "custom hostname does not CNAME to this zone.");

    saas.publish_dns("go.brand.example");
    let active = api.get("/v1/domains/go.brand.example").await;
    assert_eq!(active.body["status"], "active", "{}", active.body);
    assert!(active.body["activated_at"].is_string());
    assert_eq!(active.body["dns_records"].as_array().unwrap().len(), 1, "only the CNAME is left to keep");

    let link = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://shop.example/", "domain": "GO.brand.example", "platform": "tiktok"}),
        )
        .await;
    assert_eq!(link["domain"], "go.brand.example");
    assert_eq!(link["short_url"], format!("https://go.brand.example/{}", link["code"].as_str().unwrap()));
    let listed = api.get("/v1/links?domain=go.brand.example").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);

    let in_use = api.delete("/v1/domains/go.brand.example").await;
    assert_eq!((in_use.status, in_use.error_code()), (StatusCode::CONFLICT, "domain_in_use"));
    let moved = api.patch(&format!("/v1/links/{}", link["id"].as_str().unwrap()), json!({"domain": null})).await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(moved.body["short_url"], format!("https://trk.creatorscore.io/{}", link["code"].as_str().unwrap()));
    let back =
        api.patch(&format!("/v1/links/{}", link["id"].as_str().unwrap()), json!({"domain": "go.brand.example"})).await;
    assert_eq!(back.body["domain"], "go.brand.example");
    assert_eq!(api.delete(&format!("/v1/links/{}", link["id"].as_str().unwrap())).await.status, StatusCode::NO_CONTENT);

    let removed = api.delete("/v1/domains/go.brand.example").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert!(saas.hostnames().is_empty(), "the custom hostname is removed at Cloudflare too");
    assert_eq!(api.get("/v1/domains").await.body["data"], json!([]));
    // The deleted link falls back to the default domain.
    let kept = api.get(&format!("/v1/links/{}", link["id"].as_str().unwrap())).await;
    assert!(kept.body["domain"].is_null());
    assert_eq!(api.delete("/v1/domains/go.brand.example").await.status, StatusCode::NOT_FOUND);
    let requests = saas.requests();
    assert_eq!(requests.first().map(String::as_str), Some("POST custom_hostnames"));
    assert!(requests.last().unwrap().starts_with("DELETE custom_hostnames/"), "{requests:?}");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_hostname_belongs_to_one_brand_and_the_tracking_domain_to_none(pool: PgPool) {
    let (api, saas) = with_saas(pool).await;
    let other = api.other_brand().await;
    assert_eq!(api.post("/v1/domains", json!({"hostname": "go.brand.example"})).await.status, StatusCode::CREATED);
    for (who, label) in [(&api, "the same brand"), (&other, "another brand")] {
        let again = who.post("/v1/domains", json!({"hostname": "GO.BRAND.EXAMPLE."})).await;
        assert_eq!((again.status, again.error_code()), (StatusCode::CONFLICT, "domain_taken"), "{label}");
    }
    // Another brand sees nothing of it.
    assert_eq!(other.get("/v1/domains/go.brand.example").await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.delete("/v1/domains/go.brand.example").await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get("/v1/domains").await.body["data"], json!([]));
    for bad in [
        "trk.creatorscore.io",
        "go.trk.creatorscore.io",
        "localhost",
        "10.0.0.1",
        "https://go.x.example/",
        "a b.example",
        "",
    ] {
        let refused = api.post("/v1/domains", json!({"hostname": bad})).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_hostname"),
            "{bad:?}"
        );
    }
    assert_eq!(saas.hostnames(), ["go.brand.example"], "nothing refused reached Cloudflare");

    // A link of another brand cannot use the domain, active or not.
    saas.publish_dns("go.brand.example");
    assert_eq!(api.get("/v1/domains/go.brand.example").await.body["status"], "active");
    let foreign = other
        .post("/v1/links", json!({"destination_url": "https://shop.example/", "domain": "go.brand.example"}))
        .await;
    assert_eq!((foreign.status, foreign.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let link = other.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    let moved = other
        .patch(&format!("/v1/links/{}", link["id"].as_str().unwrap()), json!({"domain": "go.brand.example"}))
        .await;
    assert_eq!((moved.status, moved.error_code()), (StatusCode::NOT_FOUND, "not_found"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn without_cloudflare_a_domain_is_activated_by_hand(pool: PgPool) {
    let api = Api::new(pool).await;
    let created = api.post("/v1/domains", json!({"hostname": "links.shop.example"})).await;
    assert_eq!(created.body["status"], "pending");
    assert_eq!(api.get("/v1/domains/links.shop.example").await.body["status"], "pending");
    assert!(api::domains::Domains::activate(&api.pool, "LINKS.shop.example").await.unwrap());
    assert!(!api::domains::Domains::activate(&api.pool, "links.shop.example").await.unwrap(), "once is enough");
    assert!(matches!(
        api::domains::Domains::activate(&api.pool, "nobody.example").await,
        Err(api::domains::DomainError::NotFound)
    ));
    let link = api
        .create("/v1/links", json!({"destination_url": "https://shop.example/", "domain": "links.shop.example"}))
        .await;
    assert_eq!(link["short_url"], format!("https://links.shop.example/{}", link["code"].as_str().unwrap()));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn utm_tags_and_expiry_are_validated_stored_and_reach_the_kv_record(pool: PgPool) {
    let api = Api::new(pool).await;
    api.post("/v1/domains", json!({"hostname": "go.brand.example"})).await;
    api::domains::Domains::activate(&api.pool, "go.brand.example").await.unwrap();
    for (body, code) in [
        (json!({"utm_source": ""}), "invalid_utm"),
        (json!({"utm_medium": "x".repeat(256)}), "invalid_utm"),
        (json!({"utm_campaign": "spring\u{7}"}), "invalid_utm"),
        (json!({"utm_term": 5}), "invalid_body"),
        (json!({"expired_url": "javascript:alert(1)"}), "invalid_expired_url"),
        (json!({"expired_url": "https://trk.creatorscore.io/abcdefgh"}), "invalid_expired_url"),
        (json!({"expires_at": "next week"}), "invalid_body"),
        (json!({"domain": "not a host"}), "invalid_domain"),
    ] {
        let mut link = json!({"destination_url": "https://shop.example/"});
        link.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let refused = api.post("/v1/links", link.clone()).await;
        assert_eq!((refused.status, refused.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{link}");
    }
    let link = api
        .create(
            "/v1/links",
            json!({"destination_url": "https://shop.example/p?utm_source=site", "domain": "go.brand.example",
                   "utm_source": "instagram", "utm_medium": "creator", "utm_campaign": "Spring drop & more",
                   "utm_content": "reel-1", "expires_at": "2030-01-31T23:59:00Z",
                   "expired_url": "https://shop.example/ended"}),
        )
        .await;
    assert_eq!(link["utm_campaign"], "Spring drop & more");
    assert_eq!(link["expires_at"], "2030-01-31T23:59:00Z");
    assert_eq!(link["expired_url"], "https://shop.example/ended");
    assert!(link["destination_status"].is_null() && link["destination_checked_at"].is_null());
    let id = link["id"].as_str().unwrap().to_owned();

    let kv = StandIn::start().await;
    api::sync::drain_once(&api.pool, &kv.sink(), 1000).await.unwrap();
    let stored: Value = serde_json::from_str(&kv.values()[link["code"].as_str().unwrap()]).unwrap();
    assert_eq!(stored["v"], 2);
    assert_eq!(stored["domain"], "go.brand.example");
    assert_eq!(
        stored["utm"],
        json!({"source": "instagram", "medium": "creator", "campaign": "Spring drop & more", "content": "reel-1"})
    );
    assert_eq!(stored["expires_at_ms"], 1_896_134_340_000i64);
    assert_eq!(stored["expired_url"], "https://shop.example/ended");

    // `null` clears; an absent field is left alone.
    let cleared = api.patch(&format!("/v1/links/{id}"), json!({"utm_content": null, "expires_at": null})).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert!(cleared.body["utm_content"].is_null() && cleared.body["expires_at"].is_null());
    assert_eq!(cleared.body["utm_source"], "instagram");
    let bad = api.patch(&format!("/v1/links/{id}"), json!({"utm_source": ""})).await;
    assert_eq!(bad.error_code(), "invalid_utm");
    api::sync::drain_once(&api.pool, &kv.sink(), 1000).await.unwrap();
    let stored: Value = serde_json::from_str(&kv.values()[link["code"].as_str().unwrap()]).unwrap();
    assert!(stored.get("expires_at_ms").is_none());
    assert_eq!(stored["utm"], json!({"source": "instagram", "medium": "creator", "campaign": "Spring drop & more"}));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn qr_scans_are_counted_apart_in_link_stats(pool: PgPool) {
    let api = Api::new(pool).await;
    let link = api.create("/v1/links", json!({"destination_url": "https://shop.example/"})).await;
    // Two days back (from the daily rollups) and today (from the raw clicks).
    let earlier = chrono::Utc::now() - chrono::Duration::days(2);
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    for (at, source) in [(earlier, "qr"), (earlier, "link"), (now, "qr"), (now, "qr"), (now, "link")] {
        let (_, mut event) = Click::new(&link, Uuid::new_v4(), at).event();
        if source == "qr" {
            event["source"] = json!("qr");
        }
        events.push(event);
    }
    api.ingest(events).await;
    api::rollups::fold(&api.pool).await.unwrap();
    let from = (earlier - chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let stats = api.get(&format!("/v1/links/{}/stats?from={from}", link["id"].as_str().unwrap())).await;
    assert_eq!(stats.body["clicks"], 5, "{}", stats.body);
    assert_eq!(stats.body["by_source"], json!({"link": 2, "qr": 3}), "{}", stats.body);
    let unknown = {
        let (_, mut event) = Click::new(&link, Uuid::new_v4(), now).event();
        event["source"] = json!("email");
        api.ingest(vec![event]).await
    };
    assert_eq!(unknown["rejected"].as_array().map(Vec::len), Some(1), "{unknown}");
}
