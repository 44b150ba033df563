//! What an oracle run reports when it fails, and which DML errors it retries.

use std::fmt;

/// Why an oracle run failed.
#[derive(Debug, Clone)]
pub enum FailureKind {
    /// The stream table and the query differ.
    Mismatch {
        /// Number of rows of `(query) EXCEPT ALL (stream table)`.
        missing_count: i64,
        /// First 20 of them, as row text.
        missing: Vec<String>,
        /// Number of rows of `(stream table) EXCEPT ALL (query)`.
        extra_count: i64,
        /// First 20 of them, as row text.
        extra: Vec<String>,
    },
    /// The refresh returned an error.
    Refresh(String),
    /// A generated DML statement failed with an unexpected error.
    Dml(String),
    /// Setup, catalog read or comparison query failed.
    Other(String),
}

/// A failed oracle run: everything needed to reproduce it.
#[derive(Debug, Clone)]
pub struct OracleFailure {
    /// The seed of the run.
    pub seed: u64,
    /// The batch (0 = the refresh before any DML).
    pub batch: usize,
    /// The stream table.
    pub stream_table: String,
    /// What went wrong.
    pub kind: FailureKind,
    /// The DML statements of the failing batch, in order (`-- rolled back:` marks
    /// statements that hit a constraint and were undone by a savepoint).
    pub statements: Vec<String>,
}

impl fmt::Display for OracleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "oracle failure on stream table `{}`: seed {} (PGS_ORACLE_SEED={} reproduces), batch {}",
            self.stream_table, self.seed, self.seed, self.batch
        )?;
        match &self.kind {
            FailureKind::Mismatch {
                missing_count,
                missing,
                extra_count,
                extra,
            } => {
                writeln!(
                    f,
                    "{missing_count} row(s) of the query are missing from the stream table (first 20):"
                )?;
                for r in missing {
                    writeln!(f, "  - {r}")?;
                }
                writeln!(
                    f,
                    "{extra_count} row(s) of the stream table are not in the query (first 20):"
                )?;
                for r in extra {
                    writeln!(f, "  + {r}")?;
                }
            }
            FailureKind::Refresh(e) => writeln!(f, "refresh failed: {e}")?,
            FailureKind::Dml(e) => writeln!(f, "generated DML failed: {e}")?,
            FailureKind::Other(e) => writeln!(f, "{e}")?,
        }
        writeln!(
            f,
            "DML of this batch ({} statements):",
            self.statements.len()
        )?;
        for s in &self.statements {
            writeln!(f, "  {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OracleFailure {}

/// A mismatch in words (the counts and the first differing rows).
pub(super) fn mismatch_text(kind: &FailureKind) -> String {
    match kind {
        FailureKind::Mismatch {
            missing_count,
            missing,
            extra_count,
            extra,
        } => format!(
            "{missing_count} row(s) of the query missing from the stream table {missing:?}, \
             {extra_count} row(s) of the stream table not in the query {extra:?}"
        ),
        other => format!("{other:?}"),
    }
}

/// Whether an oracle DML error is a serialization failure or a deadlock (SQLSTATE
/// 40001, 40P01): the transaction is retried.
pub(super) fn is_retryable(e: &str) -> bool {
    e.contains("SQLSTATE 40001")
        || e.contains("SQLSTATE 40P01")
        // A COMMIT's error carries no SQLSTATE in its text.
        || e.contains("could not serialize access")
        || e.contains("deadlock detected")
}
