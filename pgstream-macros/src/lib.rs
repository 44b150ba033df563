//! The `#[stream_table]` attribute of [pgstream](https://docs.rs/pgstream).
//!
//! Use it through the `pgstream` crate (`#[pgstream::stream_table(...)]`): the code it
//! generates refers to `::pgstream::__private`. This crate is only the entry point;
//! the work is done by [`pgstream_core`], the compiler, at build time:
//!
//! ```text
//! attr ─▶ ast ─▶ schema (migrations/) ─▶ pgstream_core::compile ─▶ check ─▶ expand
//! ```

mod ast;
mod attr;
mod check;
mod ctxt;
mod diagnostic;
mod expand;
mod schema;

use proc_macro::TokenStream;

/// Declare a stream table: a table defined by a query and kept up to date
/// incrementally by the pgstream runtime.
///
/// The struct's fields are the query's output columns (matched by name, in any
/// order). At build time the macro compiles the query against the schema that the
/// crate's migrations define, so a typo in a table or column name, a field without a
/// column, or a query that cannot be maintained in the requested mode is a compile
/// error. No database is needed to build.
///
/// ```ignore
/// #[pgstream::stream_table(
///     query = "
///         SELECT d.id AS department_id, d.name AS department_name,
///                COUNT(e.id) AS headcount,
///                COALESCE(SUM(e.salary), 0) AS total_salary,
///                COALESCE(AVG(e.salary), 0) AS avg_salary
///         FROM departments d
///         LEFT JOIN employees e ON e.department_id = d.id
///         GROUP BY d.id, d.name",
///     schedule = "30s",
/// )]
/// pub struct DepartmentStats {
///     pub department_id: i32,
///     pub department_name: String,
///     pub headcount: i64,
///     pub total_salary: rust_decimal::Decimal,
///     pub avg_salary: rust_decimal::Decimal,
/// }
///
/// // The struct is unchanged; it gains two impls:
/// use pgstream::StreamTable;
/// assert_eq!(DepartmentStats::DEF.name, "department_stats");
/// // and `sqlx::FromRow`, to read the stream table like any table:
/// let rows: Vec<DepartmentStats> = sqlx::query_as("SELECT * FROM department_stats")
///     .fetch_all(&pool)
///     .await?;
/// ```
///
/// # Arguments
///
/// Every argument is `key = "string"`.
///
/// | key | required | meaning |
/// |---|---|---|
/// | `query` | one of `query`, `query_file` | The defining query (PostgreSQL SQL). |
/// | `query_file` | one of `query`, `query_file` | A file holding the defining query, relative to the crate's directory (the one holding `Cargo.toml`); absolute paths are refused. |
/// | `schedule` | no, default `"1m"` | When the scheduler refreshes the table. A duration is a staleness bound: refresh when the last refresh is older than this (`500ms`, `30s`, `5m`, `1h`, `1d`, or combined: `1h30m`). A cron expression refreshes at each fire time, UTC: five fields `minute hour day-of-month month day-of-week` (`"*/5 * * * *"`, `"0 3 * * MON-FRI"`) with `*`, lists, ranges, steps and `JAN`–`DEC`/`SUN`–`SAT` names, six with a seconds field first (`"*/10 * * * * *"`), or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. `"on commit"` refreshes as soon as a transaction that changed a source commits (the runtime listens for capture's notification; a periodic safety net refreshes one whose sources changed and whose last refresh is older than 60 s): the freshest schedule, at the cost of a refresh per burst of commits and of a `pg_notify` in each writing transaction (see the README's "Refresh on commit"). `"inherit"`, for a stream table that other stream tables read, refreshes it just before the stream tables that read it, as often as the most demanding of them (inheriting stream tables read by one reader are refreshed together, at one state of their sources; with no reader, every minute): see the README's "Schedules that follow their readers". An invalid one is a compile error naming the field and its range. |
/// | `mode` | no, default `"differential"` | `"differential"`: apply only the effect of the captured changes; a query that cannot be maintained that way is a compile error that suggests `"full"`. `"full"`: recompute the query at each refresh and apply only the difference. |
/// | `name` | no, default: the struct's name in snake case | The storage table, `"table"` (in `public`) or `"schema.table"`. |
/// | `schema` | no, default `"migrations"` | The directory of `.sql` migrations the query is checked against, relative to the crate's directory. Files are applied in file-name order (`0001_init.sql`, `0002_...`; `*.down.sql` are skipped); the one `sqlx::migrate!()` reads is the default. |
///
/// ```ignore
/// // A filter, stored as `reporting.well_paid`, recomputed in full every five minutes,
/// // with the query in a file and the schema in another directory.
/// #[pgstream::stream_table(
///     query_file = "queries/well_paid.sql",
///     name = "reporting.well_paid",
///     mode = "full",
///     schedule = "5m",
///     schema = "db/migrations",
/// )]
/// pub struct WellPaid {
///     pub id: i32,
///     pub name: String,
/// }
/// ```
///
/// # What it generates
///
/// The struct, unchanged, plus `impl pgstream::StreamTable` (its `DEF` constant holds
/// the storage table's name, the query, the schedule, the mode and the output columns,
/// for the runtime to register) and `impl sqlx::FromRow<'_, PgRow>` reading each field
/// from the column of its name (so do not also derive `sqlx::FromRow`; the crate needs no
/// direct sqlx dependency for it). Each file read (migrations, `query_file`) is included
/// with `include_str!`, so editing one rebuilds the crate. Cargo does not notice a
/// *new* migration file by itself; as with `sqlx::migrate!()`, add a `build.rs` with
/// `println!("cargo:rerun-if-changed=migrations");`.
///
/// # Errors
///
/// All problems are reported in one build, each on the tokens it concerns: unknown,
/// duplicate or malformed arguments; a missing query; an invalid schedule, mode or
/// name (a cron expression's error names the field, the bad part and the allowed
/// range); an unreadable migrations directory or query file; an error of the query
/// (quoted, with the offending fragment underlined), including `GROUP BY`, `DISTINCT`,
/// `UNION` or a join comparing `json`, `xml` or `point` values; an output column
/// without a field (on the struct's name) or a field without a column (on the field);
/// a field whose type cannot hold its column's inferred SQL type, or that is not
/// `Option<T>` exactly where the column can be NULL (on the field's type); two stream
/// tables of one name in one module. The struct is still emitted, so code that uses
/// it does not fail a second time. The facade's documentation (`pgstream`, "Attribute
/// reference") has the table of SQL and Rust types and examples that compile.
#[proc_macro_attribute]
pub fn stream_table(args: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    let input = syn::parse::<syn::DeriveInput>(item);
    let result = match &input {
        Ok(input) => expand::expand(args.into(), input),
        Err(_) => Err(expand::not_a_struct()),
    };
    match result {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            let mut out = expand::token_stream_with_error(original, err);
            if let Ok(input) = &input {
                out.extend(expand::stand_in_impls(input));
            }
            out.into()
        }
    }
}
