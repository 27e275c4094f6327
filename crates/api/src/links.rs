//! A tracking link as stored and as the REST API shows it, and what every change of one records: the
//! KV sync's outbox row and the webhook event, in the change's transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use shared::{ContentType, Platform};

use crate::config::Config;

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
}

/// A `links` row as stored (and as a webhook event keeps it: `to_jsonb` of [`LINK_COLUMNS`]).
#[derive(Debug, Clone, sqlx::FromRow, Deserialize)]
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
}

pub const LINK_COLUMNS: &str = "id, seq, code, destination_url, campaign_id, creator_id, platform, content_type, \
     promo_code, share_revenue, active, version, created_at, deleted_at";

impl LinkRow {
    /// The link as the REST API shows it.
    pub fn into_link(self, config: &Config) -> anyhow::Result<Link> {
        // The table's check constraints only admit known names, so a parse failure is a bug.
        let platform = self.platform.as_deref().map(str::parse::<Platform>).transpose()?;
        let content_type = self.content_type.as_deref().map(str::parse::<ContentType>).transpose()?;
        Ok(Link {
            short_url: config.short_url(&self.code),
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
        })
    }
}

/// A link from a stored snapshot of its row, as the REST API shows it.
pub fn from_snapshot(snapshot: serde_json::Value, config: &Config) -> anyhow::Result<Link> {
    serde_json::from_value::<LinkRow>(snapshot)?.into_link(config)
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
    pub creator_name: Option<String>,
}

/// The labels of the brand's links among `ids`.
pub async fn labels(
    db: &sqlx::PgPool,
    brand_id: Uuid,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, LinkLabel>, sqlx::Error> {
    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "select l.id, l.code, c.name from links l left join creators c on c.id = l.creator_id
         where l.brand_id = $1 and l.id = any($2)",
    )
    .bind(brand_id)
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(id, code, creator_name)| (id, LinkLabel { code, creator_name })).collect())
}
