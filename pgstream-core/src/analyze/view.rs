//! Views as sources: a view that the defining query reads is expanded in place, in the
//! query text, into its body as a subquery, `(body) AS alias(columns)`, exactly as if
//! the user had written it; views over views are expanded recursively. Everything
//! downstream (the binder's derived-table path, the type inference, FULL mode's
//! recomputation) then sees only tables, so change capture goes on the tables the
//! views read.
//!
//! The expansion keeps a map from the expanded text back to the user's text, so that
//! a diagnostic points at the user's query: a fragment inside an expanded body points
//! at the view's reference and its message names the view (and the fragment).

use crate::catalog::{Catalog, View};
use crate::error::{Diagnostic, Error, Result};
use crate::spec::QualifiedName;
use crate::sql::ident::qualified;
use crate::sql::ident::quote_ident;
use crate::sql::parse::{self, span_range};
use crate::sql::relations::is_cte;
use crate::sql::walk::cte_names;
use sqlparser::ast::{Spanned, Statement, TableAlias, TableFactor, Visit, Visitor};

use std::collections::HashSet;
use std::ops::{ControlFlow, Range};

/// A defining query with the views it reads expanded.
#[derive(Debug, Clone)]
pub(crate) struct Expansion {
    /// The expanded query text (the user's text when it reads no view).
    pub text: String,
    /// Each top-level replacement: its range in the user's text and in `text`.
    splices: Vec<(Range<usize>, Range<usize>)>,
    /// Every expanded body in `text`, nested ones included.
    regions: Vec<Region>,
}

/// An expanded view body in the expanded text.
#[derive(Debug, Clone)]
struct Region {
    /// The whole replacement `(body) AS alias(...)`.
    whole: Range<usize>,
    /// The body between the parentheses.
    body: Range<usize>,
    view: QualifiedName,
    /// 0 for a view the query reads, 1 for a view that view reads, ...
    depth: usize,
}

/// How pgstream names a view in messages: `name` in `public`, else `schema.name`.
fn display(name: &QualifiedName) -> String {
    if name.schema == "public" {
        name.name.clone()
    } else {
        name.to_string()
    }
}

/// A reference to a view found in a query.
struct Reference {
    /// The reference (name and alias) in the query text.
    range: Range<usize>,
    view: View,
    alias: Option<TableAlias>,
}

/// Expand the views `query` reads. A query that does not parse is returned as it is
/// (the compiler reports the syntax error).
pub(crate) fn expand(query: &str, catalog: &Catalog) -> Result<Expansion> {
    expand_in(query, catalog, &mut Vec::new())
}

