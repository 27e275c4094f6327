//! A brand's people, who sign in to the dashboard: managed from the command line (`api user create`,
//! `list`, `disable`, `enable`, `reset-password`), with passwords hashed by argon2id. Disabling a user or
//! resetting its password ends its sessions at once, and a disabled user's sessions are refused however
//! they were made.

use std::sync::OnceLock;

use anyhow::{bail, Context};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Shortest password accepted from an operator (generated ones are 22 random characters).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// An email address as people sign in with it: trimmed, lowercased, one `@` with text on both sides,
/// no spaces or control characters, at most 254 characters. Not a full RFC 5322 parser: it only has to
/// tell a typo from an address, and the same normalisation applies at creation and at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let email = input.trim().to_lowercase();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Email(email))
        } else {
            Err("email must be an address like name@example.com")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The argon2id PHC string of `password` (the crate's defaults: argon2id v19, 19 MiB, 2 passes, 1 lane,
/// OWASP's recommended minimum) with a fresh random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::thread_rng());
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Whether `password` matches the stored PHC string. A malformed stored hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash of a password nobody knows, verified when a sign-in names an unknown email, so that an
/// unknown email costs the same argon2 work as a wrong password and timing does not tell them apart.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        // Hashing with the defaults cannot fail for a 43-character password; an empty string would
        // simply never verify, which is also what a dummy must do.
        hash_password(&URL_SAFE_NO_PAD.encode(secret)).unwrap_or_default()
    })
}

/// A random password for a new user: 128 bits, 22 URL-safe characters.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates a user of the brand with this password (already chosen: generated or read from stdin).
pub async fn create_user(db: &PgPool, brand_id: Uuid, email: &str, password: &str) -> anyhow::Result<Uuid> {
    let email = Email::parse(email).map_err(anyhow::Error::msg)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from brands where id = $1)").bind(brand_id).fetch_one(db).await?;
    if !exists {
        bail!("no brand with id {brand_id}");
    }
    let hash = {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_password(&password)).await??
    };
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "insert into users (id, brand_id, email, password_hash) values ($1, $2, $3, $4)
         on conflict on constraint users_email_key do nothing",
    )
    .bind(id)
    .bind(brand_id)
    .bind(email.as_str())
    .bind(hash)
    .execute(db)
    .await
    .context("storing the user")?
    .rows_affected();
    if inserted == 0 {
        bail!("a user with email {} already exists", email.as_str());
    }
    Ok(id)
}

/// What sign-in checks a password against.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub user_id: Uuid,
    pub brand_id: Uuid,
    pub password_hash: String,
}

/// The credentials of the user with this email, unless it is disabled: sign-in treats a disabled user
/// like an unknown email (the same answer after the same work), so disabling tells nobody anything.
pub async fn credentials(db: &PgPool, email: &Email) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("select id as user_id, brand_id, password_hash from users where email = $1 and disabled_at is null")
        .bind(email.as_str())
        .fetch_optional(db)
        .await
}

/// A user as `api user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserInfo {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// Set while the user is disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Sessions that have not been deleted (some may have expired since their last request).
    pub sessions: i64,
}

/// Every user of a brand, by email.
pub async fn list_users(db: &PgPool, brand_id: Uuid) -> anyhow::Result<Vec<UserInfo>> {
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from brands where id = $1)").bind(brand_id).fetch_one(db).await?;
    if !exists {
        bail!("no brand with id {brand_id}");
    }
    Ok(sqlx::query_as(
        "select u.id, u.email, u.created_at, u.disabled_at,
                (select count(*) from sessions s where s.user_id = u.id) as sessions
         from users u where u.brand_id = $1 order by u.email",
    )
    .bind(brand_id)
    .fetch_all(db)
    .await?)
}

/// Disables a user: every session it has ends now, and it cannot sign in until enabled again.
/// Returns how many sessions ended. Disabling a disabled user changes nothing.
pub async fn disable_user(db: &PgPool, email: &str) -> anyhow::Result<u64> {
    let email = Email::parse(email).map_err(anyhow::Error::msg)?;
    let mut tx = db.begin().await?;
    let user: Option<Uuid> =
        sqlx::query_scalar("update users set disabled_at = coalesce(disabled_at, now()) where email = $1 returning id")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(user) = user else {
        bail!("no user with email {}", email.as_str());
    };
    let ended = end_sessions(&mut tx, user).await?;
    tx.commit().await?;
    Ok(ended)
}

/// Lets a disabled user sign in again (with the password it had).
pub async fn enable_user(db: &PgPool, email: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(anyhow::Error::msg)?;
    let found = sqlx::query("update users set disabled_at = null where email = $1")
        .bind(email.as_str())
        .execute(db)
        .await?
        .rows_affected();
    if found == 0 {
        bail!("no user with email {}", email.as_str());
    }
    Ok(())
}

/// Gives a user a new password (already chosen: generated or read from stdin); every session it has
/// ends now, so whoever knew the old password is signed out. Returns how many sessions ended.
pub async fn reset_password(db: &PgPool, email: &str, password: &str) -> anyhow::Result<u64> {
    let email = Email::parse(email).map_err(anyhow::Error::msg)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    let hash = {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_password(&password)).await??
    };
    let mut tx = db.begin().await?;
    let user: Option<Uuid> = sqlx::query_scalar("update users set password_hash = $2 where email = $1 returning id")
        .bind(email.as_str())
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(user) = user else {
        bail!("no user with email {}", email.as_str());
    };
    let ended = end_sessions(&mut tx, user).await?;
    tx.commit().await?;
    Ok(ended)
}

/// Deletes every session of the user: its next dashboard request goes to the sign-in page.
async fn end_sessions(tx: &mut PgConnection, user: Uuid) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from sessions where user_id = $1").bind(user).execute(tx).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_typos_refused() {
        assert_eq!(Email::parse("  Jess@Example.COM ").unwrap().as_str(), "jess@example.com");
        for bad in ["", "jess", "@example.com", "jess@", "jess@example", "a b@example.com", "a@b@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_password_verifies_against_its_argon2id_hash_and_nothing_else_does() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(!verify_password("", dummy_hash()));
        assert_ne!(hash, hash_password("correct horse battery").unwrap(), "salts differ");
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
    }
}
