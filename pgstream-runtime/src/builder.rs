//! [`RuntimeBuilder`]: configure, then [`RuntimeBuilder::start`].

use crate::catalog::{display_name, stored_definition};
use crate::error::{Error, Result, Step};
use crate::refresh::FailurePolicy;
use crate::runtime::Runtime;
use pgstream_core::{FieldDef, StreamTable, StreamTableDef, StreamTableSpec};
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
    /// The stream tables registered, in order.
    registrations: Vec<Registration>,
    tick: Duration,
    scheduler: bool,
    policy: FailurePolicy,
    replace_changed: bool,
    on_commit_min_gap: Duration,
}

/// One stream table registered with the builder.
#[derive(Debug)]
struct Registration {
    spec: StreamTableSpec,
    /// The output columns compiled into the program (`None` for a run-time spec).
    columns: Option<&'static [&'static str]>,
    /// Where it came from (the struct's type name), for duplicate-name errors.
    origin: String,
    /// The struct's fields when registered with [`RuntimeBuilder::register`] (empty
    /// otherwise), for the start-up type check.
    fields: &'static [FieldDef],
}

impl RuntimeBuilder {
    pub(crate) fn new(pool: PgPool) -> Self {
        RuntimeBuilder {
            pool,
            registrations: Vec::new(),
            tick: Duration::from_secs(1),
            scheduler: true,
            policy: FailurePolicy::default(),
            replace_changed: false,
            on_commit_min_gap: crate::oncommit::DEFAULT_MIN_GAP,
        }
    }

    /// Register a stream table declared with `#[stream_table]`: [`start`] creates
    /// it if the database does not have it yet.
    ///
    /// [`start`]: RuntimeBuilder::start
    pub fn register<T: StreamTable>(self) -> Self {
        let mut b = self.register_def(T::DEF);
        if let Some(r) = b.registrations.last_mut() {
            r.origin = format!("`{}`", std::any::type_name::<T>());
            r.fields = T::FIELDS;
        }
        b
    }

    /// Register a stream table from its static definition.
    ///
    /// [`start`] checks that the query still gives the output columns compiled
    /// into the program ([`Error::SchemaDrift`] otherwise).
    ///
    /// [`start`]: RuntimeBuilder::start
    pub fn register_def(mut self, def: StreamTableDef) -> Self {
        self.registrations.push(Registration {
            spec: def.spec(),
            columns: Some(def.columns),
            origin: format!("the definition of `{}`", def.name),
            fields: &[],
        });
        self
    }

