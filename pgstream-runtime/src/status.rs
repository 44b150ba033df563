//! Monitoring: `pgstream.pgs_status()` joined with `pgstream.pg_stat_stream_tables`.

use crate::error::{Result, Step};
use sqlx::types::chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

/// The state and statistics of one stream table.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamTableStatus {
    /// `name` in `public`, else `schema.name`.
    pub name: String,
    /// The schedule as written (`30s`, `*/5 * * * *`, `on commit`, `inherit`).
    pub schedule: String,
    /// The schedule it follows: [`schedule`](Self::schedule), or for `inherit` the
    /// most demanding reader's, as `5s (from reader)` (`1m (no readers)` when no
    /// stream table with a schedule of its own reads it). `None` from a catalog
    /// older than version 8.
    pub effective_schedule: Option<String>,
    /// `DIFFERENTIAL`, `FULL` or `IMMEDIATE`.
    pub refresh_mode: String,
    /// `ACTIVE`; `SUSPENDED` after repeated failures (resume it); `ERROR` when a
    /// source column it uses drifted (see `status_reason`).
    pub status: String,
    /// Why the status is not `ACTIVE`.
    pub status_reason: Option<String>,
    /// Scheduled refreshes that failed in a row.
    pub consecutive_failures: i32,
    /// The scheduler does not retry before this time (backoff after a failure).
    pub next_retry_at: Option<DateTime<Utc>>,
    /// End of the last successful refresh (transaction start time).
    pub last_refresh_at: Option<DateTime<Utc>>,
    /// Whether it must be refreshed to honour its schedule: changes are pending and
    /// the last refresh is older than the schedule (a TRUNCATE is pending). For a
    /// cron schedule the comparison is with the longest time between two fire times
    /// ([`Schedule::nominal_interval`](pgstream_core::Schedule::nominal_interval)):
    /// exact for evenly spaced schedules, late for uneven ones.
    pub stale: bool,
    /// Captured changes not yet applied.
    pub pending_changes: i64,
    /// Whether a TRUNCATE of a source forces the next refresh to be a full one.
    pub needs_full: bool,
    /// Successful refreshes since creation (the initial population excluded).
    pub refresh_count: i64,
    /// Mean refresh duration in milliseconds.
    pub avg_duration_ms: Option<f64>,
    /// Shortest refresh in milliseconds.
    pub min_duration_ms: Option<f64>,
    /// Longest refresh in milliseconds.
    pub max_duration_ms: Option<f64>,
    /// Last refresh's duration in milliseconds.
    pub last_duration_ms: Option<f64>,
    /// Rows changed by all refreshes.
    pub rows_affected: i64,
    /// Failed refreshes recorded.
    pub error_count: i64,
    /// Message of the last failure.
    pub last_error: Option<String>,
    /// Time of the last failure.
    pub last_error_at: Option<DateTime<Utc>>,
    /// How the query is maintained, as `pgstream explain` says (NULL before catalog
    /// version 5).
    pub strategy: Option<String>,
    /// How the last refresh ran: `DIFFERENTIAL`, `FULL`, `FULL (adaptive)` (the
    /// window was too large for a differential refresh to pay off) or `NO CHANGES`.
    pub last_strategy: Option<String>,
    /// Buffer rows in the last refresh's windows (an UPDATE counts two), counted up
    /// to the adaptive switch's threshold.
    pub last_window_rows: Option<i64>,
    /// Refreshes that ran differentially.
    pub differential_count: i64,
    /// Refreshes that ran as full refreshes (FULL mode, after a TRUNCATE, or by the
    /// adaptive switch).
    pub full_count: i64,
    /// Of those, the ones the adaptive switch chose.
    pub adaptive_full_count: i64,
    /// Refreshes that found no changes (and did nothing).
    pub no_change_count: i64,
}

/// The status of every stream table, ordered by name.
pub async fn status(pool: &PgPool) -> Result<Vec<StreamTableStatus>> {
    // Read-only: the transaction (search_path pinned) is rolled back when dropped.
    let mut tx = crate::pin::begin(pool)
        .await
        .step(None, "reading the status")?;
    let rows = sqlx::query(
        "SELECT s.name, s.schedule, s.refresh_mode, s.status, s.last_refresh_at, s.stale,
                s.pending_changes, s.needs_full, v.refresh_count, v.avg_duration_ms,
                v.min_duration_ms, v.max_duration_ms, v.last_duration_ms, v.rows_affected,
                v.error_count, v.last_error, v.last_error_at,
                -- Columns of catalog version 2, read so that a catalog not yet
                -- upgraded (status does not install) still gives its status.
                to_jsonb(v) ->> 'status_reason' AS status_reason,
                coalesce((to_jsonb(v) ->> 'consecutive_failures')::int4, 0) AS consecutive_failures,
                (to_jsonb(v) ->> 'next_retry_at')::timestamptz AS next_retry_at,
                -- Version 5.
                to_jsonb(s) ->> 'strategy' AS strategy,
                to_jsonb(v) ->> 'last_strategy' AS last_strategy,
                -- Version 8.
                to_jsonb(s) ->> 'effective_schedule' AS effective_schedule,
                (to_jsonb(v) ->> 'last_window_rows')::int8 AS last_window_rows,
                coalesce((to_jsonb(v) ->> 'differential_count')::int8, 0) AS differential_count,
                coalesce((to_jsonb(v) ->> 'full_count')::int8, 0) AS full_count,
                coalesce((to_jsonb(v) ->> 'adaptive_full_count')::int8, 0) AS adaptive_full_count,
                coalesce((to_jsonb(v) ->> 'no_change_count')::int8, 0) AS no_change_count
           FROM pgstream.pgs_status() s
           JOIN pgstream.pg_stat_stream_tables v ON v.id = s.id
          ORDER BY s.name",
    )
    .fetch_all(&mut *tx)
    .await
    .step(None, "reading the status")?;
    rows.iter()
        .map(|r| {
            Ok(StreamTableStatus {
                name: r.try_get("name")?,
                schedule: r.try_get("schedule")?,
                effective_schedule: r.try_get("effective_schedule")?,
                refresh_mode: r.try_get("refresh_mode")?,
                status: r.try_get("status")?,
                status_reason: r.try_get("status_reason")?,
                consecutive_failures: r.try_get("consecutive_failures")?,
                next_retry_at: r.try_get("next_retry_at")?,
                last_refresh_at: r.try_get("last_refresh_at")?,
                stale: r.try_get("stale")?,
                pending_changes: r.try_get("pending_changes")?,
                needs_full: r.try_get("needs_full")?,
                refresh_count: r.try_get("refresh_count")?,
                avg_duration_ms: r.try_get("avg_duration_ms")?,
                min_duration_ms: r.try_get("min_duration_ms")?,
                max_duration_ms: r.try_get("max_duration_ms")?,
                last_duration_ms: r.try_get("last_duration_ms")?,
                rows_affected: r.try_get("rows_affected")?,
                error_count: r.try_get("error_count")?,
                last_error: r.try_get("last_error")?,
                last_error_at: r.try_get("last_error_at")?,
                strategy: r.try_get("strategy")?,
                last_strategy: r.try_get("last_strategy")?,
                last_window_rows: r.try_get("last_window_rows")?,
                differential_count: r.try_get("differential_count")?,
                full_count: r.try_get("full_count")?,
                adaptive_full_count: r.try_get("adaptive_full_count")?,
                no_change_count: r.try_get("no_change_count")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .step(None, "reading the status")
}
