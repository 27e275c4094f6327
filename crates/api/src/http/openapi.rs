//! `GET /openapi.json`, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{attribution, campaigns, conversions, creator_view, creators, links, pixel, shopify};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tracking Links API", description = "Tracking links, clicks and attribution for brands and creators."),
    paths(
        creators::create, creators::list, creators::get,
        campaigns::create, campaigns::list, campaigns::get,
        links::create, links::list, links::get, links::update, links::delete, links::stats::get,
        creator_view::create_token, creator_view::list_tokens, creator_view::revoke_token, creator_view::my_links,
        attribution::report,
        conversions::list, conversions::create, conversions::refund, conversions::cancel,
        pixel::event,
        shopify::connect, shopify::list, shopify::disconnect, shopify::webhooks::receive,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api_key", "creator_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
