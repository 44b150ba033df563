//! What a failed command prints and the exit code it ends with.

/// The exit codes, as `--help` prints them.
pub const EXIT_CODES: &str = "\
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

/// Any other error.
pub const EXIT_OTHER: u8 = 1;
/// No stream table of that name.
pub const EXIT_NOT_FOUND: u8 = 3;
/// An invalid query or argument.
pub const EXIT_INVALID: u8 = 4;
/// The database cannot be reached or refused the login.
pub const EXIT_CONNECTION: u8 = 5;
/// The name is taken, the database holds another definition, or other stream tables
/// read the one to drop or replace.
pub const EXIT_CONFLICT: u8 = 6;

/// A query that does not compile or an invalid argument, outside the library's
/// errors (`explain`): exit code 4.
#[derive(Debug)]
pub struct InvalidQuery(pub String);

impl std::fmt::Display for InvalidQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidQuery {}

/// The exit code of an error (see [`EXIT_CODES`]).
pub fn exit_code(e: &(dyn std::error::Error + 'static)) -> u8 {
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

/// The line `main` prints on standard error for a failed command: `error: ` and the
/// message, with the compiler's advice in attribute words (`mode = "full"`) given as
/// the flag (`--mode full`).
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    format!("error: {}", crate::explain::flag_words(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: impl std::error::Error + 'static) -> u8 {
        exit_code(&e)
    }

    fn database(source: sqlx::Error) -> pgstream::Error {
        pgstream::Error::Database {
            subject: pgstream::Subject(None),
            step: "testing",
            cause: source.to_string(),
            source,
        }
    }

    #[test]
    fn library_errors_map_to_their_codes() {
        assert_eq!(code(pgstream::Error::NotFound("t".into())), EXIT_NOT_FOUND);
        assert_eq!(code(pgstream::Error::Invalid("bad".into())), EXIT_INVALID);
        assert_eq!(code(InvalidQuery("bad".into())), EXIT_INVALID);
        assert_eq!(
            code(pgstream::Error::AlreadyExists("t".into())),
            EXIT_CONFLICT
        );
        assert_eq!(code(pgstream::Error::NameTaken("t".into())), EXIT_CONFLICT);
        assert_eq!(code(std::fmt::Error), EXIT_OTHER);
    }

    #[test]
    fn unreachable_databases_are_connection_failures() {
        assert_eq!(code(database(sqlx::Error::PoolTimedOut)), EXIT_CONNECTION);
        assert_eq!(code(database(sqlx::Error::PoolClosed)), EXIT_CONNECTION);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(code(database(sqlx::Error::Io(refused))), EXIT_CONNECTION);
        assert_eq!(code(database(sqlx::Error::RowNotFound)), EXIT_OTHER);
    }

    #[test]
    fn the_error_line_gives_advice_as_flags() {
        let e = InvalidQuery("use mode = \"full\"".into());
        assert_eq!(error_line(&e), "error: use --mode full");
    }
}
