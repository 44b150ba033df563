//! Refreshing stream tables. Rust and SQL share one path: every refresh is a call of
//! `pgstream.refresh_stream_table` (or its by-id form), which locks, runs the
//! compiled statement, trims the buffers and records statistics.

use crate::drop::is_not_found;
use crate::error::{describe, Error, Result};
use sqlx::{Encode, PgPool, Postgres, Type};
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
        match call_refresh(pool, "SELECT pgstream.refresh_stream_table($1)", name).await {
            Ok(n) => Ok(finish(name, n.unwrap_or(0), start)),
            Err(e) if is_not_found(&e) => Err(Error::NotFound(name.to_string())),
            Err(e) => {
                let err = Error::db(Some(name), "refreshing", e);
                crate::metrics::failed(name, &err);
                record_error_by_name(pool, name, &err).await;
                Err(err)
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
        let by_id = "SELECT pgstream.refresh_stream_table_by_id($1, false)";
        let n = call_refresh(pool, by_id, id).await.map_err(|e| {
            let err = Error::db(Some(name), "refreshing", e);
            crate::metrics::failed(name, &err);
            err
        })?;
        Ok(n.map(|n| finish(name, n, start)))
    }
    .instrument(span)
    .await
}

/// Runs `sql`, a call of `pgstream.refresh_stream_table` or its by-id form with the
/// stream table as `$1`, in a transaction of its own: the rows changed, or `None`
/// when the call returned NULL.
async fn call_refresh<'q, T>(
    pool: &PgPool,
    sql: &'q str,
    stream_table: T,
) -> Result<Option<i64>, sqlx::Error>
where
    T: 'q + Encode<'q, Postgres> + Type<Postgres> + Send,
{
    let mut tx = crate::pin::begin(pool).await?;
    let n = sqlx::query_scalar(sql)
        .bind(stream_table)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

fn refresh_span(name: &str) -> tracing::Span {
    tracing::info_span!(
        "refresh",
        stream_table = %name,
        rows_changed = tracing::field::Empty,
        duration_ms = tracing::field::Empty
    )
}

pub(crate) fn finish(name: &str, rows_changed: i64, start: Instant) -> RefreshOutcome {
    let duration = start.elapsed();
    crate::metrics::refreshed(name, rows_changed, duration);
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

/// What the scheduler does after a failed refresh: retry with exponential backoff,
/// suspend after `max_failures` failures in a row (0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailurePolicy {
    pub max_failures: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How many refreshes a scheduler pass runs at once (not about failures; it
    /// travels with the policy to the scheduler).
    pub parallel: usize,
    /// How many stream tables with filtered-out changes the scheduler advances in
    /// one transaction (also travelling with the policy).
    pub advance_batch: u32,
}

/// Default of [`RuntimeBuilder::advance_batch`](crate::RuntimeBuilder::advance_batch):
/// well below the shared lock table of a default server (64 slots per connection).
pub(crate) const DEFAULT_ADVANCE_BATCH: u32 = 1000;

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            max_failures: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            parallel: 1,
            advance_batch: DEFAULT_ADVANCE_BATCH,
        }
    }
}

/// SQLSTATE of pgstream's schema-drift error (`pgstream._drift`).
pub(crate) const DRIFT_SQLSTATE: &str = "PGS01";

/// Whether a refresh error says that the stored statements no longer match the
/// database: pgstream's drift error, or PostgreSQL's class 42 (an undefined column,
/// table, function or type, a type mismatch, ...) but for a missing privilege. Such a
/// refresh fails the same way every time: the stream table goes to the `ERROR` state
/// with the message, and `pgstream.resume_stream_table` checks again.
pub(crate) fn is_drift_like(e: &Error) -> bool {
    e.sqlstate()
        .is_some_and(|c| c == DRIFT_SQLSTATE || (c.starts_with("42") && c != "42501"))
}

