//! The whole loop, every part real: PostgreSQL, the `api` binary, the worker under `wrangler dev`.
//! A link created through the API redirects at the edge once its record is synced to KV, and every
//! click at the edge lands in PostgreSQL exactly once, even across an API outage.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::stack::{start, IPHONE, SYNC_TOKEN};
use e2e::wait_until;
use serde_json::json;

#[test]
fn a_link_created_through_the_api_redirects_at_the_edge_and_its_click_reaches_the_stats() {
    let stack = start(SYNC_TOKEN);
    let link = stack.create_link("https://shop.example/serum?variant=2#reviews");
    let code = link["code"].as_str().unwrap();
    stack.wait_for_redirect(code);

    let (status, cs_ref) =
        stack.visit(&code.to_uppercase(), &[("User-Agent", IPHONE), ("MF-CF-Blob", r#"{"country":"DE"}"#)]);
    assert_eq!(status, 302);
    let cs_ref = cs_ref.expect("a cs_ref in the Location");
    wait_until("the click to be stored", Duration::from_secs(60), || {
        stack.stored_click_ids().contains(&cs_ref).then_some(())
    });

    let stats = stack.stats(&link);
    assert_eq!(stats["clicks"], 1, "{stats}");
    assert_eq!(stats["by_device"]["mobile"], 1, "{stats}");
    assert_eq!(stats["by_browser"]["Mobile Safari"], 1, "{stats}");
    assert_eq!(stats["by_os"]["iOS"], 1, "{stats}");
    assert_eq!(stats["by_country"]["DE"], 1, "{stats}");
    assert_eq!(stack.api.sql_scalar("select count(*) from clicks where country = 'DE'"), "1");
    assert_eq!(
        stats["bot_clicks"],
        stack.api.sql_scalar("select count(*) from clicks where bot").parse::<i64>().unwrap()
    );
}

#[test]
fn clicks_made_while_the_api_is_down_all_land_once_it_is_back_and_none_twice() {
    let mut stack = start(SYNC_TOKEN);
    let link = stack.create_link("https://shop.example/drop");
    let code = link["code"].as_str().unwrap().to_owned();
    stack.wait_for_redirect(&code);

    stack.api.stop();
    let mut handed_out = BTreeSet::new();
    for _ in 0..1000 {
        let (status, cs_ref) = stack.visit(&code, &[("User-Agent", IPHONE)]);
        assert_eq!(status, 302);
        handed_out.insert(cs_ref.expect("a cs_ref"));
    }
    assert_eq!(handed_out.len(), 1000);
    // The queue's consumer meets the stopped API (its delivery fails and is retried) before the API
    // comes back: the outage is exercised, not merely hoped for.
    wait_until("the queue consumer to fail against the stopped API", Duration::from_secs(60), || {
        let logs = stack.edge.logs();
        (logs.contains("clicks to the API failed") || logs.contains("the API answered")).then_some(())
    });
    stack.api.resume();

    let stored = wait_until("all 1,000 clicks to land", Duration::from_secs(240), || {
        let stored = stack.stored_click_ids();
        (stored.len() >= handed_out.len()).then_some(stored)
    });
    // Exactly the clicks the edge handed out, each once (click ids are the primary key).
    assert_eq!(stored.len(), 1000);
    let extra: Vec<&String> = stored.difference(&handed_out).collect();
    let missing: Vec<&String> = handed_out.difference(&stored).collect();
    for id in &extra {
        eprintln!(
            "EXTRA {}",
            stack
                .api
                .sql_scalar(&format!("select row_to_json(c) from clicks c where replace(id::text, '-', '') = '{id}'"))
        );
    }
    assert!(
        extra.is_empty() && missing.is_empty(),
        "stored but never handed out: {extra:?}; handed out but not stored: {missing:?}"
    );
    // Every click handed out was stored, so none went to the dead-letter queue.
    assert_eq!(stack.stats(&link)["clicks"], 1000);
}

#[test]
fn a_deleted_link_stops_redirecting_once_its_sync_lands() {
    let stack = start(SYNC_TOKEN);
    let link = stack.create_link("https://shop.example/gone-soon");
    let code = link["code"].as_str().unwrap();
    stack.wait_for_redirect(code);
    let path = format!("/v1/links/{}", link["id"].as_str().unwrap());
    assert_eq!(stack.api.call("DELETE", &path, &stack.brand.api_key, None).0, 204);
    wait_until("the edge to stop redirecting", Duration::from_secs(120), || {
        (stack.visit(code, &[]).0 == 404).then_some(())
    });
    // History stays: the link is still there, inactive, with its clicks.
    let (_, deleted) = stack.api.call("GET", &path, &stack.brand.api_key, None);
    assert_eq!(deleted["active"], false);
}

#[test]
fn while_the_kv_sync_is_refused_changes_wait_in_the_outbox_and_land_after() {
    // The API starts with the wrong sync token: the worker refuses every push.
    let mut stack = start("not-the-sync-token-but-as-long-as-one");
    let link = stack.create_link("https://shop.example/patient");
    let code = link["code"].as_str().unwrap();
    wait_until("a refused sync attempt", Duration::from_secs(60), || {
        stack.api.logs().contains("KV sync failed").then_some(())
    });
    assert_eq!(stack.visit(code, &[]).0, 404);
    assert_eq!(stack.api.sql_scalar("select count(*) from link_sync_outbox where done_at is null"), "1");

    stack.api.stop();
    stack.api.set_env("KV_SYNC_TOKEN", SYNC_TOKEN);
    stack.api.resume();
    stack.wait_for_redirect(code);
    wait_until("the outbox to drain", Duration::from_secs(60), || {
        (stack.api.sql_scalar("select count(*) from link_sync_outbox where done_at is null") == "0").then_some(())
    });
}

#[test]
fn a_link_on_the_brands_own_domain_carries_its_utm_tags_counts_qr_scans_apart_and_ends_when_it_expires() {
    let stack = start(SYNC_TOKEN);
    let key = &stack.brand.api_key;
    let other = stack.api.create_brand("Other brand");
    for (hostname, brand_key) in [("go.loop-brand.example", key), ("go.other-brand.example", &other.api_key)] {
        let (status, domain) = stack.api.call("POST", "/v1/domains", brand_key, Some(&json!({"hostname": hostname})));
        assert_eq!((status, domain["status"].as_str()), (201, Some("pending")), "{domain}");
        assert!(stack.api.run(&["domain", "activate", hostname]).contains("active"));
    }
    let body = json!({"destination_url": "https://shop.example/serum?utm_source=site", "domain": "go.loop-brand.example",
                      "utm_source": "tiktok", "utm_medium": "creator", "utm_campaign": "Spring drop"});
    let (status, link) = stack.api.call("POST", "/v1/links", key, Some(&body));
    assert_eq!(status, 201, "{link}");
    let code = link["code"].as_str().unwrap();
    assert_eq!(link["short_url"], format!("https://go.loop-brand.example/{code}"));
    let ended = json!({"destination_url": "https://shop.example/sale", "expires_at": "2020-01-01T00:00:00Z",
                       "expired_url": "https://shop.example/sale-ended"});
    let (status, expired) = stack.api.call("POST", "/v1/links", key, Some(&ended));
    assert_eq!(status, 201, "{expired}");
    let expired_code = expired["code"].as_str().unwrap();
    stack.wait_for_redirect(code);
    stack.wait_for_redirect(expired_code);

    let visit = |path: &str, host: &str| {
        let response = e2e::http()
            .get(stack.edge.url(path))
            .header("Host", host)
            .header("User-Agent", IPHONE)
            .call()
            .expect("the edge answers");
        let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        (response.status().as_u16(), location)
    };
    let (status, location) = visit(&format!("/{code}"), "go.loop-brand.example");
    assert_eq!(status, 302);
    let location = location.unwrap();
    let cs_ref = location.split("cs_ref=").nth(1).unwrap().to_owned();
    assert_eq!(
        location,
        format!(
            "https://shop.example/serum?utm_source=site&utm_medium=creator&utm_campaign=Spring+drop&cs_ref={cs_ref}"
        )
    );
    let (status, location) = visit(&format!("/{code}?qr=1"), "go.loop-brand.example");
    assert_eq!(status, 302);
    let scan = location.unwrap().split("cs_ref=").nth(1).unwrap().to_owned();
    assert_eq!(visit(&format!("/{code}"), "go.other-brand.example").0, 404, "another brand's domain");
    let (status, location) = visit(&format!("/{expired_code}"), "go.loop-brand.example");
    assert_eq!((status, location.as_deref()), (404, None), "the expired link is not on the brand's domain");
    let (status, location) = stack.visit(expired_code, &[("User-Agent", IPHONE)]);
    assert_eq!((status, location), (302, None), "an expired link hands out no click id");

    wait_until("the click and the scan to be stored", Duration::from_secs(60), || {
        let stored = stack.stored_click_ids();
        (stored.contains(&cs_ref) && stored.contains(&scan)).then_some(())
    });
    let stats = stack.stats(&link);
    assert_eq!(stats["by_source"], json!({"link": 1, "qr": 1}), "{stats}");
    let expired_clicks = stack
        .api
        .sql_scalar(&format!("select count(*) from clicks where link_id = '{}'", expired["id"].as_str().unwrap()));
    assert_eq!(expired_clicks, "0", "an expired link records no click");
}
