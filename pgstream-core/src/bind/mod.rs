//! Binding: resolve the defining query's tables and columns against the catalog and
//! build the block the planner works on: a join tree of leaves (table occurrences),
//! a filter, and either a projection or an aggregation. Column references become
//! markers (see `ir::marker`); anything DIFFERENTIAL mode cannot maintain is an
//! `Unsupported` error that names the construct and suggests FULL mode.

mod aggregate_leaf;
mod expr;
mod from;
mod function;
mod query;
mod resolve;
mod select;
mod subquery;
mod where_scalar;
mod window_names;

use crate::catalog::{nearest, Catalog, Table};
use crate::error::{Diagnostic, Error, Result};
use crate::ir::marker::{self, as_marker, column_markers, marker, shown, Marker};
use crate::ir::{AggCall, AggFunc, AggLeaf, Block, JoinKind, Leaf, SetOpKind, Shape, Tree};
use crate::sql::fragment::{sql, Sql};
use crate::sql::ident::{ident_value, qualified};
use crate::sql::parse::{expr_range, span_range};
use crate::sql::walk::{
    contains_aggregate, function_name, is_aggregate, output_name, single_arg, VOLATILE,
};
use sqlparser::ast::{
    Expr, GroupByExpr, Ident, JoinConstraint, JoinOperator, OrderBy, OrderByKind, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Spanned, TableFactor, TableWithJoins,
    Value, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// PostgreSQL's system columns: every table has them, but they are not data.
const SYSTEM_COLUMNS: &[&str] = &["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"];

pub(crate) fn unsupported(query: &str, what: &str, node: Option<&dyn SpannedDyn>) -> Error {
    unsupported_at(query, what, node.map(|n| n.span_dyn()))
}

pub(crate) fn unsupported_at(
    query: &str,
    what: &str,
    span: Option<sqlparser::tokenizer::Span>,
) -> Error {
    let span = span.and_then(|s| span_range(query, s));
    Error::Unsupported(
        Diagnostic::new(format!("DIFFERENTIAL mode cannot maintain {what} yet"))
            .with_span(span)
            .with_help("use FULL mode (mode = \"full\"), which recomputes the query on each refresh and applies only the difference"),
    )
}

/// A name resolved to a table column or a column of an inlined subquery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    Col(usize, usize),
    Virtual(usize, usize),
}

/// Object-safe access to a node's span.
pub(crate) trait SpannedDyn {
    fn span_dyn(&self) -> sqlparser::tokenizer::Span;
}
impl<T: Spanned> SpannedDyn for T {
    fn span_dyn(&self) -> sqlparser::tokenizer::Span {
        self.span()
    }
}

pub(crate) struct Binder<'a> {
    pub query: &'a str,
    pub catalog: &'a Catalog,
    pub sources: &'a mut Vec<Table>,
    pub leaves: Vec<Leaf>,
    /// Name scopes, outermost first: the leaves of the query, then of each subquery
    /// being bound. A name resolves in the innermost scope that has it.
    pub frames: Vec<Vec<Entry>>,
    /// Output columns of inlined subqueries and CTEs.
    pub virtuals: Vec<Virtual>,
    /// The non-recursive CTEs in scope (of the query and of the subqueries being
    /// bound, outermost first), inlined where they are referenced: the name, the
    /// body, and how many entries before it its body sees.
    pub ctes: Vec<(String, Query, usize)>,
    /// Window functions are allowed while the select list is bound.
    pub allow_windows: std::cell::Cell<bool>,
    /// The WHERE of a `LATERAL` subquery just bound, waiting to become part of the
    /// condition of the join that brings it in (it may name the join's left side).
    pub lateral_pred: Option<Expr>,
    /// A function leaf just bound whose arguments name the leaves to its left,
    /// waiting for the join that brings it in to become a `Tree::Lateral`.
    pub lateral_func: Option<usize>,
    /// Columns an unqualified name no longer reaches: the two sides' columns of a
    /// `JOIN ... USING` / `NATURAL JOIN`, which the merged column replaces.
    pub hidden: Vec<Hit>,
}

/// What a name scope holds, in FROM order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A table occurrence (index into the leaves).
    Leaf(usize),
    /// An inlined subquery (index into the virtual relations).
    Virtual(usize),
}

/// An inlined subquery or CTE: its alias and its output columns as bound expressions.
#[derive(Debug, Clone)]
pub(crate) struct Virtual {
    pub alias: String,
    pub items: Vec<(String, Expr)>,
}

impl<'a> Binder<'a> {
    /// A binder of the query `query` that registers the tables it reads in `sources`.
    pub fn new(query: &'a str, catalog: &'a Catalog, sources: &'a mut Vec<Table>) -> Self {
        Binder {
            query,
            catalog,
            sources,
            leaves: Vec::new(),
            frames: vec![Vec::new()],
            virtuals: Vec::new(),
            ctes: Vec::new(),
            allow_windows: std::cell::Cell::new(false),
            lateral_pred: None,
            lateral_func: None,
            hidden: Vec::new(),
        }
    }

    /// Resolve a table name against the catalog; register it as a source.
    pub fn table(&mut self, name: &sqlparser::ast::ObjectName) -> Result<usize> {
        let q = qualified(name);
        let explicit_schema = name.0.len() > 1;
        let found = self
            .catalog
            .lookup(explicit_schema.then_some(q.schema.as_str()), &q.name);
        let Some(t) = found else {
            let mut d = Diagnostic::new(format!("unknown table `{}`", name))
                .with_span(span_range(self.query, name.span()));
            if let Some(n) = self.catalog.nearest_table(&q.name) {
                let kind = if self.catalog.views().iter().any(|v| v.name.name == n)
                    && !self.catalog.tables().iter().any(|t| t.name.name == n)
                {
                    "view"
                } else {
                    "table"
                };
                d = d.with_help(format!("a {kind} named `{n}` exists"));
            } else {
                d = d.with_help("create it in a migration, or check the schema the stream table is compiled against");
            }
            return Err(Error::Invalid(d));
        };
        if let Some(i) = self.sources.iter().position(|s| s.name == t.name) {
            Ok(i)
        } else {
            self.sources.push(t.clone());
            Ok(self.sources.len() - 1)
        }
    }
}

/// An item of a correlated aggregate: its name, and whether it is 0 (not NULL) over
/// no rows.
type AggItem = (String, bool);

/// The top-level AND-ed parts of a condition.
fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: sqlparser::ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(inner)
        }
        _ => vec![e],
    }
}

/// A bound expression rendered back to `alias.column` form, for explain.
pub(crate) fn display(e: &Expr, leaves: &[Leaf]) -> String {
    marker::shown(e, leaves).into_string()
}