    /// Register a stream table from a spec built at run time.
    pub fn register_spec(mut self, spec: StreamTableSpec) -> Self {
        self.registrations.push(Registration {
            origin: format!("the spec of `{}`", spec.name),
            spec,
            columns: None,
            fields: &[],
        });
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

    /// For stream tables with the schedule `on commit`: the least time between the
    /// starts of two refreshes of one stream table. Default: 10 ms. Commits that
    /// arrive while a refresh is in flight, or sooner than this after it started,
    /// are applied by one refresh after it (never more than one refresh of a stream
    /// table in flight). A larger gap trades freshness for fewer refreshes under a
    /// steady stream of commits. Needs the scheduler
    /// ([`scheduler`](RuntimeBuilder::scheduler)).
    pub fn on_commit_min_gap(mut self, gap: Duration) -> Self {
        self.on_commit_min_gap = gap;
        self
    }

    /// After how many failed scheduled refreshes in a row a stream table is
    /// suspended (status `SUSPENDED`, until `pgstream.resume_stream_table` or
    /// [`Runtime::resume`]). Default: 5. `0` never suspends. Failures of the
    /// connection or the server (a terminated backend, a restart) do not count.
    pub fn max_consecutive_failures(mut self, n: u32) -> Self {
        self.policy.max_failures = n;
        self
    }

    /// How many stream tables the scheduler refreshes at once, each on a connection
    /// of the pool. Default: 1 (one after another). With more, a slow refresh no
    /// longer holds up the unrelated ones: in its pass, the others run beside it, and
    /// once it has run for a tick with nothing else left to start, the pass ends
    /// without it (it goes on, keeping its connection) and the next passes refresh
    /// the others with the connections left. A stream table still starts only after
    /// the due stream tables it reads have finished. Keep it below the pool's size so
    /// that requests and the application keep connections.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    #[track_caller]
    pub fn parallel_refreshes(mut self, n: usize) -> Self {
        assert!(n > 0, "pgstream: parallel_refreshes must be at least 1");
        self.policy.parallel = n;
        self
    }

    /// How many stream tables the scheduler advances in one transaction when their
    /// sources changed only in rows their change filters reject (another tenant's
    /// rows, for `WHERE tenant_id = 3`). Default: 1,000. Each one's refresh lock takes
    /// a slot of the server's shared lock table until the commit
    /// (`max_locks_per_transaction` slots per connection, 64 by default), so one
    /// transaction over every tenant would fail with "out of shared memory" once
    /// there are several thousand; smaller batches cost one more transaction each.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    #[track_caller]
    pub fn advance_batch(mut self, n: u32) -> Self {
        assert!(n > 0, "pgstream: advance_batch must be at least 1");
        self.policy.advance_batch = n;
        self
    }

    /// The exponential backoff between retries of a failing stream table: the first
    /// retry after `base`, then 2·base, 4·base, ... at most `max`. Default: 1 s and
    /// 5 min. (Until the retry time, the stream table is not refreshed by the
    /// scheduler; a manual refresh still works.)
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.policy.backoff_base = base;
        self.policy.backoff_max = max.max(base);
        self
    }

    /// What [`start`](RuntimeBuilder::start) does with a registered stream table that
    /// exists in the database with another query or mode. Default: `false`, an
    /// [`Error::DefinitionChanged`]. With `true`, the stream table is replaced by the
    /// registered definition (see [`crate::replace_stream_table`]): the new storage
    /// table is built, populated and swapped for the old one in one transaction, so
    /// readers see the old rows or the new ones, never an empty table; the name and
    /// the grants on it are kept.
    ///
    /// Either way, a registered definition that the stream table *had* before it was
    /// replaced (an older application version during a rolling deploy) is left alone
    /// with a WARN: an older version never replaces a newer definition back, and it
    /// starts (see the README's "Changing a query").
    pub fn replace_changed(mut self, replace: bool) -> Self {
        self.replace_changed = replace;
        self
    }

    /// Check that the database answers (an unreachable database fails within a few
    /// seconds with the cause, e.g. "connection refused", rather than after the
    /// pool's acquire timeout; see [`crate::check_connection`]), install or upgrade
    /// the catalog, create each registered stream table that does not exist yet (one
    /// transaction each), then start the scheduler.
    ///
    /// A registered stream table that exists with the same query and mode is kept
    /// (a changed schedule is updated); one whose query or mode differs is an
    /// [`Error::DefinitionChanged`] (stored data is never dropped silently), or is
    /// replaced with [`replace_changed`](RuntimeBuilder::replace_changed); one that
    /// has moved on from the registered definition (which it had before a
    /// replacement) is left alone with a WARN.
    ///
    /// Two registered stream tables with one name (and different definitions) are an
    /// [`Error::Invalid`] naming both, returned before anything is installed.
    ///
    /// For a struct registered with [`register`](RuntimeBuilder::register), each
    /// field's type is checked against the column's type and nullability that the query
    /// gives against the live schema (before the stream table is created), then against
    /// the storage table's column types (which covers the types the macro could not
    /// infer): a difference is an [`Error::SchemaDrift`] naming the column, the SQL type
    /// found and the field's type.
    pub async fn start(self) -> Result<Runtime> {
        let mut registrations = self.registrations;
        check_unique_names(&registrations)?;
        check_connection(&self.pool).await?;
        crate::install::install(&self.pool).await?;
        check_field_types(&self.pool, &registrations, false).await?;
        check_names_free(&self.pool, &registrations).await?;
        for r in registrations.iter_mut() {
            if ensure(&self.pool, &r.spec, r.columns, self.replace_changed).await?
                == Ensured::Superseded
            {
                // Its storage has the newer definition's columns, not this struct's.
                r.fields = &[];
            }
        }
        crate::create::backfill_source_columns(&self.pool).await?;
        crate::create::backfill_views(&self.pool).await?;
        crate::create::upgrade_guards(&self.pool).await?;
        check_field_types(&self.pool, &registrations, true).await?;
        check_drift(&self.pool).await?;
        // Requests from SQL made while no runtime was running.
        crate::requests::process_requests(&self.pool).await?;
        for Registration { spec, .. } in &registrations {
            tracing::info!(
                stream_table = %display_name(&spec.name),
                mode = spec.mode.as_str(),
                schedule = %spec.schedule,
                "stream table ready"
            );
        }
        tracing::info!(
            registered = registrations.len(),
            scheduler = self.scheduler,
            tick_ms = self.tick.as_millis() as u64,
            "pgstream runtime started"
        );
        Ok(Runtime::spawn(
            self.pool,
            self.tick,
            self.scheduler,
            self.policy,
            self.on_commit_min_gap,
        ))
    }
}

