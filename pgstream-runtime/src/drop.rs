//! Dropping stream tables (through `pgstream.drop_stream_table`).

use crate::error::{Error, Result};
use sqlx::PgPool;

/// Drop a stream table (see `pgstream.drop_stream_table`): storage table, catalog
/// rows, and the capture of sources no other stream table reads. Fails, naming
/// them, when other stream tables read it; see [`drop_stream_table_cascade`].
pub async fn drop_stream_table(pool: &PgPool, name: &str) -> Result<()> {
    drop_with(pool, name, false).await
}

/// Drop a stream table and, first, every stream table that reads it (recursively).
pub async fn drop_stream_table_cascade(pool: &PgPool, name: &str) -> Result<()> {
    drop_with(pool, name, true).await
}

async fn drop_with(pool: &PgPool, name: &str, cascade: bool) -> Result<()> {
    let r = async {
        let mut tx = crate::pin::begin(pool).await?;
        sqlx::query("SELECT pgstream.drop_stream_table($1, $2)")
            .bind(name)
            .bind(cascade)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    match r {
        Ok(_) => {
            tracing::info!(stream_table = %name, "dropped stream table");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Err(Error::NotFound(name.to_string())),
        Err(e) => Err(Error::db(Some(name), "dropping", e)),
    }
}

/// Whether an error is `pgstream._resolve`'s "stream table X does not exist".
pub(crate) fn is_not_found(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("42P01") && db.message().starts_with("stream table ")
        }
        _ => false,
    }
}
