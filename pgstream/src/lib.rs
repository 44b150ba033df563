//! # pgstream
//!
//! **Stream tables for PostgreSQL**: tables defined by a SQL query and kept up to date
//! incrementally as their source tables change, from inside your application.
//!
//! - Declare a stream table as an annotated struct with [`stream_table`]. At build time
//!   the query is parsed and checked against the schema of your crate's `migrations/`
//!   (no database needed), compiled to maintenance SQL, and a typo, a missing field or
//!   an unsupported construct is a compile error pointing at your code.
//! - Start the embedded [runtime](pgstream_runtime) with an sqlx `PgPool`. It installs
//!   change capture (triggers writing into change buffers, in the writer's
//!   transaction), creates the storage tables, and refreshes each stream table on its
//!   schedule by applying only the effect of the captured changes (DIFFERENTIAL mode),
//!   or by recomputing and applying the difference (FULL mode), or inside each
//!   writing transaction (IMMEDIATE mode).
//! - Read the stream table like any table: the struct implements `sqlx::FromRow`.
//!
//! All state lives in PostgreSQL, so any number of application processes can share the
//! work, and `psql` users can call `pgstream.refresh_stream_table(name)` too.
//!
//! ## Quick start
//!
//! `migrations/0001_tutorial.sql`:
//!
//! ```sql
//! CREATE TABLE departments (
//!     id        SERIAL PRIMARY KEY,
//!     name      TEXT NOT NULL,
//!     parent_id INT REFERENCES departments(id)
//! );
//! CREATE TABLE employees (
//!     id            SERIAL PRIMARY KEY,
//!     name          TEXT NOT NULL,
//!     department_id INT NOT NULL REFERENCES departments(id),
//!     salary        NUMERIC(10,2) NOT NULL
//! );
//! ```
//!
//! `src/main.rs` (compiled with the documentation's tests; the README's copy of it is
//! also run against a database by the project's tests):
//!
//! ```no_run
//! use pgstream::Runtime;
//! use rust_decimal::Decimal;
//!
//! #[pgstream::stream_table(
//!     query = "
//!         SELECT d.id AS department_id, d.name AS department_name,
//!                COUNT(e.id) AS headcount,
//!                COALESCE(SUM(e.salary), 0) AS total_salary,
//!                COALESCE(AVG(e.salary), 0) AS avg_salary
//!         FROM departments d
//!         LEFT JOIN employees e ON e.department_id = d.id
//!         GROUP BY d.id, d.name",
//!     schedule = "30s",
//!     mode = "differential",
//! #   schema = "doc-migrations",
//! )]
//! #[derive(Debug)]
//! pub struct DepartmentStats {
//!     pub department_id: i32,
//!     pub department_name: String,
//!     pub headcount: i64,
//!     pub total_salary: Decimal,
//!     pub avg_salary: Decimal,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
//! # /*
//!     sqlx::migrate!().run(&pool).await?; // the tables first: the runtime reads them
//! # */
//! #   sqlx::migrate::Migrator::new(std::path::Path::new("doc-migrations")).await?.run(&pool).await?;
//!     let runtime = Runtime::builder(pool.clone())
//!         .register::<DepartmentStats>()
//!         .start() // installs the catalog, creates the stream table, starts the scheduler
//!         .await?;
//!
//!     sqlx::query("INSERT INTO departments (id, name) VALUES (1, 'Engineering') ON CONFLICT DO NOTHING")
//!         .execute(&pool)
//!         .await?;
//!     sqlx::query("INSERT INTO employees (name, department_id, salary) VALUES ('Heidi', 1, 105000)")
//!         .execute(&pool)
//!         .await?;
//!     runtime.refresh("department_stats").await?; // or wait for the scheduler
//!
//!     // `SELECT` with the struct's columns (`StreamTable::SELECT`): `SELECT *` would
//!     // also return pgstream's bookkeeping columns.
//!     use pgstream::StreamTable;
//!     let sql = format!("{} ORDER BY department_name", DepartmentStats::SELECT);
//!     let stats: Vec<DepartmentStats> = sqlx::query_as(&sql).fetch_all(&pool).await?;
//!     for s in &stats {
//!         println!("{:<12} {:>3} {:>12}", s.department_name, s.headcount, s.total_salary);
//!     }
//!
//!     runtime.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! ## Attribute reference
//!
//! `#[pgstream::stream_table(key = "value", ...)]` goes on a struct with named fields,
//! one per output column of the query (matched by name, in any order). Every argument
//! is `key = "string"`:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `query` | one of `query` and `query_file` is required | The defining query (PostgreSQL SQL). |
//! | `query_file` | | A file holding the defining query, relative to the crate's directory (the one with `Cargo.toml`); absolute paths are refused. |
//! | `schedule` | `"1m"` | When the scheduler refreshes the stream table. A duration is a staleness bound: refresh when the last refresh is older than this (`500ms`, `30s`, `5m`, `1h`, `1d`, or combined: `1h30m`). A cron expression refreshes at each fire time, UTC: five fields `minute hour day-of-month month day-of-week` (`"*/5 * * * *"`, `"0 3 * * MON-FRI"`), six with a seconds field first, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` (syntax: [`compiler::cron`]). `"on commit"` refreshes as soon as a transaction that changed a source commits (the runtime listens for capture's notification; a periodic safety net refreshes one whose sources changed and whose last refresh is older than 60 s): the freshest schedule, at the cost of a refresh per burst of commits and of a `pg_notify` in each writing transaction (see the README's "Refresh on commit"). `"inherit"`, for a stream table that other stream tables read, refreshes it just before the stream tables that read it, as often as the most demanding of them (inheriting stream tables read by one reader are refreshed together, at one state of their sources; with no reader, every minute): see the README's "Schedules that follow their readers". |
//! | `mode` | `"differential"` | `"differential"`: apply only the effect of the captured changes; a query that cannot be maintained that way is a compile error that suggests `"full"`. `"full"`: recompute at each refresh, apply only the difference. `"immediate"`: the delta rules of `"differential"` applied inside each writing transaction, so the writer reads its own writes through the stream table; writers of its sources are serialised on it, and the schedule is not used (see the README, "Modes and their trade-offs"); what `"differential"` rejects is a compile error in IMMEDIATE's words. |
//! | `name` | the struct's name in snake case | The storage table: `"table"` (in `public`) or `"schema.table"`. |
//! | `schema` | `"migrations"` | The directory of `.sql` migrations the query is checked against, relative to the crate's directory, applied in file-name order (`*.down.sql` skipped): the folder `sqlx::migrate!()` reads. |
//!
//! The examples below set `schema = "doc-migrations"` because they are compiled in
//! this crate's directory, which holds that folder; in your crate, leave `schema` out
//! and the query is checked against `migrations/`.
//!
//! ### `query`, `schedule`, `mode`
//!
//! ```
//! use pgstream::StreamTable;
//! use sqlx::types::Decimal;
//!
//! #[pgstream::stream_table(
//!     query = "
//!         SELECT d.id AS department_id, d.name AS department_name,
//!                COUNT(e.id) AS headcount,
//!                COALESCE(SUM(e.salary), 0) AS total_salary
//!         FROM departments d
//!         LEFT JOIN employees e ON e.department_id = d.id
//!         GROUP BY d.id, d.name",
//!     schedule = "30s",
//!     mode = "differential",
//!     schema = "doc-migrations",
//! )]
//! pub struct DepartmentStats {
//!     pub department_id: i32,
//!     pub department_name: String,
//!     pub headcount: i64,
//!     pub total_salary: Decimal,
//! }
//!
//! // The struct is unchanged. It implements `StreamTable`, whose `DEF` is what
//! // `Runtime::builder(pool).register::<DepartmentStats>()` installs:
//! assert_eq!(DepartmentStats::DEF.name, "department_stats");
//! assert_eq!(DepartmentStats::DEF.schedule, "30s");
//! assert_eq!(
//!     DepartmentStats::DEF.columns,
//!     ["department_id", "department_name", "headcount", "total_salary"]
//! );
//! // and `sqlx::FromRow`, to read the stream table like any table:
//! fn reads<T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>>() {}
//! reads::<DepartmentStats>();
//! // `SELECT *` also returns pgstream's bookkeeping columns (`__pgs_*`); these read
//! // only the struct's columns:
//! assert_eq!(
//!     DepartmentStats::COLUMN_LIST,
//!     r#""department_id", "department_name", "headcount", "total_salary""#
//! );
//! assert_eq!(
//!     DepartmentStats::SELECT,
//!     r#"SELECT "department_id", "department_name", "headcount", "total_salary" FROM "public"."department_stats""#
//! );
//! let sql = format!("{} WHERE headcount > $1 ORDER BY department_name", DepartmentStats::SELECT);
//! # let _ = sql;
//! ```
//!
//! ### `query_file`, `name`, FULL mode
//!
//! ```
//! use pgstream::StreamTable;
//!
//! // doc-queries/well_paid.sql: SELECT id, name, salary FROM employees WHERE salary > 100000
//! #[pgstream::stream_table(
//!     query_file = "doc-queries/well_paid.sql",
//!     name = "reporting.well_paid",
//!     mode = "full",
//!     schedule = "5m",
//!     schema = "doc-migrations",
//! )]
//! pub struct WellPaid {
//!     pub id: i32,
//!     pub name: String,
//!     pub salary: sqlx::types::Decimal,
//! }
//!
//! assert_eq!((WellPaid::DEF.schema, WellPaid::DEF.name), ("reporting", "well_paid"));
//! assert_eq!(WellPaid::DEF.mode, pgstream::Mode::Full);
//! ```
//!
//! ### A cron schedule
//!
//! ```
//! use pgstream::StreamTable;
//!
//! // Refreshed at 03:00 UTC on weekdays, whatever changed in between.
//! #[pgstream::stream_table(
//!     query = "SELECT department_id, COUNT(*) AS headcount FROM employees GROUP BY department_id",
//!     schedule = "0 3 * * MON-FRI",
//!     schema = "doc-migrations",
//! )]
//! pub struct NightlyHeadcount {
//!     pub department_id: i32,
//!     pub headcount: i64,
//! }
//!
//! assert_eq!(NightlyHeadcount::DEF.schedule, "0 3 * * MON-FRI");
//! let schedule: pgstream::Schedule = NightlyHeadcount::DEF.schedule.parse().unwrap();
//! // The longest wait between two refreshes: Friday 03:00 to Monday 03:00.
//! assert_eq!(schedule.nominal_interval().as_secs(), 3 * 24 * 3600);
//! ```
//!
//! ### Field types
//!
//! The macro infers the SQL type and nullability of each output column (column
//! references, literals, casts, arithmetic, `||`, comparisons, `CASE`, `COALESCE`,
//! `NULLIF`, aggregates, outer joins) and checks the field against it, matching the
//! last segment of the type's path:
//!
//! | SQL type | field type |
//! |---|---|
//! | `smallint`, `integer`, `bigint` | `i16`, `i32`, `i64` |
//! | `real`, `double precision` | `f32`, `f64` |
//! | `numeric` | `rust_decimal::Decimal` or `bigdecimal::BigDecimal` |
//! | `boolean` | `bool` |
//! | `text`, `varchar`, `char` | `String` |
//! | `date`, `time`, `timestamp`, `timestamptz` | chrono's `NaiveDate`, `NaiveTime`, `NaiveDateTime`, `DateTime<Utc>`, or time's `Date`, `Time`, `PrimitiveDateTime`, `OffsetDateTime` |
//! | `uuid` | `uuid::Uuid` |
//! | `json`, `jsonb` | `serde_json::Value` (or `sqlx::types::Json<T>`) |
//! | `T[]` | `Vec<T>` (`bytea`: `Vec<u8>`) |
//!
//! A field is `Option<T>` exactly where the column can be NULL: a nullable source
//! column, the padded side of an outer join, and aggregates other than `count` over no
//! rows (a query without `GROUP BY` has one row even when its source is empty, so its
//! `SUM` is NULL then). `COALESCE(x, default)` makes a column NOT NULL. Where the type
//! cannot be inferred (a function of your own), any field type is accepted at build
//! time, and so is a Rust type pgstream does not know (a type of your own).
//!
//! At start-up, [`RuntimeBuilder::start`] checks each field of a struct registered
//! with [`register`](RuntimeBuilder::register) again, against the live database: the
//! types the query gives there (before creating the stream table), then the storage
//! table's column types (which covers what could not be inferred). A difference, such
//! as a column whose type a later migration changed, is an [`Error::SchemaDrift`]
//! naming the column, the SQL type found and the field's type.
//!
//! ```
//! use sqlx::types::chrono::{DateTime, Utc};
//! use sqlx::types::{JsonValue, Uuid};
//!
//! #[pgstream::stream_table(
//!     query = "
//!         SELECT r.id, r.sensor, r.taken_at, r.value, r.tags, r.attrs,
//!                COALESCE(r.value, 0) AS value_or_zero, e.name AS technician
//!         FROM readings r
//!         LEFT JOIN employees e ON e.id = (r.attrs ->> 'technician')::int",
//!     mode = "full",
//!     schema = "doc-migrations",
//! )]
//! pub struct Reading {
//!     pub id: i64,
//!     pub sensor: Uuid,
//!     pub taken_at: DateTime<Utc>,
//!     pub value: Option<f64>,          // DOUBLE PRECISION without NOT NULL
//!     pub tags: Vec<String>,           // TEXT[]
//!     pub attrs: JsonValue,            // JSONB
//!     pub value_or_zero: f64,          // COALESCE: never NULL
//!     pub technician: Option<String>,  // NOT NULL in employees, but LEFT JOIN pads it
//! }
//! ```
//!
//! A field that cannot hold its column is an error on the field's type, naming the
//! SQL type, the Rust type and the fix:
//!
//! ```compile_fail
//! #[pgstream::stream_table(
//!     query = "SELECT COUNT(*) AS staff, SUM(salary) AS payroll FROM employees",
//!     schema = "doc-migrations",
//! )]
//! pub struct Payroll {
//!     pub staff: i32,                        // error: COUNT is a bigint: declare `i64`
//!     pub payroll: sqlx::types::Decimal,     // error: can be NULL: declare `Option<Decimal>`
//! }
//! ```
//!
//! ### Compile errors
//!
//! Everything below is reported at build time, all problems of a struct in one build,
//! each on the tokens it concerns; SQL errors quote the query and underline the
//! fragment:
//!
//! - an unknown, duplicate or malformed argument; no `query`; both `query` and
//!   `query_file`; an invalid `schedule` (for a cron expression, the message names
//!   the field, the bad part and the allowed range), `mode` or `name`; a `query_file` or
//!   `schema` directory that cannot be read;
//! - a syntax error; an unknown table or column (with the nearest name); an ambiguous
//!   column;
//! - an output column without a field, a field without a column; a field type that
//!   does not match the column's SQL type or nullability;
//! - `GROUP BY`, `DISTINCT`, `UNION` or a join comparing `json`, `xml` or `point`
//!   values, which have no equality operator (use `jsonb`, or cast);
//! - in DIFFERENTIAL mode, a construct or volatile function it cannot maintain (with
//!   the suggestion to use FULL mode);
//! - two stream tables with one name in one module. Across modules, the runtime's
//!   [`RuntimeBuilder::start`] refuses to start, before installing anything.
//!
//! ```compile_fail
//! #[pgstream::stream_table(
//!     query = "SELECT id, nmae FROM employees",   // error: unknown column `nmae`, did you mean `name`?
//!     schema = "doc-migrations",
//! )]
//! pub struct Staff {
//!     pub id: i32,
//!     pub name: String,
//! }
//! ```
//!
//! ```compile_fail
//! #[pgstream::stream_table(
//!     query = "SELECT payload, COUNT(*) AS n FROM readings GROUP BY payload", // json: no `=`
//!     mode = "full",
//!     schema = "doc-migrations",
//! )]
//! pub struct ByPayload {
//!     pub payload: Option<sqlx::types::JsonValue>,
//!     pub n: i64,
//! }
//! ```
//!
//! ### Rebuilding when migrations change
//!
//! Each migration file and `query_file` the macro reads is included in the build with
//! `include_str!`, so editing one rebuilds the crate. Cargo cannot be told from a
//! macro, on stable Rust, to watch a directory, so it does not notice a *new*
//! migration file by itself. As with `sqlx::migrate!()`, add a `build.rs` next to
//! `Cargo.toml`:
//!
//! ```ignore
//! // build.rs
//! fn main() {
//!     // rerun (and so rebuild the crate) when a file in migrations/ is added,
//!     // removed or changed; name the `schema = "..."` directory if you set one
//!     println!("cargo:rerun-if-changed=migrations");
//! }
//! ```
//!
//! ### Changing a query
//!
//! A stream table whose query (or mode) in the program differs from the one in the
//! database makes [`RuntimeBuilder::start`] fail with [`Error::DefinitionChanged`]:
//! stored data is never replaced on its own. With
//! [`RuntimeBuilder::replace_changed`]`(true)` the changed definition replaces the stored
//! one at start, building and populating the new storage table beside the old one and
//! swapping it in one transaction (readers see the old rows or the new ones, never an
//! empty table); [`RuntimeHandle::replace_stream_table`], `pgstream replace` and
//! `pgstream.replace_stream_table(name, query)` do the same by hand. An older
//! application version that registers a definition the stream table had before (a
//! rolling deploy) leaves the newer one alone with a WARN. [`RuntimeHandle::health`]
//! serves readiness probes.
//!
//! ### Change subscriptions
//!
//! [`Runtime::subscribe`]`::<T>("subscriber")` yields a [`Subscription`]`<T>`, a
//! `Stream` of [`SubscriptionEvent`]s: each refresh's inserted, deleted and updated
//! rows ([`Change`]) decoded as `T`, one [`ChangeBatch`] per refresh with its version
//! (gapless, commit order) and frontier, whichever process refreshed. The subscriber's
//! position is stored in the database, so it resumes after a restart
//! ([`SubscribeOptions::after`] resumes after a position the application stored); one
//! that fell behind the retention gets [`SubscriptionEvent::Lagged`]. See the README's
//! "Change subscriptions" and `examples/subscribe.rs`.
//!
//! ## Crates
//!
//! | crate | role |
//! |---|---|
//! | `pgstream` | this facade: the macro, the runtime, the spec types; the `pgstream` command-line tool |
//! | [`pgstream_core`] | the compiler: SQL to maintenance SQL, pure (also reachable as [`compiler`]) |
//! | `pgstream_macros` | `#[stream_table]` |
//! | [`pgstream_runtime`] | the tokio + sqlx runtime |

/// Declare a stream table. See the [attribute reference](crate#attribute-reference).
pub use pgstream_macros::stream_table;

pub use pgstream_core::{
    compile, Catalog, FieldDef, Mode, QualifiedName, Schedule, StreamTable, StreamTableDef,
    StreamTableSpec,
};

/// The compiler, for tools that compile stream tables at run time (errors, diagnostics,
/// the operator tree and the rendered SQL).
pub use pgstream_core as compiler;

pub use pgstream_runtime::*;

/// The sqlx pgstream is built with (0.8): `pgstream::sqlx::PgPool` is the pool type
/// [`Runtime::builder`] takes, whatever sqlx version the application names.
pub use sqlx;

/// Not public API: the paths `#[stream_table]` generates code against.
#[doc(hidden)]
pub mod __private {
    pub use pgstream_core::{FieldDef, Mode, StreamTable, StreamTableDef};
    pub use sqlx;
}
