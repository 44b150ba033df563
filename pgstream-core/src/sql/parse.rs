//! The one place that calls the SQL parser, and the conversion of sqlparser's
//! line/column spans into byte ranges of the query text.

use crate::error::{Diagnostic, Error, Result};
use sqlparser::ast::{
    Distinct, Query, Select, Spanned, Statement, TableFactor, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Span;
use std::ops::Range;

/// Parse SQL text into statements (PostgreSQL dialect).
pub(crate) fn statements(text: &str) -> std::result::Result<Vec<Statement>, ParserError> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, &function_lateral_blanked(text))?;
    let _ = stmts.visit(&mut Normalize);
    Ok(stmts)
}

/// Forms the parser keeps apart that mean the same to PostgreSQL, made one so that
/// the passes match a single shape and print it one way: `SELECT ALL` is `SELECT`,
/// and a relation's alias prints with `AS` whether it was written or not.
struct Normalize;

impl VisitorMut for Normalize {
    type Break = ();
    fn pre_visit_select(&mut self, select: &mut Select) -> std::ops::ControlFlow<()> {
        if matches!(select.distinct, Some(Distinct::All)) {
            select.distinct = None;
        }
        std::ops::ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> std::ops::ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::NestedJoin { alias, .. } => alias,
            _ => return std::ops::ControlFlow::Continue(()),
        };
        if let Some(alias) = alias {
            alias.explicit = true;
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// `text` with the keyword `LATERAL` before a function call in FROM replaced by
/// spaces. sqlparser reads `LATERAL f(...)` without `WITH ORDINALITY`; PostgreSQL
/// makes every function in FROM lateral, so the keyword changes nothing, and spaces
/// of the same length keep every span where it was.
fn function_lateral_blanked(text: &str) -> std::borrow::Cow<'_, str> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(toks) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize_with_location() else {
        return std::borrow::Cow::Borrowed(text);
    };
    let mut blank = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Token::Word(w) = &t.token else { continue };
        if w.keyword != Keyword::LATERAL {
            continue;
        }
        let next = toks[i + 1..]
            .iter()
            .find(|n| !matches!(n.token, Token::Whitespace(_)));
        if let Some(Token::Word(_)) = next.map(|n| &n.token) {
            if let Some(start) = offset(text, t.span.start.line, t.span.start.column) {
                if text
                    .get(start..start + 7)
                    .is_some_and(|k| k.eq_ignore_ascii_case("lateral"))
                {
                    blank.push(start);
                }
            }
        }
    }
    if blank.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for start in blank {
        out.replace_range(start..start + 7, "       ");
    }
    std::borrow::Cow::Owned(out)
}

/// The tokens of `text` (PostgreSQL dialect), for statements the parser does not
/// read whole.
pub(crate) fn tokens(
    text: &str,
) -> std::result::Result<Vec<sqlparser::tokenizer::Token>, sqlparser::tokenizer::TokenizerError> {
    sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, text).tokenize()
}

/// Parse a stream table's defining query: exactly one query, else a diagnostic.
pub(crate) fn defining_query(text: &str) -> Result<Box<Query>> {
    let stmts = statements(text).map_err(|e| syntax_error(text, e))?;
    let query = match stmts.as_slice() {
        [Statement::Query(q)] => q.clone(),
        [] => return Err(Error::Syntax(Diagnostic::new("the query is empty"))),
        [_] => {
            return Err(Error::Invalid(
                Diagnostic::new("a stream table is defined by a SELECT query")
                    .with_help("write the defining query as SELECT ... FROM ..."),
            ))
        }
        _ => {
            return Err(Error::Invalid(Diagnostic::new(
                "the definition holds more than one statement; give exactly one SELECT",
            )))
        }
    };
    Ok(query)
}

/// Parse a view's body: exactly one query.
pub(crate) fn one_query(text: &str) -> Option<Query> {
    match statements(text).ok()?.as_slice() {
        [Statement::Query(q)] => Some((**q).clone()),
        _ => None,
    }
}

/// The last statement of `text` if it is a query.
pub(crate) fn last_query(text: &str) -> Option<Query> {
    match statements(text).ok()?.pop()? {
        Statement::Query(q) => Some(*q),
        _ => None,
    }
}

/// Convert sqlparser's line/column span into a byte range of `text`.
pub(crate) fn span_range(text: &str, span: Span) -> Option<Range<usize>> {
    if span == Span::empty() || span.start.line == 0 {
        return None;
    }
    let start = offset(text, span.start.line, span.start.column)?;
    let end = offset(text, span.end.line, span.end.column)
        .unwrap_or(start)
        .max(start);
    Some(start..end)
}

fn offset(text: &str, line: u64, column: u64) -> Option<usize> {
    let mut cur_line = 1u64;
    let mut line_start = 0usize;
    if line > 1 {
        for (i, ch) in text.char_indices() {
            if ch == '\n' {
                cur_line += 1;
                if cur_line == line {
                    line_start = i + 1;
                    break;
                }
            }
        }
        if cur_line != line {
            return None;
        }
    }
    let rest = &text[line_start..];
    let mut col = 1u64;
    for (i, _) in rest.char_indices() {
        if col == column {
            return Some(line_start + i);
        }
        col += 1;
    }
    if col == column {
        Some(text.len().min(line_start + rest.len()))
    } else {
        None
    }
}

/// The span of an expression as a byte range of the query.
pub(crate) fn expr_range(text: &str, e: &impl Spanned) -> Option<Range<usize>> {
    span_range(text, e.span())
}

fn syntax_error(text: &str, e: ParserError) -> Error {
    let msg = match &e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "the query nests too deeply".to_string(),
    };
    // sqlparser appends " at Line: L, Column: C"
    let mut span = None;
    let mut clean = msg.clone();
    if let Some(pos) = msg.rfind(" at Line: ") {
        let loc = &msg[pos + " at Line: ".len()..];
        let mut it = loc.split(", Column: ");
        if let (Some(l), Some(c)) = (it.next(), it.next()) {
            if let (Ok(l), Ok(c)) = (l.trim().parse::<u64>(), c.trim().parse::<u64>()) {
                let s = sqlparser::tokenizer::Span::new(
                    sqlparser::tokenizer::Location::new(l, c),
                    sqlparser::tokenizer::Location::new(l, c + 1),
                );
                span = span_range(text, s);
                clean = msg[..pos].to_string();
            }
        }
    }
    if span.is_none() && clean.contains("EOF") {
        // the query ended too early: point at its last character
        let end = text.trim_end().len();
        if end > 0 {
            let start = text[..end]
                .char_indices()
                .last()
                .map(|(i, _)| i)
                .unwrap_or(0);
            span = Some(start..end);
            clean = clean.replace("found: EOF", "found: the end of the query");
        }
    }
    Error::Syntax(Diagnostic::new(clean).with_span(span))
}

/// Split a script into statements on top-level semicolons, respecting quotes,
/// dollar quotes and comments.
pub fn split_statements(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if i + 1 < b.len() && b[i + 1] == b'-' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if i + 1 < b.len() && b[i + 1] == b'*' => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // dollar quote: $tag$ ... $tag$
                let rest = &sql[i + 1..];
                if let Some(end) = rest.find('$') {
                    let tag = &rest[..end];
                    if tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        let delim = format!("${tag}$");
                        if let Some(close) = sql[i + delim.len()..].find(&delim) {
                            i += delim.len() + close + delim.len() - 1;
                        }
                    }
                }
            }
            b';' => {
                let s = sql[start..i].trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let s = sql[start.min(sql.len())..].trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    out
}
