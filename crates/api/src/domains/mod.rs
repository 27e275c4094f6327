//! Brands' own short domains (`go.brand.com`): adding one, proving control of it, removing it.
//!
//! A hostname belongs to one brand at most. It starts `pending`; it becomes `active` once the brand has
//! proven control of it: on Cloudflare, when the Cloudflare for SaaS custom hostname the API created for
//! it reports itself and its certificate active ([`cloudflare`]); in development, with
//! `api domain activate HOSTNAME`. Only active domains carry links. The default tracking domain and its
//! subdomains can never be added, nor anything that is not a public DNS name.

pub mod cloudflare;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use url::Url;
use utoipa::ToSchema;

use uuid::Uuid;

pub use cloudflare::{CustomHostnames, HostnameState};

/// Most domains one brand may hold (each is a custom hostname at Cloudflare).
pub const MAX_DOMAINS_PER_BRAND: i64 = 50;

/// A public DNS name as a domain's key: lowercase ASCII (internationalised names in their `xn--` form),
/// without a trailing dot, at least two labels, the last not numeric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hostname(String);

/// Why a hostname was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error(
        "must be a host name such as go.brand.com (no scheme, port, path or address; xn-- for international names)"
    )]
    Malformed,
    #[error("must have at least two labels, such as go.brand.com")]
    SingleLabel,
    #[error("must be at most 253 characters")]
    TooLong,
    #[error("the tracking domain and its subdomains cannot be added")]
    TrackingDomain,
}

impl Hostname {
    /// Parses a host name: ASCII labels of letters, digits and inner hyphens (internationalised names in
    /// their `xn--` form), at least two, the last starting with a letter, at most 253 characters, one
    /// trailing dot allowed; any case (kept lowercase). What `crate::schema::HOSTNAME_PATTERN` admits.
    pub fn parse(input: &str) -> Result<Self, HostnameError> {
        let host = input.strip_suffix('.').unwrap_or(input);
        if host.len() > 253 {
            return Err(HostnameError::TooLong);
        }
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let labels: Vec<&str> = host.split('.').collect();
        if !labels.iter().all(|l| label_ok(l)) {
            return Err(HostnameError::Malformed);
        }
        if labels.len() < 2 {
            return Err(HostnameError::SingleLabel);
        }
        if !labels.last().is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_alphabetic())) {
            return Err(HostnameError::Malformed);
        }
        Ok(Hostname(host.to_ascii_lowercase()))
    }

    /// Parses a hostname a brand may add: also refuses the tracking domain and its subdomains.
    pub fn parse_for_brand(input: &str, tracking: &Url) -> Result<Self, HostnameError> {
        let host = Self::parse(input)?;
        let tracking = tracking.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase();
        if !tracking.is_empty() && (host.0 == tracking || host.0.ends_with(&format!(".{tracking}"))) {
            return Err(HostnameError::TrackingDomain);
        }
        Ok(host)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a domain carries links yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Added; waiting for the brand to prove control (DNS records, certificate).
    Pending,
    /// Proven: links may use it, and the edge serves them on it.
    Active,
}

/// A brand's domain as the REST API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Domain {
    #[schema(example = "go.brand.example")]
    pub hostname: String,
    pub status: DomainStatus,
    /// What to publish in the domain's DNS: a CNAME of the hostname to the tracking domain, and the
    /// records Cloudflare asks for to prove ownership and issue the certificate (while pending).
    pub dns_records: Vec<DnsRecord>,
    /// Cloudflare's last word on a pending domain, when it reported a problem.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub checked_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
}

/// One DNS record the brand publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct DnsRecord {
    /// `CNAME` or `TXT`.
    #[schema(example = "CNAME")]
    pub r#type: String,
    #[schema(example = "go.brand.example")]
    pub name: String,
    #[schema(example = "trk.creatorscore.io")]
    pub value: String,
}

