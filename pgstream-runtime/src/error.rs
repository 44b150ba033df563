//! Errors of the runtime. Every message says which stream table, which step and why
//! (PostgreSQL's message with its `detail` and `hint`, or the compiler's diagnostic).

use std::fmt;

/// Result of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which stream table an error is about, if any ("installing the catalog" is not
/// about one). Displays as `stream table <name>: ` or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject(pub Option<String>);

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => write!(f, "stream table {name}: "),
            None => Ok(()),
        }
    }
}

/// An error of the pgstream runtime.
///
/// `Debug` prints the same text as `Display`, so `main() -> Result<(), Box<dyn Error>>`
/// and `unwrap()` show the message a user can act on, not the enum's structure.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement failed in the database.
    #[error("{subject}{step}: {cause}")]
    Database {
        /// The stream table concerned, if any.
        subject: Subject,
        /// What the runtime was doing, e.g. `creating storage table`, `initial refresh`.
        step: &'static str,
        /// PostgreSQL's message, with its detail and hint when present.
        cause: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },
    /// The defining query does not compile.
    #[error("stream table {name}: {rendered}")]
    Compile {
        /// The stream table.
        name: String,
        /// The compiler's diagnostic, rendered with the query quoted.
        rendered: String,
        /// The compiler's error.
        #[source]
        source: Box<pgstream_core::Error>,
    },
    /// No stream table of that name exists.
    #[error("stream table {0} does not exist")]
    NotFound(String),
    /// A stream table of that name already exists.
    #[error("stream table {0} already exists")]
    AlreadyExists(String),
    /// The storage table's name is taken by a table that is not a stream table.
    #[error("stream table {0}: a table of that name already exists and is not a stream table")]
    NameTaken(String),
    /// A registered stream table exists in the database with another definition.
    #[error(
        "stream table {name}: the database holds a different definition ({what}); \
         pgstream does not replace stored data on its own: start with \
         `.replace_changed(true)` to replace it (readers keep the old rows until the new \
         ones are complete), or replace it with `pgstream replace` or \
         `SELECT pgstream.replace_stream_table('{name}', ...)`"
    )]
    DefinitionChanged {
        /// The stream table.
        name: String,
        /// What differs (`query`, `mode`).
        what: String,
    },
    /// The output columns compiled into the program differ from what the query
    /// gives against the live database (or from the stored table's columns).
    #[error(
        "stream table {name}: the schema drifted: compiled to columns ({}), but the database gives ({})",
        expected.join(", "),
        found.join(", ")
    )]
    SchemaDrift {
        /// The stream table.
        name: String,
        /// Columns compiled into the program.
        expected: Vec<String>,
        /// Columns found in the database.
        found: Vec<String>,
    },
    /// Other stream tables read this one, so it cannot be replaced (they were
    /// compiled against its columns).
    #[error(
        "stream table {name}: cannot replace its definition while stream table(s) {readers} \
         read it: drop them first, replace this one, then create them again"
    )]
    HasReaders {
        /// The stream table.
        name: String,
        /// The stream tables that read it, comma-separated.
        readers: String,
    },
    /// An argument was invalid (a name, a schedule, a mode).
    #[error("{0}")]
    Invalid(String),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// [`Error::Compile`] of the stream table `name`: the compiler's error `e` on its
    /// defining query `query`, rendered with the query quoted.
    pub(crate) fn compile(name: &str, query: &str, e: pgstream_core::Error) -> Self {
        Error::Compile {
            name: name.to_string(),
            rendered: e.render(query),
            source: Box::new(e),
        }
    }

    /// A database error at a step, about a stream table (or none).
    pub(crate) fn db(subject: Option<&str>, step: &'static str, source: sqlx::Error) -> Self {
        Error::Database {
            subject: Subject(subject.map(str::to_string)),
            step,
            cause: describe(&source),
            source,
        }
    }

    /// No answer from the database within [`crate::CONNECT_TIMEOUT`] at a step (an
    /// [`Error::Database`] whose cause is an I/O timeout).
    pub(crate) fn no_answer(step: &'static str) -> Self {
        Error::db(
            None,
            step,
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from the database within {} s",
                    crate::CONNECT_TIMEOUT.as_secs()
                ),
            )),
        )
    }

    /// The PostgreSQL SQLSTATE code, when the error came from the server.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            Error::Database {
                source: sqlx::Error::Database(e),
                ..
            } => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}

/// PostgreSQL's message with its detail and hint (sqlx prints only the message).
pub(crate) fn describe(e: &sqlx::Error) -> String {
    if let sqlx::Error::Database(db) = e {
        if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            let mut s = pg.message().to_string();
            if let Some(d) = pg.detail().filter(|d| !d.is_empty()) {
                s.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = pg.hint().filter(|h| !h.is_empty()) {
                s.push_str(&format!(" (hint: {h})"));
            }
            return s;
        }
        return db.message().to_string();
    }
    e.to_string()
}

/// Attach a step (and stream table) to a sqlx result.
pub(crate) trait Step<T> {
    /// Map a database error to [`Error::Database`].
    fn step(self, subject: Option<&str>, step: &'static str) -> Result<T>;
}

impl<T> Step<T> for std::result::Result<T, sqlx::Error> {
    fn step(self, subject: Option<&str>, step: &'static str) -> Result<T> {
        self.map_err(|e| Error::db(subject, step, e))
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn debug_reads_like_display() {
        let e = Error::NameTaken("top_products".into());
        assert_eq!(format!("{e:?}"), e.to_string());
        assert!(!format!("{e:?}").contains("NameTaken"));
    }
}
