//! The HTTP surface: one module per resource, one router, one shared state.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use sqlx::PgPool;
use tower_http::cors::{Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;

mod attribution;
mod auth;
mod campaigns;
pub mod conversions;
mod creator_view;
mod creators;
mod csv;
pub mod dashboard;
mod domains;
pub mod error;
pub(crate) mod extract;
mod files;
mod health;
mod ingest;
pub mod json;
pub mod links;
mod openapi;
pub mod pixel;
mod portal;
pub mod shopify;
pub mod statements;
mod webhooks;

pub use error::Error;

/// Largest request body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use crate::links::{random_codes, CodeSource};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The primary: writes, and every read that must see a write just made (sessions, sign-in, a link just
    /// created, idempotent replays, transactions).
    pub db: PgPool,
    /// Where reports, lists and exports read (see [`AppState::read`]).
    pub reads: crate::db::ReadPool,
    pub config: Arc<Config>,
    pub codes: CodeSource,
    pub pixel_limits: Arc<pixel::PixelLimits>,
    pub pixel_brands: Arc<crate::pixels::PixelDirectory>,
    pub shopify_shops: crate::shopify::ShopCache,
    pub signin_limits: Arc<dashboard::SignInLimits>,
    pub domains: crate::domains::Domains,
    pub statement_verify_limits: Arc<statements::VerifyLimits>,
    /// The API keys this process verified; remembered only while [`crate::brands::run_key_listener`]
    /// runs (the server starts it), else every key is read from the database.
    pub api_keys: crate::brands::KeyCache,
}

impl AppState {
    pub fn new(db: PgPool, config: Config) -> Self {
        // Every rate limit counts in Redis when `REDIS_URL` is set (one connection for all of them).
        let limits = crate::limits::Backend::from_config(&config);
        let pixel_limits =
            Arc::new(pixel::PixelLimits::new(config.pixel_rate_per_pixel, config.pixel_rate_per_client, &limits));
        let signin_limits = Arc::new(dashboard::SignInLimits::new(&config, &limits));
        let statement_verify_limits = statements::VerifyLimits::new(config.statement_verify_rate_per_client, &limits);
        let provider = config.domain_provider().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the Cloudflare for SaaS client cannot be built; domains stay pending");
            crate::domains::Provider::Manual
        });
        AppState {
            domains: crate::domains::Domains { db: db.clone(), provider, tracking: config.tracking_base_url.clone() },
            reads: crate::db::ReadPool::primary_only(db.clone()),
            db,
            config: Arc::new(config),
            codes: random_codes(),
            pixel_limits,
            pixel_brands: Arc::default(),
            shopify_shops: crate::shopify::shop_cache(),
            signin_limits,
            statement_verify_limits,
            api_keys: crate::brands::KeyCache::default(),
        }
    }

    /// Reports and lists read from `reads` (a replica's, see [`crate::db::read_pool`]).
    pub fn with_reads(self, reads: crate::db::ReadPool) -> Self {
        AppState { reads, ..self }
    }

    /// The pool for a read that may lag the primary by the replica's replay delay: a report, a list, an
    /// export. The replica while it answers, else (and without one) the primary.
    pub fn read(&self) -> &PgPool {
        self.reads.pool()
    }

    /// [`AppState::read`], or the primary for a page the dashboard redirects to right after a write (it
    /// carries the write's notice, `?created=1` and the like), so that it shows the change it announces.
    pub fn read_after_write(&self, just_wrote: bool) -> &PgPool {
        if just_wrote {
            &self.db
        } else {
            self.read()
        }
    }
}

