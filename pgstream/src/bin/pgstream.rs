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
//! pgstream drop department_stats
//! ```
//!
//! Commands other than `explain` connect with `--database-url` or `DATABASE_URL`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgstream::{Mode, Runtime};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;

#[derive(Parser)]
#[command(
    name = "pgstream",
    version,
    about = "Stream tables for PostgreSQL: tables defined by a query, maintained incrementally"
)]
struct Cli {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a stream table (installs pgstream's catalog when missing).
    Create {
        /// Name of the stream table (`name` or `schema.name`).
        name: String,
        /// The defining query.
        #[arg(long)]
        query: String,
        /// When the scheduler refreshes it: a staleness bound (`30s`, `5m`, `1h`) or a
        /// cron expression, UTC (`"*/5 * * * *"`, `"0 3 * * MON-FRI"`, `@daily`; six
        /// fields with seconds first also work).
        #[arg(long, default_value = "1m")]
        schedule: String,
        /// `differential` (incremental) or `full`.
        #[arg(long, default_value = "differential")]
        mode: String,
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
    Status,
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
    /// Print the operator tree, the strategy per node and the generated SQL, without a database.
    Explain {
        /// The defining query.
        #[arg(long)]
        query: String,
        /// Directory of `.sql` migrations that define the schema (applied in file-name order).
        #[arg(long, default_value = "migrations")]
        schema: PathBuf,
        /// `differential` or `full`.
        #[arg(long, default_value = "differential")]
        mode: String,
        /// Name of the stream table.
        #[arg(long, default_value = "stream_table")]
        name: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

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
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    Ok(pool)
}

async fn run(cli: Cli) -> Res {
    match cli.command {
        Command::Explain {
            query,
            schema,
            mode,
            name,
        } => {
            let catalog = load_schema(&schema)?;
            let mode: Mode = mode.parse()?;
            let spec = pgstream::StreamTableSpec {
                name: pgstream::QualifiedName::parse(&name)?,
                query: query.clone(),
                schedule: pgstream::Schedule::default(),
                mode,
            };
            let compiled = pgstream::compile(&spec, &catalog).map_err(|e| e.render(&query))?;
            print!("{}", compiled.explain());
            Ok(())
        }
        Command::Create {
            name,
            query,
            schedule,
            mode,
        } => {
            // Arguments first: a bad name, mode or schedule changes nothing.
            let mode: Mode = mode.parse()?;
            let spec = pgstream::spec(&name, &query, &schedule, mode)?;
            let pool = connect(cli.database_url).await?;
            pgstream::install(&pool).await?;
            pgstream::create_stream_table(&pool, &spec).await?;
            let when = if spec.schedule.is_cron() {
                format!("cron `{}`", spec.schedule)
            } else {
                format!("every {}", spec.schedule)
            };
            println!("created stream table {name} ({mode}, {when})");
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
        Command::Status => {
            let pool = connect(cli.database_url).await?;
            let rows = pgstream::status(&pool).await?;
            print_status(&rows);
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

fn load_schema(dir: &Path) -> Result<pgstream::Catalog, String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the schema directory {}: {e}", dir.display()))?
    {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if pgstream::compiler::catalog::is_migration_file(&name) && path.is_file() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            files.push((name, text));
        }
    }
    pgstream::Catalog::from_migrations(files).map_err(|e| e.to_string())
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
                s.schedule.clone(),
                s.status.clone(),
                if s.stale { "t" } else { "f" }.to_string(),
                s.pending_changes.to_string(),
                s.last_refresh_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
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
