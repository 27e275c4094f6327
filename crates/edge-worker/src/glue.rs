//! The wasm32-only glue: read the request and the bindings, call the plain functions, copy their
//! answers into runtime responses. Nothing here decides anything the native tests could not check.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use js_sys::JsString;
use rand::rngs::StdRng;
use rand::SeedableRng;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::future_to_promise;
use worker::worker_sys::ext::RequestExt;
use worker::worker_sys::IncomingRequestCfProperties;
use worker::{
    console_error, console_warn, web_sys, Context, Delay, Env, Fetch, Headers, KvStore, MessageBatch, MessageExt,
    Method as WorkerMethod, Queue, QueueContentType, QueueRetryOptionsBuilder, RawMessageBuilder, Request, RequestInit,
    Result,
};

use serde_json::value::RawValue;
use shared::{ClickEvent, Code};

use crate::answer::{Answer, Body};
use crate::bot::BotSignals;
use crate::cache::{parse_stored, LinkCache, Stored};
use crate::click::{host_kind, host_of, is_qr_scan, to_json, visit, Outcome, RequestFacts, Target, VisitKind};
use crate::config::{bot_management, default_hosts, kv_cache_ttl, queue_retry_max_delay, shared_token, TokenTooShort};
use crate::consumer::{
    ingest_endpoint, occurred_at_ms, parse_message, plan_posts, retry_delay_seconds, settle, IngestBody, Settle,
};
use crate::outbox::{Outbox, Step};
use crate::route::{path_of, route, Method, Route, SyncOp};
use crate::sync::{
    authorize, check_size, check_stored, parse_deletes, parse_writes, summary, Stale, SyncError, TOMBSTONE_TTL_SECONDS,
};

const LINKS: &str = "LINKS";
const CLICKS: &str = "CLICKS";

