//! The attribution engine: which link (and so which creator) earned an order.
//!
//! An order (brand + order id) is one `conversions` row, however many pixel events and webhooks report
//! it. Every report adds its evidence (click ids in `order_refs`, discount codes on the row) and the
//! credit is recomputed from *all* the evidence, so the order of arrival never matters and a stronger
//! signal always replaces a weaker one:
//!
//! 1. a click: through any reported click id we find the visitor, and credit that visitor's latest
//!    human click on one of the brand's links within the 30 days before the order (Shopify's click ids
//!    are considered before the pixel's);
//! 2. else a discount code matching a link's promo code, case-insensitively (deactivated links too:
//!    their history, promo codes included, is kept);
//! 3. else nobody.
//!
//! What can be proven about an order is its status ([`Status`]): reported by a server-side source
//! (a verified Shopify webhook, the Conversions API) it is `verified`; reported only by the pixel, it
//! is `pending` (then `unconfirmed`) on a brand that has a server-side source and `unverified` on one
//! that has none; `disputed` when pixel reports of different visitors claim it; `cancelled` and
//! `test` as the store says. The status is derived from stored facts by one SQL function,
//! `conversion_status`, every time a fact changes; which statuses count is decided in
//! [`crate::revenue`].
//!
//! Evidence is bounded and scoped: at most [`MAX_REFS`] click ids are kept per order, a server-side
//! report's click ids replace the pixel's, and a click id naming another brand's click is not kept.
//! A pixel report never changes the amount or time of an order a server-side source reported.
//!
//! Refunds are evidence of another kind: they never move the credit, they reduce the revenue credited.
//! They are kept per refund (a redelivered refund counts once) and an order's `refunded_minor` is
//! recomputed as their sum, so a refund that arrives before its order is applied when the order does.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::money::Money;

/// How far back a click can earn an order.
pub const WINDOW: Duration = Duration::days(30);

/// The most click ids kept as evidence of one order.
pub const MAX_REFS: i64 = 10;

/// Who reported an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The storefront pixel: public, so anyone can send it.
    Pixel,
    /// A Shopify webhook whose signature verified.
    Shopify,
    /// The Conversions API, with the brand's key.
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pixel => "pixel",
            Source::Shopify => "shopify",
            Source::Api => "api",
        }
    }
}

/// What can be proven about an order (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Reported by a server-side source.
    Verified,
    /// Reported only by the pixel, on a brand with a server-side source, inside the confirmation window.
    Pending,
    /// The same after the window, with no server-side report (a late one still verifies it).
    Unconfirmed,
    /// Reported only by the pixel, on a brand with no server-side source.
    Unverified,
    /// Reported only by the pixel, and claimed by different visitors: credits nobody until a
    /// server-side report settles it.
    Disputed,
    /// Cancelled by the store.
    Cancelled,
    /// A store's test order.
    Test,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Verified,
        Status::Pending,
        Status::Unconfirmed,
        Status::Unverified,
        Status::Disputed,
        Status::Cancelled,
        Status::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Pending => "pending",
            Status::Unconfirmed => "unconfirmed",
            Status::Unverified => "unverified",
            Status::Disputed => "disputed",
            Status::Cancelled => "cancelled",
            Status::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The moment an order is judged at, and the confirmation window (`CONFIRMATION_WINDOW_HOURS`):
/// passed in, so tests can move time.
#[derive(Debug, Clone, Copy)]
pub struct Judged {
    pub now: DateTime<Utc>,
    pub confirmation_window: Duration,
}

impl Judged {
    pub fn now(config: &crate::Config) -> Self {
        Judged { now: Utc::now(), confirmation_window: config.confirmation_window }
    }
}

/// One report of an order.
#[derive(Debug, Clone)]
pub struct OrderReport {
    pub brand_id: Uuid,
    pub order_id: String,
    pub amount: Money,
    /// When the order was placed (Shopify's `created_at`; for the pixel, when the event arrived).
    pub occurred_at: DateTime<Utc>,
    pub source: Source,
    /// Click ids the report carried (`cs_ref`), whether or not they name a click.
    pub refs: Vec<Uuid>,
    /// Discount codes on the order.
    pub discount_codes: Vec<String>,
    /// When the store cancelled the order (server-side sources only).
    pub cancelled_at: Option<DateTime<Utc>>,
    /// A store's test order (Shopify's `"test": true`).
    pub test: bool,
}

/// The credit an order ends up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credit {
    Click { link_id: Uuid, click_id: Uuid },
    PromoCode { link_id: Uuid },
    Nobody,
}

/// What an order stands at after a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub credit: Credit,
    pub status: Status,
}

/// Records one report of an order and recomputes its credit and status, in the caller's transaction.
///
/// The first report creates the order. A server-side source's amount, currency and time are
/// authoritative: they replace what the pixel reported, never the other way round. The caller holds the
/// order's lock from the start of its transaction ([`begin_for_order`]), so that the statements here see
/// everything committed before it was granted (refunds, other reports' click ids). An order this report
/// creates is judged in the statement that creates it, on the facts and click ids it reports; an order
/// already known is merged, then judged again by a second statement on everything stored.
pub async fn record_order(
    tx: &mut PgConnection,
    report: &OrderReport,
    judged: Judged,
) -> Result<Standing, sqlx::Error> {
    match merge(tx, report, judged, None).await? {
        Merged::Created(standing, _) => Ok(standing),
        // Without a key, an order is never "already verified" nor its key taken: merged, it is judged again.
        Merged::Updated | Merged::AlreadyVerified | Merged::KeyTaken => {
            credit(tx, report.brand_id, &report.order_id, judged.now).await
        }
    }
}

