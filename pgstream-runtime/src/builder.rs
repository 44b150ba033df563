//! [`RuntimeBuilder`]: configure, then [`RuntimeBuilder::start`].

use crate::catalog::{display_name, stored_definition};
use crate::error::{Error, Result, Step};
use crate::runtime::Runtime;
use pgstream_core::{StreamTable, StreamTableDef, StreamTableSpec};
use sqlx::PgPool;
use std::time::Duration;

/// Builds a [`Runtime`]. Created by [`Runtime::builder`].
///
/// # Examples
///
/// ```no_run
/// # async fn example(pool: sqlx::PgPool) -> pgstream_runtime::Result<()> {
/// use std::time::Duration;
/// let runtime = pgstream_runtime::Runtime::builder(pool)
///     .tick(Duration::from_millis(500))
///     .start()
///     .await?;
/// runtime.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct RuntimeBuilder {
    pool: PgPool,
    specs: Vec<StreamTableSpec>,
    tick: Duration,
    scheduler: bool,
}

impl RuntimeBuilder {
    pub(crate) fn new(pool: PgPool) -> Self {
        RuntimeBuilder {
            pool,
            specs: Vec::new(),
            tick: Duration::from_secs(1),
            scheduler: true,
        }
    }

    /// Register a stream table declared with `#[stream_table]`: [`start`] creates
    /// it if the database does not have it yet.
    ///
    /// [`start`]: RuntimeBuilder::start
    pub fn register<T: StreamTable>(self) -> Self {
        self.register_def(T::DEF)
    }

    /// Register a stream table from its static definition.
    pub fn register_def(self, def: StreamTableDef) -> Self {
        self.register_spec(def.spec())
    }

    /// Register a stream table from a spec built at run time.
    pub fn register_spec(mut self, spec: StreamTableSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// How often the scheduler looks for stream tables to refresh. Default: 1 second.
    /// Schedules finer than the tick are honoured only to the tick.
    ///
    /// # Panics
    ///
    /// Panics if `tick` is zero.
    #[track_caller]
    pub fn tick(mut self, tick: Duration) -> Self {
        assert!(
            !tick.is_zero(),
            "pgstream: the scheduler tick must be greater than zero"
        );
        self.tick = tick;
        self
    }

    /// Whether to run the scheduler in this process. Default: `true`. Without it,
    /// stream tables are refreshed only on request (another process may schedule).
    pub fn scheduler(mut self, enabled: bool) -> Self {
        self.scheduler = enabled;
        self
    }

    /// Install or upgrade the catalog, create each registered stream table that
    /// does not exist yet (one transaction each), then start the scheduler.
    ///
    /// A registered stream table that exists with the same query and mode is kept
    /// (a changed schedule is updated); one whose query or mode differs is an
    /// [`Error::DefinitionChanged`]: stored data is never dropped silently.
    pub async fn start(self) -> Result<Runtime> {
        crate::install::install(&self.pool).await?;
        for spec in &self.specs {
            ensure(&self.pool, spec).await?;
        }
        Ok(Runtime::spawn(self.pool, self.tick, self.scheduler))
    }
}

/// Create the stream table unless it exists; check the definition if it does.
async fn ensure(pool: &PgPool, spec: &StreamTableSpec) -> Result<()> {
    for _ in 0..2 {
        if check_existing(pool, spec).await? {
            return Ok(());
        }
        match crate::create::create_stream_table(pool, spec).await {
            // Another replica created it meanwhile: check its definition.
            Err(Error::AlreadyExists(_)) => continue,
            other => return other,
        }
    }
    Err(Error::AlreadyExists(display_name(&spec.name)))
}

/// `Ok(true)` if it exists with the same definition, `Ok(false)` if it does not exist.
async fn check_existing(pool: &PgPool, spec: &StreamTableSpec) -> Result<bool> {
    let name = display_name(&spec.name);
    let mut conn = pool
        .acquire()
        .await
        .step(Some(&name), "reading the stream table catalog")?;
    let Some(stored) = stored_definition(&mut conn, &spec.name).await? else {
        return Ok(false);
    };
    if stored.query != spec.query {
        return Err(Error::DefinitionChanged {
            name,
            what: "the query differs".into(),
        });
    }
    if stored.mode != spec.mode.as_str() {
        return Err(Error::DefinitionChanged {
            name,
            what: format!("mode {} instead of {}", stored.mode, spec.mode),
        });
    }
    let schedule = spec.schedule.to_string();
    if stored.schedule != schedule {
        sqlx::query(
            "UPDATE pgstream.pgs_stream_tables
                SET schedule = $2, schedule_interval = $3::float8 * interval '1 millisecond'
              WHERE id = $1",
        )
        .bind(stored.id)
        .bind(&schedule)
        .bind(spec.schedule.duration().as_secs_f64() * 1000.0)
        .execute(&mut *conn)
        .await
        .step(Some(&name), "updating the schedule")?;
    }
    Ok(true)
}