/// How long [`check_connection`] waits for the database to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Fail fast, with the cause, when the database cannot be reached
/// ([`Error::Database`] at the step "connecting to the database", within
/// [`CONNECT_TIMEOUT`]): a pool retries
/// until its `acquire_timeout` (30 s by default) and then reports only "pool timed
/// out". One connection of the pool's options, opened directly, says "connection
/// refused" (or the authentication error, ...) at once; it is skipped when the pool
/// already holds connections.
pub async fn check_connection(pool: &PgPool) -> Result<()> {
    use sqlx::Connection;
    const STEP: &str = "connecting to the database";
    if pool.size() > 0 {
        return Ok(());
    }
    let options = pool.connect_options();
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(Error::db(None, STEP, e)),
        Err(_) => Err(Error::no_answer(STEP)),
    }
}

/// Two registrations of one name would make the second replace or fight the first.
/// Registering the same definition twice is harmless and allowed.
fn check_unique_names(registrations: &[Registration]) -> Result<()> {
    for (i, ra) in registrations.iter().enumerate() {
        for rb in registrations.iter().take(i) {
            let (a, b) = (&ra.spec, &rb.spec);
            let same = a.query == b.query && a.mode == b.mode && a.schedule == b.schedule;
            if a.name == b.name && !same {
                return Err(Error::Invalid(format!(
                    "two registered stream tables are both named {}: {} (query `{}`) and {} (query `{}`); \
                     give one another name with #[stream_table(name = \"...\")]. Nothing was installed.",
                    display_name(&a.name),
                    rb.origin,
                    b.query.split_whitespace().collect::<Vec<_>>().join(" "),
                    ra.origin,
                    a.query.split_whitespace().collect::<Vec<_>>().join(" "),
                )));
            }
        }
    }
    Ok(())
}