/// Whether a failure is about the connection or the server (terminated backend,
/// restart, network, pool) rather than the stream table: it is retried after the
/// base backoff and does not count towards suspension.
pub(crate) fn is_transient(e: &Error) -> bool {
    match e {
        Error::Database { source, .. } => match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                // connection exception, insufficient resources, operator
                // intervention (terminated backend, shutdown), serialization/deadlock.
                ["08", "53", "57", "40"].iter().any(|p| c.starts_with(p))
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Record a refresh failure in `pgstream.pgs_refresh_stats` (`error_count`,
/// `last_error`), in its own transaction (the failed one rolled back). A schema-drift
/// error, or any error that says the stored statements no longer match the schema
/// ([`is_drift_like`]), puts the stream table in the `ERROR` state. With a policy (the scheduler),
/// also counts consecutive failures, sets the next retry time (exponential backoff)
/// and suspends the stream table at the policy's limit. Failing to record is logged,
/// not returned.
pub(crate) async fn record_error(
    pool: &PgPool,
    id: i64,
    err: &Error,
    policy: Option<&FailurePolicy>,
) {
    let message = match err {
        Error::Database { source, .. } => describe(source),
        other => other.to_string(),
    };
    let mut tx = match crate::pin::begin(pool).await {
        Ok(tx) => tx,
        Err(e) => {
            tracing::warn!(error = %describe(&e), "could not record a refresh error");
            return;
        }
    };
    let r = sqlx::query(
        "INSERT INTO pgstream.pgs_refresh_stats AS r (st_id, error_count, last_error, last_error_at)
         SELECT s.id, 1, $2, now() FROM pgstream.pgs_stream_tables s WHERE s.id = $1
         ON CONFLICT (st_id) DO UPDATE
            SET error_count = r.error_count + 1, last_error = EXCLUDED.last_error,
                last_error_at = EXCLUDED.last_error_at",
    )
    .bind(id)
    .bind(&message)
    .execute(&mut *tx)
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %describe(&e), "could not record a refresh error");
        return;
    }
    let drift = is_drift_like(err);
    let transient = is_transient(err);
    let (max, base_ms, max_ms) = match policy {
        Some(p) => (
            i32::try_from(p.max_failures).unwrap_or(i32::MAX),
            p.backoff_base.as_secs_f64() * 1000.0,
            p.backoff_max.as_secs_f64() * 1000.0,
        ),
        None if !drift => {
            if let Err(e) = tx.commit().await {
                tracing::warn!(error = %describe(&e), "could not record a refresh error");
            }
            return;
        }
        None => (0, 0.0, 0.0),
    };
    let counts = policy.is_some() && !transient;
    let r = sqlx::query(
        "UPDATE pgstream.pgs_stream_tables s
            SET consecutive_failures = s.consecutive_failures + CASE WHEN $4 THEN 1 ELSE 0 END,
                next_retry_at = now() + least(
                    $5::float8 * pg_catalog.power(2::float8,
                        CASE WHEN $4 THEN least(s.consecutive_failures, 30) ELSE 0 END),
                    $6::float8) * interval '1 millisecond',
                status = CASE
                    WHEN $3 THEN 'ERROR'
                    WHEN $4 AND $7 > 0 AND s.status = 'ACTIVE'
                         AND s.consecutive_failures + 1 >= $7 THEN 'SUSPENDED'
                    ELSE s.status END,
                status_reason = CASE
                    WHEN $3 THEN $2
                    WHEN $4 AND $7 > 0 AND s.status = 'ACTIVE'
                         AND s.consecutive_failures + 1 >= $7
                    THEN pg_catalog.format('suspended after %s consecutive failures; last: %s',
                                           s.consecutive_failures + 1, $2)
                    ELSE s.status_reason END
          WHERE s.id = $1
          RETURNING s.status, pgstream._display_name(s.schema_name, s.table_name)",
    )
    .bind(id)
    .bind(&message)
    .bind(drift)
    .bind(counts)
    .bind(base_ms)
    .bind(max_ms)
    .bind(max)
    .fetch_optional(&mut *tx)
    .await;
    let r = match r {
        Ok(row) => tx.commit().await.map(|()| row),
        Err(e) => Err(e),
    };
    match r {
        Ok(Some(status)) => {
            let name: String = sqlx::Row::get(&status, 1);
            let status: String = sqlx::Row::get(&status, 0);
            if status != "ACTIVE" {
                tracing::warn!(stream_table = %name, id, %status, error = %message, "stream table is no longer refreshed by the scheduler");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %describe(&e), "could not record a refresh error"),
    }
}

async fn record_error_by_name(pool: &PgPool, name: &str, err: &Error) {
    // `pgstream._resolve` raises for an unknown name: nothing to record then.
    let id = async {
        let mut tx = crate::pin::begin(pool).await?;
        sqlx::query_scalar::<_, i64>("SELECT pgstream._resolve($1)")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
    };
    match id.await {
        Ok(id) => record_error(pool, id, err, None).await,
        Err(e) => tracing::debug!(error = %describe(&e), "refresh error not recorded"),
    }
}

/// Resume a stream table that the scheduler suspended (or that is in the `ERROR`
/// state after a schema drift that was undone): see `pgstream.resume_stream_table`.
pub async fn resume_stream_table(pool: &PgPool, name: &str) -> Result<()> {
    let r = async {
        let mut tx = crate::pin::begin(pool).await?;
        sqlx::query("SELECT pgstream.resume_stream_table($1)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    };
    match r.await {
        Ok(_) => {
            tracing::info!(stream_table = %name, "resumed stream table");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Err(Error::NotFound(name.to_string())),
        Err(e) => Err(Error::db(Some(name), "resuming", e)),
    }
}
