//! The scheduler: every tick, refresh each active stream table that is due, upstream
//! stream tables before the ones that read them (topological order). With a duration
//! schedule, a stream table is due when its last refresh is older than the duration (or
//! a TRUNCATE of a source is pending); the SQL query decides. With a cron schedule, it
//! is due when a fire time lies after its last refresh (or, if it was never refreshed,
//! after its creation) and at or before the database's `now()`; the query returns every
//! active cron row and [`Schedule::is_due`] decides here (`plan.rs`). An `on commit`
//! stream table is refreshed by the on-commit listener (`oncommit.rs`); here it counts
//! as a duration schedule of [`Schedule::ON_COMMIT_FALLBACK`] (its
//! `schedule_interval`), a safety net for a lost notification. A due DIFFERENTIAL
//! stream table none of whose sources' change buffers holds rows is not refreshed at
//! all (its refresh would find empty windows; `pgs_status` computes staleness from
//! pending changes, so it stays fresh): an idle tick costs one probe per source
//! (`pgstream._busy_sources`) instead of a refresh per stream table. A stream table
//! refreshed in the pass with rows changed makes its readers, later in the pass, busy.
//! A stream table whose windows hold only changes that fail its change filters (`WHERE
//! tenant_id = 3` and a change of tenant 7; see pgstream-core's `relevance.rs`) has its
//! frontiers advanced by `pgstream._advance_unaffected` (one join of each busy buffer
//! with the frontiers per filter template, in a REPEATABLE READ transaction) and is not
//! refreshed either, so the busy cost follows what changed, not the number of stream
//! tables over a shared source; the busy buffers are then trimmed. A group of
//! inheriting stream tables, refreshed for its readers, whose sources are busy is first
//! asked whether its windows hold rows at all (`pgstream._windows_hold_rows`, the
//! window's own test on the buffers): a source's buffer holding rows that
//! another, slower consumer has not read made the group refresh with empty windows at
//! every tick its readers were due (a reader whose own buffer is empty is skipped, so
//! it stays due). When no buffer holds a row and no stream table must be refreshed
//! regardless (not DIFFERENTIAL, a full refresh pending, never refreshed, a frontier
//! not set), the tick ends after one scan of the catalog tables. Up to `parallel`
//! refreshes run at once (builder: `parallel_refreshes`, default 1), shared by the
//! passes; a stream table starts once every due stream table it reads has finished, so
//! a slow one delays only its readers within the pass, and once it has run for a tick
//! with nothing else left to start, the pass ends without it (it goes on, holding its
//! slot) and later passes refresh the others, leaving out it and its readers until it
//! ends. Without the DDL event trigger every due stream table is refreshed, since the
//! refresh is then what finds drift and new partitions. A stream table being refreshed
//! elsewhere (another replica, a manual call) is skipped, not waited for. A failed
//! refresh is recorded and retried with exponential backoff; after `max_failures`
//! failures in a row the stream table is SUSPENDED (`pgstream.resume_stream_table`).
//! When the database cannot be reached, the scheduler waits with exponential backoff
//! (up to 30 s) and carries on; the pool opens new connections once the server is back.
//!
//! [`Schedule::is_due`]: pgstream_core::Schedule::is_due
//! [`Schedule::ON_COMMIT_FALLBACK`]: pgstream_core::Schedule::ON_COMMIT_FALLBACK

