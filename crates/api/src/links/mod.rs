//! Tracking links: their rules and SQL (validation, creation with a fresh code, listing, changes,
//! deactivation), a link as stored and as the REST API shows it, and what every change of one records:
//! the KV sync's outbox row and the webhook event, in the change's transaction; and whether its
//! destination still answers ([`health`]). The REST API and the dashboard are adapters of these. Every write runs in one transaction; a link is never hard-deleted
//! (its clicks and conversions keep pointing at it), and its code is never given to another link.

pub mod bulk;
pub mod health;
pub mod qr;
pub mod stats;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

use shared::{Code, ContentType, Platform, Utm};

use crate::config::Config;
use crate::domain::{self, PromoCode};

/// Why a request about links, creators or campaigns was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A field is invalid; `code` is the stable error code, the message names the field.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Not one of the brand's (another brand's object looks exactly like a missing one).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with what is stored (a promo code in use, a deleted link).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl LinkError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        LinkError::Invalid { code, message: message.into() }
    }
}

/// How many fresh codes to try before giving up; with 31^8 codes a second attempt is already rare.
const CODE_ATTEMPTS: usize = 8;

/// Where new tracking codes come from. Production draws them from the thread-local CSPRNG; tests
/// substitute a fixed sequence to force a collision.
pub type CodeSource = Arc<dyn Fn() -> Code + Send + Sync>;

pub fn random_codes() -> CodeSource {
    Arc::new(|| Code::generate(&mut rand::thread_rng()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"destination_url": "https://shop.example/products/linen-shirt?color=sand",
    "platform": "instagram", "content_type": "reel", "promo_code": "JESS20", "share_revenue": true}))]
pub struct CreateLink {
    /// Absolute http(s) URL, at most 2048 characters, not on the tracking domain.
    #[schema(value_type = crate::schema::DestinationUrl)]
    pub destination_url: String,
    /// One of the brand's campaigns (else 404).
    pub campaign_id: Option<Uuid>,
    /// One of the brand's creators (else 404).
    pub creator_id: Option<Uuid>,
    pub platform: Option<Platform>,
    pub content_type: Option<ContentType>,
    /// Unique among the brand's active links, compared case-insensitively.
    #[schema(value_type = Option<crate::schema::PromoCodeText>)]
    pub promo_code: Option<String>,
    #[serde(default)]
    pub share_revenue: bool,
    /// One of the brand's `active` custom domains (else 404); the short URL is on it. Absent: the default domain.
    #[schema(value_type = Option<crate::schema::HostnameText>)]
    pub domain: Option<String>,
    /// Added to the destination as `utm_source` unless the destination already has one (1–255 characters).
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_source: Option<String>,
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_medium: Option<String>,
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_campaign: Option<String>,
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_term: Option<String>,
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_content: Option<String>,
    /// From then on the link records no clicks and sends visitors to `expired_url` (or the not-found page).
    pub expires_at: Option<DateTime<Utc>>,
    /// Where an expired link sends visitors (no click id); same rules as `destination_url`.
    #[schema(value_type = Option<crate::schema::DestinationUrl>)]
    pub expired_url: Option<String>,
}

/// Any creation field but the code. An absent field is left alone; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"destination_url": "https://shop.example/products/linen-shirt?color=olive", "promo_code": null}))]
pub struct UpdateLink {
    /// Absolute http(s) URL, at most 2048 characters, not on the tracking domain; `null` leaves it alone.
    #[schema(value_type = Option<crate::schema::DestinationUrl>)]
    pub destination_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub campaign_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub creator_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Platform>)]
    pub platform: Option<Option<Platform>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ContentType>)]
    pub content_type: Option<Option<ContentType>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::PromoCodeText>)]
    pub promo_code: Option<Option<String>>,
    pub share_revenue: Option<bool>,
    /// One of the brand's `active` custom domains (else 404); `null` moves the link back to the default domain.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::HostnameText>)]
    pub domain: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_source: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_medium: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_campaign: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_term: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::UtmText>)]
    pub utm_content: Option<Option<String>>,
    /// A time in the past ends the link now; `null` makes it never expire.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::schema::DestinationUrl>)]
    pub expired_url: Option<Option<String>>,
}

