//! [`Runtime`] and [`RuntimeHandle`].

use crate::builder::RuntimeBuilder;
use crate::error::{Error, Result};
use crate::health::{Health, RuntimeState};
use crate::refresh::{FailurePolicy, RefreshOutcome};
use crate::status::StreamTableStatus;
use crate::subscribe::{SubscribeOptions, SubscribedRow, Subscription};
use pgstream_core::{Mode, QualifiedName, Schedule, StreamTableSpec};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often a runtime looks for requests from SQL that it was not notified of.
const REQUEST_POLL: Duration = Duration::from_secs(5);

/// The embedded pgstream runtime: the catalog is installed, the registered stream
/// tables exist, and (unless disabled) a scheduler task refreshes them.
///
/// # Shutdown
///
/// [`Runtime::shutdown`] stops the scheduler and waits for it: a refresh in
/// progress finishes (it is one transaction; nothing is lost if the process dies
/// instead). Dropping the runtime signals the scheduler to stop without waiting.
#[derive(Debug)]
pub struct Runtime {
    handle: RuntimeHandle,
    tick: Duration,
    policy: FailurePolicy,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// `Runtime`'s methods that act through its [`RuntimeHandle`]: each is the handle's
/// method of the same name, documented there.
macro_rules! pass_through {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(
            #[doc = concat!("See [`RuntimeHandle::", stringify!($name), "`].")]
            pub async fn $name(&self, $($arg: $ty),*) -> $ret {
                self.handle.$name($($arg),*).await
            }
        )*
    };
}

impl Runtime {
    /// Start configuring a runtime over a connection pool.
    pub fn builder(pool: PgPool) -> RuntimeBuilder {
        RuntimeBuilder::new(pool)
    }

    pub(crate) fn spawn(
        pool: PgPool,
        tick: Duration,
        scheduler: bool,
        policy: FailurePolicy,
        on_commit_min_gap: Duration,
    ) -> Self {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let state = Arc::new(RuntimeState::started(scheduler, tick));
        crate::metrics::describe();
        if scheduler {
            tracker.spawn(crate::scheduler::run(
                pool.clone(),
                tick,
                policy,
                cancel.clone(),
                state.clone(),
            ));
            // Requests from SQL (`pgstream.create_stream_table`, ...): at once when
            // notified, and every few seconds in case a notification was missed.
            tracker.spawn(crate::requests::listen(
                pool.clone(),
                REQUEST_POLL,
                cancel.clone(),
            ));
            // Stream tables scheduled `on commit`: refreshed when capture's
            // notification of a committed change arrives.
            tracker.spawn(crate::oncommit::run(
                pool.clone(),
                on_commit_min_gap,
                policy,
                cancel.clone(),
            ));
        }
        tracker.close();
        Runtime {
            handle: RuntimeHandle {
                pool,
                state: Some(state),
            },
            tick,
            policy,
            cancel,
            tracker,
        }
    }

    /// A cloneable handle for refreshes and status, usable after the runtime is gone.
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.handle.pool
    }

    pass_through! {
        refresh(name: &str) -> Result<RefreshOutcome>;
        status() -> Result<Vec<StreamTableStatus>>;
        create_stream_table(name: &str, sql: &str, schedule: &str, mode: Mode) -> Result<()>;
        replace_stream_table(name: &str, sql: &str, schedule: &str, mode: Mode) -> Result<bool>;
        drop_stream_table(name: &str) -> Result<()>;
        drop_stream_table_cascade(name: &str) -> Result<()>;
        resume(name: &str) -> Result<()>;
        unsubscribe(name: &str, subscriber: &str) -> Result<bool>;
        health() -> Health;
    }

    /// One pass of the work the background tasks do, in the caller's task: carry out
    /// the pending requests from SQL ([`crate::process_requests`]), then refresh every
    /// stream table that is due, upstream first (`pgstream run --once`, or a runtime
    /// started with `.scheduler(false)`).
    pub async fn run_once(&self) -> Result<()> {
        // Owned copies, not borrows of `self`: with borrows, rustc cannot prove this
        // future `Send` (higher-ranked lifetimes through sqlx's executors), and an
        // application could not `tokio::spawn` a pass.
        let (pool, policy, cancel) = (self.handle.pool.clone(), self.policy, self.cancel.clone());
        crate::requests::process_requests(&pool).await?;
        crate::scheduler::run_once(&pool, self.tick, &policy, &cancel).await?;
        if let Some(state) = &self.handle.state {
            state.ticked();
        }
        Ok(())
    }

    /// See [`RuntimeHandle::subscribe`].
    pub async fn subscribe<T: SubscribedRow>(&self, subscriber: &str) -> Result<Subscription<T>> {
        self.handle.subscribe::<T>(subscriber).await
    }

    /// See [`RuntimeHandle::subscribe_with`].
    pub async fn subscribe_with<T: SubscribedRow>(
        &self,
        subscriber: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription<T>> {
        self.handle.subscribe_with::<T>(subscriber, options).await
    }

    /// Stop the scheduler and wait until it has stopped; a refresh in progress
    /// finishes first.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.wait().await;
        if let Some(state) = &self.handle.state {
            state.stopped();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(state) = &self.handle.state {
            state.stopped();
        }
    }
}