fn pixel_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(86_400))
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/creators", post(creators::create).get(creators::list))
        .route("/creators/{id}", get(creators::get))
        .route("/creators/{id}/invitations", post(creators::invite))
        .route("/creators/{id}/account", delete(creators::unlink_account))
        .route("/campaigns", post(campaigns::create).get(campaigns::list))
        .route("/campaigns/{id}", get(campaigns::get))
        .route("/links", post(links::create).get(links::list))
        // Up to 100 links at once: a larger body than any other route takes.
        .route("/links/bulk", post(links::bulk::create).layer(DefaultBodyLimit::max(links::bulk::MAX_BULK_BODY_BYTES)))
        .route("/links/{id}/qr", get(links::qr::get))
        .route("/links/{id}", get(links::get).patch(links::update).delete(links::delete))
        .route("/links/{id}/stats", get(links::stats::get))
        .route("/creators/{id}/tokens", post(creator_view::create_token).get(creator_view::list_tokens))
        .route("/creators/{id}/tokens/{prefix}", delete(creator_view::revoke_token))
        .route("/me/links", get(creator_view::my_links))
        .route("/me/statements", post(statements::issue))
        .route("/statements", get(statements::list))
        .route("/statements/verify", post(statements::verify))
        .route("/statements/{id}/revoke", post(statements::revoke))
        .route("/attribution", get(attribution::report))
        .route("/attribution.csv", get(attribution::export))
        .route("/conversions.csv", get(conversions::export))
        .route("/links.csv", get(links::export))
        .route("/conversions", get(conversions::list).post(conversions::create))
        .route("/conversions/{order_id}/refunds", post(conversions::refund))
        .route("/conversions/{order_id}/cancel", post(conversions::cancel))
        // Storefronts on any origin post here; the preflight is answered by the CORS layer.
        // (The OPTIONS handler only routes preflights into the layer, which answers them itself.)
        .route("/pixel/events", post(pixel::event).options(|| async { StatusCode::NO_CONTENT }).layer(pixel_cors()))
        .route("/integrations/shopify", get(shopify::list).put(shopify::connect))
        .route("/integrations/shopify/{shop_domain}", delete(shopify::disconnect))
        // Orders can be far larger than anything else sent to /v1; the route's own body limit wins over the
        // outer one, and it has a concurrency limit of its own.
        .route("/webhooks/shopify", shopify::webhooks::route(state.config.shopify_webhook_concurrency))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/{id}", get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
        .route("/webhooks/{id}/rotate-secret", post(webhooks::rotate_secret))
        .route("/webhooks/{id}/test", post(webhooks::send_test))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/webhooks/{id}/deliveries/{delivery_id}/retry", post(webhooks::retry))
        .route("/domains", post(domains::create).get(domains::list))
        .route("/domains/{hostname}", get(domains::get).delete(domains::delete));

    let routes = Router::new()
        .nest("/v1", v1.layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/openapi.json", get(openapi::document))
        .route("/pixel.js", get(pixel::script))
        .route("/.well-known/statement-keys", get(statements::keys))
        .merge(statement_pages())
        .merge(dashboard::router())
        .merge(portal::router());
    finish(routes, state)
}

/// The public statement pages, with the dashboard's page headers; a pasted or uploaded statement is at
/// most [`MAX_BODY_BYTES`] (plus room for the form's own encoding).
fn statement_pages() -> Router<AppState> {
    let pages = Router::new()
        .route("/statements/{id}", get(statements::show))
        .route("/verify", get(statements::verify_page).post(statements::verify_submit))
        .layer(DefaultBodyLimit::max(2 * MAX_BODY_BYTES + 4096));
    dashboard::page_headers(pages)
}

/// `/internal/*`, served only on the internal listener (`INTERNAL_BIND_ADDR`): never by [`router`], so
/// the public listener answers those paths 404 like any unknown route.
pub fn internal_router(state: AppState) -> Router {
    // Click batches are larger than anything a brand sends, so this route has a limit of its own.
    let internal = Router::new()
        .route("/clicks", post(ingest::clicks))
        .route("/openapi.json", get(ingest::document))
        .layer(DefaultBodyLimit::max(ingest::MAX_INGEST_BYTES));
    finish(Router::new().nest("/internal", internal), state)
}

/// What every listener's routes end with: JSON answers for unknown paths and methods, a timeout, and
/// request tracing.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { Error::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            Error::Invalid {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this method is not allowed on this path".into(),
            }
        })
        .layer(axum::middleware::from_fn(run_to_completion))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Runs every request to its end in a task of its own, whatever happens to the connection that sent it.
///
/// Without it, a client that goes away (or the timeout above) drops the handler wherever it is waiting,
/// database transaction included. A transaction dropped after its `BEGIN` rolls back, so the request
/// simply did not happen; but one dropped while its `BEGIN` is in flight goes back to the pool still open
/// on the server (sqlx 0.8, launchbadge/sqlx#4393), and the next request to use that connection writes
/// inside it: an event answered `202` is rolled back later, or committed with someone else's. A request
/// that has started now finishes and commits; one whose client left never learns the answer, as with any
/// request whose answer was lost on the way (idempotency keys and order ids make retries safe).
///
/// A handler that panics answers a 500 here, like any internal error, instead of closing the connection.
async fn run_to_completion(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    use tracing::Instrument;
    match tokio::spawn(next.run(request).in_current_span()).await {
        Ok(response) => response,
        Err(e) => Error::Internal(anyhow::anyhow!("request handler failed: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_handler_that_panics_answers_a_json_500() {
        let app: Router = Router::new()
            .route("/", get(|| async { panic!("a bug") as &'static str }))
            .layer(axum::middleware::from_fn(super::run_to_completion));
        let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["error"]["code"], "internal");
    }
}