/// Distinguishes a field sent as `null` (`Some(None)`) from one left out (`None`, via `default`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The writable fields of a link, validated.
pub struct LinkFields {
    destination_url: domain::DestinationUrl,
    campaign_id: Option<Uuid>,
    creator_id: Option<Uuid>,
    platform: Option<Platform>,
    content_type: Option<ContentType>,
    promo_code: Option<PromoCode>,
    share_revenue: bool,
    domain: Option<String>,
    utm: Utm,
    expires_at: Option<DateTime<Utc>>,
    expired_url: Option<domain::DestinationUrl>,
}

impl CreateLink {
    /// The fields, validated; or every invalid field's error, in field order (the REST API answers with
    /// the first, the dashboard shows each beside its field). Creator, campaign, domain and promo code
    /// uniqueness are the database's to check, at insert.
    pub fn validate(&self, config: &Config) -> Result<LinkFields, Vec<LinkError>> {
        let destination = parse_destination(config, &self.destination_url);
        let promo = parse_promo(self.promo_code.as_deref());
        let domain = self.domain.as_deref().map(parse_domain).transpose();
        let utm = parse_utm([
            ("utm_source", self.utm_source.as_deref()),
            ("utm_medium", self.utm_medium.as_deref()),
            ("utm_campaign", self.utm_campaign.as_deref()),
            ("utm_term", self.utm_term.as_deref()),
            ("utm_content", self.utm_content.as_deref()),
        ]);
        let expired = self.expired_url.as_deref().map(|u| parse_expired_url(config, u)).transpose();
        match (destination, promo, domain, utm, expired) {
            (Ok(destination_url), Ok(promo_code), Ok(domain), Ok(utm), Ok(expired_url)) => Ok(LinkFields {
                destination_url,
                campaign_id: self.campaign_id,
                creator_id: self.creator_id,
                platform: self.platform,
                content_type: self.content_type,
                promo_code,
                share_revenue: self.share_revenue,
                domain,
                utm,
                expires_at: self.expires_at,
                expired_url,
            }),
            (destination, promo, domain, utm, expired) => {
                Err([destination.err(), promo.err(), domain.err(), utm.err(), expired.err()]
                    .into_iter()
                    .flatten()
                    .collect())
            }
        }
    }
}

fn parse_destination(config: &Config, raw: &str) -> Result<domain::DestinationUrl, LinkError> {
    domain::DestinationUrl::parse(raw, &config.tracking_base_url)
        .map_err(|e| LinkError::invalid("invalid_destination_url", e.to_string()))
}

fn parse_expired_url(config: &Config, raw: &str) -> Result<domain::DestinationUrl, LinkError> {
    domain::DestinationUrl::parse(raw, &config.tracking_base_url).map_err(|e| {
        LinkError::invalid("invalid_expired_url", e.to_string().replacen("destination_url", "expired_url", 1))
    })
}

/// A link's domain as given: a host name, compared lowercase. Whether it is one of the brand's active
/// domains is checked at the write.
fn parse_domain(raw: &str) -> Result<String, LinkError> {
    crate::domains::Hostname::parse(raw)
        .map(|h| h.as_str().to_owned())
        .map_err(|e| LinkError::invalid("invalid_domain", format!("domain: {e}")))
}

/// The longest UTM tag value.
pub const MAX_UTM_LEN: usize = 255;

