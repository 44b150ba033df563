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
//!   or by recomputing and applying the difference (FULL mode).
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
//! `src/main.rs`:
//!
//! ```ignore
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
//! )]
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
//!     sqlx::migrate!().run(&pool).await?;
//!
//!     let runtime = pgstream::Runtime::builder(pool.clone())
//!         .register::<DepartmentStats>()
//!         .start()
//!         .await?;
//!
//!     sqlx::query("INSERT INTO employees (name, department_id, salary) VALUES ('Heidi', 6, 105000)")
//!         .execute(&pool)
//!         .await?;
//!     runtime.refresh("department_stats").await?; // or wait for the scheduler
//!
//!     let stats: Vec<DepartmentStats> =
//!         sqlx::query_as("SELECT * FROM department_stats ORDER BY department_name")
//!             .fetch_all(&pool)
//!             .await?;
//!     for s in &stats {
//!         println!("{:<12} {:>3} {:>12}", s.department_name, s.headcount, s.total_salary);
//!     }
//!
//!     runtime.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! ## Crates
//!
//! | crate | role |
//! |---|---|
//! | `pgstream` | this facade: the macro, the runtime, the spec types; the `pgstream` command-line tool |
//! | [`pgstream_core`] | the compiler: SQL to maintenance SQL, pure (also reachable as [`compiler`]) |
//! | `pgstream_macros` | `#[stream_table]` |
//! | [`pgstream_runtime`] | the tokio + sqlx runtime |

/// Declare a stream table. See the attribute reference below.
pub use pgstream_macros::stream_table;

pub use pgstream_core::{
    compile, Catalog, Mode, QualifiedName, Schedule, StreamTable, StreamTableDef, StreamTableSpec,
};

/// The compiler, for tools that compile stream tables at run time (errors, diagnostics,
/// the operator tree and the rendered SQL).
pub use pgstream_core as compiler;

pub use pgstream_runtime::*;

/// Not public API: the paths `#[stream_table]` generates code against.
#[doc(hidden)]
pub mod __private {
    pub use pgstream_core::{Mode, StreamTable, StreamTableDef};
    pub use sqlx;
}
