//! Signed ROI statements: what a creator's links did for a brand over a period, signed with Ed25519 so
//! anyone can check it later, here or offline, without trusting whoever shows it to them.
//!
//! A statement is `{"statement": {...}, "signature"}`: the signature is Ed25519 over the RFC 8785
//! canonical JSON of `statement`, base64url without padding, by the key `statement.kid` names. The keys
//! are published at `/.well-known/statement-keys` (the current one and retired ones, so old statements
//! keep verifying after a rotation). A statement holds only strings, integers, arrays and objects, so
//! its canonical form is also what `json.dumps(sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` writes, which is how `scripts/verify-statement.py` checks one offline.
//!
//! The figures are the reports' own: clicks, unique clicks and orders per link come from
//! [`crate::links::stats::link_stats`] over the period, which counts orders as [`crate::revenue`] says.
//! `revenue` is present only on links that share revenue, and the totals' revenue adds only those.
//!
//! Every issued statement is stored as the exact text served, so a download is byte-identical to what
//! was signed; the brand can revoke one, after which verification says so.

use std::fmt;

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::Config;
use crate::money::Money;

/// A key id: 1 to 64 letters, digits, `_` or `-`.
fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The key statements are signed with now.
#[derive(Clone)]
pub struct CurrentKey {
    pub kid: String,
    signing: SigningKey,
}

/// A key statements were signed with: its id and public half.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub key: VerifyingKey,
}

/// `STATEMENT_SIGNING_KEY` and `STATEMENT_RETIRED_KEYS`.
#[derive(Clone, Default)]
pub struct StatementKeys {
    /// Unset: statements cannot be issued (existing ones still verify against the retired keys).
    pub current: Option<CurrentKey>,
    pub retired: Vec<PublicKey>,
}

impl fmt::Debug for StatementKeys {
    // Never the secret: only the key ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementKeys")
            .field("current", &self.current.as_ref().map(|k| &k.kid))
            .field("retired", &self.retired.iter().map(|k| &k.kid).collect::<Vec<_>>())
            .finish()
    }
}

/// One key as `/.well-known/statement-keys` publishes it (a JWK, RFC 8037).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// Always `OKP`.
    #[schema(example = "OKP")]
    pub kty: String,
    /// Always `Ed25519`.
    #[schema(example = "Ed25519")]
    pub crv: String,
    #[schema(example = "sk_20261206_k7m2p9qa")]
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
}

impl StatementKeys {
    /// Reads `STATEMENT_SIGNING_KEY` (`<kid>:<base64url 32-byte seed>`) and `STATEMENT_RETIRED_KEYS`
    /// (comma-separated `<kid>:<base64url public key>`). Errors name the variable, never the secret.
    pub fn parse(signing: Option<&str>, retired: Option<&str>) -> anyhow::Result<Self> {
        let current = match signing.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(raw) => {
                let (kid, seed) = raw.split_once(':').filter(|(kid, _)| valid_kid(kid)).context(
                    "STATEMENT_SIGNING_KEY must be <kid>:<base64url 32-byte seed> (kid: letters, digits, _ or -); \
                     make one with `api statement-key create`",
                )?;
                let seed: [u8; 32] = URL_SAFE_NO_PAD
                    .decode(seed.trim_end_matches('='))
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .context("STATEMENT_SIGNING_KEY's secret is not 32 bytes of base64url")?;
                Some(CurrentKey { kid: kid.to_owned(), signing: SigningKey::from_bytes(&seed) })
            }
        };
        let mut keys = StatementKeys { current, retired: Vec::new() };
        for entry in retired.unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, x) = entry
                .split_once(':')
                .filter(|(kid, _)| valid_kid(kid))
                .with_context(|| format!("STATEMENT_RETIRED_KEYS: {entry:?} is not <kid>:<base64url public key>"))?;
            let key = URL_SAFE_NO_PAD
                .decode(x.trim_end_matches('='))
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
                .with_context(|| format!("STATEMENT_RETIRED_KEYS: the key {kid:?} is not an Ed25519 public key"))?;
            if keys.find(kid).is_some() {
                bail!("STATEMENT_RETIRED_KEYS: the key id {kid:?} is used twice");
            }
            keys.retired.push(PublicKey { kid: kid.to_owned(), key });
        }
        Ok(keys)
    }

    /// The public key a key id names, current or retired.
    pub fn find(&self, kid: &str) -> Option<VerifyingKey> {
        self.current
            .iter()
            .filter(|k| k.kid == kid)
            .map(|k| k.signing.verifying_key())
            .chain(self.retired.iter().filter(|k| k.kid == kid).map(|k| k.key))
            .next()
    }

    /// Every key statements may be verified with: the current one first.
    pub fn jwks(&self) -> Vec<Jwk> {
        let jwk = |kid: &str, key: VerifyingKey| Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: kid.to_owned(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        };
        self.current
            .iter()
            .map(|k| jwk(&k.kid, k.signing.verifying_key()))
            .chain(self.retired.iter().map(|k| jwk(&k.kid, k.key)))
            .collect()
    }
}