fn expand_in(text: &str, catalog: &Catalog, stack: &mut Vec<QualifiedName>) -> Result<Expansion> {
    let unchanged = Expansion {
        text: text.to_string(),
        splices: Vec::new(),
        regions: Vec::new(),
    };
    if catalog.views().is_empty() {
        return Ok(unchanged);
    }
    let Ok(stmts) = parse::statements(text) else {
        return Ok(unchanged);
    };
    let ctes: HashSet<String> = stmts
        .iter()
        .filter_map(|s| match s {
            Statement::Query(q) => Some(cte_names(q)),
            _ => None,
        })
        .flatten()
        .collect();
    // Table references (not table functions) that name a view.
    struct Refs<'c> {
        text: &'c str,
        catalog: &'c Catalog,
        ctes: &'c HashSet<String>,
        found: Vec<Reference>,
        err: Option<Error>,
    }
    impl Visitor for Refs<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = f
            else {
                return ControlFlow::Continue(());
            };
            if is_cte(name, self.ctes) {
                return ControlFlow::Continue(());
            }
            let q = qualified(name);
            let schema = (name.0.len() > 1).then_some(q.schema.as_str());
            if self.catalog.lookup(schema, &q.name).is_some() {
                return ControlFlow::Continue(());
            }
            let Some(view) = self.catalog.lookup_view(schema, &q.name) else {
                return ControlFlow::Continue(());
            };
            let Some(mut range) = span_range(self.text, f.span()) else {
                self.err = Some(Error::Internal(format!(
                    "no position for the reference to the view `{name}`"
                )));
                return ControlFlow::Break(());
            };
            if view.materialized {
                self.err = Some(Error::Invalid(
                    Diagnostic::new(format!(
                        "`{}` is a materialized view, which a stream table cannot read: its contents change only on REFRESH MATERIALIZED VIEW, which no trigger captures",
                        display(&view.name)
                    ))
                    .with_span(Some(range))
                    .with_help(format!(
                        "define `{}` as a stream table instead (a stream table can read another one), or read the tables it reads",
                        display(&view.name)
                    )),
                ));
                return ControlFlow::Break(());
            }
            // The span of `v AS x(a, b)` ends at `b`: take the closing parenthesis too.
            if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                let rest = &self.text[range.end..];
                if let Some(i) = rest.find(')') {
                    if rest[..i].trim().is_empty() {
                        range.end += i + 1;
                    }
                }
            }
            self.found.push(Reference {
                range,
                view: view.clone(),
                alias: alias.clone(),
            });
            ControlFlow::Continue(())
        }
    }
    let mut refs = Refs {
        text,
        catalog,
        ctes: &ctes,
        found: Vec::new(),
        err: None,
    };
    let _ = stmts.visit(&mut refs);
    if let Some(e) = refs.err {
        return Err(e);
    }
    let mut found = refs.found;
    if found.is_empty() {
        return Ok(unchanged);
    }
    found.sort_by_key(|r| r.range.start);

    let mut out = Expansion {
        text: String::with_capacity(text.len() * 2),
        splices: Vec::new(),
        regions: Vec::new(),
    };
    let mut last = 0;
    for r in found {
        if stack.contains(&r.view.name) {
            let chain: Vec<String> = stack
                .iter()
                .chain(std::iter::once(&r.view.name))
                .map(|n| format!("`{}`", display(n)))
                .collect();
            return Err(Error::Invalid(
                Diagnostic::new(format!(
                    "the view `{}` reads itself: {}",
                    display(&r.view.name),
                    chain.join(" reads ")
                ))
                .with_span(Some(r.range)),
            ));
        }
        stack.push(r.view.name.clone());
        let inner = expand_in(&r.view.query, catalog, stack);
        stack.pop();
        let inner = inner.map_err(|e| in_view(e, &r.view.name, r.range.clone()))?;

        let (alias, alias_cols): (String, Vec<String>) = match &r.alias {
            Some(a) => (
                a.name.to_string(),
                a.columns.iter().map(|c| c.name.to_string()).collect(),
            ),
            None => (quote_ident(&r.view.name.name), Vec::new()),
        };
        // The reference's column aliases rename first, then the view's column list.
        let mut cols = alias_cols;
        cols.extend(
            r.view
                .columns
                .iter()
                .skip(cols.len())
                .map(|c| quote_ident(c)),
        );
        let cols = if cols.is_empty() {
            String::new()
        } else {
            format!("({})", cols.join(", "))
        };

        out.text.push_str(&text[last..r.range.start]);
        let start = out.text.len();
        out.text.push('(');
        let body_start = out.text.len();
        out.text
            .push_str(inner.text.trim_end_matches([';', ' ', '\n']));
        let body_end = out.text.len();
        out.text.push_str(&format!(") AS {alias}{cols}"));
        let end = out.text.len();
        for reg in inner.regions {
            out.regions.push(Region {
                whole: reg.whole.start + body_start..reg.whole.end + body_start,
                body: reg.body.start + body_start..reg.body.end + body_start,
                depth: reg.depth + 1,
                view: reg.view,
            });
        }
        out.regions.push(Region {
            whole: start..end,
            body: body_start..body_end,
            view: r.view.name.clone(),
            depth: 0,
        });
        out.splices.push((r.range.clone(), start..end));
        last = r.range.end;
    }
    out.text.push_str(&text[last..]);
    Ok(out)
}

