//! The Cloudflare Worker every click passes through.
//!
//! `GET /{code}` looks the code up in Workers KV, answers `302` to the destination with `cs_ref` added
//! and the `_cs_pv` visitor cookie set, and hands the click to a Queue after the response
//! (`wait_until`). The queue consumer forwards batches of clicks to the API. See README.md.
//!
//! Everything that decides something is a plain function in the modules below, tested natively; the
//! wasm32-only glue ([`glue`]) reads the request and the bindings and calls them.

pub mod answer;
pub mod bot;
pub mod cache;
pub mod click;
pub mod config;
pub mod consumer;
pub mod cookie;
pub mod outbox;
pub mod redirect;
pub mod route;
pub mod sync;

#[cfg(target_arch = "wasm32")]
mod glue;

#[cfg(target_arch = "wasm32")]
mod events {
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen::JsValue;
    use worker::{event, web_sys, worker_sys, Context, Env, MessageBatch, Result};

    /// Every HTTP request: clicks, peeks, link sync and everything else. Exported by hand instead of
    /// through `#[event(fetch)]`, which makes every request a future: a click on a cached link is
    /// answered without one (see [`crate::glue::fetch`]). worker-build's entry point calls this
    /// export just the same and awaits what it returns, a `Response` or a `Promise` of one.
    #[wasm_bindgen]
    pub fn fetch(req: web_sys::Request, env: Env, ctx: worker_sys::Context) -> std::result::Result<JsValue, JsValue> {
        crate::glue::fetch(req, env, Context::new(ctx))
    }

    /// Batches of clicks from the `CLICKS` queue, forwarded to the API.
    #[event(queue)]
    async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
        crate::glue::consume(batch, env).await;
        Ok(())
    }
}
