//! Pixel ids and the brands they belong to, and the events the pixel reports.
//!
//! The pixel endpoint is public, so its ids arrive from anyone: an id is checked for the shape
//! `api brand create` gives it before anything else, and resolved through a bounded cache that remembers
//! unknown ids as well as known ones, so that any id, known or not, costs at most one query per
//! [`PIXEL_CACHE_TTL`] whatever the number of requests naming it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::OnceCell;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::{CODE_ALPHABET, CODE_LEN};

use crate::attribution::{self, Judged, OrderReport, Source};
use crate::money::Money;

/// How long an answer (a brand, or "no such pixel") is remembered.
pub const PIXEL_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// How many pixel ids are remembered at most.
pub const PIXEL_CACHE_CAPACITY: u64 = 50_000;

const PREFIX: &[u8] = b"px_";
const LEN: usize = PREFIX.len() + 2 * CODE_LEN;

/// A brand's public pixel id as `api brand create` makes it (`secrets::generate_pixel_id`): `px_` and
/// 16 lowercase code characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelId([u8; LEN]);

impl PixelId {
    /// `None` for anything not shaped like a pixel id.
    pub fn parse(input: &str) -> Option<Self> {
        let bytes: [u8; LEN] = input.as_bytes().try_into().ok()?;
        let shaped = bytes.starts_with(PREFIX) && bytes[PREFIX.len()..].iter().all(|b| CODE_ALPHABET.contains(b));
        shaped.then_some(PixelId(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for PixelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PixelId({})", self.as_str())
    }
}

/// What a pixel id resolves to, remembered: `Some(brand)` or `None` for an id no brand has.
type Answer = Arc<OnceCell<Option<Uuid>>>;

/// The brands of pixel ids, cached. Concurrent requests for an id nobody has looked up yet share one
/// query; a query that fails is not remembered.
pub struct PixelDirectory {
    answers: moka::sync::Cache<PixelId, Answer>,
    lookups: AtomicU64,
}

impl Default for PixelDirectory {
    fn default() -> Self {
        PixelDirectory {
            answers: moka::sync::Cache::builder()
                .max_capacity(PIXEL_CACHE_CAPACITY)
                .time_to_live(PIXEL_CACHE_TTL)
                .build(),
            lookups: AtomicU64::new(0),
        }
    }
}

impl PixelDirectory {
    /// The remembered answer for this id, if there is one: the hot path, with no query.
    pub fn cached(&self, id: &PixelId) -> Option<Option<Uuid>> {
        self.answers.get(id)?.get().copied()
    }

    /// The brand of this id (`None`: no brand has it), from the cache or from one query.
    pub async fn brand_of(&self, db: &PgPool, id: &PixelId) -> Result<Option<Uuid>, sqlx::Error> {
        let answer = self.answers.get_with_by_ref(id, Answer::default);
        let brand = answer
            .get_or_try_init(|| async {
                self.lookups.fetch_add(1, Ordering::Relaxed);
                sqlx::query_scalar("select id from brands where pixel_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(db)
                    .await
            })
            .await?;
        Ok(*brand)
    }

    /// How many queries this directory has made since it was created.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// How many ids are remembered (after pending evictions and expiries are applied).
    pub fn remembered(&self) -> u64 {
        self.answers.run_pending_tasks();
        self.answers.entry_count()
    }
}

/// Event names the pixel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    PageView,
    AddToCart,
    BeginCheckout,
    Purchase,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::PageView => "page_view",
            EventName::AddToCart => "add_to_cart",
            EventName::BeginCheckout => "begin_checkout",
            EventName::Purchase => "purchase",
        }
    }
}

/// A validated event.
#[derive(Debug)]
pub struct Valid {
    pub event: EventName,
    pub cs_ref: Option<Uuid>,
    pub order_id: Option<String>,
    pub amount: Option<Money>,
    /// The page's origin and path.
    pub url: Option<String>,
}

/// Stores a validated event of `brand_id`, received at `judged.now`, and returns its id. A purchase is stored
/// with its order's attribution, all or nothing; anything else is one row: one statement, its own implicit
/// transaction, one round trip.
pub async fn record(db: &PgPool, brand_id: Uuid, event: &Valid, judged: Judged) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    let insert = sqlx::query(
        "insert into pixel_events (id, brand_id, event, cs_ref_id, order_id, value_minor, currency, url, received_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(brand_id)
    .bind(event.event.as_str())
    .bind(event.cs_ref)
    .bind(&event.order_id)
    .bind(event.amount.as_ref().map(|m| m.amount_minor))
    .bind(event.amount.as_ref().map(|m| m.currency.as_str()))
    .bind(&event.url)
    .bind(judged.now);
    match (event.event, &event.order_id, &event.amount) {
        (EventName::Purchase, Some(order_id), Some(amount)) => {
            let mut tx = attribution::begin_for_order(db, brand_id, order_id).await?;
            insert.execute(&mut *tx).await?;
            let report = OrderReport {
                brand_id,
                order_id: order_id.clone(),
                amount: amount.clone(),
                occurred_at: judged.now,
                source: Source::Pixel,
                refs: event.cs_ref.into_iter().collect(),
                discount_codes: Vec::new(),
                cancelled_at: None,
                test: false,
            };
            attribution::record_order(&mut tx, &report, judged).await?;
            tx.commit().await?;
        }
        _ => {
            insert.execute(db).await?;
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pixel_ids_parse_and_nothing_else_does() {
        for _ in 0..1_000 {
            let id = crate::secrets::generate_pixel_id(&mut rand::thread_rng());
            assert_eq!(PixelId::parse(&id).map(|p| p.as_str().to_owned()), Some(id));
        }
        for bad in [
            "",
            "px_",
            "px_nope",
            "px_abcdefghjkmnpqrs7",
            "PX_abcdefghjkmnpqrs",
            "px_ABCDEFGHJKMNPQRS",
            "px_abcdefghjkmnpqr0",
            "py_abcdefghjkmnpqrs",
            "px_abcdefghjkmnpqré",
            "px_abcdefghjkmnpqr",
        ] {
            assert!(PixelId::parse(bad).is_none(), "{bad}");
        }
        assert!(PixelId::parse(&"x".repeat(60_000)).is_none());
    }
}
