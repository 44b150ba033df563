//! The commands: connect, call the library, print what was done.

use std::path::PathBuf;
use std::str::FromStr;

use pgstream::{Mode, Runtime};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::chrono::Utc;
use sqlx::PgPool;

use crate::args::{Cli, Command, CreateArgs, ReplaceArgs};
use crate::status_json::status_json;
use crate::{explain, status_table};

/// The query given with `--query` or read from `--query-file`.
pub fn query_text(query: Option<String>, file: Option<PathBuf>) -> Result<String, String> {
    match (query, file) {
        (Some(q), _) => Ok(q),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the query file {}: {e}", path.display())),
        (None, None) => Err("give the query with --query or --query-file".into()),
    }
}

/// A pool on the database of `--database-url` / `DATABASE_URL`, checked at once.
pub(crate) async fn connect(url: Option<String>) -> Result<PgPool, Box<dyn std::error::Error>> {
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

/// Runs the command of `cli`, printing its result on standard output (the scheduler
/// of `run` logs through `tracing`). The error's exit code is [`exit_code`](crate::exit_code).
pub async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
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
        Command::Create(args) => create(args, cli.database_url).await,
        Command::Replace(args) => replace(args, cli.database_url).await,
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
                print!("{}", status_table::wide(&rows));
            } else {
                print!("{}", status_table::short(&rows, Utc::now()));
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

/// `create`: checks the arguments, installs the catalog when missing, creates the
/// stream table.
async fn create(
    args: CreateArgs,
    database_url: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let query = query_text(args.query, args.query_file)?;
    // Arguments first: a bad name, mode or schedule changes nothing.
    let mode: Mode = args.mode.parse()?;
    let spec = pgstream::spec(&args.name, &query, &args.schedule, mode)?;
    let pool = connect(database_url).await?;
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
    println!("created stream table {} ({mode}, {when})", args.name);
    Ok(())
}

/// `replace`: the new query, with the stream table's schedule and mode unless given.
async fn replace(
    args: ReplaceArgs,
    database_url: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let query = query_text(args.query, args.query_file)?;
    let mode: Option<Mode> = args.mode.map(|m| m.parse()).transpose()?;
    let qname = pgstream::QualifiedName::parse(&args.name).map_err(pgstream::Error::Invalid)?;
    let pool = connect(database_url).await?;
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
    let schedule = args.schedule.unwrap_or(current.schedule);
    let spec = pgstream::spec(&args.name, &query, &schedule, mode)?;
    if pgstream::replace_stream_table(&pool, &spec).await? {
        println!("replaced the definition of stream table {shown} ({mode})");
    } else {
        println!("stream table {shown} already has this query and mode (schedule {schedule})");
    }
    Ok(())
}

/// Waits for Ctrl-C or, on Unix, SIGTERM.
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

#[cfg(test)]
mod tests {
    use super::query_text;

    #[test]
    fn the_query_comes_from_the_flag_or_the_file() {
        assert_eq!(
            query_text(Some("SELECT 1".into()), None).unwrap(),
            "SELECT 1"
        );
        let path = std::env::temp_dir().join(format!("pgstream-cli-{}.sql", std::process::id()));
        std::fs::write(&path, "SELECT 2").unwrap();
        assert_eq!(query_text(None, Some(path.clone())).unwrap(), "SELECT 2");
        std::fs::remove_file(&path).unwrap();
        let missing = query_text(None, Some(path.clone())).unwrap_err();
        assert!(
            missing.starts_with("cannot read the query file "),
            "{missing}"
        );
        assert_eq!(
            query_text(None, None).unwrap_err(),
            "give the query with --query or --query-file"
        );
    }
}