/// UTM tags, each 1–255 characters without control characters.
fn parse_utm(tags: [(&'static str, Option<&str>); 5]) -> Result<Utm, LinkError> {
    let mut values = Vec::with_capacity(5);
    for (name, value) in tags {
        if let Some(value) = value {
            if value.is_empty() || value.chars().count() > MAX_UTM_LEN || value.chars().any(char::is_control) {
                return Err(LinkError::invalid(
                    "invalid_utm",
                    format!("{name} must be 1 to {MAX_UTM_LEN} characters without control characters"),
                ));
            }
        }
        values.push(value.map(str::to_owned));
    }
    let mut values = values.into_iter();
    let mut next = || values.next().flatten();
    Ok(Utm { source: next(), medium: next(), campaign: next(), term: next(), content: next() })
}

fn parse_promo(raw: Option<&str>) -> Result<Option<PromoCode>, LinkError> {
    raw.map(|p| PromoCode::parse(p).map_err(|e| LinkError::invalid("invalid_promo_code", e))).transpose()
}

/// Maps the constraints a link write can violate to what the client did wrong. Another brand's
/// creator or campaign fails the composite foreign key exactly like a missing one: a 404 either way.
fn write_error(e: sqlx::Error) -> LinkError {
    let constraint = match &e {
        sqlx::Error::Database(db) => db.constraint().map(str::to_owned),
        _ => None,
    };
    match constraint.as_deref() {
        Some("links_creator_fkey") => LinkError::NotFound("creator"),
        Some("links_campaign_fkey") => LinkError::NotFound("campaign"),
        Some("links_domain_fkey") => not_an_active_domain(),
        Some("links_promo_code_key") => LinkError::Conflict {
            code: "promo_code_taken",
            message: "another active link of this brand already uses this promo code".into(),
        },
        _ => LinkError::Database(e),
    }
}

/// A domain that is not one of the brand's active domains is not found, like another brand's creator.
fn not_an_active_domain() -> LinkError {
    LinkError::NotFound("domain")
}

/// Refuses a domain that is not one of the brand's `active` domains (a pending or another brand's one
/// looks exactly like a missing one). The foreign key catches a domain removed after this check.
async fn check_domain(conn: &mut PgConnection, brand_id: Uuid, domain: Option<&str>) -> Result<(), LinkError> {
    let Some(domain) = domain else { return Ok(()) };
    let active: Option<bool> =
        sqlx::query_scalar("select status = 'active' from domains where brand_id = $1 and hostname = $2")
            .bind(brand_id)
            .bind(domain)
            .fetch_optional(conn)
            .await?;
    match active {
        Some(true) => Ok(()),
        _ => Err(not_an_active_domain()),
    }
}

fn is_code_collision(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.constraint() == Some("links_code_key"))
}

/// Creates the brand's link with a fresh code (drawing again on the rare collision). Another brand's
/// creator or campaign is not found, a promo code in use a conflict.
pub async fn create(
    db: &PgPool,
    config: &Config,
    codes: &CodeSource,
    brand_id: Uuid,
    fields: &LinkFields,
) -> Result<Link, LinkError> {
    check_domain(&mut *db.acquire().await?, brand_id, fields.domain.as_deref()).await?;
    for _ in 0..CODE_ATTEMPTS {
        let code = codes();
        match insert(db, brand_id, code.as_str(), fields).await {
            Ok(row) => return Ok(row.into_link(config)?),
            Err(e) if is_code_collision(&e) => {
                tracing::info!(code = %code, "tracking code collision, drawing another");
            }
            Err(e) => return Err(write_error(e)),
        }
    }
    Err(anyhow::anyhow!("no free tracking code after {CODE_ATTEMPTS} attempts").into())
}

/// Inserts the link, its sync record and its event in one statement (so one implicit transaction and
/// one round trip): all are written or none is.
async fn insert(db: &PgPool, brand_id: Uuid, code: &str, f: &LinkFields) -> Result<LinkRow, sqlx::Error> {
    sqlx::query_as::<_, LinkRow>(&format!(
        "with link as (
             insert into links (id, brand_id, code, destination_url, campaign_id, creator_id, platform, content_type,
                                promo_code, share_revenue, domain, utm_source, utm_medium, utm_campaign, utm_term,
                                utm_content, expires_at, expired_url)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             returning {LINK_COLUMNS}
         ), sync as (
             insert into link_sync_outbox (link_id, version) select id, version from link
         ), event as (
             -- Only brands with an endpoint pay for the event (a probe of a small index otherwise).
             select emit_webhook_event($2, 'link.created', to_jsonb(link), null) from link
             where exists (select 1 from webhook_endpoints where brand_id = $2 and enabled)
         )
         -- The event is a query, run only when read: the join reads it.
         select link.* from link left join event on true"
    ))
    .bind(Uuid::new_v4())
    .bind(brand_id)
    .bind(code)
    .bind(f.destination_url.as_str())
    .bind(f.campaign_id)
    .bind(f.creator_id)
    .bind(f.platform.map(Platform::as_str))
    .bind(f.content_type.map(ContentType::as_str))
    .bind(f.promo_code.as_ref().map(PromoCode::as_str))
    .bind(f.share_revenue)
    .bind(f.domain.as_deref())
    .bind(f.utm.source.as_deref())
    .bind(f.utm.medium.as_deref())
    .bind(f.utm.campaign.as_deref())
    .bind(f.utm.term.as_deref())
    .bind(f.utm.content.as_deref())
    .bind(f.expires_at)
    .bind(f.expired_url.as_ref().map(domain::DestinationUrl::as_str))
    .fetch_one(db)
    .await
}

