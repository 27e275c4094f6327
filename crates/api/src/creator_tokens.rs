//! Creator tokens: read-only bearer secrets a brand hands to a creator for `/v1/me`, which expire when
//! the brand says so and stop working the moment they are revoked.
//!
//! Only the token's SHA-256 is stored (see [`crate::secrets`]); its public prefix names it in lists and
//! revocations. Every request looks the token up, so a revocation takes effect at once, in every process.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::Code;

use crate::secrets::{self, NewSecret, SecretKind};

/// The longest a token may live: ten years.
pub const MAX_LIFETIME_DAYS: i64 = 3650;

/// Why a token request was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a creator of this brand (or no such token).
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    InvalidExpiry(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// When a new token expires: never, at a time, or after a number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry(Option<DateTime<Utc>>);

impl Expiry {
    pub const NEVER: Expiry = Expiry(None);

    /// `expires_at` or `expires_in_days` (not both), judged at `now`: in the future and at most
    /// [`MAX_LIFETIME_DAYS`] away.
    pub fn parse(
        expires_at: Option<DateTime<Utc>>,
        expires_in_days: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Self, TokenError> {
        let latest = now + chrono::Duration::days(MAX_LIFETIME_DAYS);
        match (expires_at, expires_in_days) {
            (None, None) => Ok(Expiry::NEVER),
            (Some(_), Some(_)) => Err(TokenError::InvalidExpiry("give expires_at or expires_in_days, not both".into())),
            (Some(at), None) if at > now && at <= latest => Ok(Expiry(Some(at))),
            (Some(_), None) => Err(TokenError::InvalidExpiry(format!(
                "expires_at must be in the future and at most {MAX_LIFETIME_DAYS} days away"
            ))),
            (None, Some(days)) if (1..=MAX_LIFETIME_DAYS).contains(&days) => {
                Ok(Expiry(Some(now + chrono::Duration::days(days))))
            }
            (None, Some(_)) => {
                Err(TokenError::InvalidExpiry(format!("expires_in_days must be from 1 to {MAX_LIFETIME_DAYS}")))
            }
        }
    }

    pub fn at(self) -> Option<DateTime<Utc>> {
        self.0
    }
}

/// A token as the brand sees it after creation: never the token itself.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct TokenInfo {
    /// The token's public prefix (`cst_<prefix>_…`): what names it here and in a revocation.
    #[schema(example = "k7m2p9qr")]
    pub prefix: String,
    pub creator_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// Null: it never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Null: not revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token: its text (shown once) and what is kept about it.
pub struct NewToken {
    pub token: String,
    pub info: TokenInfo,
}

/// Creates a token for a creator of the brand.
pub async fn create(db: &PgPool, brand_id: Uuid, creator_id: Uuid, expiry: Expiry) -> Result<NewToken, TokenError> {
    let token = NewSecret::generate(SecretKind::CreatorToken, &mut rand::thread_rng());
    let info: TokenInfo = sqlx::query_as(
        "insert into creator_tokens (id, creator_id, brand_id, prefix, token_hash, expires_at)
         select $1, id, brand_id, $4, $5, $6 from creators where id = $2 and brand_id = $3
         returning prefix, creator_id, created_at, expires_at, revoked_at",
    )
    .bind(Uuid::new_v4())
    .bind(creator_id)
    .bind(brand_id)
    .bind(&token.prefix)
    .bind(&token.hash)
    .bind(expiry.at())
    .fetch_optional(db)
    .await?
    .ok_or(TokenError::NotFound)?;
    Ok(NewToken { token: token.text, info })
}

/// One page of a creator's tokens, newest first: at most `limit` rows before the sequence number
/// `before_seq`. `NotFound` unless the creator is the brand's.
pub async fn list(
    db: &PgPool,
    brand_id: Uuid,
    creator_id: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, TokenInfo)>, TokenError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        seq: i64,
        #[sqlx(flatten)]
        info: TokenInfo,
    }
    creator_of(db, brand_id, creator_id).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "select seq, prefix, creator_id, created_at, expires_at, revoked_at from creator_tokens
         where creator_id = $1 and brand_id = $2 and ($3::bigint is null or seq < $3)
         order by seq desc limit $4",
    )
    .bind(creator_id)
    .bind(brand_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.info)).collect())
}

