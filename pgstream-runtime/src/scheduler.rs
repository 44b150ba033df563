//! The scheduler: every tick, refresh each active stream table that is due,
//! upstream stream tables before the ones that read them (topological order). With a
//! duration schedule, a stream table is due when its last refresh is older than the
//! duration (or a TRUNCATE of a source is pending); the SQL query decides. With a cron
//! schedule, it is due when a fire time lies after its last refresh (or, if it was
//! never refreshed, after its creation) and at or before the database's `now()`; the
//! query returns every active cron row and [`Schedule::is_due`] decides here. A stream table being refreshed elsewhere (another replica, a
//! manual call) is skipped, not waited for. A failed refresh is recorded and retried
//! with exponential backoff; after `max_failures` failures in a row the stream table
//! is SUSPENDED (`pgstream.resume_stream_table`). When the database cannot be reached,
//! the scheduler waits with exponential backoff (up to 30 s) and carries on; the pool
//! opens new connections once the server is back.

use crate::error::{Result, Step};
use crate::refresh::{is_transient, record_error, try_refresh_by_id, FailurePolicy};
use pgstream_core::Schedule;
use sqlx::PgPool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The longest wait between attempts to reach an unreachable database.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(30);

/// Run until `cancel` fires. A refresh in progress finishes first.
pub(crate) async fn run(
    pool: PgPool,
    tick: Duration,
    policy: FailurePolicy,
    cancel: CancellationToken,
    state: std::sync::Arc<crate::health::RuntimeState>,
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
        match run_once(&pool, tick, &policy, &cancel).await {
            Ok(()) => {
                state.ticked();
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
    state.stopped();
    tracing::debug!("pgstream scheduler stopped");
}

/// The wait after the `n`-th failure in a row to read the catalog: tick · 2^(n−1),
/// at most 30 s.
pub(crate) fn reconnect_backoff(tick: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    tick.saturating_mul(factor).min(MAX_RECONNECT_BACKOFF)
}

/// One pass: refresh what is due, upstream first (depth in the graph of stream
/// tables over stream tables, then creation order). A duration schedule is due half a
/// tick early: the last refresh's `now()` is a little after the tick that started it,
/// so without the slack a `1s` schedule on a 1 s tick would be due only every other
/// tick (every 2 s). Refreshing up to half a tick early keeps the staleness bound.
pub(crate) async fn run_once(
    pool: &PgPool,
    tick: Duration,
    policy: &FailurePolicy,
    cancel: &CancellationToken,
) -> Result<()> {
    let mut tx = crate::pin::begin(pool)
        .await
        .step(None, "scheduler: reading the catalog")?;
    let rows: Vec<(i64, String, String, f64, f64)> = sqlx::query_as(
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
         SELECT s.id, pgstream._display_name(s.schema_name, s.table_name), s.schedule,
                extract(epoch FROM coalesce(s.last_refresh_at, s.created_at))::float8,
                extract(epoch FROM now())::float8
           FROM pgstream.pgs_stream_tables s
           JOIN levels l ON l.id = s.id
          WHERE s.status = 'ACTIVE'
            AND (s.needs_full OR s.last_refresh_at IS NULL
                 OR s.last_refresh_at + s.schedule_interval <= now() + $1 * interval '1 millisecond'
                 OR s.schedule LIKE '@%' OR s.schedule LIKE '% %')
            AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
          ORDER BY l.d, s.id",
    )
    .bind(tick.as_secs_f64() * 500.0)
    .fetch_all(&mut *tx)
    .await
    .step(None, "scheduler: reading the catalog")?;
    // Read-only; ended before the refreshes, which run in transactions of their own.
    tx.rollback()
        .await
        .step(None, "scheduler: reading the catalog")?;
    let due = rows
        .into_iter()
        .filter(|(_, name, schedule, since, now)| is_due(name, schedule, *since, *now))
        .map(|(id, name, ..)| (id, name));
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

/// Whether a row the query returned is due: cron rows are decided here (`since` is
/// the last refresh, or the creation, and `now` the database's clock, both in seconds
/// since the epoch); every other row the query returned is due.
fn is_due(name: &str, schedule: &str, since: f64, now: f64) -> bool {
    match schedule.parse::<Schedule>() {
        Ok(s) if s.is_cron() => s.is_due(instant(since), instant(now)),
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(stream_table = %name, error = %e, "unreadable schedule, not refreshed");
            false
        }
    }
}

/// An instant from seconds since the epoch.
fn instant(secs: f64) -> SystemTime {
    if secs >= 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    } else {
        UNIX_EPOCH - Duration::from_secs_f64(-secs)
    }
}

#[cfg(test)]
mod tests {
    use super::{is_due, reconnect_backoff};
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_30s() {
        let t = Duration::from_millis(100);
        assert_eq!(reconnect_backoff(t, 1), t);
        assert_eq!(reconnect_backoff(t, 2), Duration::from_millis(200));
        assert_eq!(reconnect_backoff(t, 4), Duration::from_millis(800));
        assert_eq!(reconnect_backoff(t, 40), Duration::from_secs(30));
    }

    #[test]
    fn cron_rows_are_due_after_a_fire_time() {
        // 1_700_000_000 is 2023-11-14 22:13:20 UTC; `*/5` fires next at 22:15:00.
        let t = 1_700_000_000.0;
        assert!(!is_due("a", "*/5 * * * *", t, t + 99.9));
        assert!(is_due("a", "*/5 * * * *", t, t + 100.0));
        assert!(is_due("a", "* * * * * *", t + 0.5, t + 1.0));
        assert!(!is_due("a", "* * * * * *", t + 0.5, t + 0.9));
        assert!(!is_due("a", "0 0 1 1 *", t, t + 3600.0));
        // The query already decided for durations.
        assert!(is_due("a", "30s", t, t));
        assert!(!is_due("a", "not a schedule", t, t + 1e6));
    }
}
