//! Refreshing stream tables. Rust and SQL share one path: every refresh is a call of
//! `pgstream.refresh_stream_table` (or its by-id form), which locks, runs the
//! compiled statement, trims the buffers and records statistics.

use crate::create::is_not_found;
use crate::error::{describe, Error, Result};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// Rows of the storage table inserted, updated or deleted.
    pub rows_changed: i64,
    /// Wall-clock time of the call, as seen by the application.
    pub duration: Duration,
}

/// Refresh a stream table now (`name` or `schema.name`), waiting for a refresh of it
/// in progress elsewhere to finish first.
///
/// A failure is recorded in `pgstream.pgs_refresh_stats` (`error_count`,
/// `last_error`) in a transaction of its own.
pub async fn refresh(pool: &PgPool, name: &str) -> Result<RefreshOutcome> {
    let span = refresh_span(name);
    async {
        let start = Instant::now();
        let r: Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT pgstream.refresh_stream_table($1)")
                .bind(name)
                .fetch_one(pool)
                .await;
        match r {
            Ok(n) => Ok(finish(n.unwrap_or(0), start)),
            Err(e) if is_not_found(&e) => Err(Error::NotFound(name.to_string())),
            Err(e) => {
                let msg = describe(&e);
                record_error_by_name(pool, name, &msg).await;
                Err(Error::db(Some(name), "refreshing", e))
            }
        }
    }
    .instrument(span)
    .await
}

/// Refresh by id unless another session is refreshing it (then `Ok(None)`). Used
/// by the scheduler; does not record errors (the caller does).
pub(crate) async fn try_refresh_by_id(
    pool: &PgPool,
    id: i64,
    name: &str,
) -> Result<Option<RefreshOutcome>> {
    let span = refresh_span(name);
    async {
        let start = Instant::now();
        let n: Option<i64> =
            sqlx::query_scalar("SELECT pgstream.refresh_stream_table_by_id($1, false)")
                .bind(id)
                .fetch_one(pool)
                .await
                .map_err(|e| Error::db(Some(name), "refreshing", e))?;
        Ok(n.map(|n| finish(n, start)))
    }
    .instrument(span)
    .await
}

fn refresh_span(name: &str) -> tracing::Span {
    tracing::info_span!(
        "refresh",
        stream_table = %name,
        rows_changed = tracing::field::Empty,
        duration_ms = tracing::field::Empty
    )
}

fn finish(rows_changed: i64, start: Instant) -> RefreshOutcome {
    let duration = start.elapsed();
    let span = tracing::Span::current();
    span.record("rows_changed", rows_changed);
    span.record("duration_ms", duration.as_secs_f64() * 1000.0);
    tracing::debug!(
        rows_changed,
        duration_ms = duration.as_secs_f64() * 1000.0,
        "refreshed"
    );
    RefreshOutcome {
        rows_changed,
        duration,
    }
}

/// Record a refresh failure in `pgstream.pgs_refresh_stats`, in its own transaction
/// (the failed one rolled back). Failing to record is logged, not returned.
pub(crate) async fn record_error(pool: &PgPool, id: i64, message: &str) {
    let r = sqlx::query(
        "INSERT INTO pgstream.pgs_refresh_stats AS r (st_id, error_count, last_error, last_error_at)
         SELECT s.id, 1, $2, now() FROM pgstream.pgs_stream_tables s WHERE s.id = $1
         ON CONFLICT (st_id) DO UPDATE
            SET error_count = r.error_count + 1, last_error = EXCLUDED.last_error,
                last_error_at = EXCLUDED.last_error_at",
    )
    .bind(id)
    .bind(message)
    .execute(pool)
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %describe(&e), "could not record a refresh error");
    }
}

async fn record_error_by_name(pool: &PgPool, name: &str, message: &str) {
    // `pgstream._resolve` raises for an unknown name: nothing to record then.
    match sqlx::query_scalar::<_, i64>("SELECT pgstream._resolve($1)")
        .bind(name)
        .fetch_one(pool)
        .await
    {
        Ok(id) => record_error(pool, id, message).await,
        Err(e) => tracing::debug!(error = %describe(&e), "refresh error not recorded"),
    }
}