/// Each field's type against the live schema: with `storage`, against the storage
/// table's column types; otherwise against the query's output types and nullability
/// inferred from the live catalog (a query that does not compile is left to `ensure`).
async fn check_field_types(
    pool: &PgPool,
    registrations: &[Registration],
    storage: bool,
) -> Result<()> {
    if registrations.iter().all(|r| r.fields.is_empty()) {
        return Ok(());
    }
    // Read-only: the transaction (search_path pinned) is rolled back when dropped.
    let mut conn = crate::pin::begin(pool)
        .await
        .step(None, "checking the field types of the stream tables")?;
    let catalog = if storage {
        None
    } else {
        Some(crate::catalog::load_catalog(&mut conn).await?)
    };
    for Registration { spec, fields, .. } in registrations.iter().filter(|r| !r.fields.is_empty()) {
        let name = display_name(&spec.name);
        let found: Vec<(String, Option<String>, Option<bool>)> = match &catalog {
            Some(catalog) => match pgstream_core::compile(spec, catalog) {
                Ok(c) => c
                    .columns
                    .into_iter()
                    .map(|c| (c.name, c.sql_type, c.nullable))
                    .collect(),
                Err(_) => continue,
            },
            None => sqlx::query_as::<_, (String, String)>(
                "SELECT attname::text, pg_catalog.format_type(atttypid, atttypmod)
                   FROM pg_catalog.pg_attribute
                  WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            )
            .bind(pgstream_core::quote_qualified(&spec.name))
            .fetch_all(&mut *conn)
            .await
            .step(Some(&name), "reading the storage table's column types")?
            .into_iter()
            .map(|(n, t)| (n, Some(t), None))
            .collect(),
        };
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        for f in fields.iter() {
            let Some((_, sql_type, nullable)) = found.iter().find(|(n, _, _)| n == f.column) else {
                continue;
            };
            if let Some(why) = f.mismatch(sql_type.as_deref(), *nullable) {
                let reads = if f.sql_types.is_empty() {
                    String::new()
                } else {
                    format!(", which reads {}", f.sql_types.join(" or "))
                };
                expected.push(format!("{} as `{}`{reads}", f.column, f.rust_type));
                got.push(format!(
                    "{} {}{}",
                    f.column,
                    sql_type.as_deref().unwrap_or("of unknown type"),
                    if *nullable == Some(true) {
                        " that can be NULL"
                    } else {
                        ""
                    }
                ));
                tracing::error!(stream_table = %name, "{why}");
            }
        }
        if !expected.is_empty() {
            return Err(Error::SchemaDrift {
                name,
                expected,
                found: got,
            });
        }
    }
    Ok(())
}

/// Every registered name that is taken by a table (or view, ...) that is not a stream
/// table: [`Error::NameTaken`] for the first, before any stream table is created.
async fn check_names_free(pool: &PgPool, registrations: &[Registration]) -> Result<()> {
    for Registration { spec, .. } in registrations {
        let taken: bool = sqlx::query_scalar(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                                 WHERE s.schema_name = $2 AND s.table_name = $3)",
        )
        .bind(pgstream_core::quote_qualified(&spec.name))
        .bind(&spec.name.schema)
        .bind(&spec.name.name)
        .fetch_one(pool)
        .await
        .step(Some(&display_name(&spec.name)), "checking the name")?;
        if taken {
            return Err(Error::NameTaken(display_name(&spec.name)));
        }
    }
    Ok(())
}

/// What [`ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ensured {
    /// Created, or there with this definition (or replaced by it).
    Current,
    /// There with a newer definition that replaced this one: left alone.
    Superseded,
}

/// Create the stream table unless it exists; check the definition if it does (and
/// replace it when it differs, with `replace`).
async fn ensure(
    pool: &PgPool,
    spec: &StreamTableSpec,
    columns: Option<&[&str]>,
    replace: bool,
) -> Result<Ensured> {
    for _ in 0..2 {
        match check_existing(pool, spec, columns).await {
            Ok(Some(e)) => return Ok(e),
            Ok(None) => {}
            Err(Error::DefinitionChanged { .. }) if replace => {
                return match crate::replace::replace_checked(pool, spec, columns, false).await? {
                    crate::replace::Outcome::Superseded => {
                        warn_superseded(spec);
                        Ok(Ensured::Superseded)
                    }
                    _ => Ok(Ensured::Current),
                };
            }
            Err(e) => return Err(e),
        }
        match crate::create::create_checked(pool, spec, columns).await {
            // Another replica created it meanwhile: check its definition.
            Err(Error::AlreadyExists(_)) => continue,
            other => return other.map(|()| Ensured::Current),
        }
    }
    Err(Error::AlreadyExists(display_name(&spec.name)))
}

fn warn_superseded(spec: &StreamTableSpec) {
    tracing::warn!(
        stream_table = %display_name(&spec.name),
        "the database holds a newer definition of this stream table, which replaced the \
         registered one (a newer application version replaced it): left as it is; this \
         process refreshes the newer definition. Deploy the newer version, or replace \
         explicitly (`pgstream replace`) to go back"
    );
}

