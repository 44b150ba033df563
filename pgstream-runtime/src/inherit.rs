//! Schedules that follow their readers (`schedule = "inherit"`): the refresh of a
//! group of inheriting stream tables that some stream table reads together.
//!
//! The scheduler (`scheduler.rs`, `plan_jobs`) refreshes an inheriting stream table
//! only as part of its reader's pass, just before the reader, and always together
//! with every inheriting stream table read by a common reader (its group). A group
//! is refreshed here in **one transaction**: its members one after another, upstream
//! first (a member that reads another reads its new rows: the frontier's own-
//! transaction rule), committed together, so a reader's refresh (its own statement,
//! its own snapshot) sees every member before the group's refresh or every member
//! after it, never a mix.
//!
//! That alone does not put the members at one state of their *sources*: each
//! member's refresh is a statement with a snapshot of its own, and a writer that
//! commits between two of them is seen by the second only (a diamond: `a` and `b`
//! both read `orders`, `c` joins them). So when two or more members read tables
//! from outside the group, the group first takes `SHARE` locks on those tables
//! (in oid order, with a `lock_timeout` of [`LOCK_TIMEOUT`]): that waits for the
//! transactions that are writing them to end and holds back new writes until the
//! group commits, so every member's snapshot sees the same committed rows of them.
//! Writers of those tables wait for the group's refresh (the cost; a chain, whose
//! members read one another, takes no lock). A lock not obtained within the timeout
//! (a long writer) skips the group for this pass, as a stream table busy elsewhere
//! is skipped; the timeout is also below PostgreSQL's default `deadlock_timeout`,
//! so that in a lock cycle with a writer the group gives way, not the writer.

use crate::error::{Error, Result};
use crate::refresh::RefreshOutcome;
use sqlx::PgPool;
use std::time::Instant;
use tracing::Instrument;

/// Each member's rows changed and start, `None` when busy; or the failing member's
/// index and error.
type GroupResult = std::result::Result<Option<Vec<(i64, Instant)>>, (usize, sqlx::Error)>;

/// How long a group waits for the `SHARE` locks on the tables its members read.
pub(crate) const LOCK_TIMEOUT: &str = "500ms";

/// Sets `lock_timeout` to `$1` until the end of the transaction.
const SET_LOCK_TIMEOUT: &str = "SELECT pg_catalog.set_config('lock_timeout', $1, true)";

/// What refreshing a job of the scheduler came to.
#[derive(Debug)]
pub(crate) enum GroupOutcome {
    /// Every member refreshed, in order.
    Done(Vec<RefreshOutcome>),
    /// A member was being refreshed elsewhere, or the locks were not obtained in
    /// time: nothing was refreshed.
    Busy,
    /// A group's windows held no rows (the scheduler's probe): nothing to refresh.
    Idle,
    /// Member `member` (an index into the members) failed; nothing was refreshed.
    Failed {
        /// Which member failed.
        member: usize,
        /// Its error, naming it.
        error: Error,
    },
}

/// The outcome of a single stream table's refresh as a job's.
pub(crate) fn single(r: Result<Option<RefreshOutcome>>) -> GroupOutcome {
    match r {
        Ok(Some(o)) => GroupOutcome::Done(vec![o]),
        Ok(None) => GroupOutcome::Busy,
        Err(error) => GroupOutcome::Failed { member: 0, error },
    }
}

/// Refresh `members` (id, display name; upstream first) in one transaction, after
/// locking `lock` (source oids) in `SHARE` mode. Errors are not recorded (the
/// scheduler does, for the member that failed).
pub(crate) async fn refresh_group(
    pool: &PgPool,
    members: &[(i64, String)],
    lock: &[i64],
) -> GroupOutcome {
    let span = tracing::debug_span!(
        "refresh_group",
        stream_tables = %members.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", "),
        locked = lock.len()
    );
    let r: GroupResult = async {
        let mut tx = crate::pin::begin(pool).await.map_err(|e| (0, e))?;
        if !lock.is_empty() {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                   FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = ANY ($1::int8[]::oid[])
                  ORDER BY c.oid",
            )
            .bind(lock)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| (0, e))?;
            let previous: String =
                sqlx::query_scalar("SELECT pg_catalog.current_setting('lock_timeout')")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| (0, e))?;
            crate::pin::execute(&mut tx, SET_LOCK_TIMEOUT, LOCK_TIMEOUT)
                .await
                .map_err(|e| (0, e))?;
            if !names.is_empty() {
                crate::pin::script(
                    &mut tx,
                    &format!("LOCK TABLE {} IN SHARE MODE", names.join(", ")),
                )
                .await
                .map_err(|e| (0, e))?;
            }
            crate::pin::execute(&mut tx, SET_LOCK_TIMEOUT, previous)
                .await
                .map_err(|e| (0, e))?;
        }
        let mut done = Vec::with_capacity(members.len());
        for (k, (id, _)) in members.iter().enumerate() {
            let start = Instant::now();
            let n: Option<i64> =
                sqlx::query_scalar("SELECT pgstream.refresh_stream_table_by_id($1, false)")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| (k, e))?;
            match n {
                // Busy elsewhere: the whole group waits for the next pass.
                None => return Ok(None),
                Some(n) => done.push((n, start)),
            }
        }
        tx.commit()
            .await
            .map_err(|e| (members.len().saturating_sub(1), e))?;
        Ok(Some(done))
    }
    .instrument(span)
    .await;
    match r {
        Ok(Some(done)) => GroupOutcome::Done(
            members
                .iter()
                .zip(done)
                .map(|((_, name), (n, start))| crate::refresh::finish(name, n, start))
                .collect(),
        ),
        Ok(None) => GroupOutcome::Busy,
        Err((_, sqlx::Error::Database(db))) if db.code().as_deref() == Some("55P03") => {
            tracing::debug!(
                stream_table = %members[0].1,
                "the tables an inheriting group reads stayed locked by writers: skipped this pass"
            );
            GroupOutcome::Busy
        }
        Err((k, e)) => {
            let name = &members[k].1;
            let error = Error::db(Some(name), "refreshing", e);
            crate::metrics::failed(name, &error);
            GroupOutcome::Failed { member: k, error }
        }
    }
}