/// Records an order reported by a source that reports each order once, under an idempotency key (the
/// Conversions API): like [`record_order`], unless the key was used already or a server-side source
/// already reported the order, in which case nothing changes. The caller must hold the order's lock
/// ([`begin_for_order`]) from the start of its transaction, so that both are judged on everything
/// committed before it.
///
/// The report claims the key in the statement that records it, and the brand has a server-side source
/// from then on. An order this report creates is stored under the key, in the same statement, as
/// `answer` asks (the path every new order takes is one statement). A key used at the same moment by a
/// request for another order makes this one [`Once::KeyTaken`]: the caller rolls back and answers as
/// the key's first request was answered.
pub async fn record_order_once(
    tx: &mut PgConnection,
    report: &OrderReport,
    judged: Judged,
    answer: &KeepAnswer<'_>,
) -> Result<Once, sqlx::Error> {
    match merge(tx, report, judged, Some(answer)).await? {
        Merged::Created(_, Some(kept)) => Ok(Once::Created(kept)),
        Merged::Created(_, None) | Merged::KeyTaken => Ok(Once::KeyTaken),
        Merged::Updated => credit(tx, report.brand_id, &report.order_id, judged.now).await.map(|_| Once::Recorded),
        Merged::AlreadyVerified => Ok(Once::AlreadyReported),
    }
}

/// The idempotency key a report claims, and the answer kept with the order it creates, in the same
/// statement: the new order as `columns` select it (from `c`, the order, left joined to `l`, its
/// credited link), stored as JSON with `status_code` in the brand's `idempotency_keys` row of `key`,
/// with the request's fingerprint `request_hash`.
pub struct KeepAnswer<'a> {
    pub key: &'a str,
    pub request_hash: &'a [u8],
    pub columns: &'a str,
    pub status_code: i16,
}

/// What [`record_order_once`] did.
#[derive(Debug)]
pub enum Once {
    /// The report created the order, and its answer was kept: here it is, as stored.
    Created(serde_json::Value),
    /// The report was recorded (merged into a pixel-only order), no answer kept yet: the key is not claimed.
    Recorded,
    /// A server-side source had reported the order; nothing changed, the key is not claimed.
    AlreadyReported,
    /// The key was used already, by a request committed before this one or at the same moment; the
    /// caller must roll back what this statement wrote.
    KeyTaken,
}

/// What merging a report did.
enum Merged {
    /// The report created the order, judged as it was created (with the answer kept, if one was asked).
    Created(Standing, Option<serde_json::Value>),
    /// The order was known: the report was merged into it, and it must be judged again.
    Updated,
    /// Only with `once`: a server-side source had reported the order; nothing changed.
    AlreadyVerified,
    /// Only with `once`: the idempotency key was used already; nothing changed.
    KeyTaken,
}

/// Merges a report into its order, creating it (and then judging it in the same statement); with `once`,
/// only if no server-side source reported the order yet. The caller holds the order's lock from the
/// start of its transaction, so this statement's snapshot holds everything committed before it: whether
/// the order exists, its refunds, its click ids.
async fn merge(
    tx: &mut PgConnection,
    report: &OrderReport,
    judged: Judged,
    answer: Option<&KeepAnswer<'_>>,
) -> Result<Merged, sqlx::Error> {
    let row: MergeRow =
        sqlx::query_as_with(&merge_sql(answer), merge_arguments(report, judged, answer)?).fetch_one(&mut *tx).await?;
    let (key_taken, merged, created, link_id, method, click_id, status, kept) = row;
    Ok(match (merged, created, status) {
        _ if key_taken => Merged::KeyTaken,
        (false, _, _) => Merged::AlreadyVerified,
        (true, true, Some(status)) => Merged::Created(standing(link_id, method, click_id, &status), kept),
        (true, _, _) => Merged::Updated,
    })
}

