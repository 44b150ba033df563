//! Test harness of pgstream: throwaway PostgreSQL clusters and databases
//! ([`test_db`], [`embedded_cluster`]) and the equivalence oracle ([`oracle::Oracle`]).
//!
//! ```no_run
//! # async fn f() {
//! let db = pgstream_tests::test_db().await;
//! let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&db.pool).await.unwrap();
//! # }
//! ```
#![warn(missing_docs)]

pub mod attack;
pub mod bench_doc;
pub mod cluster;
pub mod compare;
pub mod db;
pub mod freshness;
pub mod oracle;
pub mod table_t;
pub mod tpch;
pub mod tutorial;

pub use cluster::{embedded_cluster, shared_cluster, Cluster, ClusterGuard};
pub use db::{test_db, try_test_db, TestDb};
pub use oracle::{Oracle, OracleFailure};

use std::fmt;
use std::path::Path;

/// Error of the harness (cluster start-up, database creation).
#[derive(Debug, Clone)]
pub struct Error {
    msg: String,
}

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error { msg: msg.into() }
    }

    fn io(what: &str, path: &Path, e: std::io::Error) -> Self {
        Error::new(format!("cannot {what} {}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::new(format!("database error: {e}"))
    }
}
