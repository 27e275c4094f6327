//! Keeping Workers KV in step with the links table (the edge reads only KV).

use sqlx::PgConnection;

use crate::http::links::LinkRow;

/// Records that `link` changed, in the caller's transaction.
pub async fn enqueue(tx: &mut PgConnection, link: &LinkRow) -> Result<(), sqlx::Error> {
    sqlx::query("insert into link_sync_outbox (link_id, version) values ($1, $2)")
        .bind(link.id)
        .bind(link.version)
        .execute(tx)
        .await?;
    Ok(())
}
