//! [`Health`]: what a readiness or liveness probe needs to know about a runtime
//! ([`RuntimeHandle::health`](crate::RuntimeHandle::health)).

use crate::error::Step;
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// State a runtime shares with its handles.
#[derive(Debug, Default)]
pub(crate) struct RuntimeState {
    /// Started and not shut down (or dropped).
    running: AtomicBool,
    /// Whether the runtime runs a scheduler.
    scheduler: bool,
    /// The scheduler tick.
    tick: Duration,
    /// End of the last pass that read the catalog and refreshed what was due.
    last_tick: Mutex<Option<SystemTime>>,
}

impl RuntimeState {
    /// The state of a started runtime.
    pub(crate) fn started(scheduler: bool, tick: Duration) -> Self {
        RuntimeState {
            running: AtomicBool::new(true),
            scheduler,
            tick,
            last_tick: Mutex::new(None),
        }
    }

    /// The runtime stopped (shut down, dropped, or its scheduler task ended).
    pub(crate) fn stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// A pass of the scheduler (or `run_once`) completed.
    pub(crate) fn ticked(&self) {
        if let Ok(mut t) = self.last_tick.lock() {
            *t = Some(SystemTime::now());
        }
    }
}

/// A stream table that is not being refreshed as it should: not `ACTIVE`
/// (`SUSPENDED`, `ERROR`), or its last scheduled refreshes failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailingStreamTable {
    /// `name` in `public`, else `schema.name`.
    pub name: String,
    /// `ACTIVE` (failing, retried with backoff), `SUSPENDED` or `ERROR`.
    pub status: String,
    /// Scheduled refreshes that failed in a row.
    pub consecutive_failures: i32,
    /// Why: the status reason, or the last failure's message.
    pub reason: Option<String>,
}

/// The health of a runtime, for readiness probes: see
/// [`RuntimeHandle::health`](crate::RuntimeHandle::health).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Health {
    /// Whether the runtime is running: started and not shut down (or dropped). A
    /// handle made with [`RuntimeHandle::new`](crate::RuntimeHandle::new) belongs to
    /// no runtime: `false`.
    pub running: bool,
    /// Whether the runtime runs a scheduler (see
    /// [`RuntimeBuilder::scheduler`](crate::RuntimeBuilder::scheduler)).
    pub scheduler: bool,
    /// Whether the scheduler completed a pass recently: within three ticks (and at
    /// least 10 s). Always `false` without a scheduler.
    pub ticking: bool,
    /// When the last scheduler pass (or [`Runtime::run_once`](crate::Runtime::run_once))
    /// completed: it read the catalog and refreshed what was due (failures of single
    /// stream tables do not count against it; see `failing`). `None` before the first.
    pub last_tick: Option<SystemTime>,
    /// Whether the database answered the health check.
    pub database_reachable: bool,
    /// The error of the health check's query, when the database did not answer.
    pub database_error: Option<String>,
    /// The stream tables that are not `ACTIVE` or whose last scheduled refreshes
    /// failed, by name.
    pub failing: Vec<FailingStreamTable>,
}

impl Health {
    /// Ready to serve: running, the database reachable and, with a scheduler,
    /// ticking. Failing stream tables do not make a runtime unready (the others are
    /// maintained); look at [`Health::failing`] for them.
    pub fn is_ready(&self) -> bool {
        self.running && self.database_reachable && (!self.scheduler || self.ticking)
    }
}

/// See [`RuntimeHandle::health`](crate::RuntimeHandle::health).
pub(crate) async fn health(pool: &PgPool, state: Option<&RuntimeState>) -> Health {
    let (running, scheduler, tick, last_tick) = match state {
        Some(s) => (
            s.running.load(Ordering::Relaxed),
            s.scheduler,
            s.tick,
            s.last_tick.lock().ok().and_then(|t| *t),
        ),
        None => (false, false, Duration::ZERO, None),
    };
    let window = (tick * 3).max(Duration::from_secs(10));
    let ticking = scheduler
        && running
        && last_tick
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age <= window);
    let (database_reachable, database_error, failing) = match failing(pool).await {
        Ok(f) => (true, None, f),
        Err(e) => (false, Some(e.to_string()), Vec::new()),
    };
    Health {
        running,
        scheduler,
        last_tick,
        ticking,
        database_reachable,
        database_error,
        failing,
    }
}

async fn failing(pool: &PgPool) -> crate::Result<Vec<FailingStreamTable>> {
    const STEP: &str = "checking the runtime's health";
    let check = async {
        // With no connection in the pool, one opened directly says at once why it
        // cannot be (connection refused) where the pool would retry until its timeout.
        crate::check_connection(pool).await?;
        // Read-only: rolled back when dropped.
        let mut tx = crate::pin::begin(pool).await.step(None, STEP)?;
        let rows: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT pgstream._display_name(s.schema_name, s.table_name), s.status,
                    s.consecutive_failures, coalesce(s.status_reason, r.last_error)
               FROM pgstream.pgs_stream_tables s
               LEFT JOIN pgstream.pgs_refresh_stats r ON r.st_id = s.id
              WHERE s.status <> 'ACTIVE' OR s.consecutive_failures > 0
              ORDER BY 1",
        )
        .fetch_all(&mut *tx)
        .await
        .step(None, STEP)?;
        Ok(rows
            .into_iter()
            .map(
                |(name, status, consecutive_failures, reason)| FailingStreamTable {
                    name,
                    status,
                    consecutive_failures,
                    reason,
                },
            )
            .collect())
    };
    // A probe must answer even when the pool cannot.
    match tokio::time::timeout(crate::CONNECT_TIMEOUT, check).await {
        Ok(r) => r,
        Err(_) => Err(crate::Error::no_answer(STEP)),
    }
}