/// Which of the brand's links a list (or an export) shows.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkFilter {
    pub campaign_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub platform: Option<Platform>,
    pub content_type: Option<ContentType>,
    /// `true`: only active links; `false`: only deleted ones.
    pub active: Option<bool>,
    /// Only links whose destination's last check found this.
    pub destination_status: Option<DestinationStatus>,
    /// Only links on this custom domain.
    pub domain: Option<String>,
}

/// What the last check of a link's destination found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationStatus {
    /// The page answered 2xx (after at most 5 redirects).
    Ok,
    /// The page answered an error status (`destination_http_status`), or redirected too often.
    Broken,
    /// No answer: DNS, connection, TLS, timeout, or an address checks may not reach.
    Unreachable,
}

impl DestinationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationStatus::Ok => "ok",
            DestinationStatus::Broken => "broken",
            DestinationStatus::Unreachable => "unreachable",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ok" => Some(DestinationStatus::Ok),
            "broken" => Some(DestinationStatus::Broken),
            "unreachable" => Some(DestinationStatus::Unreachable),
            _ => None,
        }
    }
}

/// At most `limit` of the brand's links matching `filter` before `before_seq`, newest first, each with
/// its sequence number (a list's cursor).
pub async fn list(
    db: &PgPool,
    config: &Config,
    brand_id: Uuid,
    filter: &LinkFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Link)>, LinkError> {
    // Only the filters given become conditions, so the planner sees a query it can match to an index.
    let mut query: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("select {LINK_COLUMNS} from links where brand_id = "));
    query.push_bind(brand_id);
    if let Some(id) = filter.campaign_id {
        query.push(" and campaign_id = ").push_bind(id);
    }
    if let Some(id) = filter.creator_id {
        query.push(" and creator_id = ").push_bind(id);
    }
    if let Some(platform) = filter.platform {
        query.push(" and platform = ").push_bind(platform.as_str());
    }
    if let Some(content_type) = filter.content_type {
        query.push(" and content_type = ").push_bind(content_type.as_str());
    }
    if let Some(active) = filter.active {
        query.push(" and active = ").push_bind(active);
    }
    if let Some(status) = filter.destination_status {
        query.push(" and destination_status = ").push_bind(status.as_str());
    }
    if let Some(domain) = &filter.domain {
        query.push(" and domain = ").push_bind(domain.to_ascii_lowercase());
    }
    if let Some(seq) = before_seq {
        query.push(" and seq < ").push_bind(seq);
    }
    query.push(" order by seq desc limit ").push_bind(limit);
    let rows = query.build_query_as::<LinkRow>().fetch_all(db).await?;
    Ok(rows.into_iter().map(|r| Ok((r.seq, r.into_link(config)?))).collect::<anyhow::Result<Vec<_>>>()?)
}

/// The brand's link with this id, locked for update when `for_update` is set.
pub async fn find(conn: &mut PgConnection, brand_id: Uuid, id: Uuid, for_update: bool) -> Result<LinkRow, LinkError> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as::<_, LinkRow>(&format!("select {LINK_COLUMNS} from links where id = $1 and brand_id = $2{lock}"))
        .bind(id)
        .bind(brand_id)
        .fetch_optional(conn)
        .await?
        .ok_or(LinkError::NotFound("link"))
}

