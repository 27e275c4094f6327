//! The same-toolchain baseline for bench/edge.sh: what workers-rs costs per request before the edge
//! worker does any work of its own.

use worker::{event, Context, Env, Headers, Request, Response, Result};

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Location", "https://shop.example/")?;
    Ok(Response::empty()?.with_status(302).with_headers(headers))
}
