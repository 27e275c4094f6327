//! Creators' accounts for the portal (`/creator`): brands invite their creators, a person signs up (or
//! signs in) through the invitation, and the brand's creator record is linked to that account.
//!
//! - An invitation is a one-time link valid [`INVITATION_LIFETIME`]: 256 random bits in the URL, only
//!   their SHA-256 stored (looked up by hash, so no comparison leaks timing). Accepting one uses up
//!   every open invitation of that creator record.
//! - One account may be linked to creator records of several brands, at most one per brand. A brand
//!   unlinks its record whenever it wants: the portal stops showing that brand at the next request, and
//!   the record's open invitations are withdrawn.
//! - Passwords are the dashboard's: argon2id, at least [`crate::users::MIN_PASSWORD_CHARS`] characters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Config;
use crate::secrets;
use crate::users::{Email, MIN_PASSWORD_CHARS};

/// How long an invitation link stays valid.
pub const INVITATION_LIFETIME: Duration = Duration::days(7);

/// Why an account or invitation request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not a creator of this brand.
    #[error("not found")]
    NotFound,
    /// The creator record is already linked to an account (the brand unlinks it before inviting again).
    #[error("this creator has already joined: unlink the account before inviting again")]
    AlreadyJoined,
    /// The account is already linked to another creator record of the invitation's brand.
    #[error("your account already follows another creator at this brand")]
    OtherCreatorOfBrand,
    /// The invitation is unknown, used, withdrawn or expired.
    #[error("this invitation link is not valid any more: ask the brand for a new one")]
    InvitationUnusable,
    #[error("{0}")]
    InvalidEmail(&'static str),
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("an account with this email already exists: sign in instead")]
    EmailTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A new invitation: its link (shown once) and when it stops working.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// An invitation token: 43 URL-safe base64 characters (256 bits).
fn plausible_token(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Creates an invitation for a creator of the brand who has not joined yet.
pub async fn invite(
    db: &PgPool,
    config: &Config,
    brand_id: Uuid,
    creator_id: Uuid,
) -> Result<Invitation, AccountError> {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let expires_at = Utc::now() + INVITATION_LIFETIME;
    let mut tx = db.begin().await?;
    let joined: Option<bool> =
        sqlx::query_scalar("select account_id is not null from creators where id = $1 and brand_id = $2 for update")
            .bind(creator_id)
            .bind(brand_id)
            .fetch_optional(&mut *tx)
            .await?;
    match joined {
        None => return Err(AccountError::NotFound),
        Some(true) => return Err(AccountError::AlreadyJoined),
        Some(false) => {}
    }
    sqlx::query(
        "insert into creator_invitations (token_hash, brand_id, creator_id, expires_at) values ($1, $2, $3, $4)",
    )
    .bind(&secrets::hash(&token)[..])
    .bind(brand_id)
    .bind(creator_id)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let url = format!("{}/creator/invitations/{token}", config.public_base_url.as_str().trim_end_matches('/'));
    Ok(Invitation { url, expires_at })
}

/// What an invitation page shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationInfo {
    pub brand_id: Uuid,
    pub brand_name: String,
    pub creator_id: Uuid,
    pub creator_name: String,
    pub handle: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The open invitation a token names: `None` when unknown, used, withdrawn or expired.
pub async fn invitation(db: &PgPool, token: &str) -> Result<Option<InvitationInfo>, sqlx::Error> {
    if !plausible_token(token) {
        return Ok(None);
    }
    sqlx::query_as(
        "select i.brand_id, b.name as brand_name, i.creator_id, c.name as creator_name, c.handle, i.expires_at
         from creator_invitations i
         join creators c on c.id = i.creator_id and c.brand_id = i.brand_id
         join brands b on b.id = i.brand_id
         where i.token_hash = $1 and i.used_at is null and i.expires_at > now()",
    )
    .bind(&secrets::hash(token)[..])
    .fetch_optional(db)
    .await
}

/// Accepts an invitation for an account: the creator record is linked to it, and every open invitation
/// of that record is used up. Returns the brand whose record it is.
pub async fn accept(db: &PgPool, token: &str, account_id: Uuid) -> Result<Uuid, AccountError> {
    if !plausible_token(token) {
        return Err(AccountError::InvitationUnusable);
    }
    let mut tx = db.begin().await?;
    let found: Option<(Uuid, Uuid)> = sqlx::query_as(
        "select brand_id, creator_id from creator_invitations
         where token_hash = $1 and used_at is null and expires_at > now() for update",
    )
    .bind(&secrets::hash(token)[..])
    .fetch_optional(&mut *tx)
    .await?;
    let (brand_id, creator_id) = found.ok_or(AccountError::InvitationUnusable)?;
    let other: bool = sqlx::query_scalar(
        "select exists (select 1 from creators where brand_id = $1 and account_id = $2 and id <> $3)",
    )
    .bind(brand_id)
    .bind(account_id)
    .bind(creator_id)
    .fetch_one(&mut *tx)
    .await?;
    if other {
        return Err(AccountError::OtherCreatorOfBrand);
    }
    let linked = sqlx::query(
        "update creators set account_id = $3, joined_at = coalesce(joined_at, now())
         where id = $1 and brand_id = $2 and (account_id is null or account_id = $3)",
    )
    .bind(creator_id)
    .bind(brand_id)
    .bind(account_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if linked == 0 {
        return Err(AccountError::AlreadyJoined);
    }
    sqlx::query(
        "update creator_invitations set used_at = now(), account_id = $3
         where brand_id = $1 and creator_id = $2 and used_at is null",
    )
    .bind(brand_id)
    .bind(creator_id)
    .bind(account_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(brand_id)
}

/// Unlinks the brand's creator record from its account (the portal stops showing the brand at once) and
/// withdraws its open invitations. Unlinking a record that has no account changes nothing.
pub async fn unlink(db: &PgPool, brand_id: Uuid, creator_id: Uuid) -> Result<(), AccountError> {
    let mut tx = db.begin().await?;
    let found = sqlx::query("update creators set account_id = null, joined_at = null where id = $1 and brand_id = $2")
        .bind(creator_id)
        .bind(brand_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if found == 0 {
        return Err(AccountError::NotFound);
    }
    sqlx::query(
        "update creator_invitations set used_at = now() where brand_id = $1 and creator_id = $2 and used_at is null",
    )
    .bind(brand_id)
    .bind(creator_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Checks a new account's email and password before any hashing.
pub fn check_new_account(email: &str, password: &str) -> Result<Email, AccountError> {
    let email = Email::parse(email).map_err(AccountError::InvalidEmail)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::ShortPassword);
    }
    Ok(email)
}

/// Stores a new account (its password already hashed, see [`crate::users::hash_password`]).
pub async fn create_account(db: &PgPool, email: &Email, password_hash: &str) -> Result<Uuid, AccountError> {
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "insert into creator_accounts (id, email, password_hash) values ($1, $2, $3)
         on conflict on constraint creator_accounts_email_key do nothing",
    )
    .bind(id)
    .bind(email.as_str())
    .bind(password_hash)
    .execute(db)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AccountError::EmailTaken);
    }
    Ok(id)
}

/// The id and password hash of the account with this email.
pub async fn credentials(db: &PgPool, email: &Email) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("select id, password_hash from creator_accounts where email = $1")
        .bind(email.as_str())
        .fetch_optional(db)
        .await
}