/// The brand's link with this id; another brand's is not found, like a missing one.
pub async fn get(db: &PgPool, config: &Config, brand_id: Uuid, id: Uuid) -> Result<Link, LinkError> {
    let mut conn = db.acquire().await?;
    Ok(find(&mut conn, brand_id, id, false).await?.into_link(config)?)
}

/// Changes the fields `body` names (a field sent as `null` is cleared); a deleted link cannot be changed.
pub async fn update(
    db: &PgPool,
    config: &Config,
    brand_id: Uuid,
    id: Uuid,
    body: &UpdateLink,
) -> Result<Link, LinkError> {
    let destination = body.destination_url.as_deref().map(|u| parse_destination(config, u)).transpose()?;
    let promo = body.promo_code.as_ref().map(|p| parse_promo(p.as_deref())).transpose()?;
    let new_domain = body.domain.as_ref().map(|d| d.as_deref().map(parse_domain).transpose()).transpose()?;
    let expired = body
        .expired_url
        .as_ref()
        .map(|u| u.as_deref().map(|u| parse_expired_url(config, u)).transpose())
        .transpose()?;
    let utm_given = [
        ("utm_source", &body.utm_source),
        ("utm_medium", &body.utm_medium),
        ("utm_campaign", &body.utm_campaign),
        ("utm_term", &body.utm_term),
        ("utm_content", &body.utm_content),
    ];

    let mut tx = db.begin().await?;
    let current = find(&mut tx, brand_id, id, true).await?;
    if !current.active {
        return Err(LinkError::Conflict { code: "link_deleted", message: "a deleted link cannot be changed".into() });
    }
    let platform = match body.platform {
        Some(p) => p,
        None => current.platform.as_deref().map(str::parse).transpose().map_err(anyhow::Error::from)?,
    };
    let content_type = match body.content_type {
        Some(c) => c,
        None => current.content_type.as_deref().map(str::parse).transpose().map_err(anyhow::Error::from)?,
    };
    let promo_code = match promo {
        Some(p) => p,
        None => current.promo_code.as_deref().map(PromoCode::parse).transpose().map_err(anyhow::Error::msg)?,
    };
    let current_utm =
        [&current.utm_source, &current.utm_medium, &current.utm_campaign, &current.utm_term, &current.utm_content];
    let mut tags = [("", None); 5];
    for (i, ((name, given), stored)) in utm_given.iter().zip(current_utm).enumerate() {
        tags[i] = (*name, given.as_ref().map_or(stored.as_deref(), |g| g.as_deref()));
    }
    let utm = parse_utm(tags)?;
    let link_domain = new_domain.unwrap_or_else(|| current.domain.clone());
    if link_domain != current.domain {
        check_domain(&mut tx, brand_id, link_domain.as_deref()).await?;
    }
    let expired_url = match expired {
        Some(e) => e,
        None => current
            .expired_url
            .as_deref()
            .map(|u| domain::DestinationUrl::parse(u, &config.tracking_base_url))
            .transpose()
            .map_err(anyhow::Error::from)?,
    };
    let fields = LinkFields {
        destination_url: match destination {
            Some(d) => d,
            None => domain::DestinationUrl::parse(&current.destination_url, &config.tracking_base_url)
                .map_err(anyhow::Error::from)?,
        },
        campaign_id: body.campaign_id.unwrap_or(current.campaign_id),
        creator_id: body.creator_id.unwrap_or(current.creator_id),
        platform,
        content_type,
        promo_code,
        share_revenue: body.share_revenue.unwrap_or(current.share_revenue),
        domain: link_domain,
        utm,
        expires_at: body.expires_at.unwrap_or(current.expires_at),
        expired_url,
    };
    // A new destination has not been checked yet: its status is unknown until the check due now.
    let row = sqlx::query_as::<_, LinkRow>(&format!(
        "update links set destination_url = $3, campaign_id = $4, creator_id = $5, platform = $6,
             content_type = $7, promo_code = $8, share_revenue = $9, domain = $10, utm_source = $11,
             utm_medium = $12, utm_campaign = $13, utm_term = $14, utm_content = $15, expires_at = $16,
             expired_url = $17, version = version + 1, updated_at = now(),
             (destination_status, destination_http_status, destination_checked_at, destination_check_due_at) =
                 (select case when destination_url = $3 then destination_status end,
                         case when destination_url = $3 then destination_http_status end,
                         case when destination_url = $3 then destination_checked_at end,
                         case when destination_url = $3 then destination_check_due_at else now() end)
         where id = $1 and brand_id = $2
         returning {LINK_COLUMNS}"
    ))
    .bind(id)
    .bind(brand_id)
    .bind(fields.destination_url.as_str())
    .bind(fields.campaign_id)
    .bind(fields.creator_id)
    .bind(fields.platform.map(Platform::as_str))
    .bind(fields.content_type.map(ContentType::as_str))
    .bind(fields.promo_code.as_ref().map(PromoCode::as_str))
    .bind(fields.share_revenue)
    .bind(fields.domain.as_deref())
    .bind(fields.utm.source.as_deref())
    .bind(fields.utm.medium.as_deref())
    .bind(fields.utm.campaign.as_deref())
    .bind(fields.utm.term.as_deref())
    .bind(fields.utm.content.as_deref())
    .bind(fields.expires_at)
    .bind(fields.expired_url.as_ref().map(domain::DestinationUrl::as_str))
    .fetch_one(&mut *tx)
    .await
    .map_err(write_error)?;
    record_change(&mut tx, brand_id, &row, "link.updated").await?;
    tx.commit().await?;
    Ok(row.into_link(config)?)
}

