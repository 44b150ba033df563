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
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::{PgConnection, PgPool, Row};

type RefreshFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type RefreshFn = Arc<dyn Fn(PgPool) -> RefreshFuture + Send + Sync>;

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

/// Why an oracle run failed.
#[derive(Debug, Clone)]
pub enum FailureKind {
    /// The stream table and the query differ.
    Mismatch {
        /// Number of rows of `(query) EXCEPT ALL (stream table)`.
        missing_count: i64,
        /// First 20 of them, as row text.
        missing: Vec<String>,
        /// Number of rows of `(stream table) EXCEPT ALL (query)`.
        extra_count: i64,
        /// First 20 of them, as row text.
        extra: Vec<String>,
    },
    /// The refresh returned an error.
    Refresh(String),
    /// A generated DML statement failed with an unexpected error.
    Dml(String),
    /// Setup, catalog read or comparison query failed.
    Other(String),
}

/// A failed oracle run: everything needed to reproduce it.
#[derive(Debug, Clone)]
pub struct OracleFailure {
    /// The seed of the run.
    pub seed: u64,
    /// The batch (0 = the refresh before any DML).
    pub batch: usize,
    /// The stream table.
    pub stream_table: String,
    /// What went wrong.
    pub kind: FailureKind,
    /// The DML statements of the failing batch, in order (`-- rolled back:` marks
    /// statements that hit a constraint and were undone by a savepoint).
    pub statements: Vec<String>,
}