use crate::error::{Result, Step};
use crate::refresh::{is_transient, record_error, try_refresh_by_id, FailurePolicy};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod plan;
use plan::{job_dependencies, left_for_later, plan_jobs, DueRow};

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
    let mut sampled: Option<tokio::time::Instant> = None;
    // Shared by the passes: a refresh still running when its pass ends (a slow one)
    // keeps its connection slot and goes on in the background while the next passes
    // refresh the others.
    let slots = Slots::new(policy.parallel);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        match run_pass(&pool, tick, &policy, &cancel, None, &slots, Some(tick))
            .await
            .map(|_| ())
        {
            Ok(()) => {
                state.ticked();
                if sampled.is_none_or(|t| t.elapsed() >= crate::metrics::SAMPLE_EVERY) {
                    sampled = Some(tokio::time::Instant::now());
                    if let Err(e) = crate::metrics::sample(&pool).await {
                        tracing::debug!(error = %e, "could not sample the metrics gauges");
                    }
                }
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
    // Refreshes that outlived their pass finish first.
    slots.tasks.close();
    slots.tasks.wait().await;
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
    let slots = Slots::new(policy.parallel);
    run_pass(pool, tick, policy, cancel, None, &slots, None)
        .await
        .map(|_| ())
}

/// What the passes of one scheduler share: the connection slots (`parallel` permits,
/// one held by each refresh running) and the stream tables being refreshed, so that a
/// refresh still running when its pass ended (see `detach_after` in [`run_pass`]) is
/// neither started again nor overtaken by its readers in the next passes, and is
/// waited for at shutdown.
struct Slots {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    in_flight: std::sync::Arc<std::sync::Mutex<HashSet<i64>>>,
    tasks: tokio_util::task::TaskTracker,
}

impl Slots {
    fn new(parallel: usize) -> Slots {
        Slots {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1))),
            in_flight: Default::default(),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }
}

/// Sends a job's outcome to its pass when its task ends, `None` if it panicked.
struct Reply {
    sender: tokio::sync::mpsc::UnboundedSender<(usize, Option<crate::inherit::GroupOutcome>)>,
    job: usize,
    outcome: Option<crate::inherit::GroupOutcome>,
}

impl Reply {
    fn send(mut self, outcome: crate::inherit::GroupOutcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // The pass may have ended (the refresh was detached): nobody listens then.
        let _ = self.sender.send((self.job, self.outcome.take()));
    }
}

/// Removes a job's stream tables from the in-flight set when its task ends, however
/// it ends.
struct InFlight {
    set: std::sync::Arc<std::sync::Mutex<HashSet<i64>>>,
    ids: Vec<i64>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.ids {
            set.remove(id);
        }
    }
}

/// What [`refresh_with_inherited`] did to the stream table asked for.
#[derive(Debug)]
pub(crate) enum Only {
    /// Refreshed, with this many rows changed.
    Refreshed(i64),
    /// It, or an inheriting group it reads, was being refreshed elsewhere (or the
    /// group's locks were not obtained): try again.
    Busy,
    /// It or a group it reads failed (recorded with the policy).
    Failed,
    /// Not refreshed: not ACTIVE, waiting for a retry, or nothing changed.
    Skipped,
}

/// Refresh stream table `id` now with the inheriting stream tables it reads, as the
/// scheduler would if it were due (for the on-commit listener): their groups first,
/// then it. Failures are recorded with `policy`.
pub(crate) async fn refresh_with_inherited(
    pool: &PgPool,
    id: i64,
    policy: &FailurePolicy,
    cancel: &CancellationToken,
) -> Result<Only> {
    let slots = Slots::new(policy.parallel);
    Ok(
        run_pass(pool, Duration::ZERO, policy, cancel, Some(id), &slots, None)
            .await?
            .unwrap_or(Only::Skipped),
    )
}

