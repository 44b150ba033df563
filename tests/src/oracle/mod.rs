//! The equivalence oracle: random DML batches, refresh, compare the stream table with
//! its defining query as multisets (`EXCEPT ALL` both ways).
//!
//! The random DML is generic: it reads the base tables' columns, types, nullability and
//! primary keys from the catalog and draws values from small domains so that joins and
//! groups collide and updates/deletes hit existing rows. Everything is driven by one
//! `StdRng` seeded from [`Oracle::seed`] (or `PGS_ORACLE_SEED`), which is printed.
//!
//! ```no_run
//! # async fn f(pool: &sqlx::PgPool) {
//! use pgstream_tests::oracle::{Domain, Oracle};
//! let oracle = Oracle::new(
//!     "dept_sizes",
//!     "SELECT d.name, count(*) AS n FROM departments d JOIN employees e \
//!      ON e.department_id = d.id GROUP BY d.name",
//! )
//! .table("departments", "CREATE TABLE departments (id int PRIMARY KEY, name text)")
//! .table(
//!     "employees",
//!     "CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, \
//!      department_id int, salary numeric(10,2))",
//! )
//! .domain("employees", "department_id", Domain::existing("departments", "id", &["999"]))
//! .batches(20);
//! oracle.setup(pool).await; // creates the tables and initial rows
//! // ... create the stream table `dept_sizes` here ...
//! oracle.assert_equivalent(pool).await; // batches of DML, refresh, compare; panics on a difference
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

type RefreshFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type RefreshFn = Arc<dyn Fn(PgPool) -> RefreshFuture + Send + Sync>;

mod compare;
mod dml;
mod failure;
mod tables;

use dml::exec_dml;
pub use dml::{quote_ident, quote_literal};
use failure::{is_retryable, mismatch_text};
pub use failure::{FailureKind, OracleFailure};
use tables::{Column, Existing, Kind, Table};

/// Words text values are drawn from (few, so that groups and joins collide).
pub const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon"];

/// Where the values of one column come from (overrides the type-based default).
#[derive(Debug, Clone)]
pub enum Domain {
    /// Integers in `lo..=hi`.
    Ints(i64, i64),
    /// One of these SQL literals (e.g. `"'x'"`, `"NULL"`, `"1.50"`), cast to the column type.
    Literals(Vec<String>),
    /// A key of `table` (whose primary key is one integer column): in
    /// [`Oracle::insert_only`] mode one of the keys issued so far or of the next
    /// `ahead` ones (a row that arrives later), else one in `0..key_range + ahead`;
    /// NULL with probability `null`.
    KeyOf {
        /// The table whose keys are drawn.
        table: String,
        /// How many keys beyond those issued so far may be drawn.
        ahead: i64,
        /// Probability of NULL.
        null: f64,
    },
    /// A value currently present in `table.column` (read at the start of each
    /// transaction) or one of `extra` (SQL literals, e.g. a missing id).
    Existing {
        /// Table to read from.
        table: String,
        /// Column to read.
        column: String,
        /// Additional SQL literals.
        extra: Vec<String>,
    },
}

