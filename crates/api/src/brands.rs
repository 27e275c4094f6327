//! Brands and their API keys, managed from the command line (`api brand create`, `api key ...`), and the
//! check of a presented key.

use anyhow::{bail, Context};
use sqlx::PgPool;
use uuid::Uuid;

use crate::secrets::{self, NewSecret, SecretKind};

pub struct CreatedBrand {
    pub brand_id: Uuid,
    pub api_key: String,
    pub pixel_id: String,
}

pub async fn create_brand(db: &PgPool, name: &str) -> anyhow::Result<CreatedBrand> {
    let name = crate::domain::Name::parse(name, 200).map_err(|e| anyhow::anyhow!("brand name {e}"))?;
    let brand_id = Uuid::new_v4();
    let (pixel_id, key) = {
        let mut rng = rand::thread_rng();
        (secrets::generate_pixel_id(&mut rng), NewSecret::generate(SecretKind::ApiKey, &mut rng))
    };
    let mut tx = db.begin().await?;
    sqlx::query("insert into brands (id, name, pixel_id) values ($1, $2, $3)")
        .bind(brand_id)
        .bind(name.to_string())
        .bind(&pixel_id)
        .execute(&mut *tx)
        .await?;
    insert_key(&mut tx, brand_id, &key).await?;
    tx.commit().await?;
    Ok(CreatedBrand { brand_id, api_key: key.text, pixel_id })
}

/// Adds an API key to a brand and returns its text (the only time it is visible).
pub async fn create_key(db: &PgPool, brand_id: Uuid) -> anyhow::Result<String> {
    let key = NewSecret::generate(SecretKind::ApiKey, &mut rand::thread_rng());
    let mut tx = db.begin().await?;
    let exists: bool = sqlx::query_scalar("select exists (select 1 from brands where id = $1)")
        .bind(brand_id)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        bail!("no brand with id {brand_id}");
    }
    insert_key(&mut tx, brand_id, &key).await?;
    tx.commit().await?;
    Ok(key.text)
}

async fn insert_key(tx: &mut sqlx::PgConnection, brand_id: Uuid, key: &NewSecret) -> anyhow::Result<()> {
    sqlx::query("insert into api_keys (id, brand_id, prefix, key_hash) values ($1, $2, $3, $4)")
        .bind(Uuid::new_v4())
        .bind(brand_id)
        .bind(&key.prefix)
        .bind(&key.hash)
        .execute(tx)
        .await
        .context("storing the API key")?;
    Ok(())
}

/// Revokes the key with this prefix; revoking an already revoked key is not an error.
pub async fn revoke_key(db: &PgPool, prefix: &str) -> anyhow::Result<()> {
    let Some(prefix) = secrets::revocation_prefix(prefix) else {
        bail!("{prefix:?} is not a key prefix (expected csk_ and 8 characters)");
    };
    let found = sqlx::query("update api_keys set revoked_at = coalesce(revoked_at, now()) where prefix = $1")
        .bind(&prefix)
        .execute(db)
        .await?
        .rows_affected();
    if found == 0 {
        bail!("no API key with prefix {prefix}");
    }
    Ok(())
}

/// The brand whose unrevoked API key `presented` is (a whole `csk_…` key, compared in constant time);
/// `None` for anything else.
pub async fn authenticate(db: &PgPool, presented: &str) -> Result<Option<Uuid>, sqlx::Error> {
    let Some(prefix) = secrets::prefix_of(SecretKind::ApiKey, presented) else {
        return Ok(None);
    };
    let row: Option<(Uuid, Vec<u8>)> =
        sqlx::query_as("select brand_id, key_hash from api_keys where prefix = $1 and revoked_at is null")
            .bind(prefix)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(brand_id, hash)| secrets::verify(presented, &hash).then_some(brand_id)))
}
