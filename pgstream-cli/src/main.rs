//! `pgstream`: parses the command line, sets up logging, runs the command with the
//! `pgstream_cli` library and ends with the command's exit code
//! ([`pgstream_cli::EXIT_CODES`]).

use std::process::ExitCode;

use clap::Parser;
use pgstream_cli::{Cli, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match pgstream_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", pgstream_cli::error_line(e.as_ref()));
            ExitCode::from(pgstream_cli::exit_code(e.as_ref()))
        }
    }
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