/// The merge statement (see [`merge`]); its parameters are [`merge_arguments`]. It answers a [`MergeRow`].
fn merge_sql(answer: Option<&KeepAnswer<'_>>) -> String {
    // With an answer to keep, the report is recorded only if no server-side source reported the order.
    let once = answer.is_some();
    let keep = match answer {
        // The key is claimed with the answer; a request that took it since this statement began is
        // waited for (the key's unique index), and then this one inserts nothing.
        Some(answer) => format!(
            ",
         {kept_answer},
         server_source as (
             update brands set conversions_api_at = now()
             where id = $1 and conversions_api_at is null and not (select key_taken from go))",
            kept_answer = kept_answer(answer.columns),
        ),
        None => String::new(),
    };
    let kept = if once { "(select response from kept_answer)" } else { "null::jsonb" };
    // The whole row is returned only for the answer to be made from it.
    let returned = if once { "c.*, " } else { "" };
    // The update clause runs only for an order already known; its `where` skips reports that bring
    // nothing new, though the row is locked either way (and so are concurrent reports serialised).
    const SERVER_TAKES_OVER: &str = "excluded.amount_source <> 'pixel' and c.amount_source = 'pixel'";
    // `used` is read twice by `go`: materialized, the key is looked up once.
    format!(
        "with used as materialized (
             select $15 and exists (select 1 from idempotency_keys where brand_id = $1 and key = $17) as key_taken),
         go as (
             select not key_taken and not ($15 and exists (
                 select 1 from conversions where brand_id = $1 and order_id = $2 and verified_at is not null)) as merge,
                 key_taken
             from used),
         -- Whether the brand has a server-side source: asked only of pixel reports, the ones it decides for.
         brand as (
             select $7 = 'pixel' and (
                 exists (select 1 from shopify_shops s where s.brand_id = $1 and s.verified_at is not null)
                 or exists (select 1 from brands b where b.id = $1 and b.conversions_api_at is not null)) as has_server),
         existing as (
             select count(*) filter (where source = 'pixel') as pixel, count(*) filter (where source <> 'pixel') as server
             from order_refs where brand_id = $1 and order_id = $2),
         {REPORTED_CLICKS},
         kept as (
             select ref, $7::text as source from go, existing, input
             where go.merge
               and case when $7 = 'pixel' then existing.server = 0 and i <= $14 - existing.pixel
                        else i <= $14 - existing.server end),
         superseded as (
             delete from order_refs r
             where $7 <> 'pixel' and exists (select 1 from input) and (select merge from go)
               and r.brand_id = $1 and r.order_id = $2 and r.source = 'pixel' and r.cs_ref_id <> all($9)),
         {STORE_REFS},
         -- The facts of an order this report creates (none when the order is known), and its evidence.
         o as (
             select $6::timestamptz as occurred_at, $8::text[] as discount_codes, $5::text as currency,
                    case when $7 <> 'pixel' then $10::timestamptz end as verified_at, $13::boolean as test,
                    $12::timestamptz as cancelled_at,
                    case when brand.has_server then $10::timestamptz + $11::interval end as confirm_by,
                    null::text as status
             from go, brand
             where go.merge and not exists (select 1 from conversions where brand_id = $1 and order_id = $2)),
         evidence as (select ref as cs_ref_id, source from kept),
         named as (select id, visitor_id from reported where brand_id = $1),
         {judgement},
         merged as (
             insert into conversions as c {NEW_ORDER}
             select $3, $1, $2, $4, $5, $6, $7, $7, $8,
                    case when $7 <> 'pixel' then $10::timestamptz end,
                    case when brand.has_server then $10::timestamptz + $11::interval end,
                    $12, $13, {JUDGED}
             from go cross join brand left join judged on true
             where go.merge
             on conflict (brand_id, order_id) do update set
                 amount_minor = case when {SERVER_TAKES_OVER} then excluded.amount_minor else c.amount_minor end,
                 currency = case when {SERVER_TAKES_OVER} then excluded.currency else c.currency end,
                 occurred_at = case when {SERVER_TAKES_OVER} then excluded.occurred_at else c.occurred_at end,
                 amount_source = case when {SERVER_TAKES_OVER} then excluded.amount_source else c.amount_source end,
                 discount_codes = array(select distinct unnest(c.discount_codes || excluded.discount_codes)),
                 verified_at = coalesce(c.verified_at, excluded.verified_at),
                 cancelled_at = coalesce(c.cancelled_at, excluded.cancelled_at),
                 test = c.test or excluded.test,
                 updated_at = now()
             where ({SERVER_TAKES_OVER}) or not c.discount_codes @> excluded.discount_codes
                or (c.verified_at is null and excluded.verified_at is not null)
                or (c.cancelled_at is null and excluded.cancelled_at is not null)
                or (excluded.test and not c.test)
             -- The id this report would give the order: only a row it inserted has it.
             returning {returned}c.id = $3 as created){keep}
         select go.key_taken, go.merge, coalesce((select created from merged), false) as created,
                judged.link_id, judged.method, judged.click_id, judged.status, {kept} as answer
         from go left join judged on true",
        judgement = judgement("$16::interval", "$10::timestamptz", "$6::timestamptz"),
    )
}

/// The CTEs `reported`, the reported click ids' clicks, read once (each read of `clicks` by id alone visits
/// every monthly partition), and `input`, the click ids (`ref`, in the order reported: `i`) that are evidence:
/// another brand's click id is not. Shared by the statements that record a report ([`merge_sql`],
/// [`create_sql`]).
const REPORTED_CLICKS: &str = "reported as (select id, brand_id, visitor_id from clicks where id = any($9::uuid[])),
         input as (
             select ref, i from unnest($9::uuid[]) with ordinality as u(ref, i)
             where not exists (select 1 from reported k where k.id = u.ref and k.brand_id <> $1))";

/// The CTE `refs`: stores the click ids of `kept` (`ref`, `source`) as the order's evidence; a server-side
/// source's click id replaces the same one the pixel reported.
const STORE_REFS: &str = "refs as (
             insert into order_refs (brand_id, order_id, cs_ref_id, source)
             select $1, $2, ref, source from kept
             on conflict (brand_id, order_id, cs_ref_id) do update set source = excluded.source
                 where order_refs.source = 'pixel' and excluded.source <> 'pixel')";

