//! Who a shop's webhooks belong to: brands' claims on shop domains, proven by the deliveries they verify.
//!
//! A brand claims a domain with the secret it says the shop signs with (`PUT /v1/integrations/shopify`).
//! Several brands may claim one domain; a claim is `pending` until a delivery signed with its secret
//! verifies, and the claim that verifies owns the domain (`active`). The answer to a claim depends only on
//! the claiming brand's own claim, so it tells nobody what other brands hold.
//!
//! A delivery proves that its sender knew the claim's secret, not that Shopify sent it (Shopify signs
//! the body only, and a claimant knows its own secret). So a proof never locks another claim out:
//! - when a claim proves itself, the claims that never proved anything end (their secrets did not sign
//!   this shop's delivery), and the owner it displaces, if any, goes back to `pending` and keeps its
//!   claim: a delivery signed with its secret makes it the owner again;
//! - every delivery is credited to the claim whose secret verified it, and to no other brand, so a
//!   claimant signing deliveries with a secret it made up only ever reports orders to itself.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{verify_signature, ShopDomain, WebhookSecret};

/// Pending claims tried per delivery, besides the owner's: the most recently made ones. Bounds the HMAC
/// work one delivery can cost, whatever number of brands claim its domain.
pub const MAX_CLAIMS_TRIED: i64 = 10;

/// Where a brand's claim on a shop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ShopStatus {
    /// Waiting for a delivery signed with this claim's secret.
    Pending,
    /// A delivery signed with this claim's secret verified: the brand owns the shop.
    Active,
}

/// A brand's shop, as the brand sees it. Its secret is never shown.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Shop {
    /// Lowercase host name.
    pub shop_domain: String,
    /// `pending` until a delivery signed with this connection's secret verifies, then `active`.
    pub status: ShopStatus,
    pub connected_at: DateTime<Utc>,
    /// When a delivery signed with this brand's secret last made it the shop's owner; null until then.
    pub verified_at: Option<DateTime<Utc>>,
}

/// Claims the shop for the brand with this secret, or replaces the brand's secret. A claim with a new
/// secret is pending until that secret verifies a delivery; the same secret again changes nothing.
/// Whatever other brands hold, the answer depends only on this brand's claim.
pub async fn connect(
    db: &PgPool,
    cache: &ShopCache,
    brand_id: Uuid,
    shop: &ShopDomain,
    secret: &WebhookSecret,
) -> Result<Shop, sqlx::Error> {
    let connected = sqlx::query_as(
        "insert into shopify_shops (shop_domain, brand_id, webhook_secret) values ($1, $2, $3)
         on conflict (shop_domain, brand_id) do update
             set webhook_secret = excluded.webhook_secret, updated_at = now(),
                 status = case when shopify_shops.webhook_secret = excluded.webhook_secret
                               then shopify_shops.status else 'pending' end
         returning shop_domain, status, connected_at, verified_at",
    )
    .bind(shop.as_str())
    .bind(brand_id)
    .bind(secret.expose())
    .fetch_one(db)
    .await?;
    cache.invalidate(shop);
    Ok(connected)
}

/// One page of the brand's shops, newest first: rows of `limit` (fetch one more to know about a next
/// page) before the sequence number `before_seq`.
pub async fn list(
    db: &PgPool,
    brand_id: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Shop)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        seq: i64,
        #[sqlx(flatten)]
        shop: Shop,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select seq, shop_domain, status, connected_at, verified_at from shopify_shops
         where brand_id = $1 and ($2::bigint is null or seq < $2)
         order by seq desc limit $3",
    )
    .bind(brand_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.shop)).collect())
}

/// Ends the brand's claim on the shop; false when it had none. Other brands' claims stay as they are.
pub async fn disconnect(
    db: &PgPool,
    cache: &ShopCache,
    brand_id: Uuid,
    shop: &ShopDomain,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("delete from shopify_shops where shop_domain = $1 and brand_id = $2")
        .bind(shop.as_str())
        .bind(brand_id)
        .execute(db)
        .await?
        .rows_affected();
    cache.invalidate(shop);
    Ok(deleted > 0)
}

/// One brand's claim, as verification needs it.
pub struct Claim {
    pub brand_id: Uuid,
    secret: String,
    active: bool,
}

/// Every claim on a domain that a delivery is tried against: the owner's first, then the most recent
/// pending ones. None at all for a domain nobody claims.
#[derive(Default)]
pub struct Claims(Vec<Claim>);

/// The key an unclaimed domain's deliveries are verified with: the same work as for a claimed one, so
/// timing does not tell claimed domains from others.
const NOBODY: &[u8] = b"a shop domain no brand has claimed";

/// Verifications that hash more than this (body size times claims tried) run on the blocking pool, so
/// that a large order tried against many claims never stalls the threads serving other requests.
const INLINE_VERIFY_BYTES: usize = 256 * 1024;

impl Claims {
    /// The index of the claim whose secret signed `body` (`signature` is the `X-Shopify-Hmac-Sha256`
    /// header), each compared in constant time.
    fn verify(&self, body: &[u8], signature: &str) -> Option<usize> {
        if self.0.is_empty() {
            std::hint::black_box(verify_signature(NOBODY, body, signature));
            return None;
        }
        self.0.iter().position(|claim| verify_signature(claim.secret.as_bytes(), body, signature))
    }
}

