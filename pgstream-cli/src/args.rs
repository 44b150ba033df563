//! The command line's arguments (clap derive): the global options and one variant per
//! command, with the help text `--help` prints.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::EXIT_CODES;

/// The whole command line: the global options and the command.
#[derive(Parser)]
#[command(
    name = "pgstream",
    long_about = None,
    version,
    about = "Stream tables for PostgreSQL: tables defined by a query, maintained incrementally",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// How log lines on standard error look: `text` (colored only on a terminal, and
    /// not when `NO_COLOR` is set) or `json` (one object per line, for log
    /// collectors). The level comes from `RUST_LOG` (default `info,sqlx=warn`).
    #[arg(long, env = "PGSTREAM_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The `--log-format` values.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Create a stream table (installs pgstream's catalog when missing).
    Create(CreateArgs),
    /// Replace the defining query of a stream table: the new storage table is built,
    /// populated and swapped for the old one in one transaction (readers see the old
    /// rows or the new ones, never an empty table); its name and the grants on it are
    /// kept.
    Replace(ReplaceArgs),
    /// Refresh a stream table now.
    Refresh {
        /// Name of the stream table.
        name: String,
    },
    /// Drop a stream table, and the capture no other stream table needs.
    Drop {
        /// Name of the stream table.
        name: String,
        /// Also drop the stream tables that read it (recursively); without it, the
        /// drop fails and names them.
        #[arg(long)]
        cascade: bool,
    },
    /// Resume a stream table the scheduler suspended after repeated failures.
    Resume {
        /// Name of the stream table.
        name: String,
    },
    /// Show every stream table with its schedule, freshness and statistics.
    Status {
        /// One JSON array of objects (every field of the status, timestamps in
        /// RFC 3339, UTC) instead of the table.
        #[arg(long)]
        json: bool,
        /// Every column (timestamps with their zone, strategies, the last error)
        /// instead of the default that fits an 80-column terminal.
        #[arg(long, conflicts_with = "json")]
        wide: bool,
    },
    /// Run the scheduler in the foreground for every stream table, until Ctrl-C or SIGTERM.
    Run {
        /// How often to look for stale stream tables (`1s`, `500ms`).
        #[arg(long, default_value = "1s")]
        tick: String,
        /// Carry out the pending requests from SQL (`pgstream.create_stream_table`,
        /// `alter_stream_table`), refresh what is due once, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Print how a query is maintained: the operator tree, the strategy per node and
    /// the generated SQL, pretty-printed. Give a query (`--query`, `--query-file`),
    /// checked against the migrations of `--schema` (default: `./migrations` when it
    /// exists, else the database's schema when DATABASE_URL is set), or only the name of
    /// a stream table, to explain its stored query against the database's schema.
    Explain {
        /// The stream table's name: with a query, the name to explain it under; alone,
        /// an existing stream table to explain from the database.
        name: Option<String>,
        /// The defining query.
        #[arg(long, conflicts_with = "query_file")]
        query: Option<String>,
        /// A file holding the defining query.
        #[arg(long)]
        query_file: Option<PathBuf>,
        /// Directory of `.sql` migrations that define the schema (applied in file-name
        /// order). Default: `migrations` when it exists, else the database's schema
        /// when DATABASE_URL is set.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// `differential`, `full` or `immediate` (default: the stream table's mode,
        /// or `differential` for a query).
        #[arg(long)]
        mode: Option<String>,
    },
}

/// The arguments of `create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// Name of the stream table (`name` or `schema.name`).
    pub name: String,
    /// The defining query.
    #[arg(
        long,
        required_unless_present = "query_file",
        conflicts_with = "query_file"
    )]
    pub query: Option<String>,
    /// A file holding the defining query.
    #[arg(long)]
    pub query_file: Option<PathBuf>,
    /// When the scheduler refreshes it: a staleness bound (`30s`, `5m`, `1h`), a
    /// cron expression, UTC (`"*/5 * * * *"`, `"0 3 * * MON-FRI"`, `@daily`; six
    /// fields with seconds first also work), `"on commit"` (at once after each
    /// commit that changes a source), or `inherit` (just before the stream tables
    /// that read it, as often as the most demanding of them).
    #[arg(long, default_value = "1m")]
    pub schedule: String,
    /// `differential` (incremental, on the schedule), `full` or `immediate` (maintained
    /// inside each writing transaction; the schedule is not used).
    #[arg(long, default_value = "differential")]
    pub mode: String,
}

/// The arguments of `replace`.
#[derive(clap::Args)]
pub struct ReplaceArgs {
    /// Name of the stream table.
    pub name: String,
    /// The new defining query.
    #[arg(
        long,
        required_unless_present = "query_file",
        conflicts_with = "query_file"
    )]
    pub query: Option<String>,
    /// A file holding the new defining query.
    #[arg(long)]
    pub query_file: Option<PathBuf>,
    /// A new schedule (default: unchanged).
    #[arg(long)]
    pub schedule: Option<String>,
    /// A new mode, `differential`, `full` or `immediate` (default: unchanged).
    #[arg(long)]
    pub mode: Option<String>,
}
