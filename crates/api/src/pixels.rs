//! Pixel ids and the brands they belong to.
//!
//! The pixel endpoint is public, so its ids arrive from anyone: an id is checked for the shape
//! `api brand create` gives it before anything else, and resolved through a bounded cache that remembers
//! unknown ids as well as known ones, so that any id, known or not, costs at most one query per
//! [`PIXEL_CACHE_TTL`] whatever the number of requests naming it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::OnceCell;
use uuid::Uuid;

use shared::{CODE_ALPHABET, CODE_LEN};

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
