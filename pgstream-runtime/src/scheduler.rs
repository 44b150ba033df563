//! The scheduler: every tick, refresh each active stream table whose last refresh
//! is older than its schedule. A stream table being refreshed elsewhere (another
//! replica, a manual call) is skipped, not waited for. Failures are logged, recorded
//! in `pgstream.pgs_refresh_stats`, and retried after one schedule interval.

use crate::error::{describe, Result, Step};
use crate::refresh::{record_error, try_refresh_by_id};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Run until `cancel` fires. A refresh in progress finishes first.
pub(crate) async fn run(pool: PgPool, tick: Duration, cancel: CancellationToken) {
    tracing::debug!(
        tick_ms = tick.as_millis() as u64,
        "pgstream scheduler started"
    );
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        if let Err(e) = run_once(&pool, &cancel).await {
            tracing::warn!(error = %e, "pgstream scheduler: cannot read the catalog");
        }
    }
    tracing::debug!("pgstream scheduler stopped");
}

/// One pass: refresh what is due, in creation order (upstream stream tables are
/// created before the ones reading them).
pub(crate) async fn run_once(pool: &PgPool, cancel: &CancellationToken) -> Result<()> {
    let due: Vec<(i64, String)> = sqlx::query_as(
        "SELECT s.id, pgstream._display_name(s.schema_name, s.table_name)
           FROM pgstream.pgs_stream_tables s
           LEFT JOIN pgstream.pgs_refresh_stats r ON r.st_id = s.id
          WHERE s.status = 'ACTIVE'
            AND (s.needs_full OR s.last_refresh_at IS NULL
                 OR s.last_refresh_at + s.schedule_interval <= now())
            AND (r.last_error_at IS NULL OR r.last_error_at + s.schedule_interval <= now()
                 OR r.last_error_at < s.last_refresh_at)
          ORDER BY s.id",
    )
    .fetch_all(pool)
    .await
    .step(None, "scheduler: reading the catalog")?;
    for (id, name) in due {
        if cancel.is_cancelled() {
            break;
        }
        match try_refresh_by_id(pool, id, &name).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!(stream_table = %name, "busy elsewhere, skipped"),
            Err(e) => {
                tracing::warn!(stream_table = %name, error = %e, "scheduled refresh failed");
                let msg = match &e {
                    crate::Error::Database { source, .. } => describe(source),
                    other => other.to_string(),
                };
                record_error(pool, id, &msg).await;
            }
        }
    }
    Ok(())
}