/// The columns a new order is inserted with: its facts (`$3` its id, then the report's), the times that say
/// what can be proven of it, then [`JUDGED`].
const NEW_ORDER: &str = "(id, brand_id, order_id, amount_minor, currency, occurred_at, source, amount_source,
                  discount_codes, verified_at, confirm_by, cancelled_at, test,
                  link_id, method, click_id, refunded_minor, disputed, status, credited_at)";

/// The judged columns of a new order, from the `judged` CTE of [`judgement`].
const JUDGED: &str = "judged.link_id, judged.method, judged.click_id, coalesce(judged.refunded, 0),
                    coalesce(judged.disputed, false), coalesce(judged.status, 'unverified'),
                    case when judged.link_id is not null then now() end";

/// The CTE `kept_answer`: claims the key `$17` with the answer (`$18`, the fingerprint `$19`), the order
/// `merged` created (`created`) as `columns` select it (see [`KeepAnswer`]); a request that took the key since the
/// statement began is waited for (the key's unique index), and then this one keeps nothing.
fn kept_answer(columns: &str) -> String {
    format!(
        "kept_answer as (
             insert into idempotency_keys (brand_id, key, request_hash, status_code, response)
             select $1, $17, $19, $18, to_jsonb(a)
             from (select {columns} from merged c left join links l on l.id = c.link_id where c.created) a
             on conflict do nothing
             returning response)"
    )
}

/// The statement of [`create_order_once`]: [`merge_sql`]'s, for the one case it is run in, a report from a
/// server-side source of an order that does not exist yet. The order is inserted only if it does not exist
/// (else nothing is: `on conflict do nothing`) and the report's claim is its own, and judged in the same
/// statement on the facts and click ids it reports, by the same [`judgement`]. With [`Claim::Answer`] the
/// key is claimed with the answer as [`merge_sql`] does, and the statement answers the kept answer; with
/// [`Claim::Cte`], the caller's CTE claims, and the statement answers the new order's id. The answer is
/// `null` when the order existed or the claim was not the report's: the caller then rolls back what else
/// the statement wrote. What it leaves out can only matter to an order that exists: the order's stored
/// evidence, the pixel's click ids a server-side source replaces, the confirmation window (only pixel
/// reports have one), the update of a known order.
fn create_sql(claim: &Claim<'_>) -> String {
    // What is claimed before the order is inserted (and decides whether it is), what the insert returns,
    // what is claimed with the new order, and what the statement answers.
    let (before, only_if, returning, after, answer) = match claim {
        Claim::Answer(answer) => (
            String::new(),
            "",
            "c.*, true as created",
            format!(
                ",
         {kept_answer},
         server_source as (update brands set conversions_api_at = now() where id = $1 and conversions_api_at is null)",
                kept_answer = kept_answer(answer.columns),
            ),
            "(select response from kept_answer)",
        ),
        Claim::Cte(cte) => (
            format!("{},\n         ", cte.sql),
            "\n             where exists (select 1 from claimed)",
            "c.id",
            String::new(),
            "(select to_jsonb(id) from merged)",
        ),
    };
    format!(
        "with {REPORTED_CLICKS},
         kept as (select ref, $7::text as source from input where i <= $14),
         {STORE_REFS},
         o as (
             select $6::timestamptz as occurred_at, $8::text[] as discount_codes, $5::text as currency,
                    $10::timestamptz as verified_at, $13::boolean as test, $12::timestamptz as cancelled_at,
                    null::timestamptz as confirm_by, null::text as status),
         evidence as (select ref as cs_ref_id, source from kept),
         named as (select id, visitor_id from reported where brand_id = $1),
         {judgement},
         {before}merged as (
             insert into conversions as c {NEW_ORDER}
             select $3, $1, $2, $4, $5, $6, $7, $7, $8, $10::timestamptz, null, $12, $13, {JUDGED}
             from judged{only_if}
             on conflict do nothing
             returning {returning}){after}
         select {answer}",
        judgement = judgement("$16::interval", "$10::timestamptz", "$6::timestamptz"),
    )
}

/// The merge statement's parameters, `$1` to `$19`, in [`MERGE_TYPES`].
fn merge_arguments(
    report: &OrderReport,
    judged: Judged,
    answer: Option<&KeepAnswer<'_>>,
) -> Result<PgArguments, sqlx::Error> {
    let mut args = PgArguments::default();
    let encode = sqlx::Error::Encode;
    args.add(report.brand_id).map_err(encode)?;
    args.add(&report.order_id).map_err(encode)?;
    args.add(Uuid::new_v4()).map_err(encode)?;
    args.add(report.amount.amount_minor).map_err(encode)?;
    args.add(&report.amount.currency).map_err(encode)?;
    args.add(report.occurred_at).map_err(encode)?;
    args.add(report.source.as_str()).map_err(encode)?;
    args.add(&report.discount_codes).map_err(encode)?;
    args.add(&report.refs).map_err(encode)?;
    args.add(judged.now).map_err(encode)?;
    args.add(judged.confirmation_window).map_err(encode)?;
    args.add(report.cancelled_at).map_err(encode)?;
    args.add(report.test).map_err(encode)?;
    args.add(MAX_REFS).map_err(encode)?;
    args.add(answer.is_some()).map_err(encode)?;
    args.add(WINDOW).map_err(encode)?;
    args.add(answer.map(|a| a.key)).map_err(encode)?;
    args.add(answer.map(|a| a.status_code)).map_err(encode)?;
    args.add(answer.map(|a| a.request_hash)).map_err(encode)?;
    Ok(args)
}

