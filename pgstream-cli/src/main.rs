//! `pgstream`: create, refresh, drop and inspect stream tables from the shell, run the
//! scheduler in the foreground, and explain how a query is maintained.
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
//! Exit codes: see [`EXIT_CODES`].
//!
//! Commands connect with `--database-url` or `DATABASE_URL` (`explain` only for a
//! stream table's name).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod explain;
mod pretty_sql;
use pgstream::{Mode, Runtime};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;

/// The exit codes, as `--help` prints them.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other error
  2  invalid command-line usage
  3  not found: no stream table of that name
  4  invalid query or argument: the query does not compile, a source cannot be used,
     a schema or schedule is invalid
  5  connection failure: the database cannot be reached or refused the login
  6  conflict: the name is taken, the database holds another definition, or other
     stream tables read the one to drop or replace";

const EXIT_OTHER: u8 = 1;
const EXIT_NOT_FOUND: u8 = 3;
const EXIT_INVALID: u8 = 4;
const EXIT_CONNECTION: u8 = 5;
const EXIT_CONFLICT: u8 = 6;

#[derive(Parser)]
#[command(
    name = "pgstream",
    version,
    about = "Stream tables for PostgreSQL: tables defined by a query, maintained incrementally",
    after_help = EXIT_CODES
)]
struct Cli {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// How log lines on standard error look: `text` (colored only on a terminal, and
    /// not when `NO_COLOR` is set) or `json` (one object per line, for log
    /// collectors). The level comes from `RUST_LOG` (default `info,sqlx=warn`).
    #[arg(long, env = "PGSTREAM_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The `--log-format` values.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber: stderr, `RUST_LOG` filter, the format the
/// user asked for; ANSI colors only when stderr is a terminal and `NO_COLOR` is unset.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a stream table (installs pgstream's catalog when missing).
    Create {
        /// Name of the stream table (`name` or `schema.name`).
        name: String,
        /// The defining query.
        #[arg(
            long,
            required_unless_present = "query_file",
            conflicts_with = "query_file"
        )]
        query: Option<String>,
        /// A file holding the defining query.
        #[arg(long)]
        query_file: Option<PathBuf>,
        /// When the scheduler refreshes it: a staleness bound (`30s`, `5m`, `1h`), a
        /// cron expression, UTC (`"*/5 * * * *"`, `"0 3 * * MON-FRI"`, `@daily`; six
        /// fields with seconds first also work), `"on commit"` (at once after each
        /// commit that changes a source), or `inherit` (just before the stream tables
        /// that read it, as often as the most demanding of them).
        #[arg(long, default_value = "1m")]
        schedule: String,
        /// `differential` (incremental, on the schedule), `full` or `immediate` (maintained
        /// inside each writing transaction; the schedule is not used).
        #[arg(long, default_value = "differential")]
        mode: String,
    },
    /// Replace the defining query of a stream table: the new storage table is built,
    /// populated and swapped for the old one in one transaction (readers see the old
    /// rows or the new ones, never an empty table); its name and the grants on it are
    /// kept.
    Replace {
        /// Name of the stream table.
        name: String,
        /// The new defining query.
        #[arg(
            long,
            required_unless_present = "query_file",
            conflicts_with = "query_file"
        )]
        query: Option<String>,
        /// A file holding the new defining query.
        #[arg(long)]
        query_file: Option<PathBuf>,
        /// A new schedule (default: unchanged).
        #[arg(long)]
        schedule: Option<String>,
        /// A new mode, `differential`, `full` or `immediate` (default: unchanged).
        #[arg(long)]
        mode: Option<String>,
    },
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", explain::flag_words(&e.to_string()));
            ExitCode::from(exit_code(e.as_ref()))
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

/// A query that does not compile or an invalid argument, outside the library's
/// errors (`explain`): exit code 4.
#[derive(Debug)]
struct InvalidQuery(String);

impl std::fmt::Display for InvalidQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidQuery {}