/// A fresh signing key for `api statement-key create`: its id, the `STATEMENT_SIGNING_KEY` value, and
/// its public key (what goes into `STATEMENT_RETIRED_KEYS` once it is retired).
pub struct NewKey {
    pub kid: String,
    pub setting: String,
    pub public_key: String,
}

pub fn generate_key(now: DateTime<Utc>) -> NewKey {
    let mut rng = rand::thread_rng();
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let mut suffix = [0u8; 6];
    rng.fill_bytes(&mut suffix);
    let kid = format!("sk_{}_{}", now.format("%Y%m%d"), URL_SAFE_NO_PAD.encode(suffix));
    let public_key = URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&seed).verifying_key().as_bytes());
    NewKey { setting: format!("{kid}:{}", URL_SAFE_NO_PAD.encode(seed)), kid, public_key }
}

/// A signed statement, as served and stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub statement: Statement,
    /// Ed25519 over the RFC 8785 canonical JSON of `statement`, base64url without padding.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// `st_` and 128 random bits: also the address of its public page, `/statements/{id}`.
    #[schema(example = "st_Zk3uQ0xV7m2p9qaR4sT1wA")]
    pub id: String,
    /// The origin of the API that issued it (`PUBLIC_BASE_URL`).
    #[schema(example = "https://api.creatorscore.io")]
    pub issuer: String,
    pub brand: StatementBrand,
    pub creator: StatementCreator,
    pub period: Period,
    pub links: Vec<StatementLink>,
    pub totals: Totals,
    pub issued_at: String,
    /// The key it is signed with (see `/.well-known/statement-keys`).
    pub kid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementBrand {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementCreator {
    pub name: String,
    pub handle: Option<String>,
}

/// `[from, to)`, RFC 3339 in UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementLink {
    pub code: String,
    pub short_url: String,
    pub platform: Option<String>,
    pub content_type: Option<String>,
    /// Human clicks in the period.
    pub clicks: i64,
    pub unique_clicks: i64,
    /// Orders credited to the link in the period that count (`verified`, `unverified`).
    pub conversions: i64,
    /// Only on links that share revenue: the counted orders' revenue net of refunds, per currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Vec<Money>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub clicks: i64,
    pub unique_clicks: i64,
    pub conversions: i64,
    /// Present when at least one link shares revenue: the sum over those links only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Vec<Money>>,
}