/// The SQL types of [`merge_arguments`], in order: the signature of [`create_order_once`]'s function (whose
/// statement, [`create_sql`], takes the same parameters).
const MERGE_TYPES: &str = "uuid, text, uuid, bigint, text, timestamptz, text, text[], uuid[], timestamptz, interval, \
                           timestamptz, boolean, bigint, boolean, interval, text, smallint, bytea";

/// What a report that creates an order claims in the statement that creates it, so that it is recorded
/// once: the order is created only with its claim, and the claim only with the order.
pub enum Claim<'a> {
    /// The Conversions API's idempotency key, claimed with the answer kept under it ([`KeepAnswer`]); the
    /// brand has a server-side source from then on. The call answers the answer kept.
    Answer(&'a KeepAnswer<'a>),
    /// A record the caller's module claims ([`ClaimCte`]), such as a store's webhook delivery. The call
    /// answers the new order's id.
    Cte(&'a ClaimCte<'a>),
}

/// A caller's claim, written by a CTE of the statement that creates the order.
pub struct ClaimCte<'a> {
    /// `claimed as (…)`: writes the claim and returns a row only if it is this report's. Its parameters
    /// follow the statement's, from `$21` (`$1` is the brand, `$2` the order id).
    pub sql: &'static str,
    /// The SQL types of its parameters, in order.
    pub types: &'static [&'static str],
    /// Binds its parameters, in order.
    pub bind: &'a (dyn Fn(&mut PgArguments) -> Result<(), sqlx::error::BoxDynError> + Sync),
}