thread_local! {
    // Per isolate: wasm32 is single-threaded, and no borrow is ever held across an await.
    static CACHE: RefCell<LinkCache<Rc<Target>>> = RefCell::new(LinkCache::default());
    static OUTBOX: RefCell<Outbox> = RefCell::new(Outbox::default());
    // Click and visitor ids come from ChaCha12 seeded once per isolate from crypto.getRandomValues (what
    // rand's ThreadRng does natively): unguessable, without two calls out to JavaScript per click.
    static IDS: RefCell<StdRng> = RefCell::new(StdRng::from_entropy());
    // The header names clicks read and answers write, as JavaScript strings made once per isolate:
    // a Rust string is decoded into a new JavaScript string each time it is passed.
    static HEADER_NAMES: RefCell<Vec<(&'static str, JsString)>> = const { RefCell::new(Vec::new()) };
    static BOT_MANAGEMENT: OnceCell<bool> = const { OnceCell::new() };
    static DEFAULT_HOSTS: OnceCell<Vec<String>> = const { OnceCell::new() };
}

#[wasm_bindgen]
extern "C" {
    /// The runtime's `Headers`, seen through a `get` that takes a name already made a JavaScript string.
    #[wasm_bindgen(js_name = Headers)]
    type NamedHeaders;

    /// `Headers.get`.
    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_named(this: &NamedHeaders, name: &JsString) -> std::result::Result<Option<String>, JsValue>;

    /// `Reflect.set` with a string value, in one call.
    #[wasm_bindgen(catch, js_namespace = Reflect, js_name = set)]
    fn set_string(target: &js_sys::Object, key: &JsString, value: &str) -> std::result::Result<bool, JsValue>;
}

/// Calls `f` with the isolate's JavaScript string for the header `name`.
fn with_header_name<T>(name: &'static str, f: impl FnOnce(&JsString) -> T) -> T {
    HEADER_NAMES.with_borrow_mut(|names| {
        let index = match names.iter().position(|(known, _)| *known == name) {
            Some(index) => index,
            None => {
                names.push((name, JsString::from(name)));
                names.len() - 1
            }
        };
        f(&names[index].1)
    })
}

/// A request header's value, if present (and readable).
fn header(headers: &web_sys::Headers, name: &'static str) -> Option<String> {
    let headers = headers.unchecked_ref::<NamedHeaders>();
    with_header_name(name, |name| headers.get_named(name)).ok().flatten()
}

fn now_ms() -> i64 {
    // `Date.now()` itself: worker's `Date::now()` builds a `Date` object to read it from.
    js_sys::Date::now() as i64
}

/// Handles one HTTP request. A click on a link the isolate has cached (most clicks) is answered
/// synchronously: the export returns the `Response` itself, with no future, promise or task queue
/// around it (measured on workerd: that machinery cost about 8% of a redirect's CPU, 71 µs against 65).
/// Everything that waits on I/O (a KV read, link sync) returns a `Promise` instead.
///
/// Clicks read the runtime's request directly (no `worker::Request` built around it): only the method,
/// the URL's path, four headers and, where needed, `cf`.
pub fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> std::result::Result<JsValue, JsValue> {
    // The raw method: workers-rs maps unknown methods to GET, which would make them clicks.
    let method = Method::parse(&req.method());
    let url = req.url();
    let answer = match route(method, path_of(&url)) {
        Route::Click(code) => return visit_link(req, url, env, ctx, code, VisitKind::Click),
        Route::Peek(code) => return visit_link(req, url, env, ctx, code, VisitKind::Peek),
        Route::NotFound { head } => Answer::not_found(head),
        Route::MethodNotAllowed { allow } => Answer::method_not_allowed(allow),
        Route::Sync(op) => match sync_token(&env) {
            Ok(Some(token)) => return Ok(later(async move { sync(Request::from(req), &env, op, &token).await })),
            Ok(None) => Answer::not_found(false),
            Err(short) => sync_refused(&short),
        },
        Route::SyncMethodNotAllowed => match sync_token(&env) {
            Ok(Some(_)) => Answer::method_not_allowed("POST"),
            Ok(None) => Answer::not_found(method == Method::Head),
            Err(short) => sync_refused(&short),
        },
    };
    Ok(respond(answer)?.into())
}

/// A `Promise` of the response to an answer still to be worked out.
fn later(answer: impl std::future::Future<Output = Answer> + 'static) -> JsValue {
    future_to_promise(async move { Ok(respond(answer.await)?.into()) }).into()
}

/// Answers a visit of `code`: at once from the isolate's cache, else after reading KV.
fn visit_link(
    req: web_sys::Request,
    url: String,
    env: Env,
    ctx: Context,
    code: Code,
    kind: VisitKind,
) -> std::result::Result<JsValue, JsValue> {
    let now_ms = now_ms();
    match CACHE.with_borrow(|cache| cache.get(code, now_ms).cloned()) {
        Some(target) => Ok(respond(answer_visit(&req, &url, &env, &ctx, code, &target, kind, now_ms))?.into()),
        None => Ok(later(async move {
            match read_link(&env, code).await {
                Ok(Some(target)) => {
                    let target = Rc::new(target);
                    CACHE.with_borrow_mut(|cache| cache.insert(code, Rc::clone(&target), now_ms));
                    answer_visit(&req, &url, &env, &ctx, code, &target, kind, now_ms)
                }
                Ok(None) => Answer::not_found(kind == VisitKind::Peek),
                Err(answer) => answer,
            }
        })),
    }
}

/// Answers the visit of `code` (at `url`), which resolved to `target`; records the click after the
/// response for `GET`.
#[allow(clippy::too_many_arguments)]
fn answer_visit(
    req: &web_sys::Request,
    url: &str,
    env: &Env,
    ctx: &Context,
    code: Code,
    target: &Target,
    kind: VisitKind,
    now_ms: i64,
) -> Answer {
    let headers = req.headers();
    let (cookie, user_agent, referer) =
        (header(&headers, "Cookie"), header(&headers, "User-Agent"), header(&headers, "Referer"));
    // Cloudflare puts the visitor's country in `CF-IPCountry` (IP Geolocation, on unless a zone turns
    // it off). `request.cf` is read only without it, or for Bot Management's verdict: the runtime
    // parses that object on first access (see `config::bot_management`). Whenever it is read, its
    // verdict counts.
    let country_header = header(&headers, "CF-IPCountry");
    let cf = if country_header.is_none() || reads_bot_management(env) { req.cf() } else { None };
    let country = country_header.or_else(|| cf.as_ref().and_then(|cf| cf.country().ok().flatten()));
    let host = host_of(url);
    let facts = RequestFacts {
        host: DEFAULT_HOSTS.with(|hosts| host_kind(host, hosts.get_or_init(|| tracking_hosts(env)))),
        qr: is_qr_scan(url),
        cookie: cookie.as_deref(),
        user_agent: user_agent.as_deref(),
        referer: referer.as_deref(),
        country: country.as_deref(),
        bot: cf.as_ref().map(bot_signals).unwrap_or_default(),
    };
    match IDS.with_borrow_mut(|ids| visit(code, target, kind, &facts, now_ms, ids)) {
        Outcome::Visit(mut visit) => {
            if let Some(event) = visit.event.take() {
                record(env, ctx, &event, now_ms);
            }
            Answer::redirect(visit)
        }
        Outcome::Expired(location) => Answer::expired(location),
        Outcome::NotFound => Answer::not_found(kind == VisitKind::Peek),
    }
}

/// `TRACKING_HOSTS`, read once per isolate: vars do not change while an isolate lives.
fn tracking_hosts(env: &Env) -> Vec<String> {
    default_hosts(env.var("TRACKING_HOSTS").ok().map(|v| v.to_string()).as_deref())
}

/// The link of `code` from KV: `Ok(None)` when there is none, only a tombstone, or a record or
/// destination this worker refuses (logged), `Err` with the answer to give when KV itself failed.
async fn read_link(env: &Env, code: Code) -> std::result::Result<Option<Target>, Answer> {
    let ttl = kv_cache_ttl(env.var("KV_CACHE_TTL").ok().map(|v| v.to_string()).as_deref());
    let stored = match env.kv(LINKS) {
        Ok(kv) => kv.get(code.as_str()).cache_ttl(ttl).text().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let json = match stored {
        Ok(Some(json)) => json,
        Ok(None) => return Ok(None),
        Err(e) => {
            console_error!("KV read of {code} failed: {e}");
            return Err(Answer::unavailable());
        }
    };
    match parse_stored(&json) {
        Stored::Found(target) => Ok(Some(*target)),
        Stored::Deleted => Ok(None),
        Stored::Unusable(why) => {
            console_error!("KV record of {code} cannot be served, answering 404: {why}");
            Ok(None)
        }
    }
}

/// Puts the click in the isolate's outbox. When there is no sender (or its term is over), this request
/// becomes the sender and stays alive after its response (`wait_until`) until the outbox is empty or it
/// is replaced; otherwise the current sender takes the click along (see [`crate::outbox`]).
fn record(env: &Env, ctx: &Context, event: &ClickEvent, now_ms: i64) {
    let json = to_json(event);
    let Some(sender) = OUTBOX.with_borrow_mut(|outbox| outbox.push(json, now_ms)) else { return };
    match env.queue(CLICKS) {
        Ok(queue) => ctx.wait_until(send_while_needed(queue, sender)),
        Err(e) => {
            let lost = OUTBOX.with_borrow_mut(|outbox| outbox.abandon(sender));
            console_error!("no {CLICKS} queue binding, {lost} clicks lost: {e}");
        }
    }
}

/// The sender's loop: one queue message at a time until nothing waits or a newer sender took over.
async fn send_while_needed(queue: Queue, sender: u64) {
    loop {
        match OUTBOX.with_borrow_mut(|outbox| outbox.next_step(sender, now_ms())) {
            Step::Retire => return,
            Step::Send(send) => {
                send_clicks(&queue, &send.body(), send.messages.len()).await;
                OUTBOX.with_borrow_mut(|outbox| outbox.finish(send.last_seq));
            }
            Step::Wait(ms) => Delay::from(Duration::from_millis(ms.unsigned_abs())).await,
        }
    }
}

/// Sends one queue message (a JSON array of clicks) as text, which the consumer parses with the same
/// serde types; tries three times before giving the clicks up with an error in the log.
async fn send_clicks(queue: &Queue, body: &str, clicks: usize) {
    for attempt in 1..=3 {
        let message = RawMessageBuilder::new(JsValue::from_str(body)).build_with_content_type(QueueContentType::Text);
        match queue.send_raw(message).await {
            Ok(()) => return,
            Err(e) if attempt < 3 => console_warn!("queueing {clicks} clicks failed (attempt {attempt}): {e}"),
            Err(e) => console_error!("queueing {clicks} clicks failed, they are lost: {e}"),
        }
    }
}

/// Whether clicks read Bot Management's verdict from `request.cf` (`CF_BOT_MANAGEMENT`), read once per
/// isolate: vars do not change while an isolate lives.
fn reads_bot_management(env: &Env) -> bool {
    BOT_MANAGEMENT.with(|on| {
        *on.get_or_init(|| bot_management(env.var("CF_BOT_MANAGEMENT").ok().map(|v| v.to_string()).as_deref()))
    })
}

/// Cloudflare Bot Management's score and verified-bot flag, read leniently: absent fields mean "unknown".
fn bot_signals(cf: &IncomingRequestCfProperties) -> BotSignals {
    let Some(bm) = cf.bot_management() else { return BotSignals::default() };
    let field = |name: &str| js_sys::Reflect::get(bm.as_ref(), &JsValue::from_str(name)).ok();
    BotSignals {
        score: field("score").and_then(|v| v.as_f64()).filter(|s| (0.0..=100.0).contains(s)).map(|s| s as u32),
        verified_bot: field("verifiedBot").and_then(|v| v.as_bool()).unwrap_or(false),
    }
}

fn sync_token(env: &Env) -> std::result::Result<Option<String>, TokenTooShort> {
    shared_token("KV_SYNC_TOKEN", env.secret("KV_SYNC_TOKEN").ok().map(|s| s.to_string()))
}

/// A `KV_SYNC_TOKEN` too short to trust: the sync routes refuse every request, and say why in the log.
fn sync_refused(short: &TokenTooShort) -> Answer {
    console_error!("{short}: the link-sync routes refuse every request until it is replaced");
    Answer::json_error(503, "misconfigured", "link sync is refused: its token is misconfigured")
}

/// Applies a link-sync request to KV.
async fn sync(mut req: Request, env: &Env, op: SyncOp, token: &str) -> Answer {
    match sync_inner(&mut req, env, op, token).await {
        Ok(answer) => answer,
        Err(e) => Answer::json_error(e.status(), e.code(), &e.message()),
    }
}

async fn sync_inner(req: &mut Request, env: &Env, op: SyncOp, token: &str) -> std::result::Result<Answer, SyncError> {
    authorize(req.headers().get("Authorization").ok().flatten().as_deref(), token)?;
    // Refuse an announced oversized body before reading it.
    if let Some(len) = req.headers().get("Content-Length").ok().flatten().and_then(|l| l.parse().ok()) {
        check_size(len)?;
    }
    let body = req.bytes().await.map_err(|e| SyncError::Invalid(format!("unreadable body: {e}")))?;
    let kv = env.kv(LINKS).map_err(|e| internal(format!("no {LINKS} binding: {e}")))?;
    let mut stale = Vec::new();
    let (key, applied) = match op {
        SyncOp::Write => {
            let writes = parse_writes(&body)?;
            let mut applied = 0;
            for write in &writes {
                if let Err(stored_version) = newer_in_kv(&kv, write.code, Some(write.version)).await? {
                    stale.push(Stale { key: write.code.as_str().to_owned(), stored_version });
                    continue;
                }
                let put = kv.put(write.code.as_str(), write.value.as_str()).map_err(|e| internal(e.to_string()))?;
                put.execute().await.map_err(|e| internal(format!("KV write of {} failed: {e}", write.code)))?;
                CACHE.with_borrow_mut(|cache| cache.forget(write.code));
                applied += 1;
            }
            ("written", applied)
        }
        SyncOp::Delete => {
            let deletes = parse_deletes(&body)?;
            let mut applied = 0;
            for delete in &deletes {
                let code = delete.code;
                if let Err(stored_version) = newer_in_kv(&kv, code, delete.version).await? {
                    stale.push(Stale { key: code.as_str().to_owned(), stored_version });
                    continue;
                }
                match delete.tombstone() {
                    Some(tombstone) => {
                        let put = kv.put(code.as_str(), tombstone).map_err(|e| internal(e.to_string()))?;
                        let put = put.expiration_ttl(TOMBSTONE_TTL_SECONDS);
                        put.execute().await.map_err(|e| internal(format!("KV tombstone of {code} failed: {e}")))?;
                    }
                    None => kv
                        .delete(code.as_str())
                        .await
                        .map_err(|e| internal(format!("KV delete of {code} failed: {e}")))?,
                }
                CACHE.with_borrow_mut(|cache| cache.forget(code));
                applied += 1;
            }
            ("deleted", applied)
        }
    };
    if !stale.is_empty() {
        console_warn!("link sync: {} entries refused as stale (KV holds a newer version)", stale.len());
    }
    Ok(Answer::json(200, summary(key, applied, &stale)))
}

/// `Err` with the version KV holds for `code` when it is newer than `version` (see
/// [`check_stored`]); a bare delete (`None`) reads nothing.
async fn newer_in_kv(
    kv: &KvStore,
    code: Code,
    version: Option<i64>,
) -> std::result::Result<std::result::Result<(), i64>, SyncError> {
    if version.is_none() {
        return Ok(Ok(()));
    }
    let stored = kv.get(code.as_str()).text().await.map_err(|e| internal(format!("KV read of {code} failed: {e}")))?;
    Ok(check_stored(version, stored.as_deref()))
}

/// A KV failure during sync: logged, and reported without internals. The caller retries the batch,
/// which is safe because writes and deletes are idempotent.
fn internal(cause: String) -> SyncError {
    console_error!("link sync failed: {cause}");
    SyncError::Internal
}

/// Forwards a batch of queue messages to the API, at most
/// [`MAX_CLICKS_PER_POST`](crate::consumer::MAX_CLICKS_PER_POST) clicks per post, and
/// acknowledges or retries each message by the answer to its post.
pub async fn consume(batch: MessageBatch<serde_json::Value>, env: Env) {
    let mut good = Vec::new();
    for message in batch.raw_iter() {
        match parse_message(message.body().as_string().as_deref()) {
            Ok(clicks) => good.push((message, clicks)),
            Err(e) => {
                // Retried on its own, it ends in the dead-letter queue after max_retries, where it can
                // be inspected and replayed, instead of vanishing or holding back the good clicks.
                console_error!("queue message {} is not click events: {e}", message.id());
                message.retry();
            }
        }
    }
    let max_delay = queue_retry_max_delay(env.var("QUEUE_RETRY_MAX_DELAY").ok().map(|v| v.to_string()).as_deref());
    let sizes: Vec<usize> = good.iter().map(|(_, clicks)| clicks.len()).collect();
    for post in plan_posts(&sizes) {
        let messages = &good[post.clone()];
        let clicks: Vec<&RawValue> = messages.iter().flat_map(|(_, clicks)| clicks.iter().map(AsRef::as_ref)).collect();
        let (status, body) = match post_clicks(&env, &clicks).await {
            Ok((status, body)) => (Some(status), body),
            Err(e) => {
                console_error!("posting {} clicks to the API failed: {e}", clicks.len());
                (None, None)
            }
        };
        let settles = settle(status, body.as_deref(), &sizes[post]);
        let retried = settles.iter().filter(|s| **s == Settle::Retry).count();
        if let (Some(status), true) = (status, retried > 0) {
            console_warn!(
                "the API answered {status} to {} clicks; retrying {retried} of {} messages",
                clicks.len(),
                messages.len()
            );
        }
        let now = now_ms();
        for ((message, clicks), settle) in messages.iter().zip(settles) {
            match settle {
                Settle::Ack => message.ack(),
                Settle::Retry => {
                    let oldest = clicks.iter().filter_map(|c| occurred_at_ms(c)).min().unwrap_or(now);
                    let delay = retry_delay_seconds(oldest, now, max_delay);
                    message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
                }
            }
        }
    }
}

/// Posts click events to the API; its status and body (`None` when unreadable), or an error when there
/// was no answer. A missing or too short `EDGE_INGEST_TOKEN` is an error: the token is never sent.
async fn post_clicks(env: &Env, clicks: &[&RawValue]) -> Result<(u16, Option<String>)> {
    let base = env.var("INGEST_URL")?.to_string();
    let endpoint = ingest_endpoint(&base).map_err(worker::Error::RustError)?;
    let token = shared_token("EDGE_INGEST_TOKEN", env.secret("EDGE_INGEST_TOKEN").ok().map(|s| s.to_string()))
        .map_err(|short| worker::Error::RustError(format!("{short}: no click is posted until it is replaced")))?
        .ok_or_else(|| worker::Error::RustError("EDGE_INGEST_TOKEN is not set".into()))?;
    let body = serde_json::to_string(&IngestBody { clicks })?;
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {token}"))?;
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(WorkerMethod::Post).with_headers(headers).with_body(Some(JsValue::from_str(&body)));
    let request = Request::new_with_init(endpoint.as_str(), &init)?;
    let mut response = Fetch::Request(request).send().await?;
    let status = response.status_code();
    Ok((status, response.text().await.ok()))
}

/// Copies an [`Answer`] into a runtime response. Its headers go in as a plain object, which the
/// runtime turns into the response's `Headers` itself: measured in bench/edge.sh, that is several
/// microseconds cheaper per redirect than a `Headers` object filled by one call per header (which the
/// response then copies).
fn respond(answer: Answer) -> Result<web_sys::Response> {
    let headers = js_sys::Object::new();
    for (name, value) in &answer.headers {
        with_header_name(name, |name| set_string(&headers, name, value))?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(answer.status);
    init.set_headers(&headers);
    let body = match &answer.body {
        Body::Empty => None,
        Body::Html(page) => Some(*page),
        Body::Json(json) => Some(json.as_str()),
    };
    Ok(web_sys::Response::new_with_opt_str_and_init(body, &init)?)
}