/// Why a statement could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("statements cannot be issued: no signing key is configured")]
    Unavailable,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    InvalidPeriod(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// An RFC 3339 instant as statements write it: UTC, `Z`, fractions only when there are some.
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The bytes a statement's signature covers: its RFC 8785 canonical JSON.
pub fn canonical(statement: &Value) -> anyhow::Result<Vec<u8>> {
    serde_json_canonicalizer::to_vec(statement).context("canonicalizing a statement")
}

/// The figures of a creator's links at the brand over `[from, to)`, as the brand's reports count them
/// ([`crate::creator_reports`]): revenue only on links that share it, and in the totals only from them.
pub async fn figures(
    db: &PgPool,
    config: &Config,
    brand_id: Uuid,
    creator_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(Vec<StatementLink>, Totals), sqlx::Error> {
    let report = crate::creator_reports::report(db, config, brand_id, creator_id, from, to).await?;
    let sums = report.totals();
    let totals = Totals {
        clicks: sums.clicks,
        unique_clicks: sums.unique_clicks,
        conversions: sums.conversions,
        revenue: sums.revenue,
    };
    let links = report
        .links
        .into_iter()
        .map(|link| StatementLink {
            revenue: link.revenue().map(<[Money]>::to_vec),
            conversions: link.conversions(),
            code: link.code,
            short_url: link.short_url,
            platform: link.platform,
            content_type: link.content_type,
            clicks: link.clicks,
            unique_clicks: link.unique_clicks,
        })
        .collect();
    Ok((links, totals))
}

/// Whether `id` is shaped like a statement id (anything else names none, and may hold bytes the
/// database refuses).
fn plausible_id(id: &str) -> bool {
    id.len() <= 64
        && id
            .strip_prefix("st_")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

/// A new statement id: `st_` and 128 random bits, base64url.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("st_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// An issued statement: its id and its document's text, exactly as stored.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: String,
    pub document: String,
}

/// Issues, signs and stores a statement of the creator's links at the brand over `[from, to)`.
/// `NotFound` unless the creator is the brand's.
pub async fn issue(
    db: &PgPool,
    config: &Config,
    creator_id: Uuid,
    brand_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Issued, IssueError> {
    let key = config.statement_keys.current.as_ref().ok_or(IssueError::Unavailable)?;
    let now = Utc::now();
    if from >= to {
        return Err(IssueError::InvalidPeriod("from must be before to".into()));
    }
    if to > now {
        return Err(IssueError::InvalidPeriod("to must not be in the future: a statement covers a past period".into()));
    }
    let found: Option<(String, Option<String>, String)> = sqlx::query_as(
        "select c.name, c.handle, b.name from creators c join brands b on b.id = c.brand_id
         where c.id = $1 and c.brand_id = $2",
    )
    .bind(creator_id)
    .bind(brand_id)
    .fetch_optional(db)
    .await?;
    let (creator_name, handle, brand_name) = found.ok_or(IssueError::NotFound)?;
    let (links, totals) = figures(db, config, brand_id, creator_id, from, to).await?;
    let now = now.trunc_subsecs(0);
    let statement = Statement {
        id: new_id(),
        issuer: config.public_base_url.origin().ascii_serialization(),
        brand: StatementBrand { id: brand_id.to_string(), name: brand_name },
        creator: StatementCreator { name: creator_name, handle },
        period: Period { from: instant(from), to: instant(to) },
        links,
        totals,
        issued_at: instant(now),
        kid: key.kid.clone(),
    };
    let value = serde_json::to_value(&statement).context("serializing a statement")?;
    let signature = key.signing.sign(&canonical(&value)?);
    let document = Document { statement, signature: URL_SAFE_NO_PAD.encode(signature.to_bytes()) };
    let text = serde_json::to_string(&document).context("serializing a statement")?;
    sqlx::query(
        "insert into statements (id, brand_id, creator_id, period_from, period_to, document, issued_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&document.statement.id)
    .bind(brand_id)
    .bind(creator_id)
    .bind(from)
    .bind(to)
    .bind(&text)
    .bind(now)
    .execute(db)
    .await?;
    Ok(Issued { id: document.statement.id, document: text })
}

/// What checking a document found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid { statement_id: String, issued_at: String },
    Invalid(Invalid),
    Revoked { statement_id: String, revoked_at: DateTime<Utc> },
}

/// Why a document does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not a statement document (a field missing, of the wrong type, or unknown).
    Malformed,
    /// Signed by a key this service never published.
    UnknownKey,
    /// The signature does not match the statement: it was changed, or forged.
    BadSignature,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::UnknownKey => "unknown_key",
            Invalid::BadSignature => "bad_signature",
        }
    }
}