/// Creates an order a server-side source reports once (under an idempotency key, or in a delivery of its
/// own: see [`Claim`]), in one round trip and one transaction of its own: the call's answer, or `None` if
/// the report does not create an order (the order exists, the claim was made already; a pixel report
/// never is), in which case nothing was written and the caller takes the transactional path
/// ([`begin_for_order`], then [`record_order_once`] or [`record_order`]).
///
/// The order's lock must be held before the statement that creates the order takes its snapshot, which a
/// single statement cannot do; a PL/pgSQL function can (in READ COMMITTED, each statement of a volatile
/// function takes a new snapshot). So the statement ([`create_sql`]: the merge statement for this one case,
/// judging by the same [`judgement`]) is wrapped in a function that takes the lock ([`LOCK_ORDER`]), answers
/// `null` at once if the order exists (nothing written: a report of a known order costs one round trip
/// more, not a statement), runs the statement, and raises [`NOT_CREATED`] (rolling it back) unless it
/// created the order with its claim. The function exists in this connection's session only (`pg_temp`): it
/// is created the first time the connection needs it, named after the hash of its text, so that every
/// version of this code runs its own. One round trip instead of three or four (lock and begin, the claim,
/// the merge, commit) is a fifth of the API's CPU per order; the statement that only creates, a tenth or
/// more of PostgreSQL's.
pub async fn create_order_once(
    db: &PgPool,
    report: &OrderReport,
    judged: Judged,
    claim: &Claim<'_>,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    if report.source == Source::Pixel {
        return Ok(None);
    }
    let function = SessionFunction::of(claim);
    let answer = match claim {
        Claim::Answer(answer) => Some(*answer),
        Claim::Cte(_) => None,
    };
    let mut conn = db.acquire().await?;
    for first in [true, false] {
        let mut args = merge_arguments(report, judged, answer)?;
        args.add(order_lock_key(report.brand_id, &report.order_id)).map_err(sqlx::Error::Encode)?;
        if let Claim::Cte(cte) = claim {
            (cte.bind)(&mut args).map_err(sqlx::Error::Encode)?;
        }
        let call = sqlx::query_scalar_with::<_, Option<serde_json::Value>, _>(&function.call, args);
        match call.fetch_one(&mut *conn).await {
            Ok(answer) => return Ok(answer),
            Err(e) if sqlstate(&e).as_deref() == Some(NOT_CREATED) => return Ok(None),
            // The function does not exist in this session yet (nor, before its first, the session's
            // temporary schema).
            Err(e) if first && matches!(sqlstate(&e).as_deref(), Some("42883" | "3F000")) => {
                // A role without the TEMPORARY privilege cannot create it: such a deployment records every
                // order on the transactional path, a little slower.
                if let Err(e) = sqlx::query(&function.definition).persistent(false).execute(&mut *conn).await {
                    if !CREATE_ONCE_REFUSED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(error = %e, "cannot create the order-creating session function; \
                                                    new orders take three round trips or more instead of one");
                    }
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(sqlx::Error::Protocol("the order-creating function could not be created".into()))
}

/// Whether creating [`create_order_once`]'s function was refused (said once per process).
static CREATE_ONCE_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The SQLSTATE with which [`create_order_once`]'s function rolls back a report that did not create an order.
const NOT_CREATED: &str = "CS001";

/// [`create_order_once`]'s function for one kind of claim: its definition and the statement that calls it.
struct SessionFunction {
    definition: String,
    call: String,
}

/// The functions made so far, by what their claim is: the kept answer's columns, or the claim's CTE. The
/// text of one is 7 KB, hashed for its name, and needed on every request; a process makes one per caller.
#[derive(Default)]
struct SessionFunctions {
    answers: std::collections::HashMap<String, std::sync::Arc<SessionFunction>>,
    ctes: std::collections::HashMap<String, std::sync::Arc<SessionFunction>>,
}

static SESSION_FUNCTIONS: std::sync::OnceLock<std::sync::Mutex<SessionFunctions>> = std::sync::OnceLock::new();

impl SessionFunction {
    fn of(claim: &Claim<'_>) -> std::sync::Arc<SessionFunction> {
        let made = SESSION_FUNCTIONS.get_or_init(Default::default);
        // A poisoned map still holds whole entries: each is inserted complete.
        let mut made = made.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, key) = match claim {
            Claim::Answer(answer) => (&mut made.answers, answer.columns),
            Claim::Cte(cte) => (&mut made.ctes, cte.sql),
        };
        if let Some(function) = map.get(key) {
            return function.clone();
        }
        let function = std::sync::Arc::new(SessionFunction::new(claim));
        map.insert(key.to_owned(), function.clone());
        function
    }

    fn new(claim: &Claim<'_>) -> Self {
        let body = format!(
            "declare
                 stored_answer jsonb;
             begin
                 perform {lock};
                 if exists (select 1 from conversions where brand_id = $1 and order_id = $2) then
                     return null;
                 end if;
                 {create} into stored_answer;
                 if stored_answer is null then
                     raise exception using errcode = '{NOT_CREATED}', message = 'the report did not create an order';
                 end if;
                 return stored_answer;
             end",
            lock = LOCK_ORDER.trim_start_matches("select ").replace("$1", "$20"),
            create = create_sql(claim),
        );
        let hash = Sha256::digest(body.as_bytes());
        let name = format!("cs_create_order_{}", hash[..8].iter().map(|b| format!("{b:02x}")).collect::<String>());
        let claim_types = match claim {
            Claim::Answer(_) => &[][..],
            Claim::Cte(cte) => cte.types,
        };
        let count = 20 + claim_types.len();
        let parameters = (1..=count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        SessionFunction {
            definition: format!(
                "create or replace function pg_temp.{name}({MERGE_TYPES}, integer{}) returns jsonb
                 language plpgsql as $cs_create_order${body}$cs_create_order$",
                claim_types.iter().map(|t| format!(", {t}")).collect::<String>(),
            ),
            call: format!("select pg_temp.{name}({parameters})"),
        }
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

/// What [`merge`] answers: whether the key was taken, whether the report was merged, whether it created
/// the order, the new order's credit and status, and the answer kept with it.
type MergeRow =
    (bool, bool, bool, Option<Uuid>, Option<String>, Option<Uuid>, Option<String>, Option<serde_json::Value>);

/// Marks an order cancelled (once: a later cancellation keeps the first time), in the caller's
/// transaction; `None` when the brand has no such order.
pub async fn cancel(
    tx: &mut PgConnection,
    brand_id: Uuid,
    order_id: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<Standing>, sqlx::Error> {
    let found = sqlx::query(
        "update conversions set cancelled_at = coalesce(cancelled_at, $3), updated_at = now()
         where brand_id = $1 and order_id = $2",
    )
    .bind(brand_id)
    .bind(order_id)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if found == 0 {
        return Ok(None);
    }
    credit(tx, brand_id, order_id, now).await.map(Some)
}

/// One refund of an order: money returned to the customer.
#[derive(Debug, Clone)]
pub struct RefundReport {
    pub brand_id: Uuid,
    /// The refund's own id, unique per brand.
    pub refund_id: String,
    pub order_id: String,
    pub amount: Money,
    pub refunded_at: Option<DateTime<Utc>>,
}

/// Records a refund once (by refund id) and reduces its order's credited revenue, in the caller's
/// transaction, which holds the order's lock from its start ([`begin_for_order`]). A refund of an order
/// not recorded yet waits and is applied by [`record_order`]. Returns whether the refund was new. (A
/// refund never changes an order's status or credit.)
pub async fn record_refund(tx: &mut PgConnection, refund: &RefundReport) -> Result<bool, sqlx::Error> {
    let new = sqlx::query(
        "insert into refunds (brand_id, order_id, refund_id, amount_minor, currency, refunded_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (brand_id, refund_id) do nothing",
    )
    .bind(refund.brand_id)
    .bind(&refund.order_id)
    .bind(&refund.refund_id)
    .bind(refund.amount.amount_minor)
    .bind(&refund.amount.currency)
    .bind(refund.refunded_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if new {
        apply_refunds(tx, refund.brand_id, &refund.order_id).await?;
    }
    Ok(new)
}

/// Serialises everything that writes one order's refunds or creates the order, until the transaction
/// ends: without it, a refund committed while its order was being created could be missed by both.
/// Taken before any row lock on the order, so the two kinds of lock never deadlock. An advisory lock of
/// two keys: "ordr", and the order's [`order_lock_key`], bound as `$1`.
pub const LOCK_ORDER: &str = "select pg_advisory_xact_lock(1869767794, $1::int4)";

/// The order's key in [`LOCK_ORDER`]: the first 32 bits of the SHA-256 of the brand's id and the order
/// id. Computed here rather than in SQL so that a transaction can take it as it begins
/// ([`begin_for_order`]): a number is all that is written into that statement's text. Two orders that
/// share a key only wait for each other.
pub fn order_lock_key(brand_id: Uuid, order_id: &str) -> i32 {
    let digest = Sha256::new().chain_update(brand_id.as_bytes()).chain_update(order_id.as_bytes()).finalize();
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Begins a transaction that holds the order's lock ([`LOCK_ORDER`]), in one round trip: the lock is
/// taken by the first statement of the query that begins the transaction (PostgreSQL turns the
/// statements before a `begin` into the transaction it starts), so the transaction's next statement
/// sees everything committed before the lock was granted. Should taking the lock fail, nothing has
/// begun and the connection is as it was.
pub async fn begin_for_order(
    db: &PgPool,
    brand_id: Uuid,
    order_id: &str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let lock = LOCK_ORDER.replace("$1", &order_lock_key(brand_id, order_id).to_string());
    db.begin_with(format!("{lock}; begin")).await
}

/// Sets the order's refunded amount to the sum of its refunds in the order's currency (a refund in
/// another currency cannot be converted exactly, so it is kept but not subtracted). The sum is stored
/// as is; reports and `net` clamp amount minus refunds at zero.
async fn apply_refunds(tx: &mut PgConnection, brand_id: Uuid, order_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with total as (
             select coalesce(sum(r.amount_minor), 0)::bigint as minor
             from conversions c
             join refunds r on r.brand_id = c.brand_id and r.order_id = c.order_id and r.currency = c.currency
             where c.brand_id = $1 and c.order_id = $2)
         update conversions c set refunded_minor = total.minor, updated_at = now()
         from total
         where c.brand_id = $1 and c.order_id = $2 and c.refunded_minor <> total.minor",
    )
    .bind(brand_id)
    .bind(order_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Recomputes an order's credit and status from all its evidence and stores them if they changed,
/// locking the order first so that the recomputation sees every report committed before it.
pub async fn attribute(
    tx: &mut PgConnection,
    brand_id: Uuid,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<Standing, sqlx::Error> {
    sqlx::query("select 1 from conversions where brand_id = $1 and order_id = $2 for update")
        .bind(brand_id)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    credit(tx, brand_id, order_id, now).await
}

/// The credit and status, from all the evidence, of an order the transaction has locked, stored if
/// they changed, together with the order's refunded amount: one statement.
///
/// The click is the latest human click, within the window before the order, of any visitor named by
/// the order's click ids (a server-side source's considered before the pixel's). Only this brand's
/// clicks count, so another brand's click id credits nobody. The pixel's click ids count only while
/// they name one visitor: pixel reports of different visitors for one order are a dispute, which
/// credits nobody until a server-side report settles it (with a click id of its own, or a promo code).
///
/// Refunds in another currency than the order's cannot be converted exactly: they are kept but not
/// subtracted. The refunded sum is stored as is; reports and `net` clamp amount minus refunds at zero.
async fn credit(
    tx: &mut PgConnection,
    brand_id: Uuid,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<Standing, sqlx::Error> {
    let row: Option<CreditRow> = sqlx::query_as(&format!(
        "with o as (
             select occurred_at, discount_codes, currency, verified_at, test, cancelled_at, confirm_by, status
             from conversions where brand_id = $1 and order_id = $2),
         evidence as (select cs_ref_id, source from order_refs where brand_id = $1 and order_id = $2),
         named as (
             select k.id, k.visitor_id from clicks k
             where k.id in (select cs_ref_id from evidence) and k.brand_id = $1),
         {judgement},
         stored as (
             update conversions c
             set link_id = judged.link_id, method = judged.method, click_id = judged.click_id,
                 refunded_minor = judged.refunded, disputed = judged.disputed, status = judged.status,
                 updated_at = now(),
                 credited_at = case when (c.link_id, c.method, c.click_id)
                                         is distinct from (judged.link_id, judged.method, judged.click_id)
                                    then now() else c.credited_at end
             from judged
             where c.brand_id = $1 and c.order_id = $2
               and (c.link_id, c.method, c.click_id, c.refunded_minor, c.disputed, c.status)
                   is distinct from (judged.link_id, judged.method, judged.click_id, judged.refunded, judged.disputed,
                                     judged.status))
         select link_id, method, click_id, status from judged",
        judgement = judgement("$3", "$4", "o.occurred_at"),
    ))
    .bind(brand_id)
    .bind(order_id)
    .bind(WINDOW)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((link_id, method, click_id, status)) = row else {
        return Ok(Standing { credit: Credit::Nobody, status: Status::Unverified });
    };
    Ok(standing(link_id, method, click_id, &status))
}

/// The judgement of an order, in SQL: which click or promo code credits it, what was refunded of it,
/// whether it is disputed, and so its status; the CTEs `claims`, `clicked`, `promo`, `credit` and
/// `judged` (`link_id`, `method`, `click_id`, `refunded`, `disputed`, `status`). The one rule, used by
/// both statements that judge an order: the one that creates it, on the facts and click ids it reports,
/// and [`credit`], on everything stored. It reads three CTEs defined before it: `o`, the order's facts
/// (`occurred_at`, `discount_codes`, `currency`, `verified_at`, `test`, `cancelled_at`, `confirm_by`,
/// `status`), `evidence`, its click ids (`cs_ref_id`, `source`), and `named`, this brand's clicks among
/// them (`id`, `visitor_id`; more may be listed). `$1` is the brand and `$2` the order id; `window` and
/// `now` are the SQL parameters (such as `$3`) that hold the attribution window and the moment judged at,
/// and `at` is `o.occurred_at` or the parameter that holds it: as a parameter, the visitors' later clicks
/// are read from the monthly partitions of the window only, not from every month kept.
fn judgement(window: &str, now: &str, at: &str) -> String {
    format!(
        "claims as (
             select count(distinct named.visitor_id) as visitors
             from evidence r join named on named.id = r.cs_ref_id
             where r.source = 'pixel'),
         clicked as (
             select later.id as click_id, later.link_id
             from o cross join claims
             join evidence r on r.source <> 'pixel' or claims.visitors <= 1
             join named on named.id = r.cs_ref_id
             join clicks later on later.brand_id = $1 and later.visitor_id = named.visitor_id
             where not later.bot and later.occurred_at <= {at} and later.occurred_at > {at} - {window}
             order by r.source <> 'pixel' desc, later.occurred_at desc, later.id
             limit 1),
         promo as (
             select l.id as link_id
             from o
             join links l on l.brand_id = $1 and l.promo_code is not null
                 and lower(l.promo_code) = any(array(select lower(code) from unnest(o.discount_codes) code))
             where not exists (select 1 from clicked)
             order by l.active desc, l.created_at desc
             limit 1),
         credit as (
             select coalesce(clicked.link_id, promo.link_id) as link_id,
                    case when clicked.click_id is not null then 'click'
                         when promo.link_id is not null then 'promo_code' end as method,
                    clicked.click_id,
                    (select coalesce(sum(r.amount_minor), 0) from refunds r
                     where r.brand_id = $1 and r.order_id = $2 and r.currency = o.currency)::bigint as refunded,
                    o.verified_at is null and claims.visitors > 1 as disputed
             from o cross join claims left join clicked on true left join promo on true),
         judged as (
             select credit.*,
                    conversion_status(o.test, o.cancelled_at, o.verified_at, credit.disputed, o.confirm_by,
                                      o.status = 'unconfirmed' or o.confirm_by <= {now}) as status
             from credit cross join o)"
    )
}

/// A standing from the judged credit columns.
fn standing(link_id: Option<Uuid>, method: Option<String>, click_id: Option<Uuid>, status: &str) -> Standing {
    let credit = match (link_id, method.as_deref(), click_id) {
        (Some(link_id), Some("click"), Some(click_id)) => Credit::Click { link_id, click_id },
        (Some(link_id), Some("promo_code"), _) => Credit::PromoCode { link_id },
        _ => Credit::Nobody,
    };
    Standing { credit, status: Status::parse(status).unwrap_or(Status::Unverified) }
}

/// The credited link, method and click, and the status, as the credit statement returns them.
type CreditRow = (Option<Uuid>, Option<String>, Option<Uuid>, String);

/// Re-attributes, in bulk, the orders ingestion queued because they name clicks it newly stored (a
/// click can reach us after the purchase that followed it, when the edge's queue is slower than the
/// pixel). The queue is filled in the same statement that stores the clicks, so nothing is lost in a
/// crash, and drained here, off the path that acknowledges the batch. Returns how many orders were
/// re-attributed.
pub async fn reattribute_queued(db: &sqlx::PgPool, batch: i64) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let orders: Vec<(Uuid, String)> = sqlx::query_as(
        "delete from reattribution_queue q
         where (q.brand_id, q.order_id) in (
             select brand_id, order_id from reattribution_queue order by queued_at
             limit $1 for update skip locked)
         returning q.brand_id, q.order_id",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut orders = orders;
    // A fixed order, so two drainers never wait for each other's row locks in a cycle.
    orders.sort();
    let now = Utc::now();
    for (brand_id, order_id) in &orders {
        attribute(&mut tx, *brand_id, order_id, now).await?;
    }
    tx.commit().await?;
    Ok(orders.len())
}

/// Drains the re-attribution queue every `every` until `stop`: a named background task.
pub async fn run_reattribution(
    db: sqlx::PgPool,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        match reattribute_queued(&db, 500).await {
            // A full batch: there may be more right away.
            Ok(n) if n == 500 => {
                tracing::info!(orders = n, "orders re-attributed to newly stored clicks");
                continue;
            }
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "orders re-attributed to newly stored clicks"),
            Err(e) => tracing::warn!(error = %e, "re-attributing orders failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