/// One pass; with `only`, that stream table is the one due (whatever its schedule,
/// nothing else is), and what happened to it is returned. With `detach_after`, the
/// pass does not wait for refreshes that have run that long once it has nothing else
/// to start: they go on in `slots.tasks` (holding their slot), and the jobs that read
/// them are left for a later pass, so a slow refresh holds up the unrelated stream
/// tables for at most that long (one tick), not until it ends.
async fn run_pass(
    pool: &PgPool,
    tick: Duration,
    policy: &FailurePolicy,
    cancel: &CancellationToken,
    only: Option<i64>,
    slots: &Slots,
    detach_after: Option<Duration>,
) -> Result<Option<Only>> {
    // The stream tables an earlier pass is refreshing, taken before the catalog is
    // read: one whose refresh ends while this pass reads would otherwise be seen not
    // in flight, with its row as it was before that refresh (its failure not counted
    // and no retry wait set, or its last refresh not moved), and be refreshed again
    // at once. Such a stream table is left for the next pass, which reads its row anew.
    let in_flight_before: HashSet<i64> = slots
        .in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut tx = crate::pin::begin(pool)
        .await
        .step(None, "scheduler: reading the catalog")?;
    // Sources whose buffers hold rows; a DIFFERENTIAL stream table none of whose
    // sources is busy has nothing to apply, and its refresh is not called (an idle
    // tick costs one probe per source, not a refresh per stream table). Only with the
    // event trigger: without it, drift and new partitions are found by the refresh.
    let idle_skip = sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger e
                         WHERE e.evtname = 'pgstream_ddl' AND e.evtenabled <> 'D')",
    )
    .fetch_one(&mut *tx)
    .await
    .step(None, "scheduler: reading the catalog")?;
    let mut busy: HashSet<i64> = if idle_skip {
        sqlx::query_scalar::<_, Vec<i64>>("SELECT pgstream._busy_sources()::int8[]")
            .fetch_one(&mut *tx)
            .await
            .step(None, "scheduler: reading the catalog")?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    // No buffer holds a row: unless a stream table cannot be left out when its sources
    // are quiet (not DIFFERENTIAL, a full refresh pending, never refreshed, a frontier
    // not set), the pass would refresh nothing. Two scans of the catalog tables answer
    // that, not the catalog query below (its graph of stream tables and frontiers per
    // stream table is the idle tick's cost at 10,000 stream tables otherwise).
    if idle_skip && busy.is_empty() && only.is_none() {
        let work: bool = sqlx::query_scalar(
            "WITH eligible AS (
                 SELECT s.* FROM pgstream.pgs_stream_tables s
                  WHERE s.status = 'ACTIVE' AND (s.mode <> 'IMMEDIATE' OR s.needs_full)
                    AND (s.next_retry_at IS NULL OR s.next_retry_at <= now()))
             SELECT EXISTS (SELECT 1 FROM eligible s
                             WHERE s.mode <> 'DIFFERENTIAL' OR s.needs_full
                                OR s.last_refresh_at IS NULL OR s.refresh_function IS NULL
                                OR NOT EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f
                                                WHERE f.st_id = s.id)
                                OR EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f
                                            WHERE f.st_id = s.id AND f.frontier IS NULL))",
        )
        .fetch_one(&mut *tx)
        .await
        .step(None, "scheduler: reading the catalog")?;
        if !work {
            tx.rollback()
                .await
                .step(None, "scheduler: reading the catalog")?;
            return Ok(None);
        }
    }
    tx.rollback()
        .await
        .step(None, "scheduler: reading the catalog")?;
    // Stream tables whose windows hold only changes that fail their change filters
    // (another tenant's rows): their frontiers are advanced without a refresh. Between
    // the catalog transactions: a runtime's pool may have one connection to spare.
    let advanced: HashSet<i64> = if idle_skip && !busy.is_empty() {
        advance_unaffected(pool, &busy, policy.advance_batch).await
    } else {
        HashSet::new()
    };
    let mut tx = crate::pin::begin(pool)
        .await
        .step(None, "scheduler: reading the catalog")?;
    // With the idle check, the rows the pass would leave out are not even read: a
    // DIFFERENTIAL stream table that can be skipped (`quiet`), reads no stream table
    // (whose refresh in this pass could give it changes), and has no busy source it
    // was not advanced past. An idle tick then reads no row per stream table.
    let busy_list: Vec<i64> = busy.iter().copied().collect();
    let advanced_list: Vec<i64> = advanced.iter().copied().collect();
    // Every active stream table not waiting for a retry, with whether it is due by
    // its own schedule (`due`; cron rows are decided below): the ones that are not
    // due are needed to know which inheriting stream tables are read together.
    let rows: Vec<DueRow> = sqlx::query_as(
        "WITH RECURSIVE
         -- Stream tables read by stream tables: the sources that are storage tables
         -- (looked up by name in the default collation, that of the unique index; the
         -- collation \"C\" of the catalog's names scanned every stream table).
         edge AS (
             SELECT f.st_id AS down, u.id AS up, fs.source_oid AS storage
               FROM (SELECT DISTINCT source_oid FROM pgstream.pgs_frontiers) fs
               JOIN pg_catalog.pg_class c ON c.oid = fs.source_oid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pgstream.pgs_stream_tables u
                 ON u.schema_name = n.nspname::text COLLATE \"default\"
                AND u.table_name = c.relname::text COLLATE \"default\"
               JOIN pgstream.pgs_frontiers f ON f.source_oid = fs.source_oid),
         depth (id, d) AS (
             SELECT DISTINCT up, 0 FROM edge
             UNION ALL
             SELECT e.down, depth.d + 1 FROM depth JOIN edge e ON e.up = depth.id
              WHERE depth.d < 64),
         levels AS (SELECT id, max(d) AS d FROM depth GROUP BY id),
         ups AS (SELECT DISTINCT up AS id, storage FROM edge),
         fr AS (SELECT f.st_id, array_agg(f.source_oid::int8) AS sources,
                       bool_and(f.frontier IS NOT NULL) AS all_set
                  FROM pgstream.pgs_frontiers f GROUP BY f.st_id)
         SELECT s.id,
                CASE WHEN s.schema_name = 'public' THEN s.table_name
                     ELSE s.schema_name || '.' || s.table_name END AS name,
                s.schedule,
                extract(epoch FROM coalesce(s.last_refresh_at, s.created_at))::float8 AS since,
                extract(epoch FROM now())::float8 AS now,
                ups.storage::int8 AS storage,
                (s.mode = 'DIFFERENTIAL' AND NOT s.needs_full AND s.last_refresh_at IS NOT NULL
                 AND s.refresh_function IS NOT NULL
                 AND fr.st_id IS NOT NULL AND fr.all_set) AS quiet_skips,
                coalesce(fr.sources, '{}') AS sources,
                (s.needs_full OR s.last_refresh_at IS NULL
                 OR s.last_refresh_at + s.schedule_interval <= now() + $1 * interval '1 millisecond'
                 OR s.schedule_kind = 'cron') AS due,
                (s.schedule = 'inherit' AND ups.id IS NOT NULL) AS follows_readers
           FROM pgstream.pgs_stream_tables s
           LEFT JOIN levels l ON l.id = s.id
           LEFT JOIN ups ON ups.id = s.id
           LEFT JOIN fr ON fr.st_id = s.id
           LEFT JOIN unnest($4::int8[]) adv (id) ON adv.id = s.id
          WHERE s.status = 'ACTIVE'
            AND (NOT $2 OR $5 OR s.schedule = 'inherit'
                 OR NOT (s.mode = 'DIFFERENTIAL' AND NOT s.needs_full AND s.last_refresh_at IS NOT NULL
                         AND s.refresh_function IS NOT NULL AND fr.st_id IS NOT NULL AND fr.all_set)
                 OR EXISTS (SELECT 1 FROM edge e WHERE e.down = s.id)
                 OR (fr.sources && $3::int8[] AND adv.id IS NULL))
            AND (s.mode <> 'IMMEDIATE' OR s.needs_full)
            AND (s.next_retry_at IS NULL OR s.next_retry_at <= now())
          ORDER BY coalesce(l.d, 0), s.id",
    )
    .bind(tick.as_secs_f64() * 500.0)
    .bind(idle_skip)
    .bind(&busy_list)
    .bind(&advanced_list)
    .bind(only.is_some())
    .fetch_all(&mut *tx)
    .await
    .step(None, "scheduler: reading the catalog")?;
    // Read-only; ended before the refreshes, which run in transactions of their own.
    tx.rollback()
        .await
        .step(None, "scheduler: reading the catalog")?;
    let jobs = plan_jobs(&rows, only);
    let mut only_outcome: Option<Only> = None;
    // The job of the stream table asked for, and whether any job it waits on was busy
    // or failed (it then is too).
    let only_job = only.and_then(|id| {
        jobs.iter()
            .position(|j| j.members.iter().any(|&m| rows[m].id == id))
    });
    // Up to `policy.parallel` jobs at once; a job starts when every job it reads
    // from has finished (so its window sees their new rows and the busy set knows
    // whether they changed). Starting in (depth, id) order.
    let mut upstream: Vec<Vec<usize>> = job_dependencies(&rows, &jobs);
    let mut done = vec![false; jobs.len()];
    // Jobs left for a later pass: a member is still being refreshed by an earlier
    // pass, or was when this pass began to read the catalog (its row may predate that
    // refresh's end), they read from such a job, or they are inheriting stream tables
    // refreshed for such jobs only (see `left_for_later`). Decided once: during the
    // pass the set in flight only loses the earlier passes' refreshes as they end
    // (what they left then waits for the next pass) and gains this pass's jobs as they
    // start (each stream table is in one job), so no job left unstarted here can come
    // to have a member in flight.
    // They count as started: the loop below never starts them.
    let mut started = {
        let set = slots.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        left_for_later(&rows, &jobs, &upstream, |id| {
            set.contains(&id) || in_flight_before.contains(&id)
        })
    };
    for (i, _) in started.iter().enumerate().filter(|(_, &b)| b) {
        tracing::debug!(stream_table = %rows[jobs[i].members[0]].name,
            "it, a stream table it reads, or every reader it is refreshed for is still being refreshed by an earlier pass, left for a later one");
    }
    // This pass's jobs running, with when each started.
    let mut running: HashMap<usize, tokio::time::Instant> = HashMap::new();
    let (sender, mut results) =
        tokio::sync::mpsc::unbounded_channel::<(usize, Option<crate::inherit::GroupOutcome>)>();
    // A slot obtained while waiting, for the next job to start.
    let mut spare: Option<tokio::sync::OwnedSemaphorePermit> = None;
    // Stream tables refreshed in this pass with rows changed: their readers are not
    // covered by `advanced` (computed before the pass).
    let mut upstream_busy: HashSet<i64> = HashSet::new();
    // The server went away: no job starts any more; the pass returns this error once
    // its refreshes in flight have ended.
    let mut gone: Option<crate::Error> = None;
    loop {
        // Whether a job could start but every slot is taken.
        let mut wants_slot = false;
        let mut progressed = true;
        while progressed && !cancel.is_cancelled() && gone.is_none() {
            progressed = false;
            wants_slot = false;
            for (i, job) in jobs.iter().enumerate() {
                if started[i] {
                    continue;
                }
                if !upstream[i].iter().all(|&j| done[j]) {
                    continue;
                }
                let quiet = idle_skip
                    && job.members.iter().all(|&m| {
                        rows[m].quiet_skips && !rows[m].sources.iter().any(|s| busy.contains(s))
                    });
                if quiet {
                    tracing::trace!(stream_table = %rows[job.members[0]].name, "no changes in its sources, not refreshed");
                    started[i] = true;
                    done[i] = true;
                    progressed = true;
                    continue;
                }
                if let [m] = job.members[..] {
                    if advanced.contains(&rows[m].id)
                        && !rows[m].sources.iter().any(|s| upstream_busy.contains(s))
                    {
                        tracing::trace!(stream_table = %rows[m].name, "no change passes its filters, not refreshed");
                        started[i] = true;
                        done[i] = true;
                        progressed = true;
                        continue;
                    }
                }
                let permit = match spare.take() {
                    Some(p) => p,
                    None => match slots.permits.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => {
                            wants_slot = true;
                            continue;
                        }
                    },
                };
                started[i] = true;
                progressed = true;
                let members: Vec<(i64, String)> = job
                    .members
                    .iter()
                    .map(|&m| (rows[m].id, rows[m].name.clone()))
                    .collect();
                let ids: Vec<i64> = members.iter().map(|(id, _)| *id).collect();
                slots
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(ids.iter().copied());
                let in_flight = InFlight {
                    set: slots.in_flight.clone(),
                    ids,
                };
                running.insert(i, tokio::time::Instant::now());
                let (pool, policy, lock) = (pool.clone(), *policy, job.lock.clone());
                // A group of inheriting stream tables, refreshed for its readers: when
                // its sources are busy only with rows another consumer has not read, it
                // has nothing to apply (see `pgstream._windows_hold_rows`).
                let probe = idle_skip
                    && only.is_none()
                    && job
                        .members
                        .iter()
                        .all(|&m| rows[m].follows_readers && rows[m].quiet_skips);
                let reply = Reply {
                    sender: sender.clone(),
                    job: i,
                    outcome: None,
                };
                // Failures are recorded here, not by the pass: the pass may have
                // ended (detached) before this ends.
                slots.tasks.spawn(async move {
                    if probe && !windows_hold_rows(&pool, &in_flight.ids).await {
                        tracing::trace!(stream_table = %members[0].1, "no changes in the windows of its group, not refreshed");
                        drop(in_flight);
                        drop(permit);
                        reply.send(crate::inherit::GroupOutcome::Idle);
                        return;
                    }
                    let outcome = match &members[..] {
                        [(id, name)] => {
                            crate::inherit::single(try_refresh_by_id(&pool, *id, name).await)
                        }
                        _ => crate::inherit::refresh_group(&pool, &members, &lock).await,
                    };
                    if let crate::inherit::GroupOutcome::Failed { member, error } = &outcome {
                        let (id, name) = &members[*member];
                        tracing::warn!(stream_table = %name, error = %error, "scheduled refresh failed");
                        record_error(&pool, *id, error, Some(&policy)).await;
                    }
                    drop(in_flight);
                    drop(permit);
                    reply.send(outcome);
                });
            }
            // Jobs that wait on each other (an inheriting group read by a stream
            // table it reads itself): start the first one anyway.
            if !progressed
                && !wants_slot
                && running.is_empty()
                && !cancel.is_cancelled()
                && gone.is_none()
            {
                if let Some(i) = (0..jobs.len()).find(|&i| !started[i]) {
                    tracing::debug!(stream_table = %rows[jobs[i].members[0]].name,
                        "scheduler: circular wait between refresh groups, starting one");
                    for j in upstream.iter_mut() {
                        j.retain(|&k| k != i);
                    }
                    progressed = true;
                }
            }
        }
        let waits_for_slot = wants_slot && !cancel.is_cancelled() && gone.is_none();
        if running.is_empty() && !waits_for_slot {
            break;
        }
        // When every job of this pass still running has run for `detach_after`.
        let detach_at = detach_after
            .zip(running.values().max().copied())
            .map(|(d, newest)| newest + d);
        let joined = tokio::select! {
            r = results.recv(), if !running.is_empty() => r,
            p = slots.permits.clone().acquire_owned(), if waits_for_slot => {
                spare = p.ok();
                continue;
            }
            _ = tokio::time::sleep_until(detach_at.unwrap_or_else(tokio::time::Instant::now)),
                if detach_at.is_some() => {
                // Slow refreshes go on in the background, holding their slots; the
                // jobs not started (their readers, or waiting for a slot) are left
                // for the next pass.
                tracing::debug!(running = running.len(),
                    "scheduler: refreshes still running after a tick, the pass ends without them");
                break;
            }
        };
        // The sender lives as long as the pass: a result always comes.
        let Some((i, result)) = joined else {
            break;
        };
        running.remove(&i);
        let Some(result) = result else {
            tracing::error!(stream_table = %rows[jobs[i].members[0]].name,
                "a scheduled refresh task panicked");
            continue;
        };
        done[i] = true;
        let job = &jobs[i];
        match result {
            crate::inherit::GroupOutcome::Done(outcomes) => {
                for (&m, outcome) in job.members.iter().zip(outcomes) {
                    // Its readers, later in this pass, have changes to apply now.
                    if outcome.rows_changed != 0 {
                        busy.extend(rows[m].storage);
                        upstream_busy.extend(rows[m].storage);
                    }
                    if Some(rows[m].id) == only {
                        only_outcome = Some(Only::Refreshed(outcome.rows_changed));
                    }
                }
            }
            crate::inherit::GroupOutcome::Idle => {}
            crate::inherit::GroupOutcome::Busy => {
                if only.is_some() && only_outcome.is_none() {
                    only_outcome = Some(Only::Busy);
                }
                tracing::debug!(stream_table = %rows[job.members[0]].name, "busy elsewhere, skipped")
            }
            crate::inherit::GroupOutcome::Failed { error: e, .. } => {
                if only.is_some() && (Some(i) == only_job || only_outcome.is_none()) {
                    only_outcome = Some(Only::Failed);
                }
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
                    // The server is gone: let the refreshes in flight end, then let
                    // the outer loop back off.
                    gone.get_or_insert(e);
                }
            }
        }
    }
    if let Some(e) = gone {
        return Err(e);
    }
    Ok(only.map(|_| match only_outcome {
        // The stream table's own outcome wins over an upstream job's.
        Some(o) => o,
        None => Only::Skipped,
    }))
}