impl Domain {
    /// [`Domain::Existing`] from string slices.
    pub fn existing(table: &str, column: &str, extra: &[&str]) -> Domain {
        Domain::Existing {
            table: table.into(),
            column: column.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// [`Domain::KeyOf`].
    pub fn key_of(table: &str, ahead: i64, null: f64) -> Domain {
        Domain::KeyOf {
            table: table.into(),
            ahead,
            null,
        }
    }

    /// [`Domain::Literals`] from string slices.
    pub fn literals(values: &[&str]) -> Domain {
        Domain::Literals(values.iter().map(|s| s.to_string()).collect())
    }
}

/// The equivalence oracle for one stream table. Build with [`Oracle::new`] and the
/// builder methods, then [`Oracle::setup`] and [`Oracle::run`] /
/// [`Oracle::assert_equivalent`].
#[derive(Clone)]
pub struct Oracle {
    stream_table: String,
    query: String,
    tables: Vec<(String, Option<String>)>,
    refresh: Option<RefreshFn>,
    seed: Option<u64>,
    batches: usize,
    initial_rows: usize,
    key_range: i64,
    truncate_probability: f64,
    null_probability: f64,
    float_digits: Option<u32>,
    domains: HashMap<(String, String), Domain>,
    visible_columns: Option<Vec<String>>,
    quiet: bool,
    insert_only: bool,
    immediate: bool,
    expect_strategy: Option<String>,
    /// Columns of each table the query does not read: schema changes may drop or
    /// rename them.
    unused: HashMap<String, Vec<String>>,
    schema_change_probability: f64,
    bulk_probability: f64,
    /// Per table, the relations a generated statement may name instead of it (the
    /// partitions of a partitioned table, at every level, and the table itself).
    targets: HashMap<String, Vec<String>>,
    /// In insert-only mode, the next fresh key of each table whose primary key is one
    /// integer column (set by `run`).
    next_keys: Arc<Mutex<HashMap<String, i64>>>,
}

impl fmt::Debug for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oracle")
            .field("stream_table", &self.stream_table)
            .field("query", &self.query)
            .field("tables", &self.tables)
            .field("seed", &self.seed)
            .field("batches", &self.batches)
            .finish_non_exhaustive()
    }
}