/// A brand's creator record linked to an account: what the portal shows of that brand.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Membership {
    pub brand_id: Uuid,
    pub brand_name: String,
    pub creator_id: Uuid,
    pub creator_name: String,
    pub handle: Option<String>,
    pub joined_at: DateTime<Utc>,
}

const MEMBERSHIP: &str =
    "select c.brand_id, b.name as brand_name, c.id as creator_id, c.name as creator_name, c.handle,
            c.joined_at
     from creators c join brands b on b.id = c.brand_id
     where c.account_id = $1 and c.joined_at is not null";

/// Every brand the account follows a creator record of, by brand name.
pub async fn memberships(db: &PgPool, account_id: Uuid) -> Result<Vec<Membership>, sqlx::Error> {
    sqlx::query_as(&format!("{MEMBERSHIP} order by b.name, c.brand_id")).bind(account_id).fetch_all(db).await
}

/// The account's creator record at this brand, if the brand has one linked to it.
pub async fn membership(db: &PgPool, account_id: Uuid, brand_id: Uuid) -> Result<Option<Membership>, sqlx::Error> {
    sqlx::query_as(&format!("{MEMBERSHIP} and c.brand_id = $2"))
        .bind(account_id)
        .bind(brand_id)
        .fetch_optional(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters() {
        assert!(plausible_token(&URL_SAFE_NO_PAD.encode([7u8; 32])));
        for bad in ["", "short", &"a".repeat(44), &format!("{}!", "a".repeat(42)), &format!("{}é", "a".repeat(41))] {
            assert!(!plausible_token(bad), "{bad}");
        }
    }

    #[test]
    fn a_new_account_needs_an_address_and_a_long_password() {
        assert_eq!(
            check_new_account(" Jess@Example.com", "correct horse battery").unwrap().as_str(),
            "jess@example.com"
        );
        assert!(matches!(check_new_account("jess", "correct horse battery"), Err(AccountError::InvalidEmail(_))));
        assert!(matches!(check_new_account("jess@example.com", "short"), Err(AccountError::ShortPassword)));
    }
}