impl fmt::Display for OracleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "oracle failure on stream table `{}`: seed {} (PGS_ORACLE_SEED={} reproduces), batch {}",
            self.stream_table, self.seed, self.seed, self.batch
        )?;
        match &self.kind {
            FailureKind::Mismatch {
                missing_count,
                missing,
                extra_count,
                extra,
            } => {
                writeln!(
                    f,
                    "{missing_count} row(s) of the query are missing from the stream table (first 20):"
                )?;
                for r in missing {
                    writeln!(f, "  - {r}")?;
                }
                writeln!(
                    f,
                    "{extra_count} row(s) of the stream table are not in the query (first 20):"
                )?;
                for r in extra {
                    writeln!(f, "  + {r}")?;
                }
            }
            FailureKind::Refresh(e) => writeln!(f, "refresh failed: {e}")?,
            FailureKind::Dml(e) => writeln!(f, "generated DML failed: {e}")?,
            FailureKind::Other(e) => writeln!(f, "{e}")?,
        }
        writeln!(
            f,
            "DML of this batch ({} statements):",
            self.statements.len()
        )?;
        for s in &self.statements {
            writeln!(f, "  {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OracleFailure {}

/// A mismatch in words (the counts and the first differing rows).
fn mismatch_text(kind: &FailureKind) -> String {
    match kind {
        FailureKind::Mismatch {
            missing_count,
            missing,
            extra_count,
            extra,
        } => format!(
            "{missing_count} row(s) of the query missing from the stream table {missing:?}, \
             {extra_count} row(s) of the stream table not in the query {extra:?}"
        ),
        other => format!("{other:?}"),
    }
}

/// Whether an oracle DML error is a serialization failure or a deadlock (SQLSTATE
/// 40001, 40P01): the transaction is retried.
fn is_retryable(e: &str) -> bool {
    e.contains("SQLSTATE 40001")
        || e.contains("SQLSTATE 40P01")
        // A COMMIT's error carries no SQLSTATE in its text.
        || e.contains("could not serialize access")
        || e.contains("deadlock detected")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Numeric,
    Float,
    Text,
    Bool,
    Date,
    Timestamp,
    Other,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    sql_type: String,
    kind: Kind,
    nullable: bool,
    is_key: bool,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    /// Columns a generated INSERT sets (no identity/generated columns).
    columns: Vec<Column>,
    /// Primary key columns (or the first column if none).
    key: Vec<usize>,
    has_pk: bool,
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

    /// Before each batch, with probability `p`, change the schema of one table in a
    /// way the stream table must not notice: add a column (`spare_<n>`, of a random
    /// type, which later DML fills), or drop or rename one that the query does not
    /// read (one declared with [`Oracle::unused_column`] or added before). The DDL is
    /// part of the batch's statements in a failure report.
    pub fn schema_changes(mut self, p: f64) -> Self {
        self.schema_change_probability = p;
        self
    }

    /// Probability that a transaction rewrites every row of one table (`UPDATE t SET
    /// c = c`): a window as large as the table, for the adaptive switch to a full
    /// refresh.
    pub fn bulk_updates(mut self, p: f64) -> Self {
        self.bulk_probability = p;
        self
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

    /// Number of DML batches (`PGS_ORACLE_BATCHES` in the environment wins).
    /// `PGS_ORACLE_LOG=1` prints the DML of every batch.
    pub fn batches(mut self, n: usize) -> Self {
        self.batches = n;
        self
    }

    /// Rows inserted per table by [`Oracle::setup`].
    pub fn initial_rows(mut self, n: usize) -> Self {
        self.initial_rows = n;
        self
    }

    /// Key values (primary key columns) are drawn from `0..n` (`k0..k{n-1}` for text).
    pub fn key_range(mut self, n: i64) -> Self {
        self.key_range = n.max(1);
        self
    }

    /// Probability that a transaction truncates one table (default 0).
    pub fn truncate_probability(mut self, p: f64) -> Self {
        self.truncate_probability = p;
        self
    }

    /// Probability of NULL in a nullable column (default 0.15).
    pub fn null_probability(mut self, p: f64) -> Self {
        self.null_probability = p;
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

    fn effective_batches(&self) -> usize {
        std::env::var("PGS_ORACLE_BATCHES")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(self.batches)
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
            if expected_taken * 10 < batches * 9 {
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

    /// One schema change of a column the query does not read (see
    /// [`Oracle::schema_changes`]); `spares` holds those columns per table.
    fn schema_change(
        &self,
        rng: &mut StdRng,
        spares: &mut HashMap<String, Vec<String>>,
        added: &mut usize,
    ) -> String {
        let (table, _) = self.tables.choose(rng).expect("at least one table");
        let cols = spares.entry(table.clone()).or_default();
        let mut fresh = || {
            *added += 1;
            format!("spare_{added}")
        };
        let what = if cols.is_empty() {
            0
        } else {
            rng.gen_range(0..3)
        };
        match what {
            0 => {
                let name = fresh();
                let ty = ["int", "text", "numeric(8,2)", "timestamptz", "boolean"]
                    .choose(rng)
                    .expect("types");
                let default = if rng.gen_bool(0.5) {
                    match *ty {
                        "int" => " DEFAULT 7",
                        "text" => " DEFAULT 'dflt'",
                        _ => "",
                    }
                } else {
                    ""
                };
                cols.push(name.clone());
                format!(
                    "ALTER TABLE {table} ADD COLUMN {} {ty}{default}",
                    quote_ident(&name)
                )
            }
            1 => {
                let i = rng.gen_range(0..cols.len());
                let old = cols.remove(i);
                format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(&old))
            }
            _ => {
                let i = rng.gen_range(0..cols.len());
                let name = fresh();
                let old = std::mem::replace(&mut cols[i], name.clone());
                format!(
                    "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                    quote_ident(&old),
                    quote_ident(&name)
                )
            }
        }
    }

    /// The next fresh key of each table whose primary key is one integer column.
    async fn init_next_keys(&self, pool: &PgPool, tables: &[Table]) -> Result<(), String> {
        let mut next = HashMap::new();
        for t in tables {
            if let [k] = t.key[..] {
                let c = &t.columns[k];
                if t.has_pk && c.kind == Kind::Int {
                    let sql = format!(
                        "SELECT coalesce(max({})::int8 + 1, 0) FROM {}",
                        quote_ident(&c.name),
                        t.name
                    );
                    let n: i64 = sqlx::query_scalar(&sql)
                        .fetch_one(pool)
                        .await
                        .map_err(|e| format!("{sql}: {e}"))?;
                    next.insert(t.name.clone(), n);
                }
            }
        }
        *self.next_keys.lock().expect("next keys") = next;
        Ok(())
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

    // ----------------------------------------------------------------- comparison

    /// `None` if equal, else the mismatch.
    async fn compare(
        &self,
        pool: &PgPool,
        st_cols: &[(String, bool)],
    ) -> Result<Option<FailureKind>, String> {
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        self.compare_on(&mut conn, st_cols).await
    }

    /// [`Oracle::compare`] on `conn` (inside its transaction, if one is open).
    async fn compare_on(
        &self,
        conn: &mut PgConnection,
        st_cols: &[(String, bool)],
    ) -> Result<Option<FailureKind>, String> {
        let n = st_cols.len();
        let aliases: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
        // Exact comparison: each value's text, so numeric scale (1.50 vs 1.500), NULLs
        // and types without an equality operator (json) are compared exactly; only
        // floating-point columns may be rounded (`float_tolerance`).
        let wrap = |expr: String, float: bool| match (float, self.float_digits) {
            (true, Some(d)) => format!("round(({expr})::numeric, {d})"),
            _ => format!("({expr})::text"),
        };
        let q_side = format!(
            "SELECT {} FROM ({}) AS q({})",
            st_cols
                .iter()
                .zip(&aliases)
                .map(|((_, float), a)| wrap(format!("q.{a}"), *float))
                .collect::<Vec<_>>()
                .join(", "),
            self.query,
            aliases.join(", ")
        );
        let s_side = format!(
            "SELECT {} FROM {}",
            st_cols
                .iter()
                .map(|(c, float)| wrap(quote_ident(c), *float))
                .collect::<Vec<_>>()
                .join(", "),
            if self.stream_table.contains('.') {
                self.stream_table.clone()
            } else {
                quote_ident(&self.stream_table)
            }
        );
        let missing_sql = format!("({q_side}) EXCEPT ALL ({s_side})");
        let extra_sql = format!("({s_side}) EXCEPT ALL ({q_side})");
        let count_sql = format!(
            "SELECT (SELECT count(*) FROM ({missing_sql}) x), (SELECT count(*) FROM ({extra_sql}) y)"
        );
        let (missing_count, extra_count): (i64, i64) = sqlx::query_as(&count_sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| format!("comparison query failed: {e}\n{count_sql}"))?;
        if missing_count == 0 && extra_count == 0 {
            return Ok(None);
        }
        let mut sample = Vec::new();
        for sql in [missing_sql, extra_sql] {
            sample.push(
                sqlx::query_scalar::<_, String>(&format!(
                    "SELECT x::text FROM ({sql}) x ORDER BY 1 LIMIT 20"
                ))
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| format!("sample query failed: {e}"))?,
            );
        }
        let extra = sample.pop().unwrap_or_default();
        let missing = sample.pop().unwrap_or_default();
        Ok(Some(FailureKind::Mismatch {
            missing_count,
            missing,
            extra_count,
            extra,
        }))
    }

    /// Visible columns of the stream table and whether each is floating-point.
    async fn stream_columns(&self, pool: &PgPool) -> Result<Vec<(String, bool)>, String> {
        let rows = sqlx::query(
            "SELECT a.attname::text, t.typname::text FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .bind(&self.stream_table)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot read columns of {}: {e}", self.stream_table))?;
        let all: Vec<(String, bool)> = rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let ty: String = r.get(1);
                (name, ty == "float4" || ty == "float8")
            })
            .collect();
        match &self.visible_columns {
            Some(cols) => cols
                .iter()
                .map(|c| {
                    all.iter()
                        .find(|(n, _)| n == c)
                        .cloned()
                        .ok_or_else(|| format!("{} has no column {c}", self.stream_table))
                })
                .collect(),
            None => Ok(all
                .into_iter()
                .filter(|(n, _)| !n.starts_with("__pgs"))
                .collect()),
        }
    }

    // ----------------------------------------------------------------- metadata

    async fn load_tables(&self, pool: &PgPool) -> Result<Vec<Table>, String> {
        let mut out = Vec::new();
        for (name, _) in &self.tables {
            let rows = sqlx::query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, \
                        a.attnotnull, (a.attidentity <> '' OR a.attgenerated <> ''), \
                        COALESCE(a.attnum = ANY (i.indkey::int2[]), false) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
                 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
            )
            .bind(name)
            .fetch_all(pool)
            .await
            .map_err(|e| format!("cannot read columns of {name}: {e}"))?;
            let mut columns = Vec::new();
            for r in &rows {
                let skip: bool = r.get(4);
                if skip {
                    continue;
                }
                let typname: String = r.get(2);
                let kind = match typname.as_str() {
                    "int2" | "int4" | "int8" => Kind::Int,
                    "numeric" => Kind::Numeric,
                    "float4" | "float8" => Kind::Float,
                    "text" | "varchar" | "bpchar" | "name" => Kind::Text,
                    "bool" => Kind::Bool,
                    "date" => Kind::Date,
                    "timestamp" | "timestamptz" => Kind::Timestamp,
                    _ => Kind::Other,
                };
                let col = Column {
                    name: r.get(0),
                    sql_type: r.get(1),
                    kind,
                    nullable: !r.get::<bool, _>(3),
                    is_key: r.get(5),
                };
                if kind == Kind::Other
                    && !col.nullable
                    && !self.domains.contains_key(&(name.clone(), col.name.clone()))
                {
                    return Err(format!(
                        "{name}.{}: no value generator for type {}; give a Domain",
                        col.name, col.sql_type
                    ));
                }
                columns.push(col);
            }
            if columns.is_empty() {
                return Err(format!("{name} has no insertable columns"));
            }
            let mut key: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].is_key).collect();
            let has_pk = !key.is_empty();
            if !has_pk {
                key.push(0);
            }
            out.push(Table {
                name: name.clone(),
                columns,
                key,
                has_pk,
            });
        }
        Ok(out)
    }

    /// Current values of the [`Domain::Existing`] columns of `t`.
    async fn load_existing(
        &self,
        conn: &mut PgConnection,
        t: &Table,
    ) -> Result<HashMap<String, Vec<String>>, String> {
        let mut cache = HashMap::new();
        for c in &t.columns {
            if let Some(Domain::Existing {
                table,
                column,
                extra,
            }) = self.domains.get(&(t.name.clone(), c.name.clone()))
            {
                let sql = format!(
                    "SELECT DISTINCT {col}::text FROM {table} WHERE {col} IS NOT NULL ORDER BY 1",
                    col = quote_ident(column)
                );
                let vals: Vec<String> = sqlx::query_scalar(&sql)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| format!("{sql}: {e}"))?;
                let mut lits: Vec<String> = vals.iter().map(|v| quote_literal(v)).collect();
                lits.extend(extra.iter().cloned());
                cache.insert(c.name.clone(), lits);
            }
        }
        Ok(cache)
    }

    // ----------------------------------------------------------------- DML

    fn value(
        &self,
        rng: &mut StdRng,
        t: &Table,
        c: &Column,
        cache: &HashMap<String, Vec<String>>,
    ) -> String {
        let lit = self.raw_value(rng, t, c, cache);
        if lit == "NULL" {
            format!("NULL::{}", c.sql_type)
        } else {
            format!("({lit})::{}", c.sql_type)
        }
    }

    fn raw_value(
        &self,
        rng: &mut StdRng,
        t: &Table,
        c: &Column,
        cache: &HashMap<String, Vec<String>>,
    ) -> String {
        if self.insert_only && c.is_key && t.key.len() == 1 {
            let mut next = self.next_keys.lock().expect("next keys");
            if let Some(n) = next.get_mut(&t.name) {
                // A fresh key, or one in use one time in ten (a conflict).
                if *n > 0 && rng.gen_bool(0.1) {
                    return rng.gen_range(0..*n).to_string();
                }
                *n += 1;
                return (*n - 1).to_string();
            }
        }
        if let Some(d) = self.domains.get(&(t.name.clone(), c.name.clone())) {
            return match d {
                Domain::Ints(lo, hi) => rng.gen_range(*lo..=*hi).to_string(),
                Domain::KeyOf { table, ahead, null } => {
                    if *null > 0.0 && rng.gen_bool(null.min(1.0)) {
                        return "NULL".into();
                    }
                    let issued = self
                        .next_keys
                        .lock()
                        .expect("next keys")
                        .get(table)
                        .copied()
                        .unwrap_or(self.key_range);
                    rng.gen_range(0..(issued + ahead).max(1)).to_string()
                }
                Domain::Literals(v) => v.choose(rng).cloned().unwrap_or_else(|| "NULL".into()),
                Domain::Existing { .. } => cache
                    .get(&c.name)
                    .and_then(|v| v.choose(rng).cloned())
                    .unwrap_or_else(|| "NULL".into()),
            };
        }
        if c.nullable && rng.gen_bool(self.null_probability) {
            return "NULL".into();
        }
        let key = c.is_key;
        match c.kind {
            Kind::Int if key => rng.gen_range(0..self.key_range).to_string(),
            Kind::Int => rng.gen_range(0..10).to_string(),
            Kind::Text if key => format!("'k{}'", rng.gen_range(0..self.key_range)),
            Kind::Text => quote_literal(WORDS.choose(rng).expect("words")),
            Kind::Numeric if key => rng.gen_range(0..self.key_range).to_string(),
            Kind::Numeric => {
                // Few distinct values, two decimals, sometimes negative.
                let cents = rng.gen_range(-2..40) * 25;
                format!("{}", cents as f64 / 100.0)
            }
            Kind::Float => {
                let v = rng.gen_range(-3..20) as f64 * 0.1;
                format!("'{v}'")
            }
            Kind::Bool => if rng.gen_bool(0.5) { "true" } else { "false" }.into(),
            Kind::Date => format!("'2024-01-{:02}'", rng.gen_range(1..=(10 + key as u32 * 18))),
            Kind::Timestamp => format!(
                "'2024-01-01 {:02}:{:02}:00'",
                rng.gen_range(0..24),
                [0, 30][rng.gen_range(0..2)]
            ),
            Kind::Other => "NULL".into(),
        }
    }

    fn row(&self, rng: &mut StdRng, t: &Table, cache: &HashMap<String, Vec<String>>) -> String {
        let vals: Vec<String> = t
            .columns
            .iter()
            .map(|c| self.value(rng, t, c, cache))
            .collect();
        format!("({})", vals.join(", "))
    }

    fn col_list(t: &Table) -> String {
        t.columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn insert_sql(
        &self,
        rng: &mut StdRng,
        t: &Table,
        n: usize,
        cache: &HashMap<String, Vec<String>>,
    ) -> String {
        let mut rows: Vec<String> = Vec::new();
        for _ in 0..n {
            if !rows.is_empty() && rng.gen_bool(0.15) {
                let dup = rows.choose(rng).expect("nonempty").clone();
                rows.push(dup); // exact duplicate row
            } else {
                rows.push(self.row(rng, t, cache));
            }
        }
        let conflict = if t.has_pk {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        };
        format!(
            "INSERT INTO {} ({}) VALUES {}{conflict}",
            t.name,
            Self::col_list(t),
            rows.join(", ")
        )
    }

    /// A predicate selecting some rows of `t`.
    fn predicate(
        &self,
        rng: &mut StdRng,
        t: &Table,
        cache: &HashMap<String, Vec<String>>,
    ) -> String {
        let roll = rng.gen_range(0..10);
        if roll < 5 {
            // By key.
            let parts: Vec<String> = t
                .key
                .iter()
                .map(|&i| {
                    let c = &t.columns[i];
                    format!(
                        "{} = {}",
                        quote_ident(&c.name),
                        self.value(rng, t, c, cache)
                    )
                })
                .collect();
            parts.join(" AND ")
        } else if roll < 9 {
            // By some column's value (often several rows), or IS NULL.
            let c = t.columns.choose(rng).expect("columns");
            if c.nullable && rng.gen_bool(0.2) {
                format!("{} IS NULL", quote_ident(&c.name))
            } else {
                format!(
                    "{} = {}",
                    quote_ident(&c.name),
                    self.value(rng, t, c, cache)
                )
            }
        } else {
            // A random subset of everything.
            let m = rng.gen_range(2..5);
            let r = rng.gen_range(0..m);
            format!(
                "abs(hashtext(ROW({})::text || '{}')) % {m} = {r}",
                Self::col_list(t),
                rng.gen::<u16>()
            )
        }
    }

    fn update_sql(
        &self,
        rng: &mut StdRng,
        t: &Table,
        cache: &HashMap<String, Vec<String>>,
    ) -> String {
        let mut idx: Vec<usize> = (0..t.columns.len()).collect();
        idx.shuffle(rng);
        let k = rng.gen_range(1..=idx.len());
        let sets: Vec<String> = idx[..k]
            .iter()
            .map(|&i| {
                let c = &t.columns[i];
                let name = quote_ident(&c.name);
                if rng.gen_bool(0.1) {
                    format!("{name} = {name}") // no-op update
                } else {
                    format!("{name} = {}", self.value(rng, t, c, cache))
                }
            })
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            t.name,
            sets.join(", "),
            self.predicate(rng, t, cache)
        )
    }

    /// One transaction of random statements (`begin`: `BEGIN` and its options).
    async fn transaction(
        &self,
        pool: &PgPool,
        rng: &mut StdRng,
        tables: &[Table],
        log: &mut Vec<String>,
        begin: &str,
        check: Option<&[(String, bool)]>,
    ) -> Result<(), String> {
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        sqlx::raw_sql(begin)
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        log.push(begin.into());
        let result = self.statements(&mut conn, rng, tables, log, check).await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        log.push(end.into());
        let r2 = sqlx::raw_sql(end).execute(&mut *conn).await;
        result?;
        r2.map(|_| ()).map_err(|e| format!("{end}: {e}"))
    }

    /// 1–6 random statements; with `check`, the stream table (of these visible
    /// columns) is compared with the query after each one, on `conn`.
    async fn statements(
        &self,
        conn: &mut PgConnection,
        rng: &mut StdRng,
        tables: &[Table],
        log: &mut Vec<String>,
        check: Option<&[(String, bool)]>,
    ) -> Result<(), String> {
        let n = rng.gen_range(1..=6);
        for _ in 0..n {
            self.statement(conn, rng, tables, log).await?;
            if let Some(cols) = check {
                // IMMEDIATE mode: exact after every statement, inside the transaction.
                match self.compare_on(conn, cols).await {
                    Ok(None) => {}
                    Ok(Some(kind)) => {
                        return Err(format!(
                            "inside the writing transaction, after its last statement: {}",
                            mismatch_text(&kind)
                        ))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// One random statement of a transaction (see [`Oracle::statements`]).
    async fn statement(
        &self,
        conn: &mut PgConnection,
        rng: &mut StdRng,
        tables: &[Table],
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let t = tables.choose(rng).expect("at least one table");
        if self.bulk_probability > 0.0 && rng.gen_bool(self.bulk_probability.min(1.0)) {
            let c = quote_ident(&t.columns[0].name);
            exec_dml(conn, &format!("UPDATE {} SET {c} = {c}", t.name), log, true).await?;
            return Ok(());
        }
        let cache = self.load_existing(conn, t).await?;
        // The statement names the table or one of its partitions.
        let named;
        let t = match self.targets.get(&t.name).and_then(|r| r.choose(rng)) {
            Some(rel) => {
                named = Table {
                    name: rel.clone(),
                    ..t.clone()
                };
                &named
            }
            None => t,
        };
        if self.insert_only {
            let rows = rng.gen_range(1..=5);
            let sql = self.insert_sql(rng, t, rows, &cache);
            exec_dml(conn, &sql, log, true).await?;
            return Ok(());
        }
        if self.truncate_probability > 0.0 && rng.gen_bool(self.truncate_probability.min(1.0)) {
            exec_dml(conn, &format!("TRUNCATE {}", t.name), log, true).await?;
            return Ok(());
        }
        match rng.gen_range(0..100) {
            0..=39 => {
                let rows = rng.gen_range(1..=5);
                let sql = self.insert_sql(rng, t, rows, &cache);
                exec_dml(conn, &sql, log, true).await?;
            }
            40..=44 if t.has_pk => {
                // Upsert.
                let keys: Vec<String> = t
                    .key
                    .iter()
                    .map(|&i| quote_ident(&t.columns[i].name))
                    .collect();
                let sets: Vec<String> = t
                    .columns
                    .iter()
                    .filter(|c| !c.is_key)
                    .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
                    .collect();
                let action = if sets.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!("UPDATE SET {}", sets.join(", "))
                };
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO {action}",
                    t.name,
                    Self::col_list(t),
                    self.row(rng, t, &cache),
                    keys.join(", ")
                );
                exec_dml(conn, &sql, log, true).await?;
            }
            40..=69 => {
                let sql = self.update_sql(rng, t, &cache);
                exec_dml(conn, &sql, log, true).await?;
            }
            70..=89 => {
                let sql = format!(
                    "DELETE FROM {} WHERE {}",
                    t.name,
                    self.predicate(rng, t, &cache)
                );
                exec_dml(conn, &sql, log, true).await?;
            }
            _ => {
                // Delete and re-insert one key in this transaction.
                let key_vals: Vec<(usize, String)> = t
                    .key
                    .iter()
                    .map(|&i| (i, self.value(rng, t, &t.columns[i], &cache)))
                    .collect();
                let key_pred: Vec<String> = key_vals
                    .iter()
                    .map(|(i, v)| format!("{} = {v}", quote_ident(&t.columns[*i].name)))
                    .collect();
                let key_pred = key_pred.join(" AND ");
                if rng.gen_bool(0.5) {
                    let cols = Self::col_list(t);
                    let sql = format!(
                        "WITH d AS (DELETE FROM {t} WHERE {key_pred} RETURNING {cols}) \
                         INSERT INTO {t} ({cols}) SELECT {cols} FROM d",
                        t = t.name
                    );
                    exec_dml(conn, &sql, log, true).await?;
                } else {
                    let del = format!("DELETE FROM {} WHERE {key_pred}", t.name);
                    exec_dml(conn, &del, log, true).await?;
                    // Same key, new other values.
                    let vals: Vec<String> = t
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if let Some((_, v)) = key_vals.iter().find(|(k, _)| *k == i) {
                                v.clone()
                            } else {
                                self.value(rng, t, c, &cache)
                            }
                        })
                        .collect();
                    let ins = format!(
                        "INSERT INTO {} ({}) VALUES ({})",
                        t.name,
                        Self::col_list(t),
                        vals.join(", ")
                    );
                    exec_dml(conn, &ins, log, true).await?;
                }
            }
        }
        Ok(())
    }
}