/// A cheap, cloneable handle to refresh, inspect, create and drop stream tables.
#[derive(Debug, Clone)]
pub struct RuntimeHandle {
    pool: PgPool,
    /// The runtime's state (`None`: a handle made with [`RuntimeHandle::new`]).
    state: Option<Arc<RuntimeState>>,
}

impl RuntimeHandle {
    /// A handle over a pool, without a runtime (no scheduler).
    pub fn new(pool: PgPool) -> Self {
        RuntimeHandle { pool, state: None }
    }

    /// The runtime's health, for readiness probes: whether it is running, when its
    /// scheduler last completed a pass, whether the database answers, and the stream
    /// tables that are failing (not `ACTIVE`, or whose last scheduled refreshes
    /// failed). Never fails: a database that does not answer within
    /// [`CONNECT_TIMEOUT`](crate::CONNECT_TIMEOUT) is reported in the result.
    /// [`Health::is_ready`] sums it up.
    ///
    /// ```no_run
    /// # async fn probe(handle: pgstream_runtime::RuntimeHandle) {
    /// let health = handle.health().await;
    /// if !health.is_ready() {
    ///     eprintln!("not ready: {health:?}");
    /// }
    /// for st in &health.failing {
    ///     eprintln!("{} is {}: {:?}", st.name, st.status, st.reason);
    /// }
    /// # }
    /// ```
    pub async fn health(&self) -> Health {
        crate::health::health(&self.pool, self.state.as_deref()).await
    }

    /// Refresh a stream table now (`name` or `schema.name`). See [`crate::refresh()`].
    pub async fn refresh(&self, name: &str) -> Result<RefreshOutcome> {
        crate::refresh::refresh(&self.pool, name).await
    }

    /// The status of every stream table.
    pub async fn status(&self) -> Result<Vec<StreamTableStatus>> {
        crate::status::status(&self.pool).await
    }

    /// Create a stream table at run time from SQL, through the same compiler as
    /// `#[stream_table]`. `name` is `name` or `schema.name`; `schedule` is a
    /// staleness bound (`30s`, `5m`, ...), a cron expression (`*/5 * * * *`,
    /// `@daily`; see [`pgstream_core::cron`]) or `on commit`. An invalid schedule is
    /// [`Error::Invalid`] and nothing is created.
    pub async fn create_stream_table(
        &self,
        name: &str,
        sql: &str,
        schedule: &str,
        mode: Mode,
    ) -> Result<()> {
        let spec = spec(name, sql, schedule, mode)?;
        crate::create::create_stream_table(&self.pool, &spec).await
    }

    /// Replace the defining query (and mode and schedule) of an existing stream table,
    /// keeping its name and the grants on it: the new storage table is built, populated
    /// and swapped for the old one in one transaction, so readers see the old rows or
    /// the new ones, never an empty table (see [`crate::replace_stream_table`]).
    /// `Ok(false)` when it already had this query and mode.
    pub async fn replace_stream_table(
        &self,
        name: &str,
        sql: &str,
        schedule: &str,
        mode: Mode,
    ) -> Result<bool> {
        let spec = spec(name, sql, schedule, mode)?;
        crate::replace::replace_stream_table(&self.pool, &spec).await
    }