/// The exit code of an error (see [`EXIT_CODES`]).
fn exit_code(e: &(dyn std::error::Error + 'static)) -> u8 {
    if e.downcast_ref::<InvalidQuery>().is_some() {
        return EXIT_INVALID;
    }
    let Some(e) = e.downcast_ref::<pgstream::Error>() else {
        return EXIT_OTHER;
    };
    match e {
        pgstream::Error::NotFound(_) => EXIT_NOT_FOUND,
        pgstream::Error::Compile { .. }
        | pgstream::Error::SchemaDrift { .. }
        | pgstream::Error::Invalid(_) => EXIT_INVALID,
        pgstream::Error::AlreadyExists(_)
        | pgstream::Error::NameTaken(_)
        | pgstream::Error::DefinitionChanged { .. }
        | pgstream::Error::HasReaders { .. } => EXIT_CONFLICT,
        pgstream::Error::Database { source, .. } => match source {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Configuration(_) => EXIT_CONNECTION,
            sqlx::Error::Database(_) => match e.sqlstate().as_deref() {
                // connection exceptions, invalid authorization, database does not exist
                Some(c) if c.starts_with("08") || c.starts_with("28") || c == "3D000" => {
                    EXIT_CONNECTION
                }
                // dependent objects still exist, unique violation, duplicate table
                Some("2BP01" | "23505" | "42P07") => EXIT_CONFLICT,
                // undefined table, undefined column, syntax error, ... in a query
                Some(c) if c.starts_with("42") => EXIT_INVALID,
                _ => EXIT_OTHER,
            },
            _ => EXIT_OTHER,
        },
        _ => EXIT_OTHER,
    }
}

/// The query given with `--query` or read from `--query-file`.
fn query_text(query: Option<String>, file: Option<PathBuf>) -> Result<String, String> {
    match (query, file) {
        (Some(q), _) => Ok(q),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the query file {}: {e}", path.display())),
        (None, None) => Err("give the query with --query or --query-file".into()),
    }
}

/// A pool on the database of `--database-url` / `DATABASE_URL`, checked at once.
async fn connect(url: Option<String>) -> Result<PgPool, Box<dyn std::error::Error>> {
    let url = url.ok_or("no database given: set DATABASE_URL or pass --database-url")?;
    // The command's own connections: their search_path is pinned for the whole
    // session (the library pins it again in each of its transactions), so nothing
    // planted in a schema of the role's search_path can run (docs/SECURITY.md).
    let options = PgConnectOptions::from_str(&url)
        .map_err(|e| format!("cannot connect to the database: {e}"))?
        // No space: the startup options are split on spaces.
        .options([("search_path", "pg_catalog,pg_temp")]);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy_with(options);
    // A database that is down fails within seconds, saying why (connection refused).
    pgstream::check_connection(&pool).await?;
    Ok(pool)
}

async fn run(cli: Cli) -> Res {
    match cli.command {
        Command::Explain {
            name,
            query,
            query_file,
            schema,
            mode,
        } => {
            explain::run(explain::Args {
                name,
                query,
                query_file,
                schema,
                mode,
                database_url: cli.database_url,
            })
            .await
        }
        Command::Create {
            name,
            query,
            query_file,
            schedule,
            mode,
        } => {
            let query = query_text(query, query_file)?;
            // Arguments first: a bad name, mode or schedule changes nothing.
            let mode: Mode = mode.parse()?;
            let spec = pgstream::spec(&name, &query, &schedule, mode)?;
            let pool = connect(cli.database_url).await?;
            pgstream::install(&pool).await?;
            pgstream::create_stream_table(&pool, &spec).await?;
            let when = if spec.schedule.is_cron() {
                format!("cron `{}`", spec.schedule)
            } else if spec.schedule.is_on_commit() {
                "on commit".to_string()
            } else if spec.schedule.is_inherit() {
                "schedule inherited from its readers".to_string()
            } else {
                format!("every {}", spec.schedule)
            };
            println!("created stream table {name} ({mode}, {when})");
            Ok(())
        }
        Command::Replace {
            name,
            query,
            query_file,
            schedule,
            mode,
        } => {
            let query = query_text(query, query_file)?;
            let mode: Option<Mode> = mode.map(|m| m.parse()).transpose()?;
            let qname = pgstream::QualifiedName::parse(&name).map_err(pgstream::Error::Invalid)?;
            let pool = connect(cli.database_url).await?;
            // Unchanged schedule and mode unless given.
            let shown = pgstream::display_name(&qname);
            let current = pgstream::status(&pool)
                .await?
                .into_iter()
                .find(|s| s.name == shown)
                .ok_or_else(|| pgstream::Error::NotFound(shown.clone()))?;
            let mode = match mode {
                Some(m) => m,
                None => current.refresh_mode.parse()?,
            };
            let schedule = schedule.unwrap_or(current.schedule);
            let spec = pgstream::spec(&name, &query, &schedule, mode)?;
            if pgstream::replace_stream_table(&pool, &spec).await? {
                println!("replaced the definition of stream table {shown} ({mode})");
            } else {
                println!(
                    "stream table {shown} already has this query and mode (schedule {schedule})"
                );
            }
            Ok(())
        }
        Command::Refresh { name } => {
            let pool = connect(cli.database_url).await?;
            let out = pgstream::refresh(&pool, &name).await?;
            println!(
                "refreshed {name}: {} rows changed in {:.1} ms",
                out.rows_changed,
                out.duration.as_secs_f64() * 1000.0
            );
            Ok(())
        }
        Command::Drop { name, cascade } => {
            let pool = connect(cli.database_url).await?;
            if cascade {
                pgstream::drop_stream_table_cascade(&pool, &name).await?;
                println!("dropped stream table {name} and the stream tables reading it");
            } else {
                pgstream::drop_stream_table(&pool, &name).await?;
                println!("dropped stream table {name}");
            }
            Ok(())
        }
        Command::Resume { name } => {
            let pool = connect(cli.database_url).await?;
            pgstream::resume_stream_table(&pool, &name).await?;
            println!("resumed stream table {name}");
            Ok(())
        }
        Command::Status { json, wide } => {
            let pool = connect(cli.database_url).await?;
            let rows = pgstream::status(&pool).await?;
            if json {
                println!("{}", status_json(&rows));
            } else if wide {
                print_status(&rows);
            } else {
                print_status_short(&rows, sqlx::types::chrono::Utc::now());
            }
            Ok(())
        }
        Command::Run { tick, once } => {
            let tick = tick
                .parse::<pgstream::Schedule>()?
                .as_duration()
                .ok_or_else(|| {
                    format!("--tick must be a duration such as `1s` or `500ms`, not `{tick}`")
                })?;
            let pool = connect(cli.database_url).await?;
            if once {
                let runtime = Runtime::builder(pool).scheduler(false).start().await?;
                runtime.run_once().await?;
                runtime.shutdown().await;
                return Ok(());
            }
            let runtime = Runtime::builder(pool).tick(tick).start().await?;
            tracing::info!("pgstream scheduler running; Ctrl-C or SIGTERM stops it");
            shutdown_signal().await;
            tracing::info!("stopping: waiting for refreshes in progress");
            runtime.shutdown().await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_status(rows: &[pgstream::StreamTableStatus]) {
    let header = [
        "name",
        "mode",
        "schedule",
        "status",
        "stale",
        "pending",
        "last refresh",
        "refreshes",
        "avg ms",
        "last refresh was",
        "strategy",
        "last error",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.refresh_mode.clone(),
                match &s.effective_schedule {
                    // `inherit: 5s (from reader)`
                    Some(e) if *e != s.schedule => format!("{}: {e}", s.schedule),
                    _ => s.schedule.clone(),
                },
                s.status.clone(),
                if s.stale { "t" } else { "f" }.to_string(),
                s.pending_changes.to_string(),
                s.last_refresh_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default(),
                s.refresh_count.to_string(),
                s.avg_duration_ms
                    .map(|d| format!("{d:.2}"))
                    .unwrap_or_default(),
                s.last_strategy.clone().unwrap_or_default(),
                s.strategy.clone().unwrap_or_default(),
                s.status_reason
                    .clone()
                    .or_else(|| s.last_error.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", aligned(&header, &table));
}

/// The default `status`: one line per stream table that fits 80 columns when names
/// are short: the state in a word (`ok`, `stale`, `ERROR`, `SUSPENDED`), the last
/// refresh as an age, and as much of the error as fits.
fn print_status_short(
    rows: &[pgstream::StreamTableStatus],
    now: sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>,
) {
    const WIDTH: usize = 80;
    let header = [
        "name",
        "mode",
        "schedule",
        "state",
        "pending",
        "refreshed",
        "avg ms",
        "note",
    ];
    let mut table: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            let state = match s.status.as_str() {
                "ACTIVE" if s.stale => "stale".to_string(),
                "ACTIVE" => "ok".to_string(),
                other => other.to_string(),
            };
            vec![
                s.name.clone(),
                match s.refresh_mode.as_str() {
                    "DIFFERENTIAL" => "diff",
                    "IMMEDIATE" => "imm",
                    _ => "full",
                }
                .to_string(),
                s.schedule.clone(),
                state,
                s.pending_changes.to_string(),
                s.last_refresh_at
                    .map(|t| ago((now - t).num_seconds()))
                    .unwrap_or_else(|| "never".into()),
                s.avg_duration_ms
                    .map(|d| format!("{d:.1}"))
                    .unwrap_or_default(),
                s.status_reason
                    .clone()
                    .or_else(|| s.last_error.clone())
                    .unwrap_or_default()
                    .replace('\n', " "),
            ]
        })
        .collect();
    // The note gets what is left of the line: each column takes its width and three
    // more (a space each side and a separator), the note its width and two.
    let used: usize = (0..header.len() - 1)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
                + 3
        })
        .sum::<usize>()
        + 2;
    let room = WIDTH.saturating_sub(used).max(header[7].len());
    for row in &mut table {
        if row[7].chars().count() > room {
            row[7] = row[7]
                .chars()
                .take(room.saturating_sub(1))
                .collect::<String>()
                + "…";
        }
    }
    print!("{}", aligned(&header, &table));
}

/// An age in seconds as `12s ago`, `5m ago`, `3h ago`, `4d ago`.
fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=172_799 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// `status --json`: an array of objects, one per stream table.
fn status_json(rows: &[pgstream::StreamTableStatus]) -> String {
    fn text(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    fn opt_text(s: &Option<String>) -> String {
        s.as_deref().map(text).unwrap_or_else(|| "null".into())
    }
    fn time(t: &Option<sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>>) -> String {
        t.map(|t| text(&t.to_rfc3339()))
            .unwrap_or_else(|| "null".into())
    }
    fn float(f: Option<f64>) -> String {
        f.filter(|f| f.is_finite())
            .map(|f| f.to_string())
            .unwrap_or_else(|| "null".into())
    }
    let objects: Vec<String> = rows
        .iter()
        .map(|s| {
            let fields = [
                ("name", text(&s.name)),
                ("schedule", text(&s.schedule)),
                ("effective_schedule", opt_text(&s.effective_schedule)),
                ("refresh_mode", text(&s.refresh_mode)),
                ("status", text(&s.status)),
                ("status_reason", opt_text(&s.status_reason)),
                ("consecutive_failures", s.consecutive_failures.to_string()),
                ("next_retry_at", time(&s.next_retry_at)),
                ("last_refresh_at", time(&s.last_refresh_at)),
                ("stale", s.stale.to_string()),
                ("pending_changes", s.pending_changes.to_string()),
                ("needs_full", s.needs_full.to_string()),
                ("refresh_count", s.refresh_count.to_string()),
                ("avg_duration_ms", float(s.avg_duration_ms)),
                ("min_duration_ms", float(s.min_duration_ms)),
                ("max_duration_ms", float(s.max_duration_ms)),
                ("last_duration_ms", float(s.last_duration_ms)),
                ("rows_affected", s.rows_affected.to_string()),
                ("error_count", s.error_count.to_string()),
                ("last_error", opt_text(&s.last_error)),
                ("last_error_at", time(&s.last_error_at)),
                ("strategy", opt_text(&s.strategy)),
                ("last_strategy", opt_text(&s.last_strategy)),
                (
                    "last_window_rows",
                    s.last_window_rows
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "null".into()),
                ),
                ("differential_count", s.differential_count.to_string()),
                ("full_count", s.full_count.to_string()),
                ("adaptive_full_count", s.adaptive_full_count.to_string()),
                ("no_change_count", s.no_change_count.to_string()),
            ];
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", text(k)))
                .collect();
            format!("{{{}}}", body.join(","))
        })
        .collect();
    format!("[{}]", objects.join(","))
}

/// psql's aligned format.
fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| format!(" {}\n", cells.join(" | ").trim_end());
    out.push_str(&line(
        header
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{h:^w$}", w = widths[i]))
            .collect(),
    ));
    out.push_str(&format!(
        "{}\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    ));
    for r in rows {
        out.push_str(&line(
            r.iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect(),
        ));
    }
    out.push_str(&format!(
        "({} row{})\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    out
}
