//! Sessions of the brand dashboard and of the creators' portal, as stored: only the SHA-256 of a
//! session's token is kept (looked up by hash, so no comparison leaks timing). A session ends after
//! [`IDLE_TIMEOUT`] without a request, after [`ABSOLUTE_LIFETIME`] whatever happens, and at sign-out. The
//! cookies that carry the tokens are `http::dashboard::session`'s.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after sign-in, however active.
pub const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// `last_seen_at` is written at most this often per session, not on every request.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Who a session signs in: a brand's user (the dashboard, `/brand`) or a creator's account (the
/// portal, `/creator`). Each has its own table and cookie, so one browser can hold both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    Brand,
    Creator,
}

impl Realm {
    fn table(self) -> &'static str {
        match self {
            Realm::Brand => "sessions",
            Realm::Creator => "creator_sessions",
        }
    }

    /// The session by token hash ($1): who, its brand (brand sessions), its form token, the email, whether
    /// it is live (idle $2 seconds at most, younger than $3, its person not disabled) and whether its
    /// `last_seen_at` is older than $4 seconds.
    fn lookup(self) -> &'static str {
        match self {
            // A disabled user's session is over, however it was made (disabling deletes the sessions it
            // finds; this also ends one started by a sign-in that raced with the disabling).
            Realm::Brand => {
                "select s.user_id, s.brand_id, s.csrf_token, u.email,
                        s.last_seen_at > now() - make_interval(secs => $2)
                            and s.created_at > now() - make_interval(secs => $3) and u.disabled_at is null,
                        s.last_seen_at < now() - make_interval(secs => $4)
                 from sessions s join users u on u.id = s.user_id where s.token_hash = $1"
            }
            Realm::Creator => {
                "select s.account_id, null::uuid, s.csrf_token, a.email,
                        s.last_seen_at > now() - make_interval(secs => $2)
                            and s.created_at > now() - make_interval(secs => $3),
                        s.last_seen_at < now() - make_interval(secs => $4)
                 from creator_sessions s join creator_accounts a on a.id = s.account_id where s.token_hash = $1"
            }
        }
    }
}

/// Whom a new session is for.
#[derive(Debug, Clone, Copy)]
pub enum Principal {
    User { user_id: Uuid, brand_id: Uuid },
    Creator { account_id: Uuid },
}

impl Principal {
    pub fn realm(self) -> Realm {
        match self {
            Principal::User { .. } => Realm::Brand,
            Principal::Creator { .. } => Realm::Creator,
        }
    }
}

/// A live session.
pub struct Live {
    /// The user (brand sessions) or the account (creator sessions).
    pub id: Uuid,
    pub brand_id: Option<Uuid>,
    /// The synchronizer token its forms carry.
    pub csrf: String,
    pub email: String,
}

/// The live session of this realm whose token hashes to `token_hash`, if any: one that has ended is
/// deleted, one not seen for [`TOUCH_EVERY`] is touched.
pub async fn find(db: &PgPool, realm: Realm, token_hash: &[u8; 32]) -> Result<Option<Live>, sqlx::Error> {
    let row: Option<(Uuid, Option<Uuid>, String, String, bool, bool)> = sqlx::query_as(realm.lookup())
        .bind(&token_hash[..])
        .bind(IDLE_TIMEOUT.as_secs_f64())
        .bind(ABSOLUTE_LIFETIME.as_secs_f64())
        .bind(TOUCH_EVERY.as_secs_f64())
        .fetch_optional(db)
        .await?;
    let Some((id, brand_id, csrf, email, live, stale)) = row else {
        return Ok(None);
    };
    let table = realm.table();
    if !live {
        sqlx::query(&format!("delete from {table} where token_hash = $1")).bind(&token_hash[..]).execute(db).await?;
        return Ok(None);
    }
    if stale {
        sqlx::query(&format!("update {table} set last_seen_at = now() where token_hash = $1"))
            .bind(&token_hash[..])
            .execute(db)
            .await?;
    }
    Ok(Some(Live { id, brand_id, csrf, email }))
}

/// Stores a new session of `principal` under `token_hash`, with `csrf` as its forms' token. Sessions of
/// the realm that ended without a sign-out go first: the table stays as small as its live sessions.
pub async fn start(db: &PgPool, principal: Principal, token_hash: &[u8; 32], csrf: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "delete from {} where last_seen_at < now() - make_interval(secs => $1)
                           or created_at < now() - make_interval(secs => $2)",
        principal.realm().table()
    ))
    .bind(IDLE_TIMEOUT.as_secs_f64())
    .bind(ABSOLUTE_LIFETIME.as_secs_f64())
    .execute(db)
    .await?;
    match principal {
        Principal::User { user_id, brand_id } => {
            sqlx::query("insert into sessions (token_hash, user_id, brand_id, csrf_token) values ($1, $2, $3, $4)")
                .bind(&token_hash[..])
                .bind(user_id)
                .bind(brand_id)
                .bind(csrf)
                .execute(db)
                .await?;
        }
        Principal::Creator { account_id } => {
            sqlx::query("insert into creator_sessions (token_hash, account_id, csrf_token) values ($1, $2, $3)")
                .bind(&token_hash[..])
                .bind(account_id)
                .bind(csrf)
                .execute(db)
                .await?;
        }
    }
    Ok(())
}

/// Ends a session (by its token's hash).
pub async fn end(db: &PgPool, realm: Realm, token_hash: &[u8; 32]) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("delete from {} where token_hash = $1", realm.table()))
        .bind(&token_hash[..])
        .execute(db)
        .await?;
    Ok(())
}