/// Builder methods that set a field of [`Oracle`] to their argument: `name(arg: type)
/// => field`, each with its doc.
macro_rules! setters {
    ($($(#[doc = $doc:literal])* $name:ident($arg:ident: $ty:ty) => $field:ident;)*) => {
        $(
            $(#[doc = $doc])*
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$field = $arg;
                self
            }
        )*
    };
}

impl Oracle {
    /// An oracle for the stream table `stream_table` defined by `query`.
    ///
    /// Defaults: 20 batches, 20 initial rows per table, keys in `0..30`, no TRUNCATE,
    /// 15 % NULLs in nullable columns, exact comparison, refresh by
    /// `SELECT pgstream.refresh_stream_table($1)`.
    pub fn new(stream_table: &str, query: &str) -> Oracle {
        Oracle {
            stream_table: stream_table.into(),
            query: query.into(),
            tables: Vec::new(),
            refresh: None,
            seed: None,
            batches: 20,
            initial_rows: 20,
            key_range: 30,
            truncate_probability: 0.0,
            null_probability: 0.15,
            float_digits: None,
            domains: HashMap::new(),
            visible_columns: None,
            quiet: false,
            insert_only: false,
            immediate: false,
            expect_strategy: None,
            unused: HashMap::new(),
            schema_change_probability: 0.0,
            bulk_probability: 0.0,
            targets: HashMap::new(),
            next_keys: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// `table.column` is a column the query does not read: a schema change (see
    /// [`Oracle::schema_changes`]) may drop or rename it.
    pub fn unused_column(mut self, table: &str, column: &str) -> Self {
        self.unused
            .entry(table.into())
            .or_default()
            .push(column.into());
        self
    }

    setters! {
        /// Before each batch, with probability `p`, change the schema of one table in a
        /// way the stream table must not notice: add a column (`spare_<n>`, of a random
        /// type, which later DML fills), or drop or rename one that the query does not
        /// read (one declared with [`Oracle::unused_column`] or added before). The DDL is
        /// part of the batch's statements in a failure report.
        schema_changes(p: f64) => schema_change_probability;

        /// Probability that a transaction rewrites every row of one table (`UPDATE t SET
        /// c = c`): a window as large as the table, for the adaptive switch to a full
        /// refresh.
        bulk_updates(p: f64) => bulk_probability;

        /// Number of DML batches (`PGS_ORACLE_BATCHES` in the environment wins;
        /// `PGS_ORACLE_MAX_BATCHES` caps it).
        /// `PGS_ORACLE_LOG=1` prints the DML of every batch.
        batches(n: usize) => batches;

        /// Rows inserted per table by [`Oracle::setup`].
        initial_rows(n: usize) => initial_rows;

        /// Probability that a transaction truncates one table (default 0).
        truncate_probability(p: f64) => truncate_probability;

        /// Probability of NULL in a nullable column (default 0.15).
        null_probability(p: f64) => null_probability;
    }

    /// A base table and the DDL that creates it (run by [`Oracle::setup`], in the
    /// order given: parents before children).
    pub fn table(mut self, name: &str, ddl: &str) -> Self {
        self.tables.push((name.into(), Some(ddl.into())));
        self
    }

    /// A base table that already exists (setup only inserts initial rows).
    pub fn existing_table(mut self, name: &str) -> Self {
        self.tables.push((name.into(), None));
        self
    }

    /// The relations a generated statement on `table` names, chosen at random per
    /// statement: for a partitioned table, the table and its partitions (at every
    /// level), so that DML is addressed to partitions directly too. A row an INSERT
    /// routes to the wrong partition fails and is rolled back (class 23).
    pub fn targets(mut self, table: &str, relations: &[&str]) -> Self {
        self.targets.insert(
            table.into(),
            relations.iter().map(|r| r.to_string()).collect(),
        );
        self
    }

    /// The seed (`PGS_ORACLE_SEED` in the environment wins; default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Key values (primary key columns) are drawn from `0..n` (`k0..k{n-1}` for text).
    pub fn key_range(mut self, n: i64) -> Self {
        self.key_range = n.max(1);
        self
    }

    /// Compare floating-point (`real`, `double precision`) columns of the stream table
    /// rounded to `digits` decimal places (both sides).
    pub fn float_tolerance(mut self, digits: u32) -> Self {
        self.float_digits = Some(digits);
        self
    }

    /// Values of `table.column` come from `domain`.
    pub fn domain(mut self, table: &str, column: &str, domain: Domain) -> Self {
        self.domains.insert((table.into(), column.into()), domain);
        self
    }

    /// The stream table columns compared with the query's output, in the query's
    /// order (default: all columns whose names do not start with `__pgs`, in order).
    pub fn visible_columns(mut self, columns: &[&str]) -> Self {
        self.visible_columns = Some(columns.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Batches made only of INSERTs (no UPDATE, DELETE or TRUNCATE): rows with
    /// duplicates (within a statement, and equal rows under other keys), NULLs where
    /// the columns allow them, and keys that exist already (a conflict, `ON CONFLICT
    /// DO NOTHING`) one time in ten. A primary key of one integer column takes fresh
    /// values (one more than the largest so far), so that [`Domain::KeyOf`] can name
    /// rows that arrive in later batches.
    pub fn insert_only(mut self) -> Self {
        self.insert_only = true;
        self
    }

    /// After each refresh of a batch with changes, `pgstream.pg_stat_stream_tables`
    /// must show this `last_strategy` (or `NO CHANGES` when every insert of the batch
    /// conflicted), and at least nine batches in ten must have taken it: a test of a
    /// strategy cannot pass by falling back to another one.
    pub fn expect_strategy(mut self, strategy: &str) -> Self {
        self.expect_strategy = Some(strategy.into());
        self
    }

    /// The stream table is IMMEDIATE: it is never refreshed by the oracle (it must be
    /// exact after every commit without one), and it is compared with the query after
    /// every statement, inside the writing transaction (the writer reads its own
    /// writes through it).
    pub fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }

    /// Don't print the seed and progress.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// How to refresh: an async function given (a clone of) the pool, e.g.
    /// `|pool| async move { sqlx::query("SELECT pgstream.refresh_stream_table('st')")
    /// .execute(&pool).await.map(|_| ()) }`.
    pub fn refresh_with<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(PgPool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        let f = Arc::new(f);
        self.refresh = Some(Arc::new(move |pool: PgPool| {
            let fut = f(pool);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) }) as RefreshFuture
        }));
        self
    }

    /// Refresh by running this SQL (simple protocol, several statements allowed).
    pub fn refresh_sql(self, sql: &str) -> Self {
        let sql = sql.to_string();
        self.refresh_with(move |pool: PgPool| {
            let sql = sql.clone();
            async move { sqlx::raw_sql(&sql).execute(&pool).await.map(|_| ()) }
        })
    }

    /// The seed this run uses (environment, builder, or a fresh random one).
    fn effective_seed(&self) -> u64 {
        if let Some(s) = std::env::var("PGS_ORACLE_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return s;
        }
        self.seed.unwrap_or_else(rand::random)
    }

    /// Whether `PGS_ORACLE_MAX_BATCHES` cut this run below the batches it was built
    /// with: a test's assertions that the run *reached* a case (an adaptive switch,
    /// a TRUNCATE) hold only for the full count.
    pub fn is_shortened(&self) -> bool {
        self.effective_batches() < self.requested_batches()
    }

    /// The batches this run was built with, or `PGS_ORACLE_BATCHES`.
    fn requested_batches(&self) -> usize {
        crate::bench_doc::env_or("PGS_ORACLE_BATCHES", self.batches)
    }

    /// `PGS_ORACLE_BATCHES` replaces the builder's count; `PGS_ORACLE_MAX_BATCHES`
    /// caps it (CI's second pass, on another PostgreSQL version, runs each oracle
    /// case briefly: the random rounds test pgstream, not the server).
    fn effective_batches(&self) -> usize {
        let n = self.requested_batches();
        n.min(crate::bench_doc::env_or("PGS_ORACLE_MAX_BATCHES", usize::MAX).max(1))
    }

    /// Creates the tables (those given with DDL) and inserts the initial rows
    /// (deterministic: uses the builder seed, or 0). Panics on error.
    pub async fn setup(&self, pool: &PgPool) {
        if let Err(e) = self.try_setup(pool).await {
            panic!("oracle setup failed: {e}");
        }
    }

    /// Like [`Oracle::setup`], returning the error.
    pub async fn try_setup(&self, pool: &PgPool) -> Result<(), String> {
        for (name, ddl) in &self.tables {
            if let Some(ddl) = ddl {
                sqlx::raw_sql(ddl)
                    .execute(pool)
                    .await
                    .map_err(|e| format!("DDL of {name} failed: {e}\n{ddl}"))?;
            }
        }
        let tables = self.load_tables(pool).await?;
        let mut rng = StdRng::seed_from_u64(self.seed.unwrap_or(0) ^ 0x5eed);
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        let mut log = Vec::new();
        for t in &tables {
            let cache = self.load_existing(&mut conn, t).await?;
            let mut left = self.initial_rows;
            while left > 0 {
                let n = left.min(10);
                left -= n;
                let sql = self.insert_sql(&mut rng, t, n, &cache);
                exec_dml(&mut conn, &sql, &mut log, false)
                    .await
                    .map_err(|e| format!("initial rows of {}: {e}", t.name))?;
            }
        }
        Ok(())
    }

    /// Runs: refresh + compare (batch 0), then for each batch: 1–4 transactions of
    /// random DML, refresh, compare. Returns the first failure.
    pub async fn run(&self, pool: &PgPool) -> Result<(), OracleFailure> {
        let seed = self.effective_seed();
        let batches = self.effective_batches();
        if !self.quiet {
            eprintln!(
                "oracle `{}`: seed {seed}, {batches} batches (PGS_ORACLE_SEED={seed} reproduces)",
                self.stream_table
            );
        }
        let fail = |batch: usize, kind: FailureKind, statements: Vec<String>| OracleFailure {
            seed,
            batch,
            stream_table: self.stream_table.clone(),
            kind,
            statements,
        };
        let mut tables = self
            .load_tables(pool)
            .await
            .map_err(|e| fail(0, FailureKind::Other(e), vec![]))?;
        let mut spares = self.unused.clone();
        let mut added = 0;
        if self.insert_only {
            self.init_next_keys(pool, &tables)
                .await
                .map_err(|e| fail(0, FailureKind::Other(e), vec![]))?;
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut st_cols: Option<Vec<(String, bool)>> = None;
        if self.immediate {
            st_cols = Some(
                self.stream_columns(pool)
                    .await
                    .map_err(|e| fail(0, FailureKind::Other(e), vec![]))?,
            );
        }
        let verbose = std::env::var_os("PGS_ORACLE_LOG").is_some();
        let mut expected_taken = 0;
        for batch in 0..=batches {
            let mut log = Vec::new();
            if batch > 0
                && self.schema_change_probability > 0.0
                && rng.gen_bool(self.schema_change_probability.min(1.0))
            {
                let ddl = self.schema_change(&mut rng, &mut spares, &mut added);
                log.push(ddl.clone());
                sqlx::raw_sql(&ddl).execute(pool).await.map_err(|e| {
                    fail(batch, FailureKind::Dml(format!("{ddl}: {e}")), log.clone())
                })?;
                tables = self
                    .load_tables(pool)
                    .await
                    .map_err(|e| fail(batch, FailureKind::Other(e), log.clone()))?;
            }
            if batch > 0 {
                let txs = rng.gen_range(1..=4);
                for _ in 0..txs {
                    let check = if self.immediate {
                        st_cols.as_deref()
                    } else {
                        None
                    };
                    self.transaction(pool, &mut rng, &tables, &mut log, "BEGIN", check)
                        .await
                        .map_err(|e| fail(batch, FailureKind::Dml(e), log.clone()))?;
                }
            }
            if verbose {
                eprintln!("-- oracle batch {batch}:\n  {}", log.join("\n  "));
            }
            if !self.immediate {
                self.do_refresh(pool)
                    .await
                    .map_err(|e| fail(batch, FailureKind::Refresh(e), log.clone()))?;
            }
            if let (Some(expected), true) = (&self.expect_strategy, batch > 0) {
                let taken: Option<String> = sqlx::query_scalar(
                    "SELECT last_strategy FROM pgstream.pg_stat_stream_tables WHERE name = $1",
                )
                .bind(&self.stream_table)
                .fetch_optional(pool)
                .await
                .map_err(|e| fail(batch, FailureKind::Other(e.to_string()), log.clone()))?
                .flatten();
                match taken.as_deref() {
                    Some(t) if t == expected => expected_taken += 1,
                    Some("NO CHANGES") => {}
                    other => {
                        return Err(fail(
                            batch,
                            FailureKind::Other(format!(
                                "the refresh took strategy {other:?}, not {expected:?}"
                            )),
                            log,
                        ))
                    }
                }
            }
            if st_cols.is_none() {
                st_cols = Some(
                    self.stream_columns(pool)
                        .await
                        .map_err(|e| fail(batch, FailureKind::Other(e), log.clone()))?,
                );
            }
            match self
                .compare(pool, st_cols.as_deref().unwrap_or_default())
                .await
            {
                Ok(None) => {}
                Ok(Some(kind)) => return Err(fail(batch, kind, log)),
                Err(e) => return Err(fail(batch, FailureKind::Other(e), log)),
            }
        }
        if let Some(expected) = &self.expect_strategy {
            // Nine in ten, rounded down (18 of 20; 4 of a short run's 5).
            if expected_taken < batches * 9 / 10 {
                return Err(fail(
                    batches,
                    FailureKind::Other(format!(
                        "only {expected_taken} of {batches} refreshes took strategy {expected:?}"
                    )),
                    vec![],
                ));
            }
        }
        Ok(())
    }

    /// IMMEDIATE mode under concurrent writers: `writers` connections each commit
    /// `transactions` transactions of random DML (`BEGIN ISOLATION LEVEL <isolation>`),
    /// at the same time, checking the stream table against the query after every
    /// statement inside the transaction; a transaction that fails with a
    /// serialization failure or a deadlock is rolled back and another one is tried.
    /// No refresh. At the end the stream table must equal the query. Returns the
    /// number of retried transactions.
    pub async fn run_concurrent(
        &self,
        pool: &PgPool,
        writers: usize,
        transactions: usize,
        isolation: &str,
    ) -> Result<u64, OracleFailure> {
        let seed = self.effective_seed();
        if !self.quiet {
            eprintln!(
                "oracle `{}`: seed {seed}, {writers} writers x {transactions} transactions, {isolation} \
                 (PGS_ORACLE_SEED={seed} reproduces the statements, not their interleaving)",
                self.stream_table
            );
        }
        let fail = |kind: FailureKind, statements: Vec<String>| OracleFailure {
            seed,
            batch: 0,
            stream_table: self.stream_table.clone(),
            kind,
            statements,
        };
        let tables = self
            .load_tables(pool)
            .await
            .map_err(|e| fail(FailureKind::Other(e), vec![]))?;
        let cols = self
            .stream_columns(pool)
            .await
            .map_err(|e| fail(FailureKind::Other(e), vec![]))?;
        let begin = format!("BEGIN ISOLATION LEVEL {isolation}");
        // One thread, many connections: the futures need not be Send.
        let local = tokio::task::LocalSet::new();
        let results = local
            .run_until(async {
                let mut handles = Vec::new();
                for w in 0..writers {
                    let (me, pool, tables, cols, begin) = (
                        self.clone(),
                        pool.clone(),
                        tables.clone(),
                        cols.clone(),
                        begin.clone(),
                    );
                    handles.push(tokio::task::spawn_local(async move {
                        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64 + 1));
                        let mut retries = 0u64;
                        let mut done = 0;
                        while done < transactions {
                            let mut log = Vec::new();
                            match me
                                .transaction(
                                    &pool,
                                    &mut rng,
                                    &tables,
                                    &mut log,
                                    &begin,
                                    Some(&cols),
                                )
                                .await
                            {
                                Ok(()) => done += 1,
                                Err(e) if is_retryable(&e) => retries += 1,
                                Err(e) => return Err((e, log)),
                            }
                        }
                        Ok(retries)
                    }));
                }
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.expect("writer task"));
                }
                out
            })
            .await;
        let mut retries = 0;
        for r in results {
            match r {
                Ok(n) => retries += n,
                Err((e, log)) => return Err(fail(FailureKind::Dml(e), log)),
            }
        }
        match self.compare(pool, &cols).await {
            Ok(None) => Ok(retries),
            Ok(Some(kind)) => Err(fail(kind, vec![])),
            Err(e) => Err(fail(FailureKind::Other(e), vec![])),
        }
    }

    /// [`Oracle::run`], panicking with the full report on failure.
    pub async fn assert_equivalent(&self, pool: &PgPool) {
        if let Err(f) = self.run(pool).await {
            panic!("{f}");
        }
    }

    /// Compares the stream table with the query now (no DML, no refresh).
    pub async fn check(&self, pool: &PgPool) -> Result<(), OracleFailure> {
        let fail = |kind| OracleFailure {
            seed: self.seed.unwrap_or(0),
            batch: 0,
            stream_table: self.stream_table.clone(),
            kind,
            statements: vec![],
        };
        let cols = self
            .stream_columns(pool)
            .await
            .map_err(|e| fail(FailureKind::Other(e)))?;
        match self.compare(pool, &cols).await {
            Ok(None) => Ok(()),
            Ok(Some(kind)) => Err(fail(kind)),
            Err(e) => Err(fail(FailureKind::Other(e))),
        }
    }

    async fn do_refresh(&self, pool: &PgPool) -> Result<(), String> {
        match &self.refresh {
            Some(f) => f(pool.clone()).await,
            None => sqlx::query("SELECT pgstream.refresh_stream_table($1)")
                .bind(&self.stream_table)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}