/// Checks a document's signature (no database): the typed statement when it holds.
pub fn check_signature(keys: &StatementKeys, document: &Value) -> Result<Statement, Invalid> {
    let object = document.as_object().ok_or(Invalid::Malformed)?;
    if object.len() != 2 {
        return Err(Invalid::Malformed);
    }
    let value = object.get("statement").ok_or(Invalid::Malformed)?;
    let signature = object.get("signature").and_then(Value::as_str).ok_or(Invalid::Malformed)?;
    let statement: Statement = serde_json::from_value(value.clone()).map_err(|_| Invalid::Malformed)?;
    let key = keys.find(&statement.kid).ok_or(Invalid::UnknownKey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or(Invalid::BadSignature)?;
    let bytes = canonical(value).map_err(|_| Invalid::Malformed)?;
    key.verify_strict(&bytes, &signature).map_err(|_| Invalid::BadSignature)?;
    Ok(statement)
}

/// Checks a document: its signature, then whether the brand revoked it.
pub async fn verify(
    db: &PgPool,
    keys: &StatementKeys,
    document: &Value,
) -> Result<(Verdict, Option<Statement>), sqlx::Error> {
    let statement = match check_signature(keys, document) {
        Ok(statement) => statement,
        Err(why) => return Ok((Verdict::Invalid(why), None)),
    };
    if !plausible_id(&statement.id) {
        return Ok((Verdict::Invalid(Invalid::Malformed), None));
    }
    let revoked: Option<DateTime<Utc>> =
        sqlx::query_scalar("select revoked_at from statements where id = $1 and revoked_at is not null")
            .bind(&statement.id)
            .fetch_optional(db)
            .await?;
    let verdict = match revoked {
        Some(revoked_at) => Verdict::Revoked { statement_id: statement.id.clone(), revoked_at },
        None => Verdict::Valid { statement_id: statement.id.clone(), issued_at: statement.issued_at.clone() },
    };
    Ok((verdict, Some(statement)))
}

/// A stored statement.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub id: String,
    pub brand_id: Uuid,
    pub creator_id: Uuid,
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    pub document: String,
    pub issued_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

/// A stored statement by id (anyone may read one: its id is unguessable and it is meant to be shown).
pub async fn find(db: &PgPool, id: &str) -> Result<Option<Stored>, sqlx::Error> {
    if !plausible_id(id) {
        return Ok(None);
    }
    sqlx::query_as(
        "select id, brand_id, creator_id, period_from, period_to, document, issued_at, revoked_at, revoked_reason
         from statements where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Revokes one of the brand's statements; revoking again keeps the first time and reason. `None`
/// unless the statement is the brand's.
pub async fn revoke(
    db: &PgPool,
    brand_id: Uuid,
    id: &str,
    reason: Option<&str>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    if !plausible_id(id) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "update statements set revoked_at = coalesce(revoked_at, now()),
                               revoked_reason = case when revoked_at is null then $3 else revoked_reason end
         where id = $1 and brand_id = $2 returning revoked_at",
    )
    .bind(id)
    .bind(brand_id)
    .bind(reason)
    .fetch_optional(db)
    .await
}

/// A statement as the brand's list shows it (the document itself is at `/statements/{id}.json`).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct StatementInfo {
    #[schema(example = "st_Zk3uQ0xV7m2p9qaR4sT1wA")]
    pub id: String,
    pub creator_id: Uuid,
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    /// Null: not revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

/// One page of the brand's statements, newest first, of one creator or all: at most `limit` rows before
/// the sequence number `before_seq`.
pub async fn list(
    db: &PgPool,
    brand_id: Uuid,
    creator_id: Option<Uuid>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, StatementInfo)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        seq: i64,
        #[sqlx(flatten)]
        info: StatementInfo,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select seq, id, creator_id, period_from, period_to, issued_at, revoked_at, revoked_reason from statements
         where brand_id = $1 and ($2::uuid is null or creator_id = $2) and ($3::bigint is null or seq < $3)
         order by seq desc limit $4",
    )
    .bind(brand_id)
    .bind(creator_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.info)).collect())
}

/// Whether the figures of a stored statement differ from what the reports say now for the same period
/// (a refund or a cancellation since it was issued).
pub async fn figures_changed(
    db: &PgPool,
    config: &Config,
    stored: &Stored,
    statement: &Statement,
) -> Result<bool, sqlx::Error> {
    let (links, totals) =
        figures(db, config, stored.brand_id, stored.creator_id, stored.period_from, stored.period_to).await?;
    let numbers = |links: &[StatementLink], totals: &Totals| {
        let per_link: Vec<_> = links
            .iter()
            .map(|l| (l.code.clone(), l.clicks, l.unique_clicks, l.conversions, l.revenue.clone()))
            .collect();
        (per_link, totals.clicks, totals.unique_clicks, totals.conversions, totals.revenue.clone())
    };
    Ok(numbers(&links, &totals) != numbers(&statement.links, &statement.totals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_parsed_by_name_and_the_secret_is_never_printed() {
        let key = generate_key(Utc::now());
        let keys = StatementKeys::parse(Some(&key.setting), None).unwrap();
        assert_eq!(keys.jwks()[0].x, key.public_key);
        assert!(!format!("{keys:?}").contains(key.setting.split(':').nth(1).unwrap()));
        let retired = format!("{}:{}", key.kid, key.public_key);
        let other = generate_key(Utc::now());
        let both = StatementKeys::parse(Some(&other.setting), Some(&retired)).unwrap();
        assert_eq!(both.jwks().len(), 2);
        assert!(both.find(&key.kid).is_some());
        for (signing, retired, name) in [
            (Some("nokid"), None, "STATEMENT_SIGNING_KEY"),
            (Some("k:short"), None, "STATEMENT_SIGNING_KEY"),
            (Some("bad kid:AAAA"), None, "STATEMENT_SIGNING_KEY"),
            (None, Some("k:notakey"), "STATEMENT_RETIRED_KEYS"),
            (None, Some("k"), "STATEMENT_RETIRED_KEYS"),
            (Some(key.setting.as_str()), Some(retired.as_str()), "STATEMENT_RETIRED_KEYS"),
        ] {
            let err = format!("{:#}", StatementKeys::parse(signing, retired).unwrap_err());
            assert!(err.contains(name), "{err}");
        }
    }
}