/// Why a domain request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("hostname {0}")]
    Invalid(HostnameError),
    #[error("domain not found")]
    NotFound,
    /// Another brand holds it, or this brand added it already.
    #[error("{0}")]
    Taken(&'static str),
    /// Active links are on it.
    #[error("{0} active links use this domain; move or delete them first")]
    InUse(i64),
    /// The brand has as many domains as it may.
    #[error("a brand may have at most {MAX_DOMAINS_PER_BRAND} domains; remove one first")]
    TooMany,
    /// Cloudflare refused the hostname (its message, for the brand).
    #[error("the domain provider refused: {0}")]
    Provider(String),
    /// Cloudflare could not be reached or failed; nothing was changed.
    #[error("the domain provider is unavailable, please retry: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, sqlx::FromRow)]
struct DomainRow {
    hostname: String,
    status: String,
    verification: Option<serde_json::Value>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    checked_at: Option<DateTime<Utc>>,
    activated_at: Option<DateTime<Utc>>,
}

const DOMAIN_COLUMNS: &str = "hostname, status, verification, last_error, created_at, checked_at, activated_at";

impl DomainRow {
    fn into_domain(self, tracking_host: &str) -> Domain {
        let active = self.status == "active";
        let mut dns_records =
            vec![DnsRecord { r#type: "CNAME".into(), name: self.hostname.clone(), value: tracking_host.to_owned() }];
        if !active {
            let extra: Vec<DnsRecord> =
                self.verification.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
            dns_records.extend(extra);
        }
        Domain {
            hostname: self.hostname,
            status: if active { DomainStatus::Active } else { DomainStatus::Pending },
            dns_records,
            last_error: self.last_error,
            created_at: self.created_at,
            checked_at: self.checked_at,
            activated_at: self.activated_at,
        }
    }
}

/// Where domains are proven: Cloudflare for SaaS, or nowhere (development: `api domain activate`).
#[derive(Clone, Default)]
pub enum Provider {
    /// No provider: domains stay pending until activated by hand.
    #[default]
    Manual,
    /// Cloudflare for SaaS custom hostnames of one zone.
    Cloudflare(CustomHostnames),
}

/// The domains module's view of the deployment.
#[derive(Clone)]
pub struct Domains {
    pub db: PgPool,
    pub provider: Provider,
    /// The tracking domain's host: links' CNAME target, and never addable.
    pub tracking: Url,
}

impl Domains {
    fn tracking_host(&self) -> &str {
        self.tracking.host_str().unwrap_or_default()
    }

    /// Adds `hostname` to the brand, pending; with Cloudflare, creates its custom hostname first (so a
    /// hostname Cloudflare refuses is never stored).
    pub async fn add(&self, brand_id: Uuid, hostname: &str) -> Result<Domain, DomainError> {
        let host = Hostname::parse_for_brand(hostname, &self.tracking).map_err(DomainError::Invalid)?;
        let taken: Option<Uuid> = sqlx::query_scalar("select brand_id from domains where hostname = $1")
            .bind(host.as_str())
            .fetch_optional(&self.db)
            .await?;
        if let Some(owner) = taken {
            return Err(DomainError::Taken(if owner == brand_id {
                "this brand has already added this domain"
            } else {
                "this domain is held by another account"
            }));
        }
        let held: i64 = sqlx::query_scalar("select count(*) from domains where brand_id = $1")
            .bind(brand_id)
            .fetch_one(&self.db)
            .await?;
        if held >= MAX_DOMAINS_PER_BRAND {
            return Err(DomainError::TooMany);
        }
        let state = match &self.provider {
            Provider::Manual => None,
            Provider::Cloudflare(cf) => Some(cf.create(host.as_str()).await?),
        };
        let inserted = sqlx::query_as::<_, DomainRow>(&format!(
            "insert into domains (hostname, brand_id, cloudflare_id, verification, status, activated_at, checked_at)
             values ($1, $2, $3, $4, case when $5 then 'active' else 'pending' end, case when $5 then now() end,
                     case when $6 then now() end)
             on conflict (hostname) do nothing
             returning {DOMAIN_COLUMNS}"
        ))
        .bind(host.as_str())
        .bind(brand_id)
        .bind(state.as_ref().map(|s| s.id.clone()))
        .bind(state.as_ref().map(|s| serde_json::to_value(&s.records).unwrap_or_default()))
        .bind(state.as_ref().is_some_and(|s| s.active))
        .bind(state.is_some())
        .fetch_optional(&self.db)
        .await?;
        match inserted {
            Some(row) => Ok(row.into_domain(self.tracking_host())),
            None => {
                // Lost a race for the same hostname: undo what was created at Cloudflare.
                if let (Provider::Cloudflare(cf), Some(state)) = (&self.provider, state) {
                    if let Err(e) = cf.delete(&state.id).await {
                        tracing::warn!(hostname = %host, error = %e, "removing a duplicate custom hostname failed");
                    }
                }
                Err(DomainError::Taken("this domain is held by another account"))
            }
        }
    }

    /// The brand's domains, newest first.
    pub async fn list(&self, brand_id: Uuid) -> Result<Vec<Domain>, DomainError> {
        let rows = sqlx::query_as::<_, DomainRow>(&format!(
            "select {DOMAIN_COLUMNS} from domains where brand_id = $1 order by seq desc"
        ))
        .bind(brand_id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows.into_iter().map(|r| r.into_domain(self.tracking_host())).collect())
    }

    /// The brand's domain; a pending one is checked with the provider first.
    pub async fn get(&self, brand_id: Uuid, hostname: &str) -> Result<Domain, DomainError> {
        let host = Hostname::parse(hostname).map_err(|_| DomainError::NotFound)?;
        let row = self.find(brand_id, &host).await?;
        if row.status == "pending" {
            if let Some(refreshed) = self.refresh(row.hostname.clone()).await? {
                return Ok(refreshed.into_domain(self.tracking_host()));
            }
        }
        Ok(row.into_domain(self.tracking_host()))
    }

    async fn find(&self, brand_id: Uuid, host: &Hostname) -> Result<DomainRow, DomainError> {
        sqlx::query_as::<_, DomainRow>(&format!(
            "select {DOMAIN_COLUMNS} from domains where brand_id = $1 and hostname = $2"
        ))
        .bind(brand_id)
        .bind(host.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(DomainError::NotFound)
    }

    /// Removes the brand's domain: refused while active links use it; deleted links on it fall back to
    /// the default domain. With Cloudflare, its custom hostname is removed too.
    pub async fn remove(&self, brand_id: Uuid, hostname: &str) -> Result<(), DomainError> {
        let host = Hostname::parse(hostname).map_err(|_| DomainError::NotFound)?;
        let mut tx = self.db.begin().await?;
        // Locking the domain row first makes a link write naming it wait, then fail its foreign key.
        let cloudflare_id: Option<Option<String>> =
            sqlx::query_scalar("select cloudflare_id from domains where brand_id = $1 and hostname = $2 for update")
                .bind(brand_id)
                .bind(host.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(cloudflare_id) = cloudflare_id else { return Err(DomainError::NotFound) };
        let in_use: i64 = sqlx::query_scalar("select count(*) from links where domain = $1 and active")
            .bind(host.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if in_use > 0 {
            return Err(DomainError::InUse(in_use));
        }
        sqlx::query("delete from domains where hostname = $1").bind(host.as_str()).execute(&mut *tx).await?;
        if let (Provider::Cloudflare(cf), Some(id)) = (&self.provider, cloudflare_id) {
            cf.delete(&id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a domain active by hand (development, or an operator who verified it otherwise). Returns
    /// whether it was pending.
    pub async fn activate(db: &PgPool, hostname: &str) -> Result<bool, DomainError> {
        let host = Hostname::parse(hostname).map_err(DomainError::Invalid)?;
        let updated = sqlx::query(
            "update domains set status = 'active', activated_at = now(), checked_at = now(), last_error = null
             where hostname = $1 and status = 'pending'",
        )
        .bind(host.as_str())
        .execute(db)
        .await?
        .rows_affected();
        if updated == 0 {
            let exists: bool = sqlx::query_scalar("select exists (select 1 from domains where hostname = $1)")
                .bind(host.as_str())
                .fetch_one(db)
                .await?;
            if !exists {
                return Err(DomainError::NotFound);
            }
        }
        Ok(updated > 0)
    }

    /// Asks the provider about a pending domain and records the answer; `None` when there is no provider
    /// (or no custom hostname) to ask.
    async fn refresh(&self, hostname: String) -> Result<Option<DomainRow>, DomainError> {
        let Provider::Cloudflare(cf) = &self.provider else { return Ok(None) };
        let id: Option<Option<String>> =
            sqlx::query_scalar("select cloudflare_id from domains where hostname = $1 and status = 'pending'")
                .bind(&hostname)
                .fetch_optional(&self.db)
                .await?;
        let Some(Some(id)) = id else { return Ok(None) };
        let (state, error) = match cf.get(&id).await {
            Ok(state) => (Some(state), None),
            Err(DomainError::Provider(message)) => (None, Some(message)),
            Err(DomainError::Unavailable(why)) => {
                // What is stored stays true; the next check asks again.
                tracing::warn!(hostname, error = %why, "Cloudflare is unavailable; the domain stays as it was");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let row = sqlx::query_as::<_, DomainRow>(&format!(
            "update domains set checked_at = now(),
                 verification = coalesce($2, verification),
                 last_error = $3,
                 status = case when $4 then 'active' else status end,
                 activated_at = case when $4 then now() else activated_at end
             where hostname = $1 and status = 'pending'
             returning {DOMAIN_COLUMNS}"
        ))
        .bind(&hostname)
        .bind(state.as_ref().map(|s| serde_json::to_value(&s.records).unwrap_or_default()))
        .bind(error.or_else(|| state.as_ref().and_then(|s| s.error.clone())))
        .bind(state.as_ref().is_some_and(|s| s.active))
        .fetch_optional(&self.db)
        .await?;
        if row.as_ref().is_some_and(|r| r.status == "active") {
            tracing::info!(hostname, "custom domain is active");
        }
        Ok(row)
    }

    /// Checks every pending domain with the provider, least recently checked first (at most `limit`),
    /// in one process at a time (an advisory lock: with several processes, each pending domain is asked
    /// about once a period, not once per process, which would multiply the calls to Cloudflare's API).
    /// Returns how many became active (0 when another process holds the lock).
    pub async fn refresh_pending(&self, limit: i64) -> Result<usize, DomainError> {
        if matches!(self.provider, Provider::Manual) {
            return Ok(0);
        }
        let mut lock = self.db.acquire().await?;
        let locked: bool =
            sqlx::query_scalar("select pg_try_advisory_lock($1)").bind(DOMAINS_LOCK).fetch_one(&mut *lock).await?;
        if !locked {
            return Ok(0);
        }
        let result = self.refresh_pending_locked(limit).await;
        // A session lock outlives the pass: release it, or close the connection if even that fails, so it
        // never stays behind on a pooled connection.
        if sqlx::query("select pg_advisory_unlock($1)").bind(DOMAINS_LOCK).execute(&mut *lock).await.is_err() {
            lock.close_on_drop();
        }
        result
    }

    async fn refresh_pending_locked(&self, limit: i64) -> Result<usize, DomainError> {
        let pending: Vec<String> = sqlx::query_scalar(
            "select hostname from domains where status = 'pending' order by checked_at nulls first limit $1",
        )
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        let mut activated = 0;
        for hostname in pending {
            match self.refresh(hostname.clone()).await {
                Ok(Some(row)) if row.status == "active" => activated += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(hostname, error = %e, "checking a pending domain failed"),
            }
        }
        Ok(activated)
    }
}

/// The advisory lock a pass over pending domains holds.
const DOMAINS_LOCK: i64 = 0x646f_6d61_696e; // "domain"

/// Checks pending domains with the provider every `every` until stopped (nothing to do without one).
pub async fn run(domains: Domains, every: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    if matches!(domains.provider, Provider::Manual) {
        return;
    }
    loop {
        match domains.refresh_pending(100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(domains = n, "custom domains became active"),
            Err(e) => tracing::warn!(error = %e, "checking pending domains failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_public_dns_names_in_lowercase_ascii() {
        assert_eq!(Hostname::parse("Go.Brand.COM.").unwrap().as_str(), "go.brand.com");
        assert_eq!(Hostname::parse("xn--bcher-kva.example").unwrap().as_str(), "xn--bcher-kva.example");
        for bad in [
            "",
            " go.brand.com",
            "bücher.example",
            "a.0a",
            "go.brand.com..",
            "go.brand.com/x",
            "https://go.brand.com",
            "go.brand.com:443",
            "10.0.0.1",
            "go..brand.com",
            "-go.brand.com",
            "go_brand.com",
            "a b.com",
            "user@go.brand.com",
            "1.2.3.4.5",
        ] {
            assert!(Hostname::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Hostname::parse("localhost"), Err(HostnameError::SingleLabel));
        assert_eq!(Hostname::parse(&format!("{}.com", "a.".repeat(130))), Err(HostnameError::TooLong));
    }

    #[test]
    fn the_tracking_domain_and_its_subdomains_cannot_be_added() {
        let tracking = Url::parse("https://trk.creatorscore.io").unwrap();
        for taken in ["trk.creatorscore.io", "TRK.creatorscore.io.", "go.trk.creatorscore.io"] {
            assert_eq!(Hostname::parse_for_brand(taken, &tracking), Err(HostnameError::TrackingDomain), "{taken}");
        }
        assert!(Hostname::parse_for_brand("creatorscore.io", &tracking).is_ok());
        assert!(Hostname::parse_for_brand("xtrk.creatorscore.io", &tracking).is_ok());
    }
}