/// Runs one generated statement. With `savepoint`, constraint violations and data
/// exceptions (SQLSTATE classes 23, 22; 0A for TRUNCATE of a referenced table) are
/// rolled back to a savepoint and logged; other errors are returned.
async fn exec_dml(
    conn: &mut PgConnection,
    sql: &str,
    log: &mut Vec<String>,
    savepoint: bool,
) -> Result<(), String> {
    // One round trip: the savepoint and the statement (the savepoint is not
    // released; savepoints of the same name nest and ROLLBACK TO finds the last).
    let full = if savepoint {
        format!("SAVEPOINT pgs_oracle; {sql}")
    } else {
        sql.to_string()
    };
    match sqlx::raw_sql(&full).execute(&mut *conn).await {
        Ok(r) => {
            log.push(format!("{sql}; -- {} row(s)", r.rows_affected()));
            Ok(())
        }
        Err(e) => {
            let code = e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.to_string()))
                .unwrap_or_default();
            let tolerated = code.starts_with("23")
                || code.starts_with("22")
                || (code.starts_with("0A") && sql.starts_with("TRUNCATE"));
            if savepoint && tolerated {
                log.push(format!("-- rolled back: {sql}; -- {e}"));
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT pgs_oracle")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            } else {
                log.push(format!("-- FAILED: {sql}; -- {e}"));
                Err(format!("{e} (SQLSTATE {code})\n{sql}"))
            }
        }
    }
}

/// Double-quotes an identifier if needed (lower-case names pass unchanged).
pub fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