/// Soft-deletes the brand's link: inactive, `deleted_at` set, the edge told; clicks and conversions
/// stay. Deactivating an inactive link changes nothing and is not an error.
pub async fn deactivate(db: &PgPool, brand_id: Uuid, id: Uuid) -> Result<(), LinkError> {
    let mut tx = db.begin().await?;
    let current = find(&mut tx, brand_id, id, true).await?;
    if current.active {
        let row = sqlx::query_as::<_, LinkRow>(&format!(
            "update links set active = false, deleted_at = now(), version = version + 1, updated_at = now(),
                 destination_check_due_at = null
             where id = $1 returning {LINK_COLUMNS}"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        record_change(&mut tx, brand_id, &row, "link.deactivated").await?;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    pub id: Uuid,
    /// 8 characters of `abcdefghjkmnpqrstuvwxyz23456789`.
    pub code: String,
    pub short_url: String,
    pub destination_url: String,
    pub campaign_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub platform: Option<Platform>,
    pub content_type: Option<ContentType>,
    pub promo_code: Option<String>,
    pub share_revenue: bool,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The custom domain the short URL is on; `null`: the default tracking domain.
    pub domain: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub expired_url: Option<String>,
    /// What the last check of the destination found; `null` until it was checked.
    pub destination_status: Option<DestinationStatus>,
    /// The HTTP status the destination answered at that check (for `broken`, the error status).
    pub destination_http_status: Option<i32>,
    pub destination_checked_at: Option<DateTime<Utc>>,
}

/// A `links` row as stored (and as a webhook event keeps it: `to_jsonb` of [`LINK_COLUMNS`]).
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct LinkRow {
    pub id: Uuid,
    pub seq: i64,
    pub code: String,
    pub destination_url: String,
    pub campaign_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub platform: Option<String>,
    pub content_type: Option<String>,
    pub promo_code: Option<String>,
    pub share_revenue: bool,
    pub active: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    // Snapshots stored before these columns existed lack them.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub utm_source: Option<String>,
    #[serde(default)]
    pub utm_medium: Option<String>,
    #[serde(default)]
    pub utm_campaign: Option<String>,
    #[serde(default)]
    pub utm_term: Option<String>,
    #[serde(default)]
    pub utm_content: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expired_url: Option<String>,
    #[serde(default)]
    pub destination_status: Option<String>,
    #[serde(default)]
    pub destination_http_status: Option<i32>,
    #[serde(default)]
    pub destination_checked_at: Option<DateTime<Utc>>,
}

pub const LINK_COLUMNS: &str = "id, seq, code, destination_url, campaign_id, creator_id, platform, content_type, \
     promo_code, share_revenue, active, version, created_at, deleted_at, domain, utm_source, utm_medium, \
     utm_campaign, utm_term, utm_content, expires_at, expired_url, destination_status, destination_http_status, \
     destination_checked_at";

impl LinkRow {
    /// The link as the REST API shows it.
    pub fn into_link(self, config: &Config) -> anyhow::Result<Link> {
        // The table's check constraints only admit known names, so a parse failure is a bug.
        let platform = self.platform.as_deref().map(str::parse::<Platform>).transpose()?;
        let content_type = self.content_type.as_deref().map(str::parse::<ContentType>).transpose()?;
        Ok(Link {
            short_url: config.link_url(self.domain.as_deref(), &self.code),
            destination_status: self.destination_status.as_deref().and_then(DestinationStatus::parse),
            id: self.id,
            code: self.code,
            destination_url: self.destination_url,
            campaign_id: self.campaign_id,
            creator_id: self.creator_id,
            platform,
            content_type,
            promo_code: self.promo_code,
            share_revenue: self.share_revenue,
            active: self.active,
            created_at: self.created_at,
            deleted_at: self.deleted_at,
            domain: self.domain,
            utm_source: self.utm_source,
            utm_medium: self.utm_medium,
            utm_campaign: self.utm_campaign,
            utm_term: self.utm_term,
            utm_content: self.utm_content,
            expires_at: self.expires_at,
            expired_url: self.expired_url,
            destination_http_status: self.destination_http_status,
            destination_checked_at: self.destination_checked_at,
        })
    }
}

/// A link from a stored snapshot of its row, as the REST API shows it.
pub fn from_snapshot(snapshot: &serde_json::Value, config: &Config) -> anyhow::Result<Link> {
    LinkRow::deserialize(snapshot)?.into_link(config)
}

/// Records a change of `link` in the caller's transaction, in one statement: the KV sync's outbox row,
/// and the `event` (`link.created`, `link.updated`, `link.deactivated`) for the brand's webhooks.
pub async fn record_change(
    tx: &mut PgConnection,
    brand_id: Uuid,
    link: &LinkRow,
    event: &'static str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "with sync as (insert into link_sync_outbox (link_id, version) values ($1, $2))
         select emit_webhook_event($3, $4, (select to_jsonb(l) from (select {LINK_COLUMNS} from links where id = $1) l),
                                   null)
         where exists (select 1 from webhook_endpoints where brand_id = $3 and enabled)"
    ))
    .bind(link.id)
    .bind(link.version)
    .bind(brand_id)
    .bind(event)
    .execute(tx)
    .await?;
    Ok(())
}

/// What names a link in an export: its code and its creator's name.
#[derive(Debug, Clone)]
pub struct LinkLabel {
    pub code: String,
    pub domain: Option<String>,
    pub creator_name: Option<String>,
}

/// Which of the lowercase promo codes `wanted` the brand's active links already use (promo codes are
/// unique among active links, case-insensitively), in lowercase.
pub async fn promo_codes_taken(
    db: &sqlx::PgPool,
    brand_id: Uuid,
    wanted: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select lower(promo_code) from links where brand_id = $1 and active and lower(promo_code) = any($2)",
    )
    .bind(brand_id)
    .bind(wanted)
    .fetch_all(db)
    .await
}

/// The labels of the brand's links among `ids`.
pub async fn labels(
    db: &sqlx::PgPool,
    brand_id: Uuid,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, LinkLabel>, sqlx::Error> {
    let rows: Vec<(Uuid, String, Option<String>, Option<String>)> = sqlx::query_as(
        "select l.id, l.code, l.domain, c.name from links l left join creators c on c.id = l.creator_id
         where l.brand_id = $1 and l.id = any($2)",
    )
    .bind(brand_id)
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, code, domain, creator_name)| (id, LinkLabel { code, domain, creator_name }))
        .collect())
}
