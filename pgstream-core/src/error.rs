//! Errors of the compiler, each carrying a [`Diagnostic`] that points into the query.

use std::fmt;
use std::ops::Range;

/// A message about a fragment of the defining query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// One sentence saying what is wrong.
    pub message: String,
    /// Byte range of the offending fragment in the query text, when known.
    pub span: Option<Range<usize>>,
    /// What to do about it, when a fix is known.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span: None,
            help: None,
        }
    }
    /// Attach the byte range of the offending fragment.
    pub fn with_span(mut self, span: Option<Range<usize>>) -> Self {
        self.span = span;
        self
    }
    /// Attach a suggested fix.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Render the diagnostic with the query quoted and the fragment underlined.
    pub fn render(&self, query: &str) -> String {
        let mut out = self.message.clone();
        if let Some(span) = &self.span {
            if span.start <= span.end && span.end <= query.len() {
                // find the line that holds span.start
                let line_start = query[..span.start].rfind('\n').map(|i| i + 1).unwrap_or(0);
                let line_end = query[span.start..]
                    .find('\n')
                    .map(|i| span.start + i)
                    .unwrap_or(query.len());
                let line = &query[line_start..line_end];
                let lineno = query[..line_start].matches('\n').count() + 1;
                let col = query[line_start..span.start].chars().count();
                let width = query[span.start..span.end.min(line_end)]
                    .chars()
                    .count()
                    .max(1);
                out.push_str(&format!(
                    "\n  --> query line {lineno}, column {}\n   | {}\n   | {}{}",
                    col + 1,
                    line,
                    " ".repeat(col),
                    "^".repeat(width)
                ));
            }
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("\n  = help: {help}"));
        }
        out
    }
}

/// Why a defining query cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The query is not valid SQL.
    Syntax(Diagnostic),
    /// The query is SQL but refers to something that does not exist or is used wrongly.
    Invalid(Diagnostic),
    /// The query is valid, but the requested mode cannot maintain it.
    Unsupported(Diagnostic),
    /// A bug in pgstream.
    Internal(String),
}

impl Error {
    /// The diagnostic of this error, if it has one.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            Error::Syntax(d) | Error::Invalid(d) | Error::Unsupported(d) => Some(d),
            Error::Internal(_) => None,
        }
    }
    /// Render with the query quoted (see [`Diagnostic::render`]).
    pub fn render(&self, query: &str) -> String {
        match self {
            Error::Syntax(d) => format!("syntax error: {}", d.render(query)),
            Error::Invalid(d) => format!("invalid query: {}", d.render(query)),
            Error::Unsupported(d) => format!("unsupported: {}", d.render(query)),
            Error::Internal(m) => format!("internal error in pgstream: {m}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(d) => write!(f, "syntax error: {}", d.message)?,
            Error::Invalid(d) => write!(f, "invalid query: {}", d.message)?,
            Error::Unsupported(d) => write!(f, "unsupported: {}", d.message)?,
            Error::Internal(m) => return write!(f, "internal error in pgstream: {m}"),
        }
        if let Some(h) = self.diagnostic().and_then(|d| d.help.as_ref()) {
            write!(f, " (help: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Result of the compiler.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::Invalid(d)
    }
}
