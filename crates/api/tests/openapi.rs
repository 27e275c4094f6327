//! The server answers as its OpenAPI document says (`scripts/schemathesis.sh` checks the same thing by
//! generating requests from the document): every refusal an operation can give is listed, bodies are read
//! as their schemas describe them, and path values that can name nothing are a 404, never a 500.

mod support;

use api::http::AppState;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{Api, Response};
use tower::ServiceExt;
use uuid::Uuid;

async fn document(api: &Api) -> Value {
    let response = api.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(response.status, StatusCode::OK);
    response.body
}

/// Every operation of the document: (`METHOD /path`, operation).
fn operations(doc: &Value) -> Vec<(String, Value)> {
    let paths = doc["paths"].as_object().unwrap();
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .iter()
                .map(move |(method, op)| (format!("{} {path}", method.to_uppercase()), op.clone()))
        })
        .collect()
}

/// `POST /v1/conversions` with a fresh `Idempotency-Key` and this raw body.
async fn report_raw(api: &Api, body: &str) -> Response {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/conversions")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.key))
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Response { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn every_operation_documents_its_refusals_and_has_an_id_of_its_own(pool: PgPool) {
    let api = Api::new(pool).await;
    let doc = document(&api).await;
    let operations = operations(&doc);
    assert_eq!(operations.len(), 51);
    let mut ids: Vec<&str> = operations.iter().map(|(_, op)| op["operationId"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), operations.len(), "operation ids are unique");
    for (name, op) in &operations {
        let responses = &op["responses"];
        let documents = |status: &str| responses.get(status).is_some();
        if op.get("security").is_some() {
            assert!(documents("401"), "{name} documents 401");
        }
        if op["requestBody"]["content"].get("application/json").is_some() && name != "POST /v1/webhooks/shopify" {
            for status in ["400", "413", "422"] {
                assert!(documents(status), "{name} documents {status}");
            }
            // The pixel reads its body as JSON whatever the content type; every other body must say it is JSON.
            assert_eq!(documents("415"), name != "POST /v1/pixel/events", "{name} and 415");
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        if let Some(limit) = params.iter().find(|p| p["name"] == "limit") {
            assert_eq!(
                (limit["schema"]["minimum"].clone(), limit["schema"]["maximum"].clone()),
                (json!(1), json!(200))
            );
            assert!(documents("400"), "{name} documents the 400 of a bad limit");
        }
        if let Some(cursor) = params.iter().find(|p| p["name"] == "cursor") {
            assert_eq!(cursor["schema"]["$ref"], "#/components/schemas/Cursor", "{name}");
        }
    }
    let schemas = &doc["components"]["schemas"];
    for name in ["Cursor", "Instant", "IdempotencyKey", "OrderRef", "TokenPrefix", "ShopDomain", "DestinationUrl"] {
        assert!(schemas.get(name).is_some(), "{name} is a component");
    }
    assert!(schemas["Cursor"]["pattern"].as_str().unwrap().starts_with("^czo"));
    assert_eq!(schemas["CreateLink"]["properties"]["destination_url"]["$ref"], "#/components/schemas/DestinationUrl");
    assert!(schemas["CreateLink"]["example"].is_object(), "request bodies have examples");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn amounts_are_bounded_per_currency_by_the_configured_maximum(pool: PgPool) {
    let api = Api::with_state(AppState::new(pool, support::config(&[("MAX_ORDER_VALUE", "500")]))).await;
    let doc = document(&api).await;
    let bounds = doc["components"]["schemas"]["MoneyInput"]["anyOf"].as_array().unwrap().clone();
    let bound = |currency: &str| {
        let group =
            bounds.iter().find(|g| g["properties"]["currency"]["enum"].as_array().unwrap().contains(&json!(currency)));
        group.unwrap()["properties"]["amount_minor"]["maximum"].as_i64().unwrap()
    };
    assert_eq!((bound("JPY"), bound("USD"), bound("KWD")), (500, 50_000, 500_000));
    let usd = |minor: i64| {
        json!({"order_id": format!("o-{minor}"), "amount": {"amount_minor": minor, "currency": "USD"},
        "occurred_at": "2026-01-01T00:00:00Z"})
    };
    assert_eq!(report_raw(&api, &usd(50_000).to_string()).await.status, StatusCode::CREATED);
    let above = report_raw(&api, &usd(50_001).to_string()).await;
    assert_eq!((above.status, above.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large"));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_order_id_no_order_can_have_is_a_404_not_a_500(pool: PgPool) {
    let api = Api::new(pool).await;
    let refund = json!({"refund_id": "r-1", "amount": {"amount_minor": 100, "currency": "USD"},
        "occurred_at": "2026-01-01T00:00:00Z"});
    let long = "x".repeat(129);
    for order_id in ["a%00b", "%20padded", "tab%09", long.as_str()] {
        let cancel = api.send(Method::POST, &format!("/v1/conversions/{order_id}/cancel"), Some(&api.key), None).await;
        assert_eq!((cancel.status, cancel.error_code()), (StatusCode::NOT_FOUND, "not_found"), "{order_id}");
        let refunded = api.post(&format!("/v1/conversions/{order_id}/refunds"), refund.clone()).await;
        assert_eq!((refunded.status, refunded.error_code()), (StatusCode::NOT_FOUND, "not_found"), "{order_id}");
    }
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_token_prefix_that_is_not_a_code_is_a_404_not_a_500_and_any_case_names_the_token(pool: PgPool) {
    let api = Api::new(pool).await;
    let creator = api.create("/v1/creators", json!({"name": "Jessica"})).await;
    let tokens = format!("/v1/creators/{}/tokens", creator["id"].as_str().unwrap());
    for prefix in ["a%00bcdefg", "cst_", "toolongprefix", "abc"] {
        let response = api.delete(&format!("{tokens}/{prefix}")).await;
        assert_eq!((response.status, response.error_code()), (StatusCode::NOT_FOUND, "not_found"), "{prefix}");
    }
    let token = api.create(&tokens, json!({})).await;
    let prefix = token["prefix"].as_str().unwrap().to_uppercase();
    assert_eq!(api.delete(&format!("{tokens}/cst_{prefix}")).await.status, StatusCode::NO_CONTENT);
    let me = api.send(Method::GET, "/v1/me/links", token["token"].as_str(), None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "revoked");
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn whole_numbers_written_with_a_fraction_are_the_integers_the_schema_says(pool: PgPool) {
    let api = Api::new(pool).await;
    let order = r#"{"order_id": "1042", "amount": {"amount_minor": 12999.0, "currency": "USD"},
        "occurred_at": "2026-01-01T00:00:00Z"}"#;
    let reported = report_raw(&api, order).await;
    assert_eq!(reported.status, StatusCode::CREATED, "{}", reported.body);
    assert_eq!(reported.body["amount"], json!({"amount_minor": 12999, "currency": "USD"}));
    let fraction = report_raw(&api, &order.replace("12999.0", "12999.5")).await;
    assert_eq!((fraction.status, fraction.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    let message = fraction.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("amount.amount_minor"), "the field is named: {message}");

    let creator = api.create("/v1/creators", json!({"name": "Jessica"})).await;
    let tokens = format!("/v1/creators/{}/tokens", creator["id"].as_str().unwrap());
    let token = api.send(Method::POST, &tokens, Some(&api.key), Some(Body::from(r#"{"expires_in_days": 30.0}"#))).await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
    assert!(token.body["expires_at"].is_string());
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn bodies_that_are_not_objects_are_refused_even_when_their_items_would_fit(pool: PgPool) {
    let api = Api::new(pool).await;
    let creators =
        api.send(Method::POST, "/v1/creators", Some(&api.key), Some(Body::from(r#"["Jessica", null]"#))).await;
    assert_eq!((creators.status, creators.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    let creator = api.create("/v1/creators", json!({"name": "Jessica"})).await;
    let tokens = format!("/v1/creators/{}/tokens", creator["id"].as_str().unwrap());
    let token = api.send(Method::POST, &tokens, Some(&api.key), Some(Body::from("[null, null]"))).await;
    assert_eq!((token.status, token.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    let nested = r#"{"order_id": "1", "amount": [100, "USD"], "occurred_at": "2026-01-01T00:00:00Z"}"#;
    let order = report_raw(&api, nested).await;
    assert_eq!((order.status, order.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    let event = json!([api.pixel_id, "page_view", null, null, null, null, null]).to_string();
    let pixel = api.send(Method::POST, "/v1/pixel/events", None, Some(Body::from(event))).await;
    assert_eq!((pixel.status, pixel.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    assert_eq!(api.count("creators").await + api.count("creator_tokens").await + api.count("pixel_events").await, 1);
}
