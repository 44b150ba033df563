//! The scheduler: every tick, refresh each active stream table whose last refresh
//! is older than its schedule, upstream stream tables before the ones that read them
//! (topological order). A stream table being refreshed elsewhere (another replica, a
//! manual call) is skipped, not waited for. A failed refresh is recorded and retried
//! with exponential backoff; after `max_failures` failures in a row the stream table
//! is SUSPENDED (`pgstream.resume_stream_table`). When the database cannot be reached,
//! the scheduler waits with exponential backoff (up to 30 s) and carries on; the pool
//! opens new connections once the server is back.

use crate::error::{Result, Step};
use crate::refresh::{is_transient, record_error, try_refresh_by_id, FailurePolicy};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest wait between attempts to reach an unreachable database.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(30);

/// Run until `cancel` fires. A refresh in progress finishes first.
pub(crate) async fn run(
    pool: PgPool,
    tick: Duration,
    policy: FailurePolicy,
    cancel: CancellationToken,
) {
    tracing::debug!(
        tick_ms = tick.as_millis() as u64,
        "pgstream scheduler started"
    );
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outages: u32 = 0;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        match run_once(&pool, &policy, &cancel).await {
            Ok(()) => {
                if outages > 0 {
                    tracing::info!("pgstream scheduler: the database is reachable again");
                }
                outages = 0;
            }
            Err(e) => {
                outages = outages.saturating_add(1);
                let wait = reconnect_backoff(tick, outages);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64,
                    "pgstream scheduler: cannot read the catalog");
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                interval.reset();
            }
        }
    }
    tracing::debug!("pgstream scheduler stopped");
}

/// The wait after the `n`-th failure in a row to read the catalog: tick · 2^(n−1),
/// at most 30 s.
pub(crate) fn reconnect_backoff(tick: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    tick.saturating_mul(factor).min(MAX_RECONNECT_BACKOFF)
}

/// One pass: refresh what is due, upstream first (depth in the graph of stream
/// tables over stream tables, then creation order).
pub(crate) async fn run_once(
    pool: &PgPool,
    policy: &FailurePolicy,
    cancel: &CancellationToken,
) -> Result<()> {
    let due: Vec<(i64, String)> = sqlx::query_as(
        "WITH RECURSIVE st AS (
             SELECT s.id, to_regclass(pg_catalog.format('%I.%I', s.schema_name, s.table_name))::oid AS storage
               FROM pgstream.pgs_stream_tables s),
         edge AS (
             SELECT f.st_id AS down, u.id AS up
               FROM pgstream.pgs_frontiers f JOIN st u ON u.storage = f.source_oid),
         depth (id, d) AS (
             SELECT id, 0 FROM st
             UNION ALL
             SELECT e.down, depth.d + 1 FROM depth JOIN edge e ON e.up = depth.id
              WHERE depth.d < 64),
         levels AS (SELECT id, max(d) AS d FROM depth GROUP BY id)
         SELECT s.id, pgstream._display_name(s.schema_name, s.table_name)
           FROM pgstream.pgs_stream_tables s
           JOIN levels l ON l.id = s.id
          WHERE s.status = 'ACTIVE'
            AND (s.needs_full OR s.last_refresh_at IS NULL
                 OR s.last_refresh_at + s.schedule_interval <= now())
            AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
          ORDER BY l.d, s.id",
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
                record_error(pool, id, &e, Some(policy)).await;
                if is_transient(&e)
                    && matches!(
                        &e,
                        crate::Error::Database {
                            source: sqlx::Error::Io(_)
                                | sqlx::Error::PoolTimedOut
                                | sqlx::Error::PoolClosed,
                            ..
                        }
                    )
                {
                    // The server is gone: let the outer loop back off.
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reconnect_backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_30s() {
        let t = Duration::from_millis(100);
        assert_eq!(reconnect_backoff(t, 1), t);
        assert_eq!(reconnect_backoff(t, 2), Duration::from_millis(200));
        assert_eq!(reconnect_backoff(t, 4), Duration::from_millis(800));
        assert_eq!(reconnect_backoff(t, 40), Duration::from_secs(30));
    }
}
