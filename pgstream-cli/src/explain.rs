//! `pgstream explain`: how a query is (or a stream table in the database is)
//! maintained: the operator tree, the strategy per node and the generated SQL,
//! pretty-printed.
//!
//! Three sources for the query and the schema it is checked against:
//! - a stream table's name alone: its stored query and mode, compiled against the live
//!   database (the only case that connects);
//! - `--query` / `--query-file` with `--schema DIR`: compiled against those migrations;
//! - `--query` / `--query-file` without `--schema`: against `./migrations` when it
//!   exists, else against the database's schema when `DATABASE_URL` (or
//!   `--database-url`) is set, else against an empty schema (the error then says how
//!   to give one).

use std::path::{Path, PathBuf};

use pgstream::Mode;

use crate::{pretty_sql, query_text, InvalidQuery};

/// The default schema directory, used when it exists and `--schema` is not given.
pub(crate) const DEFAULT_SCHEMA: &str = "migrations";

/// The arguments of `explain`.
pub(crate) struct Args {
    /// The stream table's name (`name` or `schema.name`).
    pub name: Option<String>,
    /// `--query`.
    pub query: Option<String>,
    /// `--query-file`.
    pub query_file: Option<PathBuf>,
    /// `--schema`.
    pub schema: Option<PathBuf>,
    /// `--mode`.
    pub mode: Option<String>,
    /// `--database-url` / `DATABASE_URL`.
    pub database_url: Option<String>,
}

/// Runs `explain`, printing to standard output.
pub(crate) async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mode: Option<Mode> = args
        .mode
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(InvalidQuery)?;
    let name = args.name.as_deref().unwrap_or("stream_table");
    let name = pgstream::QualifiedName::parse(name).map_err(InvalidQuery)?;
    let mut empty_schema = false;
    let (query, mode, catalog) = if args.query.is_none() && args.query_file.is_none() {
        // An existing stream table, from the database.
        if args.name.is_none() {
            return Err(InvalidQuery(
                "give a stream table's name, or the query with --query or --query-file".into(),
            )
            .into());
        }
        if args.schema.is_some() {
            return Err(InvalidQuery(
                "--schema applies to --query and --query-file: a stream table's name is \
                 explained against the database's schema"
                    .into(),
            )
            .into());
        }
        let pool = crate::connect(args.database_url).await?;
        let mut conn = pool.acquire().await?;
        // No catalog yet: nothing was ever created here.
        let installed: bool =
            sqlx::query_scalar("SELECT to_regclass('pgstream.pgs_stream_tables') IS NOT NULL")
                .fetch_one(&mut *conn)
                .await?;
        let stored: Option<(String, String)> = if installed {
            sqlx::query_as(
                "SELECT query, mode FROM pgstream.pgs_stream_tables
                  WHERE schema_name = $1 AND table_name = $2",
            )
            .bind(&name.schema)
            .bind(&name.name)
            .fetch_optional(&mut *conn)
            .await?
        } else {
            None
        };
        let (query, stored_mode) =
            stored.ok_or_else(|| pgstream::Error::NotFound(pgstream::display_name(&name)))?;
        let stored_mode: Mode = stored_mode.parse().map_err(InvalidQuery)?;
        let catalog = pgstream::load_catalog(&mut conn).await?;
        (query, mode.unwrap_or(stored_mode), catalog)
    } else {
        let query = query_text(args.query, args.query_file).map_err(InvalidQuery)?;
        let catalog = match (&args.schema, args.database_url) {
            (Some(dir), _) => load_schema(dir)?,
            (None, _) if Path::new(DEFAULT_SCHEMA).is_dir() => {
                load_schema(Path::new(DEFAULT_SCHEMA))?
            }
            (None, Some(url)) => {
                let pool = crate::connect(Some(url)).await?;
                let mut conn = pool.acquire().await?;
                pgstream::load_catalog(&mut conn).await?
            }
            (None, None) => {
                empty_schema = true;
                pgstream::Catalog::new()
            }
        };
        (query, mode.unwrap_or(Mode::Differential), catalog)
    };
    let spec = pgstream::StreamTableSpec {
        name,
        query: query.clone(),
        schedule: pgstream::Schedule::default(),
        mode,
    };
    let compiled = pgstream::compile(&spec, &catalog).map_err(|e| {
        let mut text = e.render(&query);
        if empty_schema && text.contains("unknown table") {
            text.push_str(
                "\n  = note: no `migrations` directory here and no database given, so the \
                 query was checked against an empty schema: pass `--schema DIR`, or set \
                 DATABASE_URL to check it against the database",
            );
        }
        InvalidQuery(flag_words(&text))
    })?;
    print!("{}", pretty_sql::explain(&compiled));
    Ok(())
}

/// The compiler's advice is written for the attribute (`mode = "full"`); on the
/// command line the same advice is a flag (`--mode full`).
pub(crate) fn flag_words(text: &str) -> String {
    text.replace("mode = \"full\"", "--mode full")
        .replace("mode = \"differential\"", "--mode differential")
        .replace("mode = \"immediate\"", "--mode immediate")
}

/// The catalog the `.sql` migrations of `dir` define, applied in file-name order.
pub(crate) fn load_schema(dir: &Path) -> Result<pgstream::Catalog, InvalidQuery> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        InvalidQuery(format!(
            "cannot read the schema directory {}: {e}",
            dir.display()
        ))
    })?;
    for entry in entries {
        let path = entry.map_err(|e| InvalidQuery(e.to_string()))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if pgstream::compiler::catalog::is_migration_file(&name) && path.is_file() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| InvalidQuery(format!("cannot read {}: {e}", path.display())))?;
            files.push((name, text));
        }
    }
    pgstream::Catalog::from_migrations(files).map_err(|e| InvalidQuery(e.to_string()))
}