/// Claims by domain, kept for a minute, so that a delivery needs no query before its transaction.
/// Domains nobody claims are kept too (with no claims): a stream of deliveries for an unclaimed shop
/// costs no query after the first, and takes as long as one for a claimed shop. A change made through
/// this process takes effect at once (the entry is dropped); through another API process, within the
/// minute.
pub type ShopCache = Arc<moka::sync::Cache<ShopDomain, Arc<Claims>>>;

pub fn shop_cache() -> ShopCache {
    Arc::new(moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build())
}

/// The claims on a domain, from the cache or the database.
pub async fn claims(db: &PgPool, cache: &ShopCache, shop: &ShopDomain) -> Result<Arc<Claims>, sqlx::Error> {
    if let Some(known) = cache.get(shop) {
        return Ok(known);
    }
    let rows: Vec<(Uuid, String, bool)> = sqlx::query_as(
        "select brand_id, webhook_secret, status = 'active' from (
             (select brand_id, webhook_secret, status, updated_at from shopify_shops
              where shop_domain = $1 and status = 'active')
             union all
             (select brand_id, webhook_secret, status, updated_at from shopify_shops
              where shop_domain = $1 and status = 'pending' order by updated_at desc limit $2)
         ) claims order by status = 'active' desc, updated_at desc",
    )
    .bind(shop.as_str())
    .bind(MAX_CLAIMS_TRIED)
    .fetch_all(db)
    .await?;
    let claims = Arc::new(Claims(
        rows.into_iter().map(|(brand_id, secret, active)| Claim { brand_id, secret, active }).collect(),
    ));
    cache.insert(shop.clone(), Arc::clone(&claims));
    Ok(claims)
}

/// The brand whose claim signed this delivery, after making it the owner if it was pending; `None` when
/// no claim's secret verifies it.
pub async fn authenticate(
    db: &PgPool,
    cache: &ShopCache,
    shop: &ShopDomain,
    claims: &Arc<Claims>,
    body: &[u8],
    signature: &str,
) -> anyhow::Result<Option<Uuid>> {
    let verified = if body.len().saturating_mul(claims.0.len().max(1)) <= INLINE_VERIFY_BYTES {
        claims.verify(body, signature)
    } else {
        let (claims, body, signature) = (Arc::clone(claims), body.to_vec(), signature.to_owned());
        tokio::task::spawn_blocking(move || claims.verify(&body, &signature)).await?
    };
    let Some(claim) = verified.and_then(|i| claims.0.get(i)) else {
        return Ok(None);
    };
    if claim.active {
        return Ok(Some(claim.brand_id));
    }
    let proven = prove(db, shop, claim).await?;
    cache.invalidate(shop);
    Ok(proven.then_some(claim.brand_id))
}

/// Makes a claim whose secret just verified a delivery the domain's owner: the claims that never proved
/// anything end, and a displaced owner goes back to pending. False when the claim has changed since it
/// was read (its secret replaced, or it was disconnected): the delivery then proves nothing.
async fn prove(db: &PgPool, shop: &ShopDomain, claim: &Claim) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    // Every claim on the domain, locked in one order, so concurrent proofs take turns.
    let rows: Vec<(Uuid, bool, bool)> = sqlx::query_as(
        "select brand_id, webhook_secret = $2, status = 'active' from shopify_shops where shop_domain = $1
         order by brand_id for update",
    )
    .bind(shop.as_str())
    .bind(&claim.secret)
    .fetch_all(&mut *tx)
    .await?;
    let Some(&(_, same_secret, already_active)) = rows.iter().find(|(brand, ..)| *brand == claim.brand_id) else {
        tx.rollback().await?;
        return Ok(false);
    };
    if !same_secret {
        tx.rollback().await?;
        return Ok(false);
    }
    if already_active {
        tx.commit().await?;
        return Ok(true);
    }
    let displaced = rows.iter().find(|(brand, _, active)| *active && *brand != claim.brand_id).map(|r| r.0);
    let ended = sqlx::query(
        "delete from shopify_shops where shop_domain = $1 and brand_id <> $2 and status = 'pending'
             and verified_at is null",
    )
    .bind(shop.as_str())
    .bind(claim.brand_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("update shopify_shops set status = 'pending' where shop_domain = $1 and status = 'active'")
        .bind(shop.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update shopify_shops set status = 'active', verified_at = now() where shop_domain = $1 and brand_id = $2",
    )
    .bind(shop.as_str())
    .bind(claim.brand_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    match displaced {
        // Shops change hands rarely; a claimant signing its own deliveries does this too, so it is logged.
        Some(previous) => tracing::warn!(shop = %shop, owner = %claim.brand_id, %previous, ended,
            "a Shopify shop's owner was displaced by another brand's proven claim"),
        None => tracing::info!(shop = %shop, owner = %claim.brand_id, ended, "a Shopify shop claim was proven"),
    }
    Ok(true)
}