    /// Drop a stream table (see [`crate::drop_stream_table`]). Fails, naming them,
    /// when other stream tables read it.
    pub async fn drop_stream_table(&self, name: &str) -> Result<()> {
        crate::drop::drop_stream_table(&self.pool, name).await
    }

    /// Drop a stream table and every stream table that reads it, recursively.
    pub async fn drop_stream_table_cascade(&self, name: &str) -> Result<()> {
        crate::drop::drop_stream_table_cascade(&self.pool, name).await
    }

    /// Resume a stream table the scheduler suspended after repeated failures (see
    /// [`crate::resume_stream_table`]).
    pub async fn resume(&self, name: &str) -> Result<()> {
        crate::refresh::resume_stream_table(&self.pool, name).await
    }

    /// Subscribe to the changes of the stream table `T` declares: a [`Subscription`],
    /// a `Stream` of the rows each refresh inserted, deleted and updated (old and new
    /// values), decoded as `T`, one [`ChangeBatch`](crate::ChangeBatch) per refresh
    /// in commit order, whichever process ran the refresh. `subscriber` names the
    /// subscriber: its position is stored in the database, so a subscriber of that
    /// name resumes where it stopped (after a restart), and one that fell behind the
    /// feed's retention is told so ([`SubscriptionEvent::Lagged`](crate::SubscriptionEvent::Lagged)).
    /// See the module documentation of [`Subscription`] and the README.
    ///
    /// ```no_run
    /// # use pgstream_runtime::{Change, RuntimeHandle, StreamTable, SubscriptionEvent};
    /// # async fn example<T>(handle: RuntimeHandle) -> pgstream_runtime::Result<()>
    /// # where T: StreamTable + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + std::fmt::Debug + 'static {
    /// let mut changes = handle.subscribe::<T>("dashboard").await?;
    /// while let Some(event) = changes.recv().await {
    ///     match event? {
    ///         SubscriptionEvent::Changes(batch) => {
    ///             for change in batch.changes {
    ///                 match change {
    ///                     Change::Insert(row) => println!("+ {row:?}"),
    ///                     Change::Delete(row) => println!("- {row:?}"),
    ///                     Change::Update { old, new } => println!("{old:?} -> {new:?}"),
    ///                 }
    ///             }
    ///         }
    ///         SubscriptionEvent::Lagged { missed_from, missed_to } => {
    ///             eprintln!("missed versions {missed_from}..={missed_to}: reload");
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe<T: SubscribedRow>(&self, subscriber: &str) -> Result<Subscription<T>> {
        self.subscribe_with::<T>(subscriber, SubscribeOptions::default())
            .await
    }

    /// [`subscribe`](Self::subscribe) with options: resume after a version the
    /// application stored, or set how long unconsumed changes are kept.
    pub async fn subscribe_with<T: SubscribedRow>(
        &self,
        subscriber: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription<T>> {
        let name = crate::catalog::display_name(&QualifiedName::new(T::DEF.schema, T::DEF.name));
        crate::subscribe::subscribe_to(&self.pool, &name, subscriber, options).await
    }

    /// Remove a subscriber of stream table `name` (`false` when there was none):
    /// with the last one, the stream table's feed stops (nothing is logged while
    /// nobody subscribes).
    pub async fn unsubscribe(&self, name: &str, subscriber: &str) -> Result<bool> {
        crate::subscribe::unsubscribe(&self.pool, name, subscriber).await
    }
}

/// Build a spec from text arguments, with clear errors.
pub fn spec(name: &str, sql: &str, schedule: &str, mode: Mode) -> Result<StreamTableSpec> {
    let name = QualifiedName::parse(name).map_err(Error::Invalid)?;
    let schedule: Schedule = schedule.parse().map_err(Error::Invalid)?;
    Ok(StreamTableSpec {
        name,
        query: sql.to_string(),
        schedule,
        mode,
    })
}
