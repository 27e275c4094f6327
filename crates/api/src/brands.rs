//! Brands and their API keys, managed from the command line (`api brand create`, `api key ...`), and the
//! check of a presented key.
//!
//! A process remembers the keys it has verified ([`KeyCache`]), so that a request's key costs no query:
//! a revoked or deleted key is forgotten by every process when the change commits (a trigger notifies
//! the `api_keys_changed` channel, [`run_key_listener`] listens to it), and while a process is not
//! listening, it remembers nothing and asks the database every time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::secrets::{self, NewSecret, SecretKind};

pub struct CreatedBrand {
    pub brand_id: Uuid,
    pub api_key: String,
    pub pixel_id: String,
}

pub async fn create_brand(db: &PgPool, name: &str) -> anyhow::Result<CreatedBrand> {
    let name = crate::domain::Name::parse(name, 200).map_err(|e| anyhow::anyhow!("brand name {e}"))?;
    let brand_id = Uuid::new_v4();
    let (pixel_id, key) = {
        let mut rng = rand::thread_rng();
        (secrets::generate_pixel_id(&mut rng), NewSecret::generate(SecretKind::ApiKey, &mut rng))
    };
    let mut tx = db.begin().await?;
    sqlx::query("insert into brands (id, name, pixel_id) values ($1, $2, $3)")
        .bind(brand_id)
        .bind(name.to_string())
        .bind(&pixel_id)
        .execute(&mut *tx)
        .await?;
    insert_key(&mut tx, brand_id, &key).await?;
    tx.commit().await?;
    Ok(CreatedBrand { brand_id, api_key: key.text, pixel_id })
}

/// Adds an API key to a brand and returns its text (the only time it is visible).
pub async fn create_key(db: &PgPool, brand_id: Uuid) -> anyhow::Result<String> {
    let key = NewSecret::generate(SecretKind::ApiKey, &mut rand::thread_rng());
    let mut tx = db.begin().await?;
    let exists: bool = sqlx::query_scalar("select exists (select 1 from brands where id = $1)")
        .bind(brand_id)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        bail!("no brand with id {brand_id}");
    }
    insert_key(&mut tx, brand_id, &key).await?;
    tx.commit().await?;
    Ok(key.text)
}

async fn insert_key(tx: &mut sqlx::PgConnection, brand_id: Uuid, key: &NewSecret) -> anyhow::Result<()> {
    sqlx::query("insert into api_keys (id, brand_id, prefix, key_hash) values ($1, $2, $3, $4)")
        .bind(Uuid::new_v4())
        .bind(brand_id)
        .bind(&key.prefix)
        .bind(&key.hash)
        .execute(tx)
        .await
        .context("storing the API key")?;
    Ok(())
}

/// Revokes the key with this prefix; revoking an already revoked key is not an error.
pub async fn revoke_key(db: &PgPool, prefix: &str) -> anyhow::Result<()> {
    let Some(prefix) = secrets::revocation_prefix(prefix) else {
        bail!("{prefix:?} is not a key prefix (expected csk_ and 8 characters)");
    };
    let found = sqlx::query("update api_keys set revoked_at = coalesce(revoked_at, now()) where prefix = $1")
        .bind(&prefix)
        .execute(db)
        .await?
        .rows_affected();
    if found == 0 {
        bail!("no API key with prefix {prefix}");
    }
    Ok(())
}

/// The brand whose unrevoked API key `presented` is (a whole `csk_…` key, compared in constant time);
/// `None` for anything else. A key this process verified before is checked against its remembered hash
/// (`keys`), without a query; only unrevoked keys are remembered, never an unknown prefix.
pub async fn authenticate(db: &PgPool, keys: &KeyCache, presented: &str) -> Result<Option<Uuid>, sqlx::Error> {
    let Some(prefix) = secrets::prefix_of(SecretKind::ApiKey, presented) else {
        return Ok(None);
    };
    let key = match keys.get(prefix) {
        Some(key) => Some(key),
        None => {
            let ticket = keys.ticket();
            let row: Option<(Uuid, Vec<u8>)> =
                sqlx::query_as("select brand_id, key_hash from api_keys where prefix = $1 and revoked_at is null")
                    .bind(prefix)
                    .fetch_optional(db)
                    .await?;
            let key = row.map(|(brand_id, hash)| KnownKey { brand_id, hash: hash.into() });
            if let (Some(key), Some(ticket)) = (&key, ticket) {
                keys.remember(prefix, key.clone(), ticket);
            }
            key
        }
    };
    Ok(key.and_then(|key| secrets::verify(presented, &key.hash).then_some(key.brand_id)))
}

