//! Access that can be taken back: creator tokens listed, revoked and expiring, through the real router;
//! dashboard users listed, disabled, enabled and given new passwords through the real `api` binary.
//! (What a disabled user's browser sees is in `dashboard.rs`.)

#[path = "support/cli.rs"]
mod cli;
mod support;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use cli::Cli;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::Api;

async fn creator(api: &Api, name: &str) -> String {
    api.create("/v1/creators", json!({"name": name})).await["id"].as_str().unwrap().to_owned()
}

async fn token(api: &Api, creator_id: &str, body: Value) -> Value {
    api.create(&format!("/v1/creators/{creator_id}/tokens"), body).await
}

/// What the creator's token opens: the status of `GET /v1/me/links` with it.
async fn me(api: &Api, token: &Value) -> StatusCode {
    api.send(Method::GET, "/v1/me/links", token["token"].as_str(), None).await.status
}

async fn tokens(api: &Api, creator_id: &str) -> support::Response {
    api.get(&format!("/v1/creators/{creator_id}/tokens")).await
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_creators_tokens_are_listed_newest_first_and_never_shown_again(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = creator(&api, "Jess").await;
    let first = token(&api, &jess, json!({})).await;
    let second = token(&api, &jess, json!({"expires_in_days": 30})).await;
    assert_eq!(first["expires_at"], Value::Null);
    let expires: DateTime<Utc> = second["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((expires - (Utc::now() + Duration::days(30))).num_seconds().abs() < 60, "{expires}");

    let list = tokens(&api, &jess).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(
        data.iter().map(|t| t["prefix"].clone()).collect::<Vec<_>>(),
        vec![second["prefix"].clone(), first["prefix"].clone()]
    );
    assert_eq!(data[0]["expires_at"], second["expires_at"]);
    assert_eq!(
        (data[1]["revoked_at"].clone(), data[1]["created_at"].clone()),
        (Value::Null, first["created_at"].clone())
    );
    for listed in data {
        assert!(listed.get("token").is_none(), "{listed}");
    }
    for secret in [&first["token"], &second["token"]] {
        assert!(!list.body.to_string().contains(secret.as_str().unwrap()));
    }
    // Paged like every list.
    let page = api.get(&format!("/v1/creators/{jess}/tokens?limit=1")).await.body;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = api.get(&format!("/v1/creators/{jess}/tokens?limit=1&cursor={cursor}")).await.body;
    assert_eq!(rest["data"][0]["prefix"], first["prefix"]);

    // Another brand's creator, and no creator at all, are the same 404.
    let other = api.other_brand().await;
    assert_eq!(tokens(&other, &jess).await.status, StatusCode::NOT_FOUND);
    assert_eq!(tokens(&api, &uuid::Uuid::new_v4().to_string()).await.status, StatusCode::NOT_FOUND);
    assert_eq!(tokens(&api, "not-an-id").await.status, StatusCode::NOT_FOUND);
    let none = api.send(Method::GET, &format!("/v1/creators/{jess}/tokens"), None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_revoked_token_is_refused_at_once_and_the_creators_other_tokens_keep_working(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = creator(&api, "Jess").await;
    let (phone, laptop) = (token(&api, &jess, json!({})).await, token(&api, &jess, json!({})).await);
    assert_eq!((me(&api, &phone).await, me(&api, &laptop).await), (StatusCode::OK, StatusCode::OK));

    let uri = format!("/v1/creators/{jess}/tokens/{}", phone["prefix"].as_str().unwrap());
    // Another brand can neither see nor revoke it.
    let other = api.other_brand().await;
    assert_eq!(other.delete(&uri).await.status, StatusCode::NOT_FOUND);
    assert_eq!(me(&api, &phone).await, StatusCode::OK);

    assert_eq!(api.delete(&uri).await.status, StatusCode::NO_CONTENT);
    assert_eq!(me(&api, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&api, &laptop).await, StatusCode::OK);
    // Revoking again changes nothing; the `cst_` form of the prefix names it too.
    let listed = tokens(&api, &jess).await.body["data"][1].clone();
    let revoked_at = listed["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{listed}");
    let tagged = format!("/v1/creators/{jess}/tokens/cst_{}", phone["prefix"].as_str().unwrap());
    assert_eq!(api.delete(&tagged).await.status, StatusCode::NO_CONTENT);
    assert_eq!(tokens(&api, &jess).await.body["data"][1]["revoked_at"], revoked_at);

    // A prefix is revoked only under its own creator.
    let sam = creator(&api, "Sam").await;
    let misplaced = format!("/v1/creators/{sam}/tokens/{}", laptop["prefix"].as_str().unwrap());
    assert_eq!(api.delete(&misplaced).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.delete(&format!("/v1/creators/{jess}/tokens/abcd2345")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(me(&api, &laptop).await, StatusCode::OK);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn an_expired_token_is_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = creator(&api, "Jess").await;
    // Whole seconds: PostgreSQL keeps microseconds, and this is what a client sends anyway.
    let at = (Utc::now() + Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let short = token(&api, &jess, json!({"expires_at": at})).await;
    assert_eq!(
        short["expires_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(),
        at.parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(me(&api, &short).await, StatusCode::OK);
    // An hour passes (for the token: the database's clock decides).
    sqlx::query("update creator_tokens set expires_at = now() - interval '1 second' where prefix = $1")
        .bind(short["prefix"].as_str().unwrap())
        .execute(&api.pool)
        .await
        .unwrap();
    assert_eq!(me(&api, &short).await, StatusCode::UNAUTHORIZED);
    assert_eq!(api.get(&format!("/v1/creators/{jess}/tokens")).await.body["data"][0]["revoked_at"], Value::Null);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn a_token_expiry_must_be_one_future_time_within_ten_years(pool: PgPool) {
    let api = Api::new(pool).await;
    let jess = creator(&api, "Jess").await;
    let uri = format!("/v1/creators/{jess}/tokens");
    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    let far = (Utc::now() + Duration::days(3651)).to_rfc3339();
    for body in [
        json!({"expires_at": past}),
        json!({"expires_at": far}),
        json!({"expires_in_days": 0}),
        json!({"expires_in_days": 3651}),
        json!({"expires_in_days": 7, "expires_at": (Utc::now() + Duration::days(1)).to_rfc3339()}),
    ] {
        let response = api.post(&uri, body.clone()).await;
        assert_eq!(
            (response.status, response.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_expiry"),
            "{body}"
        );
    }
    let unknown = api.post(&uri, json!({"expires": "soon"})).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let garbled = api.send(Method::POST, &uri, Some(&api.key), Some(Body::from("{"))).await;
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.count("creator_tokens").await, 0);
    // A body that is not JSON is refused as such.
    let request = axum::http::Request::post(&uri)
        .header("authorization", format!("Bearer {}", api.key))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let typed = tower::ServiceExt::oneshot(api.router.clone(), request).await.unwrap();
    assert_eq!(typed.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(api.count("creator_tokens").await, 0);
    // No body at all, or JSON's null, is a token that never expires.
    let bare = api.send(Method::POST, &uri, Some(&api.key), None).await;
    assert_eq!((bare.status, bare.body["expires_at"].clone()), (StatusCode::CREATED, Value::Null));
    let null = api.send(Method::POST, &uri, Some(&api.key), Some(Body::from("null"))).await;
    assert_eq!((null.status, null.body["expires_at"].clone()), (StatusCode::CREATED, Value::Null));
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn the_openapi_document_describes_token_listing_and_revocation(pool: PgPool) {
    let api = Api::new(pool).await;
    let doc = api.send(Method::GET, "/openapi.json", None, None).await.body;
    let tokens = &doc["paths"]["/v1/creators/{id}/tokens"];
    assert!(tokens["get"]["responses"]["200"].is_object() && tokens["get"]["responses"]["404"].is_object());
    assert!(tokens["post"]["responses"]["422"].is_object());
    let revoke = &doc["paths"]["/v1/creators/{id}/tokens/{prefix}"]["delete"]["responses"];
    assert!(revoke["204"].is_object() && revoke["404"].is_object() && revoke["401"].is_object());
    assert!(doc["components"]["schemas"]["TokenInfo"]["properties"].get("token").is_none());
    assert!(doc["components"]["schemas"]["Shop"]["properties"]["status"].is_object());
}

// --- Dashboard users, through the binary -------------------------------------------------------------

const PASSWORD: &str = "correct horse battery staple";

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn user_list_shows_a_brands_users_and_whether_each_is_disabled(pool: PgPool) {
    let api = Api::new(pool).await;
    let cli = Cli::new(&api.pool);
    let brand = api.brand_id.to_string();
    for email in ["zoe@acme.example", "Amy@Acme.example"] {
        cli.ok(
            &["user", "create", "--brand", &brand, "--email", email, "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        )
        .await;
    }
    api::users::create_user(&api.pool, api.other_brand().await.brand_id, "someone@other.example", PASSWORD)
        .await
        .unwrap();
    let disabled = cli.ok(&["user", "disable", "ZOE@acme.example"], None).await;
    assert_eq!((disabled.field("disabled"), disabled.field("sessions_ended")), (Some("zoe@acme.example"), Some("0")));
    // Sign-in finds no credentials for a disabled user, exactly as for an unknown email.
    let zoe = api::users::Email::parse("zoe@acme.example").unwrap();
    assert!(api::users::credentials(&api.pool, &zoe).await.unwrap().is_none());
    let amy = api::users::Email::parse("amy@acme.example").unwrap();
    assert!(api::users::credentials(&api.pool, &amy).await.unwrap().is_some_and(|c| c.brand_id == api.brand_id));

    let list = cli.ok(&["user", "list", "--brand", &brand], None).await;
    let rows: Vec<Vec<&str>> = list.stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows[0], ["email", "status", "created_at", "sessions", "user_id"]);
    let summary: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(summary, [("amy@acme.example", "active"), ("zoe@acme.example", "disabled")]);
    assert!(rows[1..].iter().all(|r| r[2].parse::<DateTime<Utc>>().is_ok() && r[3] == "0" && r[4].len() == 36));

    let enabled = cli.ok(&["user", "enable", "zoe@acme.example"], None).await;
    assert_eq!(enabled.field("enabled"), Some("zoe@acme.example"));
    let list = cli.ok(&["user", "list", "--brand", &brand], None).await;
    assert_eq!(list.stdout.lines().filter(|l| l.contains("\tactive\t")).count(), 2);
}

#[sqlx::test(migrator = "api::db::MIGRATOR")]
async fn user_commands_refuse_unknown_users_and_short_passwords_and_change_nothing(pool: PgPool) {
    let api = Api::new(pool).await;
    let cli = Cli::new(&api.pool);
    api::users::create_user(&api.pool, api.brand_id, "jess@acme.example", PASSWORD).await.unwrap();
    let hash = || async {
        sqlx::query_scalar::<_, String>("select password_hash from users").fetch_one(&api.pool).await.unwrap()
    };
    let before = hash().await;
    for args in [
        &["user", "disable", "nobody@acme.example"][..],
        &["user", "enable", "nobody@acme.example"],
        &["user", "reset-password", "nobody@acme.example"],
    ] {
        let output = cli.run(args, None).await;
        assert!(
            !output.success && output.stderr.contains("no user with email nobody@acme.example"),
            "{args:?}: {output:?}"
        );
    }
    let short = cli.run(&["user", "reset-password", "jess@acme.example", "--password-stdin"], Some("short\n")).await;
    assert!(!short.success && short.stderr.contains("at least 12 characters"), "{short:?}");
    let unknown_brand = cli.run(&["user", "list", "--brand", &uuid::Uuid::new_v4().to_string()], None).await;
    assert!(!unknown_brand.success && unknown_brand.stderr.contains("no brand with id"), "{unknown_brand:?}");
    assert_eq!(hash().await, before);
    let disabled: i64 = sqlx::query_scalar("select count(*) from users where disabled_at is not null")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(disabled, 0);

    let reset = cli
        .ok(&["user", "reset-password", "jess@acme.example", "--password-stdin"], Some("a brand new passphrase\n"))
        .await;
    assert_eq!((reset.field("sessions_ended"), reset.field("password")), (Some("0"), None), "chosen, so not printed");
    let stored = hash().await;
    assert!(api::users::verify_password("a brand new passphrase", &stored));
    assert!(!api::users::verify_password(PASSWORD, &stored));
}