/// Revokes one of a creator's tokens by its prefix (`cst_<prefix>` is accepted too); revoking it again
/// changes nothing. `NotFound` unless the creator is the brand's and the token the creator's.
pub async fn revoke(db: &PgPool, brand_id: Uuid, creator_id: Uuid, prefix: &str) -> Result<(), TokenError> {
    // Prefixes are codes: anything else names no token (and may hold bytes the database refuses).
    let prefix = Code::parse(prefix.strip_prefix("cst_").unwrap_or(prefix)).map_err(|_| TokenError::NotFound)?;
    let found = sqlx::query(
        "update creator_tokens set revoked_at = coalesce(revoked_at, now())
         where prefix = $1 and creator_id = $2 and brand_id = $3",
    )
    .bind(prefix.as_str())
    .bind(creator_id)
    .bind(brand_id)
    .execute(db)
    .await?
    .rows_affected();
    if found == 0 {
        return Err(TokenError::NotFound);
    }
    Ok(())
}

/// Revokes every live token of a creator of the brand; returns how many were live.
pub async fn revoke_all(db: &PgPool, brand_id: Uuid, creator_id: Uuid) -> Result<u64, TokenError> {
    creator_of(db, brand_id, creator_id).await?;
    let revoked = sqlx::query(
        "update creator_tokens set revoked_at = now()
         where creator_id = $1 and brand_id = $2 and revoked_at is null",
    )
    .bind(creator_id)
    .bind(brand_id)
    .execute(db)
    .await?
    .rows_affected();
    Ok(revoked)
}

/// How many live (unrevoked, unexpired) tokens each creator of the brand has; creators with none are
/// left out.
pub async fn live_counts(db: &PgPool, brand_id: Uuid) -> Result<Vec<(Uuid, i64)>, TokenError> {
    Ok(sqlx::query_as(
        "select creator_id, count(*) from creator_tokens
         where brand_id = $1 and revoked_at is null and (expires_at is null or expires_at > now())
         group by creator_id",
    )
    .bind(brand_id)
    .fetch_all(db)
    .await?)
}

/// The creator a presented token acts for: it must be shaped like a creator token, match a stored hash
/// (compared in constant time), and be neither revoked nor expired.
pub async fn authenticate(db: &PgPool, presented: &str) -> Result<Option<Uuid>, sqlx::Error> {
    let Some(prefix) = secrets::prefix_of(SecretKind::CreatorToken, presented) else {
        return Ok(None);
    };
    let row: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
        "select creator_id, token_hash from creator_tokens
         where prefix = $1 and revoked_at is null and (expires_at is null or expires_at > now())",
    )
    .bind(prefix)
    .fetch_optional(db)
    .await?;
    Ok(row.filter(|(_, hash)| secrets::verify(presented, hash)).map(|(creator_id, _)| creator_id))
}

/// `NotFound` unless the creator is the brand's.
async fn creator_of(db: &PgPool, brand_id: Uuid, creator_id: Uuid) -> Result<(), TokenError> {
    let exists: bool = sqlx::query_scalar("select exists (select 1 from creators where id = $1 and brand_id = $2)")
        .bind(creator_id)
        .bind(brand_id)
        .fetch_one(db)
        .await?;
    if exists {
        Ok(())
    } else {
        Err(TokenError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_a_time_or_a_number_of_days_within_ten_years() {
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        assert_eq!(Expiry::parse(None, None, now).unwrap(), Expiry::NEVER);
        let in_a_week = Expiry::parse(None, Some(7), now).unwrap();
        assert_eq!(in_a_week.at(), Some("2026-12-08T12:00:00Z".parse().unwrap()));
        let at: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Expiry::parse(Some(at), None, now).unwrap().at(), Some(at));
        assert!(Expiry::parse(Some(now + chrono::Duration::days(MAX_LIFETIME_DAYS)), None, now).is_ok());
        for (at, days) in [
            (Some(now), None),
            (Some(now - chrono::Duration::seconds(1)), None),
            (Some(now + chrono::Duration::days(MAX_LIFETIME_DAYS) + chrono::Duration::seconds(1)), None),
            (None, Some(0)),
            (None, Some(-1)),
            (None, Some(MAX_LIFETIME_DAYS + 1)),
            (Some(at), Some(7)),
        ] {
            assert!(matches!(Expiry::parse(at, days, now), Err(TokenError::InvalidExpiry(_))), "{at:?} {days:?}");
        }
    }
}