/// How many keys a process remembers at most.
pub const KEY_CACHE_CAPACITY: u64 = 10_000;
/// How long a key is remembered at most: a bound on what a lost notice could cost, should one ever be
/// lost without the listener noticing (a connection cut without a word, until TCP gives up on it).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// The channel a key's revocation or deletion is announced on (migration 0023), with the key's prefix.
pub const KEYS_CHANNEL: &str = "api_keys_changed";

/// An unrevoked key as the database stored it: its brand and its hash.
#[derive(Clone)]
struct KnownKey {
    brand_id: Uuid,
    hash: Arc<[u8]>,
}

/// The API keys this process verified, by prefix. Used only while [`run_key_listener`] is subscribed
/// to the changes of keys; before that, and from the moment its connection fails until it is subscribed
/// again, nothing is remembered and every request's key is read from the database.
///
/// A key read from the database just as it is revoked must not be remembered after the notice of its
/// revocation was handled: every notice (and every loss of the subscription) advances a generation, and
/// a key is remembered only if the generation is the one from before its read ([`KeyCache::ticket`]).
#[derive(Clone)]
pub struct KeyCache(Arc<KeyCacheInner>);

struct KeyCacheInner {
    keys: moka::sync::Cache<String, KnownKey>,
    generation: AtomicU64,
    listening: AtomicBool,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache(Arc::new(KeyCacheInner {
            keys: moka::sync::Cache::builder().max_capacity(KEY_CACHE_CAPACITY).time_to_live(KEY_CACHE_TTL).build(),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        }))
    }
}

impl KeyCache {
    fn get(&self, prefix: &str) -> Option<KnownKey> {
        if !self.0.listening.load(Ordering::Acquire) {
            return None;
        }
        self.0.keys.get(prefix)
    }

    /// Taken before a key is read from the database: `None` while nothing may be remembered.
    fn ticket(&self) -> Option<u64> {
        let generation = self.0.generation.load(Ordering::Acquire);
        self.0.listening.load(Ordering::Acquire).then_some(generation)
    }

    /// Remembers a key read with `ticket`, unless a notice or a lost subscription came since. Checked
    /// again after the insert: a notice handled between the check and the insert removes the key here,
    /// one handled after it removes the key itself.
    fn remember(&self, prefix: &str, key: KnownKey, ticket: u64) {
        if !self.current(ticket) {
            return;
        }
        self.0.keys.insert(prefix.to_owned(), key);
        if !self.current(ticket) {
            self.0.keys.invalidate(prefix);
        }
    }

    fn current(&self, ticket: u64) -> bool {
        self.0.listening.load(Ordering::Acquire) && self.0.generation.load(Ordering::Acquire) == ticket
    }

    /// A notice: the key with this prefix changed.
    fn forget(&self, prefix: &str) {
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        self.0.keys.invalidate(prefix);
    }

    /// The subscription is lost (or not made yet): nothing is remembered until it is made again.
    fn stop_listening(&self) {
        self.0.listening.store(false, Ordering::Release);
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        self.0.keys.invalidate_all();
    }

    /// Subscribed: every change of a key from now on is noticed.
    fn start_listening(&self) {
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        self.0.listening.store(true, Ordering::Release);
    }

    /// Whether keys are remembered now (the listener is subscribed).
    pub fn listening(&self) -> bool {
        self.0.listening.load(Ordering::Acquire)
    }

    /// How many notices and losses of the subscription there were: it advances when a change is noticed.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }
}

/// Keeps `keys` subscribed to the changes of API keys until `stop`: a named task that every process
/// answering requests runs, on a connection of its own (not one of `db`'s: a listener keeps its
/// connection). When that connection fails, the process forgets every key and asks the database for each
/// one until it is subscribed again (a second later, and then every second).
pub async fn run_key_listener(db: PgPool, keys: KeyCache, mut stop: watch::Receiver<bool>) {
    let own = PgPoolOptions::new().max_connections(1).connect_lazy_with((*db.connect_options()).clone());
    while !*stop.borrow() {
        let lost = listen(&own, &keys, &mut stop).await;
        keys.stop_listening();
        match lost {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "not subscribed to API key changes; every key is read from the database")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Subscribes and forgets every key whose change is announced, until `stop` (`Ok`) or until the
/// connection fails.
async fn listen(db: &PgPool, keys: &KeyCache, stop: &mut watch::Receiver<bool>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen(KEYS_CHANNEL).await?;
    keys.start_listening();
    tracing::info!(channel = KEYS_CHANNEL, "subscribed to API key changes: verified keys are remembered");
    loop {
        tokio::select! {
            notice = listener.try_recv() => match notice? {
                Some(notice) => keys.forget(notice.payload()),
                None => return Err(sqlx::Error::Protocol("the connection was lost".into())),
            },
            _ = stop.changed() => return Ok(()),
        }
    }
}
