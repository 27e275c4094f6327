//! A brand's creators: the people links are made for. Their rules and SQL; the REST API and the dashboard
//! are adapters of these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::Name;
use crate::links::LinkError;
use crate::schema::{DisplayName, Handle};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Jessica Alvarez", "handle": "@jessica"}))]
pub struct CreateCreator {
    /// 1–200 characters once trimmed.
    #[schema(value_type = DisplayName)]
    pub name: String,
    /// The creator's handle on their main platform, e.g. `@jessica` (at most 100 characters).
    #[schema(value_type = Option<Handle>)]
    pub handle: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Creator {
    pub id: Uuid,
    pub name: String,
    pub handle: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the creator accepted the brand's invitation and joined the creators' portal; null: not joined
    /// (see `POST /v1/creators/{id}/invitations`).
    pub joined_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, handle, created_at, joined_at";

#[derive(sqlx::FromRow)]
struct SeqCreator {
    seq: i64,
    #[sqlx(flatten)]
    creator: Creator,
}

/// Validates and stores a creator of the brand.
pub async fn create(db: &PgPool, brand_id: Uuid, body: &CreateCreator) -> Result<Creator, LinkError> {
    let name = Name::parse(&body.name, 200).map_err(|e| LinkError::invalid("invalid_name", format!("name {e}")))?;
    let handle = body
        .handle
        .as_deref()
        .map(|h| Name::parse(h, 100).map_err(|e| LinkError::invalid("invalid_handle", format!("handle {e}"))))
        .transpose()?;
    let creator = sqlx::query_as::<_, Creator>(&format!(
        "insert into creators (id, brand_id, name, handle) values ($1, $2, $3, $4) returning {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(brand_id)
    .bind(name.into_inner())
    .bind(handle.map(Name::into_inner))
    .fetch_one(db)
    .await?;
    Ok(creator)
}

/// At most `limit` of the brand's creators before `before_seq`, newest first, each with its sequence
/// number (a list's cursor).
pub async fn list(
    db: &PgPool,
    brand_id: Uuid,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Creator)>, sqlx::Error> {
    let rows = sqlx::query_as::<_, SeqCreator>(&format!(
        "select seq, {COLUMNS} from creators
         where brand_id = $1 and ($2::bigint is null or seq < $2)
         order by seq desc limit $3"
    ))
    .bind(brand_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.creator)).collect())
}

/// Every creator of the brand, newest first (for choosing one).
pub async fn all(db: &PgPool, brand_id: Uuid) -> Result<Vec<Creator>, sqlx::Error> {
    sqlx::query_as::<_, Creator>(&format!("select {COLUMNS} from creators where brand_id = $1 order by seq desc"))
        .bind(brand_id)
        .fetch_all(db)
        .await
}

/// One of the brand's creators.
pub async fn get(db: &PgPool, brand_id: Uuid, id: Uuid) -> Result<Option<Creator>, sqlx::Error> {
    sqlx::query_as::<_, Creator>(&format!("select {COLUMNS} from creators where id = $1 and brand_id = $2"))
        .bind(id)
        .bind(brand_id)
        .fetch_optional(db)
        .await
}