/// `Ok(Some(_))` if it exists with the same definition (or with a newer one that
/// replaced it), `Ok(None)` if it does not exist.
async fn check_existing(
    pool: &PgPool,
    spec: &StreamTableSpec,
    columns: Option<&[&str]>,
) -> Result<Option<Ensured>> {
    let name = display_name(&spec.name);
    let mut conn = crate::pin::begin(pool)
        .await
        .step(Some(&name), "reading the stream table catalog")?;
    let Some(stored) = stored_definition(&mut conn, &spec.name).await? else {
        return Ok(None);
    };
    if (stored.query != spec.query || stored.mode != spec.mode.as_str())
        && crate::replace::is_superseded(&mut conn, spec).await?
    {
        warn_superseded(spec);
        return Ok(Some(Ensured::Superseded));
    }
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
    if let Some(expected) = columns {
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT attname::text FROM pg_catalog.pg_attribute
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
                AND attname::text NOT LIKE '\\_\\_pgs\\_%'
              ORDER BY attnum",
        )
        .bind(pgstream_core::quote_qualified(&spec.name))
        .fetch_all(&mut *conn)
        .await
        .step(Some(&name), "checking the storage table's columns")?;
        let found: Vec<&str> = found.iter().map(String::as_str).collect();
        crate::create::check_columns(&name, expected, &found)?;
    }
    crate::schedule::update_schedule(&mut conn, stored.id, &stored.schedule, spec, Some(&name))
        .await?;
    conn.commit()
        .await
        .step(Some(&name), "updating the schedule")?;
    Ok(Some(Ensured::Current))
}

/// At start-up, put every stream table whose source columns drifted (dropped,
/// renamed, retyped since creation) in the `ERROR` state, with the reason.
async fn check_drift(pool: &PgPool) -> Result<()> {
    const STEP: &str = "checking the sources for schema drift";
    let mut tx = crate::pin::begin(pool).await.step(None, STEP)?;
    let drifted: Vec<(String, String)> = sqlx::query_as(
        "WITH d AS (
             SELECT s.id, pgstream._display_name(s.schema_name, s.table_name) AS name,
                    pgstream._drift(s.id) AS msg
               FROM pgstream.pgs_stream_tables s WHERE s.status <> 'ERROR')
         UPDATE pgstream.pgs_stream_tables s
            SET status = 'ERROR', status_reason = d.msg
           FROM d WHERE d.id = s.id AND d.msg IS NOT NULL
         RETURNING d.name, d.msg",
    )
    .fetch_all(&mut *tx)
    .await
    .step(None, STEP)?;
    tx.commit().await.step(None, STEP)?;
    for (name, msg) in drifted {
        tracing::error!(stream_table = %name, reason = %msg, "schema drift: stream table put in the ERROR state");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgstream_core::{Mode, QualifiedName};

    fn spec(name: &str, query: &str) -> StreamTableSpec {
        StreamTableSpec {
            name: QualifiedName::new("public", name),
            query: query.into(),
            schedule: Default::default(),
            mode: Mode::Differential,
        }
    }

    #[tokio::test]
    async fn duplicate_names_fail_before_anything_is_installed() {
        // A pool that cannot connect: start must fail before it uses it.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(100))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let err = Runtime::builder(pool.clone())
            .register_spec(spec("stats", "SELECT id FROM a"))
            .register_spec(spec("other", "SELECT id FROM a"))
            .register_spec(spec("stats", "SELECT id FROM b"))
            .start()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Invalid(_)), "{msg}");
        assert!(msg.contains("both named stats:"), "{msg}");
        assert!(
            msg.contains("SELECT id FROM a") && msg.contains("SELECT id FROM b"),
            "{msg}"
        );
        assert!(msg.contains("Nothing was installed"), "{msg}");

        // the same definition twice is not a conflict (it fails later, on connecting)
        let err = Runtime::builder(pool)
            .register_spec(spec("stats", "SELECT id FROM a"))
            .register_spec(spec("stats", "SELECT id FROM a"))
            .start()
            .await
            .unwrap_err();
        assert!(!matches!(err, Error::Invalid(_)), "{err}");
    }
}
