//! Metrics through the [`metrics`] crate facade: pgstream records them whatever the
//! application does, and they go wherever the application's recorder sends them
//! (Prometheus, StatsD, OpenTelemetry...); without a recorder they cost nothing.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `pgstream_refresh_duration_seconds` | histogram | `stream_table` | wall-clock time of each refresh, as the application saw it |
//! | `pgstream_refresh_rows_changed_total` | counter | `stream_table` | storage rows inserted, updated or deleted by refreshes |
//! | `pgstream_refreshes_total` | counter | `stream_table` | refreshes that succeeded |
//! | `pgstream_refresh_failures_total` | counter | `stream_table`, `kind` (`drift`, `transient`, `error`) | refreshes that failed |
//! | `pgstream_staleness_seconds` | gauge | `stream_table` | age of the data: now minus the time of the snapshot of the last refresh while a source's buffer holds changes (or a full refresh is pending); 0 when no source has changes, since the data is then current |
//! | `pgstream_buffer_rows` | gauge | `source` | rows waiting in a source's change buffer (PostgreSQL's live-row estimate) |
//! | `pgstream_stream_tables` | gauge | `status` | stream tables per status (`ACTIVE`, `ERROR`, `SUSPENDED`, ...) |
//!
//! The gauges are sampled by the scheduler ([`SAMPLE_EVERY`]) with one catalog query;
//! [`sample`] samples them on demand.

use crate::error::{Error, Result};
use sqlx::PgPool;
use std::time::Duration;

/// Histogram of refresh durations, in seconds.
pub const REFRESH_DURATION: &str = "pgstream_refresh_duration_seconds";
/// Counter of storage rows changed by refreshes.
pub const ROWS_CHANGED: &str = "pgstream_refresh_rows_changed_total";
/// Counter of successful refreshes.
pub const REFRESHES: &str = "pgstream_refreshes_total";
/// Counter of failed refreshes.
pub const FAILURES: &str = "pgstream_refresh_failures_total";
/// Gauge: age of a stream table's data, in seconds (0 while its sources have no
/// changes).
pub const STALENESS: &str = "pgstream_staleness_seconds";
/// Gauge: rows in a source's change buffer.
pub const BUFFER_ROWS: &str = "pgstream_buffer_rows";
/// Gauge: stream tables per status.
pub const STREAM_TABLES: &str = "pgstream_stream_tables";

/// How often the scheduler samples the gauges.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Describes every metric to the installed recorder (units and help texts, for
/// exporters that print them). Called when a runtime starts; harmless to repeat.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        REFRESH_DURATION,
        Unit::Seconds,
        "Wall-clock time of a stream table refresh"
    );
    describe_counter!(
        ROWS_CHANGED,
        Unit::Count,
        "Storage rows inserted, updated or deleted by refreshes"
    );
    describe_counter!(REFRESHES, Unit::Count, "Refreshes that succeeded");
    describe_counter!(FAILURES, Unit::Count, "Refreshes that failed");
    describe_gauge!(
        STALENESS,
        Unit::Seconds,
        "Age of a stream table's data while its sources have changes (0 when none)"
    );
    describe_gauge!(
        BUFFER_ROWS,
        Unit::Count,
        "Rows waiting in a source's change buffer (estimate)"
    );
    describe_gauge!(STREAM_TABLES, Unit::Count, "Stream tables per status");
}

/// Records a successful refresh.
pub(crate) fn refreshed(name: &str, rows_changed: i64, duration: Duration) {
    let label = [("stream_table", name.to_string())];
    metrics::histogram!(REFRESH_DURATION, &label).record(duration.as_secs_f64());
    metrics::counter!(REFRESHES, &label).increment(1);
    metrics::counter!(ROWS_CHANGED, &label).increment(rows_changed.max(0) as u64);
}

/// Records a failed refresh.
pub(crate) fn failed(name: &str, err: &Error) {
    let kind = if crate::refresh::is_drift_like(err) {
        "drift"
    } else if crate::refresh::is_transient(err) {
        "transient"
    } else {
        "error"
    };
    metrics::counter!(FAILURES, "stream_table" => name.to_string(), "kind" => kind).increment(1);
}

/// Samples the gauges (staleness per stream table, buffer rows per source, stream
/// tables per status) with one catalog query. The scheduler calls it every
/// [`SAMPLE_EVERY`]; an application without the scheduler may call it itself.
pub async fn sample(pool: &PgPool) -> Result<()> {
    let mut tx = crate::pin::begin(pool)
        .await
        .map_err(|e| Error::db(None, "sampling metrics", e))?;
    let rows: Vec<(String, String, Option<f64>)> = sqlx::query_as(
        "WITH busy AS (SELECT pgstream._busy_sources() AS oids)
         SELECT 'st', CASE WHEN s.schema_name = 'public' THEN s.table_name
                           ELSE s.schema_name || '.' || s.table_name END || '|' || s.status,
                CASE WHEN s.needs_full OR s.last_refresh_at IS NULL
                          OR EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f, busy
                                      WHERE f.st_id = s.id AND f.source_oid = ANY (busy.oids))
                     THEN extract(epoch FROM now() - coalesce(s.data_timestamp, s.last_refresh_at,
                                                              s.created_at))::float8
                     ELSE 0 END
           FROM pgstream.pgs_stream_tables s
         UNION ALL
         SELECT 'src', CASE WHEN src.schema_name = 'public' THEN src.table_name
                            ELSE src.schema_name || '.' || src.table_name END,
                coalesce(pg_catalog.pg_stat_get_live_tuples(c.oid), c.reltuples::bigint, 0)::float8
           FROM pgstream.pgs_sources src
           LEFT JOIN pg_catalog.pg_class c
             ON c.relnamespace = 'pgstream_changes'::regnamespace
            AND c.relname = 'changes_' || src.source_oid::text",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Error::db(None, "sampling metrics", e))?;
    tx.commit()
        .await
        .map_err(|e| Error::db(None, "sampling metrics", e))?;
    let mut per_status: std::collections::BTreeMap<String, f64> = Default::default();
    for (kind, label, value) in rows {
        if kind == "st" {
            let (name, status) = label.rsplit_once('|').unwrap_or((&label, ""));
            *per_status.entry(status.to_string()).or_default() += 1.0;
            if let Some(age) = value {
                metrics::gauge!(STALENESS, "stream_table" => name.to_string()).set(age.max(0.0));
            }
        } else {
            metrics::gauge!(BUFFER_ROWS, "source" => label).set(value.unwrap_or(0.0).max(0.0));
        }
    }
    for status in ["ACTIVE", "ERROR", "SUSPENDED"] {
        per_status.entry(status.to_string()).or_default();
    }
    for (status, n) in per_status {
        metrics::gauge!(STREAM_TABLES, "status" => status).set(n);
    }
    Ok(())
}
