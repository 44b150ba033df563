//! Refresh on commit: stream tables whose schedule is `on commit` are refreshed as
//! soon as a transaction that changed one of their sources commits.
//!
//! The capture function of a source that such a stream table reads notifies the
//! channel [`CHANGES_CHANNEL`] with the source's oid (`pgstream._build_capture`);
//! PostgreSQL delivers it at commit, once per transaction and source, never for a
//! rolled-back transaction. A listening connection (its own task, so that no
//! notification is lost to a cancelled receive) forwards the oids here; this task
//! looks up the on-commit stream tables that read them and refreshes each:
//!
//! - **Coalescing.** At most one refresh of a stream table is in flight (in this
//!   runtime; across replicas the refresh's advisory lock decides, and a stream table
//!   being refreshed elsewhere is tried again shortly, since that refresh may have
//!   started before the commit). Notifications that arrive meanwhile mark it dirty;
//!   one refresh follows, at least `min_gap` after the previous one started.
//! - **The same refresh path** as the scheduler (`try_refresh_by_id`, then
//!   `record_error` with the runtime's failure policy on a failure).
//! - **Cascades** need nothing here: the refresh of an on-commit stream table writes
//!   its storage table, whose capture notifies in turn when an on-commit stream table
//!   reads it.
//! - **Inheriting producers.** An on-commit stream table that reads stream tables with
//!   the schedule `inherit` is refreshed with them, as the scheduler would
//!   (`scheduler::refresh_with_inherited`: their groups first, in one transaction
//!   each, then it); capture of their sources notifies (`pgstream._read_on_commit`),
//!   and a notification from one of them marks the reader dirty.
//! - **Lost notifications.** When the listening connection is (re)established, every
//!   on-commit stream table is refreshed once (commits made while nobody listened).
//!   The scheduler's safety net ([`Schedule::ON_COMMIT_FALLBACK`]) covers the rest.
//!
//! [`Schedule::ON_COMMIT_FALLBACK`]: pgstream_core::Schedule::ON_COMMIT_FALLBACK

use crate::error::Result;
use crate::refresh::{record_error, try_refresh_by_id, FailurePolicy, RefreshOutcome};
use crate::scheduler::Only;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The channel capture notifies, with the source's oid as payload, when an
/// on-commit stream table reads the source.
pub const CHANGES_CHANNEL: &str = "pgstream_changes";

/// The channel every refresh that changed rows notifies (whatever its schedule and
/// whoever ran it), with the JSON payload
/// `{"name": "department_stats", "schema": "public", "table": "department_stats", "rows": 3}`.
/// Each stream table's refreshes also notify a channel of its own,
/// `pgstream_refreshed:<name>` (SQL `pgstream.refreshed_channel(name)`), when that
/// name fits in 63 bytes.
pub const REFRESHED_CHANNEL: &str = "pgstream_refreshed";

/// The default of [`RuntimeBuilder::on_commit_min_gap`](crate::RuntimeBuilder::on_commit_min_gap).
pub const DEFAULT_MIN_GAP: Duration = Duration::from_millis(10);

/// How soon a stream table that was being refreshed elsewhere is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(50);

/// The longest wait between attempts to open the listening connection.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the listening task reports.
enum Heard {
    /// A transaction that changed this source committed.
    Source(i64),
    /// The listening connection was (re)established: notifications may have been
    /// missed.
    Resync,
}

/// One on-commit stream table this task has heard of.
struct Entry {
    name: String,
    /// It reads `inherit` stream tables: refreshed with them.
    with_inherited: bool,
    /// Changes arrived since its last refresh started.
    dirty: bool,
    in_flight: bool,
    /// When the next refresh may start.
    not_before: Instant,
}

/// What one refresh task came to.
enum Done {
    /// `try_refresh_by_id` (`None`: busy elsewhere).
    Single(Option<RefreshOutcome>),
    /// `refresh_with_inherited`.
    Inherited(Only),
}

