//! The compile-time schema: the `.sql` migrations of the crate, applied in order to an
//! empty [`Catalog`]; and the files the macro reads (migrations, `query_file`).
//!
//! Paths resolve against the crate's directory, like sqlx's macros: absolute paths are
//! refused, and errors name paths as the user wrote them, never the absolute path.
//! trybuild compiles its cases in a generated directory, so `PGSTREAM_MANIFEST_DIR`
//! (when set) is read before `CARGO_MANIFEST_DIR` (dtolnay/trybuild#202).

use pgstream_core::Catalog;
use proc_macro2::Span;
use std::path::{Path, PathBuf};
use syn::LitStr;

/// The default directory of migrations, the one `sqlx::migrate!()` reads.
pub(crate) const DEFAULT_MIGRATIONS: &str = "migrations";

/// The schema the query is compiled against.
pub(crate) struct Schema {
    /// Every table the migrations leave behind.
    pub(crate) catalog: Catalog,
    /// The absolute paths of the migrations applied, so that the expansion can make
    /// cargo rebuild when one changes.
    pub(crate) files: Vec<PathBuf>,
}

/// The directory that relative paths resolve against.
fn manifest_dir(span: Span) -> syn::Result<PathBuf> {
    std::env::var_os("PGSTREAM_MANIFEST_DIR")
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .ok_or_else(|| {
            syn::Error::new(
                span,
                "CARGO_MANIFEST_DIR is not set: build with cargo to use #[stream_table]",
            )
        })
}

/// Resolve a path the user wrote, relative to the crate's directory.
fn resolve(path: &str, span: Span, what: &str) -> syn::Result<PathBuf> {
    if Path::new(path).is_absolute() {
        return Err(syn::Error::new(
            span,
            format!(
                "absolute paths are not allowed in `{what}`: write a path relative to the crate's directory \
                 (the one holding Cargo.toml)"
            ),
        ));
    }
    Ok(manifest_dir(span)?.join(path))
}

/// Load the migrations of `dir` (default [`DEFAULT_MIGRATIONS`]) into a catalog.
pub(crate) fn load(dir: Option<&LitStr>) -> syn::Result<Schema> {
    let (shown, span) = match dir {
        Some(lit) => (lit.value(), lit.span()),
        None => (DEFAULT_MIGRATIONS.to_string(), Span::call_site()),
    };
    let path = resolve(&shown, span, "schema")?;
    let entries = std::fs::read_dir(&path).map_err(|err| {
        let hint = if dir.is_none() {
            "; create it with the crate's `CREATE TABLE` migrations, or point `schema = \"...\"` at the directory \
             that holds them"
        } else {
            ""
        };
        syn::Error::new(
            span,
            format!(
                "cannot read the migrations directory `{shown}` (looked for `{shown}` in the crate's directory, \
                 next to Cargo.toml): {}{hint}",
                io_reason(&err)
            ),
        )
    })?;

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| {
            syn::Error::new(
                span,
                format!(
                    "cannot list the migrations directory `{shown}`: {}",
                    io_reason(&err)
                ),
            )
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !pgstream_core::catalog::is_migration_file(&name) || !entry.path().is_file() {
            continue;
        }
        files.push((name, entry.path()));
    }
    let mut texts = Vec::with_capacity(files.len());
    for (name, file) in &files {
        let text = std::fs::read_to_string(file).map_err(|err| {
            syn::Error::new(
                span,
                format!(
                    "cannot read migration `{shown}/{name}`: {}",
                    io_reason(&err)
                ),
            )
        })?;
        texts.push((name.clone(), text));
    }
    // The core's loader applies them in file-name order, as the runtime and the
    // command line do.
    let by_name: std::collections::HashMap<String, String> = texts.iter().cloned().collect();
    let catalog = Catalog::from_migrations(texts).map_err(|err| {
        let text = by_name.get(&err.file).map(String::as_str).unwrap_or("");
        syn::Error::new(
            span,
            format!(
                "in migration `{shown}/{}`: {}",
                err.file,
                err.error.render(text)
            ),
        )
    })?;
    files.sort();
    Ok(Schema {
        catalog,
        files: files.into_iter().map(|(_, p)| p).collect(),
    })
}

/// Read the query of `query_file = "..."`; returns its text and absolute path.
pub(crate) fn read_query_file(lit: &LitStr) -> syn::Result<(String, PathBuf)> {
    let shown = lit.value();
    let path = resolve(&shown, lit.span(), "query_file")?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path)),
        Err(err) => Err(syn::Error::new(
            lit.span(),
            format!(
                "cannot read the query file `{shown}` (paths are relative to the crate's directory, next to \
                 Cargo.toml): {}",
                io_reason(&err)
            ),
        )),
    }
}

/// An I/O error's reason without the OS error number, which differs between systems.
fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    }
}