/// Whether the windows of the stream tables `ids` may hold rows
/// (`pgstream._windows_hold_rows`). An error counts as rows: the refresh then finds
/// out, and reports what failed.
async fn windows_hold_rows(pool: &PgPool, ids: &[i64]) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT pgstream._windows_hold_rows($1)")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap_or(true)
}

/// Advance the frontiers of the stream tables whose windows hold only changes that
/// fail their change filters (`pgstream._advance_unaffected`) and return their ids.
/// The candidates are taken `batch` at a time, in id order, each batch in a
/// REPEATABLE READ transaction of its own (each candidate's refresh lock takes a slot
/// of the server's shared lock table until the commit). A batch in which a refresh
/// committed meanwhile advances nothing (the function catches the serialization
/// failure) and the next batches go on; on any other error the rest is left: the
/// pass refreshes those stream tables as it would without filters.
///
/// When some were advanced, the `busy` sources' buffers are trimmed after the
/// commits: a refresh trims only what every consumer has seen when it commits, so
/// the rows of the last changes could otherwise stay after every consumer has moved
/// past them, keeping the source busy, and every later tick would advance all its
/// consumers again (a write per stream table per tick with nothing changing).
async fn advance_unaffected(pool: &PgPool, busy: &HashSet<i64>, batch: u32) -> HashSet<i64> {
    let batch = i32::try_from(batch).unwrap_or(i32::MAX);
    let one_batch = |after: i64| async move {
        let mut tx = crate::pin::begin_repeatable_read(pool).await?;
        let (ids, last): (Vec<i64>, Option<i64>) =
            sqlx::query_as("SELECT advanced, last_id FROM pgstream._advance_unaffected($1, $2)")
                .bind(after)
                .bind(batch)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>((ids, last))
    };
    let mut advanced = HashSet::new();
    let mut after = 0;
    loop {
        match one_batch(after).await {
            Ok((ids, last)) => {
                advanced.extend(ids);
                match last {
                    Some(last) => after = last,
                    None => break,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, after, "pgstream scheduler: stream tables with filtered changes not advanced this pass");
                break;
            }
        }
    }
    if !advanced.is_empty() {
        let trim = async {
            let sources: Vec<i64> = busy.iter().copied().collect();
            let mut tx = crate::pin::begin(pool).await?;
            sqlx::query("SELECT pgstream._trim_buffer(s::oid) FROM unnest($1::int8[]) s")
                .bind(&sources)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        if let Err(e) = trim.await {
            tracing::debug!(error = %e, "pgstream scheduler: buffers not trimmed after advancing");
        }
    }
    advanced
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