/// Run until `cancel` fires; a refresh in progress finishes first.
pub(crate) async fn run(
    pool: PgPool,
    min_gap: Duration,
    policy: FailurePolicy,
    cancel: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = tokio::spawn(listen(pool.clone(), tx, cancel.clone()));
    // Bounded by the pool: leave connections for the application and the scheduler.
    let max_in_flight = (pool.options().get_max_connections() as usize / 2).max(1);
    let mut tables: HashMap<i64, Entry> = HashMap::new();
    let mut sources: HashSet<i64> = HashSet::new();
    let mut resync = false;
    let mut running: JoinSet<(i64, Result<Done>)> = JoinSet::new();
    // False once the listening task is gone (it only ends at shutdown, or by a
    // panic): the scheduler's safety net is then all there is.
    let mut hearing = true;
    loop {
        if resync || !sources.is_empty() {
            let oids: Vec<i64> = sources.drain().collect();
            match readers(&pool, &oids, resync).await {
                Ok(found) => {
                    let now = Instant::now();
                    for (id, name, with_inherited) in found {
                        let e = tables.entry(id).or_insert_with(|| Entry {
                            name: name.clone(),
                            with_inherited,
                            dirty: false,
                            in_flight: false,
                            not_before: now,
                        });
                        e.name = name;
                        e.with_inherited = with_inherited;
                        e.dirty = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pgstream on commit: cannot read the catalog");
                    // Refresh everything once the database answers again.
                    resync = true;
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
            resync = false;
        }
        // Start what may start; note when the next one may.
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        for (&id, e) in tables.iter_mut() {
            if !e.dirty || e.in_flight {
                continue;
            }
            if e.not_before > now || running.len() >= max_in_flight {
                let at = e.not_before.max(now);
                if running.len() < max_in_flight {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
                continue;
            }
            e.dirty = false;
            e.in_flight = true;
            e.not_before = now + min_gap;
            let (pool, name, cancel) = (pool.clone(), e.name.clone(), cancel.clone());
            if e.with_inherited {
                running.spawn(async move {
                    let r =
                        crate::scheduler::refresh_with_inherited(&pool, id, &policy, &cancel).await;
                    (id, r.map(Done::Inherited))
                });
            } else {
                running.spawn(async move {
                    (
                        id,
                        try_refresh_by_id(&pool, id, &name).await.map(Done::Single),
                    )
                });
            }
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((id, result)) = done else { continue };
                let Some(e) = tables.get_mut(&id) else { continue };
                e.in_flight = false;
                match result {
                    Ok(Done::Single(Some(outcome))) => tracing::trace!(stream_table = %e.name,
                        rows_changed = outcome.rows_changed, "refreshed on commit"),
                    Ok(Done::Inherited(Only::Refreshed(rows))) => tracing::trace!(
                        stream_table = %e.name, rows_changed = rows,
                        "refreshed on commit with the stream tables it inherits from"),
                    // Recorded by the pass; nothing changed.
                    Ok(Done::Inherited(Only::Failed | Only::Skipped)) => {}
                    Ok(Done::Single(None) | Done::Inherited(Only::Busy)) => {
                        // Refreshed elsewhere, perhaps from before the commit: again soon.
                        e.dirty = true;
                        e.not_before = e.not_before.max(Instant::now() + BUSY_RETRY);
                    }
                    Err(err) => {
                        tracing::warn!(stream_table = %e.name, error = %err, "refresh on commit failed");
                        record_error(&pool, id, &err, Some(&policy)).await;
                        // Its next_retry_at now keeps it out of `readers` until due.
                        e.dirty = false;
                    }
                }
            }
            heard = rx.recv(), if hearing => {
                let Some(first) = heard else {
                    if !cancel.is_cancelled() {
                        tracing::warn!("pgstream on commit: the listener stopped");
                    }
                    hearing = false;
                    continue;
                };
                // Take the whole burst before looking it up.
                let mut next = Some(first);
                while let Some(h) = next {
                    match h {
                        Heard::Source(oid) => {
                            sources.insert(oid);
                        }
                        Heard::Resync => resync = true,
                    }
                    next = rx.try_recv().ok();
                }
            }
            _ = sleep_until(wake), if wake.is_some() => {}
        }
    }
    listener.abort();
    while running.join_next().await.is_some() {}
    tracing::debug!("pgstream on-commit refresher stopped");
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// The active on-commit stream tables (not waiting for a retry) that read one of
/// `sources`, directly or through `inherit` stream tables, or all of them with `all`:
/// id, display name, and whether it reads an `inherit` stream table.
async fn readers(pool: &PgPool, sources: &[i64], all: bool) -> Result<Vec<(i64, String, bool)>> {
    use crate::error::Step;
    const STEP: &str = "on commit: reading the catalog";
    // Read-only: the transaction (search_path pinned) is rolled back when dropped.
    let mut tx = crate::pin::begin(pool).await.step(None, STEP)?;
    sqlx::query_as(
        "WITH RECURSIVE r (id, depth) AS (
             SELECT f.st_id, 0 FROM pgstream.pgs_frontiers f
              WHERE f.source_oid = ANY ($1::int8[]::oid[])
             UNION ALL
             SELECT f.st_id, r.depth + 1
               FROM r JOIN pgstream.pgs_stream_tables p ON p.id = r.id AND p.schedule = 'inherit'
               JOIN pgstream.pgs_frontiers f
                 ON f.source_oid = to_regclass(pg_catalog.format('%I.%I', p.schema_name, p.table_name))::oid
              WHERE r.depth < 64)
         SELECT s.id, pgstream._display_name(s.schema_name, s.table_name),
                EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f
                          JOIN pgstream.pgs_stream_tables p ON p.schedule = 'inherit'
                           AND to_regclass(pg_catalog.format('%I.%I', p.schema_name, p.table_name))::oid = f.source_oid
                         WHERE f.st_id = s.id)
           FROM pgstream.pgs_stream_tables s
          WHERE s.schedule = 'on commit' AND s.status = 'ACTIVE'
            AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
            AND ($2 OR s.id IN (SELECT r.id FROM r))",
    )
    .bind(sources)
    .bind(all)
    .fetch_all(&mut *tx)
    .await
    .step(None, STEP)
}

/// Hold a connection that listens on [`CHANGES_CHANNEL`] and forward what it hears;
/// after every (re)connection, [`Heard::Resync`].
async fn listen(pool: PgPool, tx: mpsc::UnboundedSender<Heard>, cancel: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        let connected = async {
            let mut l =
                sqlx::postgres::PgListener::connect_with(&crate::pin::listener_pool(&pool)).await?;
            l.eager_reconnect(false);
            l.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut l = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            c = connected => match c {
                Ok(l) => l,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = crate::scheduler::reconnect_backoff(Duration::from_millis(100), failures)
                        .min(MAX_BACKOFF);
                    tracing::debug!(error = %e, retry_in_ms = wait.as_millis() as u64,
                        "pgstream on commit: cannot listen");
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            }
        };
        failures = 0;
        if tx.send(Heard::Resync).is_err() {
            return;
        }
        loop {
            let heard = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                r = l.try_recv() => r,
            };
            match heard {
                Ok(Some(n)) => match n.payload().parse::<i64>() {
                    Ok(oid) => {
                        if tx.send(Heard::Source(oid)).is_err() {
                            return;
                        }
                    }
                    Err(_) => tracing::debug!(
                        payload = n.payload(),
                        "pgstream on commit: unexpected payload"
                    ),
                },
                // Lost: connect again (and refresh everything once).
                Ok(None) | Err(_) => break,
            }
        }
    }
}
