//! A brand's campaigns: groups of links run together. Their rules and SQL; the REST API and the
//! dashboard are adapters of these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::Name;
use crate::links::LinkError;
use crate::schema::DisplayName;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Spring drop"}))]
pub struct CreateCampaign {
    /// 1–200 characters once trimmed.
    #[schema(value_type = DisplayName)]
    pub name: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SeqCampaign {
    seq: i64,
    #[sqlx(flatten)]
    campaign: Campaign,
}

/// Validates and stores a campaign of the brand.
pub async fn create(db: &PgPool, brand_id: Uuid, body: &CreateCampaign) -> Result<Campaign, LinkError> {
    let name = Name::parse(&body.name, 200).map_err(|e| LinkError::invalid("invalid_name", format!("name {e}")))?;
    let campaign = sqlx::query_as::<_, Campaign>(
        "insert into campaigns (id, brand_id, name) values ($1, $2, $3) returning id, name, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(brand_id)
    .bind(name.into_inner())
    .fetch_one(db)
    .await?;
    Ok(campaign)
}

/// At most `limit` of the brand's campaigns before `before_seq`, newest first, each with its sequence
/// number (a list's cursor).
pub async fn list(
    db: &PgPool,
    brand_id: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Campaign)>, sqlx::Error> {
    let rows = sqlx::query_as::<_, SeqCampaign>(
        "select seq, id, name, created_at from campaigns
         where brand_id = $1 and ($2::bigint is null or seq < $2)
         order by seq desc limit $3",
    )
    .bind(brand_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.campaign)).collect())
}

/// Every campaign of the brand, newest first (for choosing one).
pub async fn all(db: &PgPool, brand_id: Uuid) -> Result<Vec<Campaign>, sqlx::Error> {
    sqlx::query_as::<_, Campaign>("select id, name, created_at from campaigns where brand_id = $1 order by seq desc")
        .bind(brand_id)
        .fetch_all(db)
        .await
}

/// One of the brand's campaigns.
pub async fn get(db: &PgPool, brand_id: Uuid, id: Uuid) -> Result<Option<Campaign>, sqlx::Error> {
    sqlx::query_as::<_, Campaign>("select id, name, created_at from campaigns where id = $1 and brand_id = $2")
        .bind(id)
        .bind(brand_id)
        .fetch_optional(db)
        .await
}