/// An error met while expanding a view's body, moved to the view's reference `at`
/// in the outer text, with the view named (after the views it reads, if the error
/// came from one of those).
fn in_view(e: Error, view: &QualifiedName, at: Range<usize>) -> Error {
    let wrap = |mut d: Diagnostic| {
        if d.message.contains(" (in the view `") && d.message.ends_with(')') {
            d.message.pop();
            d.message
                .push_str(&format!(", which the view `{}` reads)", display(view)));
        } else {
            d.message
                .push_str(&format!(" (in the view `{}`)", display(view)));
        }
        d.span = Some(at.clone());
        d
    };
    match e {
        Error::Syntax(d) => Error::Syntax(wrap(d)),
        Error::Invalid(d) => Error::Invalid(wrap(d)),
        Error::Unsupported(d) => Error::Unsupported(wrap(d)),
        Error::Internal(m) => Error::Internal(m),
    }
}

impl Expansion {
    /// The views expanded, nested ones included, each once, in order of first
    /// appearance in the expanded text (a view before the views its body reads).
    pub fn views(&self) -> Vec<QualifiedName> {
        let mut regions: Vec<&Region> = self.regions.iter().collect();
        regions.sort_by_key(|r| r.whole.start);
        let mut out: Vec<QualifiedName> = Vec::new();
        for r in regions {
            if !out.contains(&r.view) {
                out.push(r.view.clone());
            }
        }
        out
    }

    /// A position in the expanded text mapped to the user's text: inside a
    /// replacement, its reference's start (or end).
    fn map_pos(&self, p: usize, end: bool) -> usize {
        let mut shift: isize = 0;
        for (orig, new) in &self.splices {
            if p < new.start || (end && p == new.start) {
                break;
            }
            if p < new.end || (end && p == new.end) {
                return if end { orig.end } else { orig.start };
            }
            shift += orig.len() as isize - new.len() as isize;
        }
        (p as isize + shift).max(0) as usize
    }

    /// A diagnostic about the expanded text, made to point at the user's text. A
    /// fragment inside an expanded body points at the view's reference, and the
    /// message names the view (the innermost one, and the views that read it) and
    /// quotes the fragment.
    pub fn map_error(&self, e: Error) -> Error {
        if self.splices.is_empty() {
            return e;
        }
        let map = |d: Diagnostic| -> Diagnostic {
            let Some(span) = d.span.clone() else {
                return d;
            };
            let mut inside: Vec<&Region> = self
                .regions
                .iter()
                .filter(|r| r.whole.start <= span.start && span.start < r.whole.end)
                .collect();
            let mapped = self.map_pos(span.start, false)..self.map_pos(span.end, true);
            if inside.is_empty() {
                return Diagnostic {
                    span: Some(mapped),
                    ..d
                };
            }
            inside.sort_by_key(|r| std::cmp::Reverse(r.depth));
            let innermost = inside[0];
            let fragment = (innermost.body.start <= span.start
                && span.end <= innermost.body.end
                && span != innermost.body)
                .then(|| {
                    let f = self.text[span.clone()]
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    if f.chars().count() > 60 {
                        format!("{} ...", f.chars().take(56).collect::<String>())
                    } else {
                        f
                    }
                })
                .filter(|f| !f.is_empty());
            let mut names = inside.iter().map(|r| format!("`{}`", display(&r.view)));
            let mut place = format!(" (in the view {}", names.next().unwrap_or_default());
            for n in names {
                place.push_str(&format!(", which the view {n} reads"));
            }
            if let Some(f) = fragment {
                place.push_str(&format!(", at `{f}`"));
            }
            place.push(')');
            Diagnostic {
                message: format!("{}{place}", d.message),
                span: Some(mapped),
                help: d.help,
            }
        };
        match e {
            Error::Syntax(d) => Error::Syntax(map(d)),
            Error::Invalid(d) => Error::Invalid(map(d)),
            Error::Unsupported(d) => Error::Unsupported(map(d)),
            Error::Internal(m) => Error::Internal(m),
        }
    }
}
