//! The `pgstream` command line: create, refresh, drop and inspect stream tables from
//! the shell, run the scheduler in the foreground, and explain how a query is
//! maintained.
//!
//! The logic lives in this library, where it is unit-tested; the binary `pgstream`
//! only parses its arguments into [`Cli`], sets up logging, calls [`run`] and exits
//! with [`exit_code`] of the error, after printing its [`error_line`].
//!
//! ```text
//! pgstream create department_stats --query "SELECT ..." --schedule 30s --mode differential
//! pgstream create nightly_totals --query "SELECT ..." --schedule "0 3 * * *"   # cron, UTC
//! pgstream refresh department_stats
//! pgstream status
//! pgstream run                      # refresh on schedule until Ctrl-C / SIGTERM
//! pgstream explain --query "SELECT ..." --schema migrations
//! pgstream explain department_stats   # a stream table in the database
//! pgstream replace department_stats --query-file department_stats.sql
//! pgstream status --json
//! pgstream drop department_stats
//! ```
//!
//! Exit codes: see [`EXIT_CODES`] and [`exit_code`].
//!
//! Commands connect with `--database-url` or `DATABASE_URL` (`explain` only for a
//! stream table's name).

mod args;
mod commands;
mod exit;
mod explain;
mod pretty_sql;
pub mod status_json;
pub mod status_table;

pub use args::{Cli, Command, LogFormat};
pub use commands::{query_text, run};
pub use exit::{
    error_line, exit_code, InvalidQuery, EXIT_CODES, EXIT_CONFLICT, EXIT_CONNECTION, EXIT_INVALID,
    EXIT_NOT_FOUND, EXIT_OTHER,
};

pub(crate) use commands::connect;
