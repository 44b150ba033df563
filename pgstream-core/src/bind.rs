//! Binding: resolve the defining query's tables and columns against the catalog and
//! build the block the planner works on: a join tree of leaves (table occurrences),
//! a filter, and either a projection or an aggregation. Column references become
//! markers (see `expr.rs`); anything DIFFERENTIAL mode cannot maintain is an
//! `Unsupported` error that names the construct and suggests FULL mode.

use crate::catalog::{nearest, Catalog, Table};
use crate::error::{Diagnostic, Error, Result};
use crate::ir::marker::{self as expr, as_marker, column_markers, marker, Marker};
use crate::ir::{AggCall, AggFunc, AggLeaf, Block, JoinKind, Leaf, SetOpKind, Shape, Tree};
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
    /// Non-recursive CTEs of the query, inlined where they are referenced.
    pub ctes: Vec<(String, Query)>,
    /// Window functions are allowed while the select list is bound.
    pub allow_windows: std::cell::Cell<bool>,
    /// The WHERE of a `LATERAL` subquery just bound, waiting to become part of the
    /// condition of the join that brings it in (it may name the join's left side).
    pub lateral_pred: Option<Expr>,
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

    /// Bind a query that DIFFERENTIAL mode maintains with delta rules.
    pub fn bind_query(&mut self, q: &Query) -> Result<Block> {
        if let Some(w) = &q.with {
            if w.recursive {
                return Err(unsupported_at(
                    self.query,
                    "WITH RECURSIVE (it is maintained by recompute-and-diff)",
                    Some(w.with_token.0.span),
                ));
            }
            for c in &w.cte_tables {
                let mut body = (*c.query).clone();
                if !c.alias.columns.is_empty() {
                    // WITH x(a, b) AS (...): rename the output columns
                    if let SetExpr::Select(sel) = body.body.as_mut() {
                        for (item, col) in sel.projection.iter_mut().zip(&c.alias.columns) {
                            let e = match item {
                                SelectItem::UnnamedExpr(e)
                                | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
                                _ => continue,
                            };
                            *item = SelectItem::ExprWithAlias {
                                expr: e,
                                alias: col.name.clone(),
                            };
                        }
                    }
                }
                self.ctes.push((ident_value(&c.alias.name), body));
            }
        }
        if let Some(l) = &q.limit {
            return Err(unsupported(self.query, "LIMIT", Some(l)));
        }
        if q.offset.is_some() || q.fetch.is_some() {
            return Err(unsupported(self.query, "OFFSET/FETCH", None));
        }
        let select = match q.body.as_ref() {
            SetExpr::Select(s) if matches!(s.distinct, Some(sqlparser::ast::Distinct::On(_))) => {
                return self.bind_distinct_on(s, q.order_by.as_ref());
            }
            SetExpr::Select(s) => s,
            SetExpr::Query(inner) => return self.bind_query(inner),
            SetExpr::SetOperation { .. } => return self.bind_set_operation(q.body.as_ref()),
            other => {
                let what = match other {
                    SetExpr::SetOperation {
                        op, set_quantifier, ..
                    } => format!("{op} {set_quantifier}").trim().to_string(),
                    SetExpr::Values(_) => "VALUES".to_string(),
                    _ => "this kind of query".to_string(),
                };
                return Err(unsupported(self.query, &what, Some(other)));
            }
        };
        self.bind_select(select)
    }

    /// `a UNION [ALL] b UNION [ALL] c ...` (one operator throughout): each branch is
    /// a projection block in its own name scope; table occurrences are numbered across
    /// branches so their delta terms never collide.
    fn bind_set_operation(&mut self, body: &SetExpr) -> Result<Block> {
        fn flatten<'e>(
            e: &'e SetExpr,
            out: &mut Vec<&'e SetExpr>,
            ops: &mut Vec<(sqlparser::ast::SetOperator, bool)>,
        ) {
            match e {
                SetExpr::SetOperation {
                    op,
                    set_quantifier,
                    left,
                    right,
                } => {
                    flatten(left, out, ops);
                    let all = matches!(set_quantifier, sqlparser::ast::SetQuantifier::All);
                    ops.push((*op, all));
                    flatten(right, out, ops);
                }
                SetExpr::Query(q)
                    if q.with.is_none() && q.order_by.is_none() && q.limit.is_none() =>
                {
                    flatten(&q.body, out, ops)
                }
                other => out.push(other),
            }
        }
        let mut parts = Vec::new();
        let mut ops = Vec::new();
        flatten(body, &mut parts, &mut ops);
        let (op0, all0) = ops[0];
        if ops.iter().any(|&(o, a)| o != op0 || a != all0) {
            return Err(unsupported(
                self.query,
                "a mix of set operators (use FULL mode)",
                Some(body),
            ));
        }
        let op = match op0 {
            sqlparser::ast::SetOperator::Union => SetOpKind::Union,
            sqlparser::ast::SetOperator::Intersect => SetOpKind::Intersect,
            sqlparser::ast::SetOperator::Except => SetOpKind::Except,
            _ => return Err(unsupported(self.query, &format!("{op0}"), Some(body))),
        };
        if op != SetOpKind::Union && parts.len() > 2 {
            return Err(unsupported(
                self.query,
                &format!("{} of more than two queries", op.sql()),
                Some(body),
            ));
        }
        let mut branches: Vec<Block> = Vec::new();
        for part in parts {
            let SetExpr::Select(sel) = part else {
                return Err(unsupported(
                    self.query,
                    "this branch of a set operation",
                    Some(part),
                ));
            };
            self.frames.push(Vec::new());
            let b = self.bind_select(sel);
            self.frames.pop();
            let b = b?;
            if !matches!(b.shape, Shape::Project) {
                return Err(unsupported(
                    self.query,
                    "GROUP BY, aggregates, DISTINCT or window functions inside a branch of a set operation",
                    Some(part),
                ));
            }
            if let Some(first) = branches.first() {
                if first.items.len() != b.items.len() {
                    return Err(Error::Invalid(
                        Diagnostic::new(format!(
                            "each {} query must have the same number of columns",
                            op.sql()
                        ))
                        .with_span(span_range(self.query, part.span())),
                    ));
                }
            }
            branches.push(b);
        }
        for b in &mut branches {
            b.leaves = self.leaves.clone();
        }
        let first = branches[0].clone();
        Ok(Block {
            leaves: self.leaves.clone(),
            shape: Shape::SetOp {
                op,
                all: all0,
                branches,
            },
            ..first
        })
    }

    /// `SELECT DISTINCT ON (keys) ... ORDER BY ...` at the top of the query: a projection
    /// block kept as one row per key, maintained like a partitioned window (the keys
    /// the changes touch are recomputed). Keys and `ORDER BY` items may name an output
    /// column or its position, as in PostgreSQL.
    fn bind_distinct_on(&mut self, s: &Select, order_by: Option<&OrderBy>) -> Result<Block> {
        let Some(sqlparser::ast::Distinct::On(on)) = &s.distinct else {
            unreachable!("called for DISTINCT ON")
        };
        let mut plain = s.clone();
        plain.distinct = None;
        let block = self.bind_select(&plain)?;
        if !matches!(block.shape, Shape::Project) {
            return Err(unsupported_at(
                self.query,
                "DISTINCT ON together with GROUP BY, aggregates or window functions",
                Some(s.select_token.0.span),
            ));
        }
        let resolve = |this: &Self, e: &Expr| -> Result<Expr> {
            match e {
                Expr::Value(sqlparser::ast::ValueWithSpan {
                    value: Value::Number(n, _),
                    ..
                }) => {
                    let idx: usize = n.parse().unwrap_or(0);
                    match block.items.get(idx.wrapping_sub(1)) {
                        Some((_, b)) => Ok(b.clone()),
                        None => Err(Error::Invalid(
                            Diagnostic::new(format!(
                                "position {n} is not in the select list (1 to {})",
                                block.items.len()
                            ))
                            .with_span(expr_range(this.query, e)),
                        )),
                    }
                }
                Expr::Identifier(id) => {
                    let name = ident_value(id);
                    match block.items.iter().find(|(n, _)| *n == name) {
                        Some((_, b)) => Ok(b.clone()),
                        None => this.bind_expr(e, false),
                    }
                }
                _ => this.bind_expr(e, false),
            }
        };
        let mut keys = Vec::new();
        for e in on {
            keys.push(resolve(self, e)?);
        }
        let mut order = Vec::new();
        if let Some(ob) = order_by {
            let OrderByKind::Expressions(exprs) = &ob.kind else {
                return Err(unsupported(self.query, "ORDER BY ALL", None));
            };
            for o in exprs {
                if o.with_fill.is_some() {
                    return Err(unsupported(self.query, "ORDER BY ... WITH FILL", None));
                }
                order.push((resolve(self, &o.expr)?, o.options.to_string()));
            }
        }
        Ok(Block {
            shape: Shape::Window {
                partition: keys,
                distinct_on: Some(order),
            },
            ..block
        })
    }

    fn bind_select(&mut self, s: &Select) -> Result<Block> {
        let rewritten;
        let s = match self.scalar_subqueries_as_joins(s) {
            Some(r) => {
                rewritten = r;
                &rewritten
            }
            None => s,
        };
        let distinct = match &s.distinct {
            None => false,
            Some(sqlparser::ast::Distinct::Distinct) => true,
            Some(sqlparser::ast::Distinct::On(_)) => {
                return Err(unsupported_at(
                    self.query,
                    "DISTINCT ON",
                    Some(s.select_token.0.span),
                ));
            }
        };
        if !s.named_window.is_empty() {
            return Err(unsupported(self.query, "WINDOW clauses", None));
        }
        if s.from.is_empty() {
            return Err(unsupported_at(
                self.query,
                "a query without FROM",
                Some(s.select_token.0.span),
            ));
        }
        // FROM
        let tree = self.bind_from(&s.from)?;
        // WHERE: EXISTS / IN subqueries among its top-level conjuncts become semi and
        // anti joins; the rest is the filter.
        let (tree, rest) = self.where_joins(tree, s.selection.as_ref())?;
        let filter = match rest {
            Some(w) => Some(self.bind_expr(&w, false)?),
            None => None,
        };
        // SELECT list
        self.allow_windows.set(true);
        let items = self.bind_items(s);
        self.allow_windows.set(false);
        let items = items?;
        let has_window = items
            .iter()
            .any(|(_, b, _)| !window_partitions(b).is_empty());
        let _ = has_window;
        self.finish_select(s, tree, filter, items, distinct)
    }

    fn bind_items(&mut self, s: &Select) -> Result<Vec<(String, Expr, Expr)>> {
        let mut items: Vec<(String, Expr, Expr)> = Vec::new(); // name, bound, original
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    items.push((output_name(e), self.bind_expr(e, true)?, e.clone()));
                }
                SelectItem::ExprWithAlias { expr: e, alias } => {
                    items.push((ident_value(alias), self.bind_expr(e, true)?, e.clone()));
                }
                SelectItem::Wildcard(_) => {
                    let outer: Vec<Entry> = self.frames.last().cloned().unwrap_or_default();
                    for entry in outer {
                        let li = match entry {
                            Entry::Leaf(li) => li,
                            Entry::Virtual(vi) => {
                                for (ii, (n, e)) in self.virtuals[vi].items.iter().enumerate() {
                                    if !self.hidden.contains(&Hit::Virtual(vi, ii)) {
                                        items.push((n.clone(), e.clone(), e.clone()));
                                    }
                                }
                                continue;
                            }
                        };
                        let leaf = &self.leaves[li];
                        for (ci, c) in leaf.table.columns.iter().enumerate().filter(|(ci, c)| {
                            !c.name.starts_with("__pgs_")
                                && !self.hidden.contains(&Hit::Col(li, *ci))
                        }) {
                            let m = marker(Marker::Col { leaf: li, col: ci });
                            items.push((c.name.clone(), m.clone(), m));
                        }
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => {
                    let alias =
                        n.0.last()
                            .and_then(|p| p.as_ident())
                            .map(ident_value)
                            .unwrap_or_default();
                    let virt = self
                        .frames
                        .last()
                        .into_iter()
                        .flatten()
                        .find_map(|e| match *e {
                            Entry::Virtual(vi) if self.virtuals[vi].alias == alias => Some(vi),
                            _ => None,
                        });
                    if let Some(vi) = virt {
                        for (n, e) in &self.virtuals[vi].items {
                            items.push((n.clone(), e.clone(), e.clone()));
                        }
                        continue;
                    }
                    let Some(li) = self.leaves.iter().position(|l| l.alias == alias) else {
                        return Err(Error::Invalid(
                            Diagnostic::new(format!("unknown table or alias `{n}` in `{n}.*`"))
                                .with_span(span_range(self.query, n.span())),
                        ));
                    };
                    for (ci, c) in self.leaves[li]
                        .table
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.name.starts_with("__pgs_"))
                    {
                        let m = marker(Marker::Col { leaf: li, col: ci });
                        items.push((c.name.clone(), m.clone(), m));
                    }
                }
                SelectItem::QualifiedWildcard(k, _) => {
                    return Err(unsupported(self.query, "this wildcard", Some(k)));
                }
            }
        }
        // duplicate output names
        for (i, (n, _, orig)) in items.iter().enumerate() {
            if items[..i].iter().any(|(m, _, _)| m == n) {
                return Err(Error::Invalid(
                    Diagnostic::new(format!("the output column `{n}` appears twice; a stream table needs distinct column names"))
                        .with_span(expr_range(self.query, orig))
                        .with_help("give one of them another name with AS"),
                ));
            }
        }
        Ok(items)
    }

    fn finish_select(
        &mut self,
        s: &Select,
        tree: Tree,
        filter: Option<Expr>,
        items: Vec<(String, Expr, Expr)>,
        distinct: bool,
    ) -> Result<Block> {
        // GROUP BY
        let group_exprs: Vec<Expr> = match &s.group_by {
            GroupByExpr::Expressions(exprs, mods) => {
                if !mods.is_empty() {
                    return Err(unsupported(
                        self.query,
                        "GROUP BY modifiers (ROLLUP/CUBE/GROUPING SETS)",
                        None,
                    ));
                }
                exprs.clone()
            }
            GroupByExpr::All(_) => return Err(unsupported(self.query, "GROUP BY ALL", None)),
        };
        let has_agg = items.iter().any(|(_, b, _)| contains_aggregate(b));
        let group_exprs = if distinct {
            // SELECT DISTINCT a, b  ≡  SELECT a, b ... GROUP BY a, b: a row stays while
            // its multiplicity (__pgs_count) is positive.
            if has_agg || !group_exprs.is_empty() || s.having.is_some() {
                return Err(unsupported_at(
                    self.query,
                    "DISTINCT together with GROUP BY or aggregates",
                    Some(s.select_token.0.span),
                ));
            }
            items.iter().map(|(_, _, orig)| orig.clone()).collect()
        } else {
            group_exprs
        };
        let windows: Vec<Vec<Expr>> = items
            .iter()
            .flat_map(|(_, b, _)| window_partitions(b))
            .collect();
        if !windows.is_empty() {
            if has_agg || !group_exprs.is_empty() || s.having.is_some() {
                return Err(unsupported_at(
                    self.query,
                    "window functions together with GROUP BY or aggregates",
                    Some(s.select_token.0.span),
                ));
            }
            // Partitions are independent: recompute the ones the changes touch. Windows
            // with different partitions share the keys they have in common; none in
            // common (or no PARTITION BY) means the whole result.
            let mut common: Vec<Expr> = windows[0].clone();
            for w in &windows[1..] {
                common.retain(|e| w.contains(e));
            }
            let items = items.into_iter().map(|(n, b, _)| (n, b)).collect();
            return Ok(Block {
                leaves: self.leaves.clone(),
                tree,
                filter_text: s.selection.as_ref().map(|e| e.to_string()),
                filter,
                items,
                shape: Shape::Window {
                    partition: common,
                    distinct_on: None,
                },
            });
        }
        if group_exprs.is_empty() && !has_agg && s.having.is_none() {
            let items = items.into_iter().map(|(n, b, _)| (n, b)).collect();
            return Ok(Block {
                leaves: self.leaves.clone(),
                tree,
                filter_text: s.selection.as_ref().map(|e| e.to_string()),
                filter,
                items,
                shape: Shape::Project,
            });
        }
        // bind group keys (positional and output-alias references allowed)
        let mut groups: Vec<Expr> = Vec::new();
        let mut group_texts = Vec::new();
        for g in &group_exprs {
            if matches!(g, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)) {
                return Err(unsupported(
                    self.query,
                    "GROUP BY ROLLUP/CUBE/GROUPING SETS",
                    Some(g),
                ));
            }
            let bound = match g {
                Expr::Value(sqlparser::ast::ValueWithSpan {
                    value: Value::Number(n, _),
                    ..
                }) => {
                    let idx: usize = n.parse().unwrap_or(0);
                    if idx == 0 || idx > items.len() {
                        return Err(Error::Invalid(
                            Diagnostic::new(format!(
                                "GROUP BY position {n} is not in the select list"
                            ))
                            .with_span(expr_range(self.query, g)),
                        ));
                    }
                    items[idx - 1].1.clone()
                }
                Expr::Identifier(id)
                    if self.try_resolve(g).is_none()
                        && items.iter().any(|(n, _, _)| *n == ident_value(id)) =>
                {
                    items
                        .iter()
                        .find(|(n, _, _)| *n == ident_value(id))
                        .unwrap()
                        .1
                        .clone()
                }
                _ => self.bind_expr(g, false)?,
            };
            if contains_aggregate(&bound) {
                return Err(Error::Invalid(
                    Diagnostic::new("aggregate functions are not allowed in GROUP BY")
                        .with_span(expr_range(self.query, g)),
                ));
            }
            if !groups.contains(&bound) {
                groups.push(bound);
                group_texts.push(g.to_string());
            }
        }
        // rewrite items over group slots and aggregate slots
        let mut aggs: Vec<AggCall> = Vec::new();
        let mut out_items = Vec::new();
        for (name, bound, orig) in items {
            let rewritten = self.rewrite_aggregate_item(
                &bound,
                &orig,
                &mut groups,
                &mut group_texts,
                &mut aggs,
            )?;
            out_items.push((name, rewritten));
        }
        let having = match &s.having {
            Some(h) => {
                let bound = self.bind_expr(h, true)?;
                Some(self.rewrite_aggregate_item(
                    &bound,
                    h,
                    &mut groups,
                    &mut group_texts,
                    &mut aggs,
                )?)
            }
            None => None,
        };
        let recompute = having.is_some() || aggs.iter().any(|a| a.func == AggFunc::Other);
        Ok(Block {
            leaves: self.leaves.clone(),
            tree,
            filter_text: s.selection.as_ref().map(|e| e.to_string()),
            filter,
            items: out_items,
            shape: Shape::Aggregate {
                groups,
                group_texts,
                aggs,
                having,
                recompute,
            },
        })
    }

    fn rewrite_aggregate_item(
        &self,
        bound: &Expr,
        orig: &Expr,
        groups: &mut Vec<Expr>,
        group_texts: &mut Vec<String>,
        aggs: &mut Vec<AggCall>,
    ) -> Result<Expr> {
        struct Rw<'b> {
            leaves: &'b [Leaf],
            groups: &'b [Expr],
            aggs: &'b mut Vec<AggCall>,
            err: Option<Error>,
            query: &'b str,
            orig: &'b Expr,
        }
        impl VisitorMut for Rw<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Some(k) = self.groups.iter().position(|g| g == e) {
                    *e = marker(Marker::Grp(k));
                    return ControlFlow::Continue(());
                }
                if let Expr::Function(f) = &*e {
                    if is_aggregate(f) {
                        match classify_aggregate(f) {
                            Ok((func, arg)) => {
                                // A counter keeps the largest scale it ever saw, so a SUM or
                                // AVG over values of varying numeric scale is recomputed to
                                // reproduce PostgreSQL's result exactly.
                                let func = match (&func, &arg) {
                                    (AggFunc::Sum | AggFunc::Avg, Some(a))
                                        if varying_scale(a, self.leaves) =>
                                    {
                                        AggFunc::Other
                                    }
                                    _ => func,
                                };
                                let whole = e.clone();
                                let k = match self.aggs.iter().position(|a| a.call == whole) {
                                    Some(k) => k,
                                    None => {
                                        let text = display_call(f, self.leaves);
                                        self.aggs.push(AggCall {
                                            func,
                                            arg,
                                            call: whole,
                                            text,
                                        });
                                        self.aggs.len() - 1
                                    }
                                };
                                *e = marker(Marker::Agg(k));
                            }
                            Err(what) => {
                                self.err = Some(unsupported(self.query, &what, Some(self.orig)));
                                return ControlFlow::Break(());
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut e = bound.clone();
        {
            let mut rw = Rw {
                leaves: &self.leaves,
                groups,
                aggs,
                err: None,
                query: self.query,
                orig,
            };
            let _ = e.visit(&mut rw);
            if let Some(err) = rw.err {
                return Err(err);
            }
        }
        // Columns left outside aggregates must be functionally dependent on the group
        // keys (PostgreSQL allows columns of a table whose primary key is grouped).
        let loose = column_markers(&e);
        if loose.is_empty() {
            return Ok(e);
        }
        for (leaf, col) in loose {
            let l = &self.leaves[leaf];
            let pk_grouped = !l.table.primary_key.is_empty()
                && l.table.primary_key.iter().all(|k| {
                    let ci = l.table.column_index(k).unwrap_or(usize::MAX);
                    groups.contains(&marker(Marker::Col { leaf, col: ci }))
                });
            if !pk_grouped {
                return Err(Error::Invalid(
                    Diagnostic::new(format!(
                        "column `{}.{}` must appear in the GROUP BY clause or be used in an aggregate function",
                        l.alias, l.table.columns[col].name
                    ))
                    .with_span(expr_range(self.query, orig)),
                ));
            }
            let m = marker(Marker::Col { leaf, col });
            if !groups.contains(&m) {
                groups.push(m);
                group_texts.push(format!("{}.{}", l.alias, l.table.columns[col].name));
            }
        }
        self.rewrite_aggregate_item(bound, orig, groups, group_texts, aggs)
    }

    /// `EXISTS (q)`, `NOT EXISTS (q)`, `x IN (q)`, `x NOT IN (q)` as a semi or anti
    /// join of the subquery's FROM, with its WHERE (and the IN comparison) as the
    /// join condition. `NOT IN` follows SQL: a NULL comparison counts as a match, so
    /// `x NOT IN (q)` keeps a row only when every comparison is false.
    fn subquery_join(&mut self, c: &Expr) -> Result<Option<(JoinKind, Tree, Expr)>> {
        let (negated, subquery, lhs) = match c {
            Expr::Exists { subquery, negated } => (*negated, subquery, None),
            Expr::UnaryOp {
                op: sqlparser::ast::UnaryOperator::Not,
                expr,
            } => match expr.as_ref() {
                Expr::Exists { subquery, negated } => (!*negated, subquery, None),
                Expr::Nested(inner) => match inner.as_ref() {
                    Expr::Exists { subquery, negated } => (!*negated, subquery, None),
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            },
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => (*negated, subquery, Some(expr.as_ref())),
            _ => return Ok(None),
        };
        let q = subquery.as_ref();
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return Err(unsupported(
                self.query,
                "this kind of subquery (only SELECT ... FROM ... WHERE ...)",
                Some(c),
            ));
        };
        if !is_simple_spj(q, sel) || q.order_by.is_some() {
            return Err(unsupported(
                self.query,
                "subqueries with GROUP BY, aggregates, DISTINCT, LIMIT or WITH in EXISTS/IN",
                Some(c),
            ));
        }
        self.frames.push(Vec::new());
        let result = (|| {
            let right = self.bind_from(&sel.from)?;
            let mut conds: Vec<Expr> = Vec::new();
            if let Some(w) = &sel.selection {
                conds.push(self.bind_expr(w, false)?);
            }
            if let Some(lhs) = lhs {
                let item = match sel.projection.as_slice() {
                    [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e,
                    _ => {
                        return Err(Error::Invalid(
                            Diagnostic::new("a subquery after IN must return exactly one column")
                                .with_span(expr_range(self.query, c)),
                        ))
                    }
                };
                let inner = self.bind_expr(item, false)?;
                // the left-hand side belongs to the outer query
                let saved = self.frames.pop();
                let outer = self.bind_expr(lhs, false);
                if let Some(f) = saved {
                    self.frames.push(f);
                }
                let eq = Expr::BinaryOp {
                    left: Box::new(Expr::Nested(Box::new(outer?))),
                    op: sqlparser::ast::BinaryOperator::Eq,
                    right: Box::new(Expr::Nested(Box::new(inner))),
                };
                conds.push(if negated {
                    Expr::IsNotFalse(Box::new(Expr::Nested(Box::new(eq))))
                } else {
                    eq
                });
            }
            let on = conds
                .into_iter()
                .map(|e| Expr::Nested(Box::new(e)))
                .reduce(|a, b| Expr::BinaryOp {
                    left: Box::new(a),
                    op: sqlparser::ast::BinaryOperator::And,
                    right: Box::new(b),
                })
                .unwrap_or(Expr::Value(Value::Boolean(true).into()));
            Ok((
                if negated {
                    JoinKind::Anti
                } else {
                    JoinKind::Semi
                },
                right,
                on,
            ))
        })();
        self.frames.pop();
        result.map(Some)
    }

    /// The SELECT of a subquery that is inlined (select-project-join, without WITH),
    /// else the error naming `what` (`subqueries in FROM`, `LATERAL subqueries`) or
    /// `complex` (what makes it more than that).
    fn spj_select<'q>(
        &self,
        q: &'q Query,
        f: &TableFactor,
        what: &str,
        complex: &str,
    ) -> Result<&'q Select> {
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return Err(unsupported(
                self.query,
                &format!("{what} other than SELECT ... FROM ... WHERE ..."),
                Some(f),
            ));
        };
        if !is_simple_spj(q, sel) {
            return Err(unsupported(self.query, complex, Some(f)));
        }
        Ok(sel)
    }

    /// `LATERAL (SELECT ... FROM ... WHERE ...) AS alias`: like a subquery in FROM,
    /// except that its WHERE may name the tables to its left. The WHERE is left in
    /// `lateral_pred` for the join that brings the subquery in (its condition), so it
    /// is evaluated where both sides are known; anything else in the subquery must
    /// stay within it.
    fn bind_lateral(
        &mut self,
        q: &Query,
        alias: String,
        col_names: &[String],
        f: &TableFactor,
    ) -> Result<Tree> {
        let sel = self.spj_select(
            q,
            f,
            "LATERAL subqueries",
            "LATERAL subqueries with GROUP BY, aggregates, DISTINCT, LIMIT or WITH (they need a delta rule for an aggregate below a join)",
        )?;
        let mut body = sel.clone();
        let pred = body.selection.take();
        let q2 = Query {
            body: Box::new(SetExpr::Select(Box::new(body))),
            ..q.clone()
        };
        let first_leaf = self.leaves.len();
        let tree = self.bind_derived(&q2, alias, col_names, f)?;
        // Joins inside the subquery are delta-maintained on their own: their
        // conditions must not name the tables outside it.
        let inside: Vec<usize> = (first_leaf..self.leaves.len()).collect();
        let mut marks = Vec::new();
        tree.condition_markers(&mut marks);
        if marks.iter().any(|(l, _)| !inside.contains(l)) {
            return Err(unsupported(
                self.query,
                "LATERAL subqueries that name the outer tables outside their WHERE",
                Some(f),
            ));
        }
        if let Some(w) = pred {
            // Bound in the scope of the subquery's tables, the outer ones visible.
            let frame: Vec<Entry> = inside.iter().map(|&l| Entry::Leaf(l)).collect();
            self.frames.push(frame);
            let bound = self.bind_expr(&w, false);
            self.frames.pop();
            self.lateral_pred = Some(bound?);
        }
        Ok(tree)
    }

    /// Inline a subquery in FROM (or a CTE reference): its tables join the tree, its
    /// WHERE becomes a filter node, and its output columns become expressions that
    /// references to `alias.column` are replaced with.
    fn bind_derived(
        &mut self,
        q: &Query,
        alias: String,
        col_names: &[String],
        f: &TableFactor,
    ) -> Result<Tree> {
        if let Some(tree) = self.aggregate_leaf(q, &alias, col_names, f)? {
            return Ok(tree);
        }
        let sel = self.spj_select(
            q,
            f,
            "subqueries in FROM",
            "subqueries in FROM, CTEs or views with GROUP BY, aggregates, DISTINCT, LIMIT or WITH",
        )?;
        if self.frame_has_alias(&alias) {
            return Err(Error::Invalid(
                Diagnostic::new(format!("table name `{alias}` specified more than once"))
                    .with_span(span_range(self.query, f.span())),
            ));
        }
        self.frames.push(Vec::new());
        let result = (|| {
            let tree = self.bind_from(&sel.from)?;
            let (mut tree, rest) = self.where_joins(tree, sel.selection.as_ref())?;
            if let Some(w) = rest {
                let text = w.to_string();
                let pred = self.bind_expr(&w, false)?;
                tree = Tree::Filter {
                    input: Box::new(tree),
                    pred,
                    text,
                };
            }
            let mut items: Vec<(String, Expr)> = Vec::new();
            for item in &sel.projection {
                match item {
                    SelectItem::UnnamedExpr(e) => {
                        items.push((output_name(e), self.bind_expr(e, false)?))
                    }
                    SelectItem::ExprWithAlias { expr: e, alias } => {
                        items.push((ident_value(alias), self.bind_expr(e, false)?))
                    }
                    SelectItem::Wildcard(_) => {
                        for entry in self.frames.last().cloned().unwrap_or_default() {
                            match entry {
                                Entry::Leaf(li) => {
                                    for (ci, c) in self.leaves[li].table.columns.iter().enumerate()
                                    {
                                        if !c.name.starts_with("__pgs_")
                                            && !self.hidden.contains(&Hit::Col(li, ci))
                                        {
                                            items.push((
                                                c.name.clone(),
                                                marker(Marker::Col { leaf: li, col: ci }),
                                            ));
                                        }
                                    }
                                }
                                Entry::Virtual(vi) => {
                                    for (ii, it) in self.virtuals[vi].items.iter().enumerate() {
                                        if !self.hidden.contains(&Hit::Virtual(vi, ii)) {
                                            items.push(it.clone());
                                        }
                                    }
                                }
                            }
                        }
                    }
                    other => {
                        return Err(unsupported(
                            self.query,
                            "this select item in a subquery",
                            Some(other),
                        ))
                    }
                }
            }
            Ok((tree, items))
        })();
        self.frames.pop();
        let (tree, mut items) = result?;
        if !col_names.is_empty() {
            if col_names.len() > items.len() {
                return Err(Error::Invalid(
                    Diagnostic::new(format!(
                        "`{alias}` has {} columns but {} names were given",
                        items.len(),
                        col_names.len()
                    ))
                    .with_span(span_range(self.query, f.span())),
                ));
            }
            for (item, n) in items.iter_mut().zip(col_names) {
                item.0 = n.clone();
            }
        }
        self.virtuals.push(Virtual { alias, items });
        let vi = self.virtuals.len() - 1;
        if let Some(frame) = self.frames.last_mut() {
            frame.push(Entry::Virtual(vi));
        }
        Ok(tree)
    }

    /// `(SELECT g, agg(x) FROM t [WHERE ...] GROUP BY g [HAVING ...]) AS alias` (or
    /// `SELECT DISTINCT g FROM t ...`): an aggregate over one table whose every GROUP
    /// BY expression is an output column becomes one leaf, identified by its group keys (see [`AggLeaf`]). `None` when
    /// the subquery is not of that form (the caller then tries to inline it).
    fn aggregate_leaf(
        &mut self,
        q: &Query,
        alias: &str,
        col_names: &[String],
        f: &TableFactor,
    ) -> Result<Option<Tree>> {
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return Ok(None);
        };
        // `SELECT DISTINCT a, b` is `GROUP BY a, b`.
        let distinct_items: Vec<Expr>;
        let groups = match (&sel.group_by, &sel.distinct) {
            (GroupByExpr::Expressions(g, m), None) if !g.is_empty() && m.is_empty() => g,
            (GroupByExpr::Expressions(g, _), Some(sqlparser::ast::Distinct::Distinct))
                if g.is_empty() && sel.having.is_none() =>
            {
                let mut v = Vec::new();
                for item in &sel.projection {
                    match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }
                            if !contains_aggregate(e) =>
                        {
                            v.push(e.clone())
                        }
                        _ => return Ok(None),
                    }
                }
                distinct_items = v;
                &distinct_items
            }
            _ => return Ok(None),
        };
        if q.with.is_some()
            || q.limit.is_some()
            || q.offset.is_some()
            || q.fetch.is_some()
            || sel.top.is_some()
            || sel.qualify.is_some()
            || !sel.named_window.is_empty()
            || sel.from.len() != 1
            || !sel.from[0].joins.is_empty()
        {
            return Ok(None);
        }
        let TableFactor::Table {
            name,
            alias: t_alias,
            args: None,
            ..
        } = &sel.from[0].relation
        else {
            return Ok(None);
        };
        if t_alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
            return Ok(None);
        }
        if name.0.len() == 1 {
            let n = ident_value(name.0[0].as_ident().expect("ident"));
            if self.ctes.iter().any(|(c, _)| *c == n) {
                return Ok(None);
            }
        }
        // No subqueries or window functions inside.
        struct Plain(bool);
        impl sqlparser::ast::Visitor for Plain {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                let bad = match e {
                    Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => true,
                    Expr::Function(f) => f.over.is_some(),
                    _ => false,
                };
                if bad {
                    self.0 = false;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            }
        }
        let mut plain = Plain(true);
        let _ = sqlparser::ast::Visit::visit(q, &mut plain);
        if !plain.0 {
            return Ok(None);
        }
        let mut items: Vec<(String, &Expr)> = Vec::new();
        for item in &sel.projection {
            match item {
                SelectItem::UnnamedExpr(e) => items.push((output_name(e), e)),
                SelectItem::ExprWithAlias { expr: e, alias } => items.push((ident_value(alias), e)),
                _ => return Ok(None),
            }
        }
        // Each GROUP BY expression is an output column (by its text or its position).
        let mut key_cols = Vec::new();
        let mut group_exprs: Vec<&Expr> = Vec::new();
        for g in groups {
            let pos = match g {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n.parse::<usize>().ok().and_then(|k| k.checked_sub(1)),
                    _ => None,
                },
                _ => items
                    .iter()
                    .position(|(_, e)| e.to_string() == g.to_string()),
            };
            let Some(pos) = pos.filter(|p| *p < items.len()) else {
                return Ok(None);
            };
            if !key_cols.contains(&pos) {
                key_cols.push(pos);
                group_exprs.push(items[pos].1);
            }
        }
        // Bind the parts against the table alone, for their errors (unknown columns,
        // volatile functions, misplaced aggregates); the markers are not kept.
        let source = self.table(name)?;
        let table = self.sources[source].clone();
        let inner_alias = t_alias
            .as_ref()
            .map(|a| ident_value(&a.name))
            .unwrap_or_else(|| table.name.name.clone());
        let mark = self.leaves.len();
        self.leaves.push(Leaf {
            source,
            alias: inner_alias.clone(),
            table: table.clone(),
            agg: None,
        });
        self.frames.push(vec![Entry::Leaf(mark)]);
        let mut used: Vec<usize> = table
            .primary_key
            .iter()
            .filter_map(|k| table.column_index(k))
            .collect();
        let checked = (|| {
            let mut bound = Vec::new();
            for (_, e) in &items {
                bound.push(self.bind_expr(e, true)?);
            }
            if let Some(w) = &sel.selection {
                bound.push(self.bind_expr(w, false)?);
            }
            for g in &group_exprs {
                bound.push(self.bind_expr(g, false)?);
            }
            if let Some(h) = &sel.having {
                bound.push(self.bind_expr(h, true)?);
            }
            Ok::<Vec<Expr>, Error>(bound)
        })();
        self.frames.pop();
        self.leaves.truncate(mark);
        for e in &checked? {
            for (l, c) in column_markers(e) {
                if l != mark {
                    // a name of an enclosing query: not a plain subquery in FROM
                    return Ok(None);
                }
                if !used.contains(&c) {
                    used.push(c);
                }
            }
        }
        used.sort_unstable();
        let mut names: Vec<String> = items.iter().map(|(n, _)| n.clone()).collect();
        if col_names.len() > names.len() {
            return Ok(None);
        }
        // The output types, for NULL padding and the types of expressions over them.
        let item_sql: Vec<String> = items.iter().map(|(_, e)| e.to_string()).collect();
        let text = format!(
            "SELECT {} FROM {} AS {}{} GROUP BY {}{}",
            item_sql
                .iter()
                .zip(&names)
                .map(|(e, n)| format!("{e} AS {}", crate::sql::ident::quote_ident(n)))
                .collect::<Vec<_>>()
                .join(", "),
            crate::sql::ident::quote_qualified(&table.name),
            crate::sql::ident::quote_ident(&inner_alias),
            sel.selection
                .as_ref()
                .map(|w| format!(" WHERE {w}"))
                .unwrap_or_default(),
            group_exprs
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            sel.having
                .as_ref()
                .map(|h| format!(" HAVING {h}"))
                .unwrap_or_default(),
        );
        let mut cols: Vec<crate::ir::OutputColumn> = names
            .iter()
            .map(|n| crate::ir::OutputColumn {
                name: n.clone(),
                sql_type: None,
                nullable: None,
            })
            .collect();
        crate::analyze::infer::annotate(&text, self.catalog, &mut cols);
        if cols.iter().any(|c| c.sql_type.is_none()) {
            return Ok(None);
        }
        for (n, c) in names.iter_mut().zip(col_names) {
            *n = c.clone();
        }
        if names
            .iter()
            .enumerate()
            .any(|(i, n)| n.is_empty() || names[..i].contains(n))
        {
            return Ok(None);
        }
        if self.frame_has_alias(alias) {
            return Err(Error::Invalid(
                Diagnostic::new(format!("table name `{alias}` specified more than once"))
                    .with_span(span_range(self.query, f.span())),
            ));
        }
        let leaf_table = Table {
            name: crate::spec::QualifiedName::new("", alias),
            columns: names
                .iter()
                .zip(&cols)
                .map(|(n, c)| crate::catalog::Column {
                    name: n.clone(),
                    sql_type: c.sql_type.clone().unwrap_or_default(),
                    nullable: c.nullable.unwrap_or(true),
                })
                .collect(),
            primary_key: key_cols.iter().map(|&k| names[k].clone()).collect(),
            oid: None,
        };
        self.leaves.push(Leaf {
            source,
            alias: alias.to_string(),
            table: leaf_table,
            agg: Some(AggLeaf {
                alias: inner_alias,
                items: item_sql,
                filter: sel.selection.as_ref().map(|w| w.to_string()),
                groups: group_exprs.iter().map(|g| g.to_string()).collect(),
                having: sel.having.as_ref().map(|h| h.to_string()),
                key_cols,
                text: q.to_string(),
                used,
            }),
        });
        let idx = self.leaves.len() - 1;
        if let Some(frame) = self.frames.last_mut() {
            frame.push(Entry::Leaf(idx));
        }
        Ok(Some(Tree::Leaf(idx)))
    }

    /// A correlated aggregate over one table: `SELECT agg1(x) [AS a1], ... FROM t
    /// WHERE t.k = o.k AND p(t)` (each item exactly one aggregate call, no GROUP BY,
    /// correlated by equalities between expressions over `t` and expressions over the
    /// enclosing query) as the same aggregates grouped by the correlation keys,
    /// `SELECT t.k AS __pgs_k0, agg1(x) AS a1, ... FROM t WHERE p(t) GROUP BY t.k`,
    /// with the outer expressions to join it on and, per item, its name and whether
    /// it is a `count` (0, not NULL, over no rows). `names` renames the items. `None`
    /// when the subquery is not of that form.
    fn correlated_aggregate(
        &self,
        sub: &Query,
        names: Option<&[String]>,
    ) -> Option<(Query, Vec<Expr>, Vec<AggItem>)> {
        use sqlparser::ast::{BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments};
        let SetExpr::Select(inner) = sub.body.as_ref() else {
            return None;
        };
        if sub.with.is_some()
            || sub.limit.is_some()
            || sub.offset.is_some()
            || sub.fetch.is_some()
            || inner.distinct.is_some()
            || inner.having.is_some()
            || !matches!(&inner.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            || inner.from.len() != 1
            || !inner.from[0].joins.is_empty()
            || !inner.named_window.is_empty()
        {
            return None;
        }
        let TableFactor::Table {
            name: tname,
            alias: talias,
            args: None,
            ..
        } = &inner.from[0].relation
        else {
            return None;
        };
        if talias.as_ref().is_some_and(|a| !a.columns.is_empty())
            || tname.0.len() == 1
                && self
                    .ctes
                    .iter()
                    .any(|(c, _)| *c == ident_value(tname.0[0].as_ident().expect("ident")))
        {
            return None;
        }
        let q = qualified(tname);
        let table = self
            .catalog
            .lookup((tname.0.len() > 1).then_some(q.schema.as_str()), &q.name)?;
        let ia = talias
            .as_ref()
            .map(|a| ident_value(&a.name))
            .unwrap_or_else(|| table.name.name.clone());
        let cols: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        // The items: aggregate calls over the inner table only.
        let mut items: Vec<(String, Expr, bool)> = Vec::new();
        for (k, item) in inner.projection.iter().enumerate() {
            let (e, name) = match item {
                SelectItem::UnnamedExpr(e) => (e, output_name(e)),
                SelectItem::ExprWithAlias { expr: e, alias } => (e, ident_value(alias)),
                _ => return None,
            };
            let Expr::Function(f) = e else { return None };
            if !is_aggregate(f)
                || VOLATILE.contains(&function_name(f).as_str())
                || !f.within_group.is_empty()
            {
                return None;
            }
            let mut parts: Vec<&Expr> = f.filter.iter().map(|x| x.as_ref()).collect();
            match &f.args {
                FunctionArguments::List(l) => {
                    if !l.clauses.is_empty() {
                        return None;
                    }
                    for a in &l.args {
                        match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => parts.push(x),
                            FunctionArg::Unnamed(_) => {}
                            _ => return None,
                        }
                    }
                }
                FunctionArguments::None => {}
                FunctionArguments::Subquery(_) => return None,
            }
            for x in parts {
                if correlation_sides(x, &ia, &cols)?.1 {
                    return None;
                }
            }
            let name = match names {
                Some(n) => n.get(k).cloned().unwrap_or(name),
                None => name,
            };
            // the aggregates that are 0 over no rows (the others are NULL)
            let counts = matches!(function_name(f).as_str(), "count" | "regr_count");
            items.push((name, e.clone(), counts));
        }
        if items.is_empty() {
            return None;
        }
        let mut keys: Vec<(Expr, Expr)> = Vec::new(); // (inner, outer)
        let mut filters: Vec<Expr> = Vec::new();
        for c in inner.selection.as_ref().map(conjuncts).unwrap_or_default() {
            match correlation_sides(c, &ia, &cols)? {
                (_, false) => filters.push(c.clone()),
                (true, true) => {
                    let Expr::BinaryOp {
                        left,
                        op: BinaryOperator::Eq,
                        right,
                    } = c
                    else {
                        return None;
                    };
                    let l = correlation_sides(left, &ia, &cols)?;
                    let r = correlation_sides(right, &ia, &cols)?;
                    match (l, r) {
                        ((true, false), (false, true)) => {
                            keys.push(((**left).clone(), (**right).clone()))
                        }
                        ((false, true), (true, false)) => {
                            keys.push(((**right).clone(), (**left).clone()))
                        }
                        _ => return None,
                    }
                }
                (false, true) => return None,
            }
        }
        if keys.is_empty() {
            return None;
        }
        let mut body = (**inner).clone();
        body.projection = keys
            .iter()
            .enumerate()
            .map(|(k, (e, _))| SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::new(format!("__pgs_k{k}")),
            })
            .chain(items.iter().map(|(n, e, _)| SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', n.clone()),
            }))
            .collect();
        body.selection = filters.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        });
        body.group_by =
            GroupByExpr::Expressions(keys.iter().map(|(e, _)| e.clone()).collect(), vec![]);
        let mut subquery = sub.clone();
        subquery.body = Box::new(SetExpr::Select(Box::new(body)));
        subquery.order_by = None;
        Some((
            subquery,
            keys.into_iter().map(|(_, o)| o).collect(),
            items.into_iter().map(|(n, _, c)| (n, c)).collect(),
        ))
    }

    /// Correlated aggregates as joins, before the select is bound:
    ///
    /// - `SELECT ..., (SELECT agg(x) FROM t WHERE t.k = o.k AND p(t)) AS n FROM ...`:
    ///   a scalar subquery in the select list, when [`Binder::correlated_aggregate`]
    ///   takes its body, becomes `LEFT JOIN (SELECT t.k AS __pgs_k0, agg(x) AS
    ///   __pgs_v FROM t WHERE p(t) GROUP BY t.k) AS __pgs_sq<n> ON __pgs_k0 = o.k`
    ///   and the item reads `__pgs_v`;
    /// - `... CROSS JOIN LATERAL (SELECT agg(x) AS a, ... FROM t WHERE t.k = o.k) AS s`
    ///   (or `, LATERAL (...)` as the second of two FROM items) likewise becomes
    ///   `LEFT JOIN (...) AS s ON s.__pgs_k0 = o.k`.
    ///
    /// A `count` is read as `COALESCE(..., 0)` (a count over no rows is 0, an outer
    /// row without a group gets NULL from the join); any other aggregate over no rows
    /// is NULL, as from the join. The join keeps each outer row once: the grouped
    /// subquery has one row per key. The query must be a projection (the scalar
    /// subqueries: with one FROM item, the join is appended to its joins); a column of
    /// a `LATERAL` subquery must be named with its alias. `None` when there is
    /// nothing to rewrite, or the query is not of that form.
    fn scalar_subqueries_as_joins(&self, s: &Select) -> Option<Select> {
        use sqlparser::ast::{
            BinaryOperator, Join, JoinOperator as JO, ObjectName, TableAlias, VisitMut, VisitorMut,
        };
        let is_scalar = |i: &SelectItem| {
            matches!(
                i,
                SelectItem::UnnamedExpr(Expr::Subquery(_))
                    | SelectItem::ExprWithAlias {
                        expr: Expr::Subquery(_),
                        ..
                    }
            )
        };
        let is_lateral = |f: &TableFactor| matches!(f, TableFactor::Derived { lateral: true, .. });
        // CROSS JOIN, or [LEFT] JOIN ... ON TRUE: the subquery has a row for every
        // outer row, so these are the same.
        let is_cross = |op: &JO| match op {
            JO::CrossJoin => true,
            JO::Inner(JoinConstraint::On(e))
            | JO::Join(JoinConstraint::On(e))
            | JO::Left(JoinConstraint::On(e))
            | JO::LeftOuter(JoinConstraint::On(e)) => {
                matches!(e, Expr::Value(v) if matches!(v.value, Value::Boolean(true)))
            }
            _ => false,
        };
        let laterals = s.from.iter().any(|t| {
            t.joins
                .iter()
                .any(|j| is_lateral(&j.relation) && is_cross(&j.join_operator))
        }) || (s.from.len() == 2
            && is_lateral(&s.from[1].relation)
            && s.from[1].joins.is_empty());
        let scalars = s.projection.iter().any(is_scalar);
        if !(scalars || laterals)
            || s.distinct.is_some()
            || s.having.is_some()
            || !matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            || s.projection.iter().any(|i| match i {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    !matches!(e, Expr::Subquery(_)) && contains_aggregate(e)
                }
                _ => true,
            })
        {
            return None;
        }
        let col = |alias: &str, c: &str| {
            Expr::CompoundIdentifier(vec![Ident::new(alias), Ident::with_quote('"', c)])
        };
        let coalesce = |e: Expr| {
            Expr::Function(sqlparser::ast::Function {
                name: ObjectName(vec![sqlparser::ast::ObjectNamePart::Identifier(
                    Ident::new("coalesce"),
                )]),
                uses_odbc_syntax: false,
                parameters: sqlparser::ast::FunctionArguments::None,
                args: sqlparser::ast::FunctionArguments::List(
                    sqlparser::ast::FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![
                            sqlparser::ast::FunctionArg::Unnamed(
                                sqlparser::ast::FunctionArgExpr::Expr(e),
                            ),
                            sqlparser::ast::FunctionArg::Unnamed(
                                sqlparser::ast::FunctionArgExpr::Expr(Expr::Value(
                                    Value::Number("0".into(), false).into(),
                                )),
                            ),
                        ],
                        clauses: vec![],
                    },
                ),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            })
        };
        let join = |subquery: Query, alias: &str, outer: &[Expr]| -> Option<Join> {
            let on = outer
                .iter()
                .enumerate()
                .map(|(k, o)| Expr::BinaryOp {
                    left: Box::new(col(alias, &format!("__pgs_k{k}"))),
                    op: BinaryOperator::Eq,
                    right: Box::new(Expr::Nested(Box::new(o.clone()))),
                })
                .reduce(|a, b| Expr::BinaryOp {
                    left: Box::new(a),
                    op: BinaryOperator::And,
                    right: Box::new(b),
                })?;
            Some(Join {
                relation: TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(subquery),
                    alias: Some(TableAlias {
                        name: Ident::new(alias),
                        columns: vec![],
                    }),
                },
                global: false,
                join_operator: JO::LeftOuter(JoinConstraint::On(on)),
            })
        };
        let mut out = s.clone();
        // LATERAL aggregates: (alias, count columns) whose references get COALESCE.
        let mut counted: Vec<(String, Vec<String>)> = Vec::new();
        let lateral_join = |f: &TableFactor| -> Option<(Join, String, Vec<AggItem>)> {
            let TableFactor::Derived {
                lateral: true,
                subquery,
                alias: Some(alias),
            } = f
            else {
                return None;
            };
            let names: Vec<String> = alias.columns.iter().map(|c| ident_value(&c.name)).collect();
            let a = ident_value(&alias.name);
            let (q, outer, items) =
                self.correlated_aggregate(subquery, (!names.is_empty()).then_some(&names[..]))?;
            Some((join(q, &a, &outer)?, a, items))
        };
        if laterals {
            for t in out.from.iter_mut() {
                for j in t.joins.iter_mut() {
                    if is_lateral(&j.relation) && is_cross(&j.join_operator) {
                        let (nj, a, items) = lateral_join(&j.relation)?;
                        *j = nj;
                        counted.push((a, items.into_iter().filter(|i| i.1).map(|i| i.0).collect()));
                    }
                }
            }
            if out.from.len() == 2
                && is_lateral(&out.from[1].relation)
                && out.from[1].joins.is_empty()
            {
                let (nj, a, items) = lateral_join(&out.from[1].relation)?;
                out.from.pop();
                out.from[0].joins.push(nj);
                counted.push((a, items.into_iter().filter(|i| i.1).map(|i| i.0).collect()));
            }
            // A reference to a count of a rewritten LATERAL subquery reads 0 for an
            // outer row without a group.
            struct W<'a, F: Fn(Expr) -> Expr>(&'a [(String, Vec<String>)], F);
            impl<F: Fn(Expr) -> Expr> VisitorMut for W<'_, F> {
                type Break = ();
                fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                    if let Expr::CompoundIdentifier(ids) = e {
                        if ids.len() == 2 {
                            let (a, c) = (ident_value(&ids[0]), ident_value(&ids[1]));
                            if self.0.iter().any(|(x, cs)| *x == a && cs.contains(&c)) {
                                *e = (self.1)(e.clone());
                            }
                        }
                    }
                    ControlFlow::Continue(())
                }
            }
            let mut w = W(&counted, coalesce);
            for item in out.projection.iter_mut() {
                if let SelectItem::UnnamedExpr(e) = item {
                    // the item keeps its name (`s.n`, not `coalesce`)
                    let name = output_name(e);
                    let _ = e.visit(&mut w);
                    if output_name(e) != name {
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: Ident::with_quote('"', name),
                        };
                    }
                } else {
                    let _ = item.visit(&mut w);
                }
            }
            let _ = out.selection.visit(&mut w);
            for t in out.from.iter_mut() {
                for j in t.joins.iter_mut() {
                    if let JO::Inner(JoinConstraint::On(e))
                    | JO::Join(JoinConstraint::On(e))
                    | JO::LeftOuter(JoinConstraint::On(e))
                    | JO::Left(JoinConstraint::On(e))
                    | JO::RightOuter(JoinConstraint::On(e))
                    | JO::Right(JoinConstraint::On(e))
                    | JO::FullOuter(JoinConstraint::On(e)) = &mut j.join_operator
                    {
                        let _ = e.visit(&mut w);
                    }
                }
            }
            // Bare names of the rewritten subqueries' columns, and `*`: not rewritten.
            let all_names: Vec<String> = counted.iter().flat_map(|(_, c)| c.clone()).collect();
            struct Bare<'a>(&'a [String], bool);
            impl sqlparser::ast::Visitor for Bare<'_> {
                type Break = ();
                fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                    if let Expr::Identifier(i) = e {
                        if self.0.contains(&ident_value(i)) {
                            self.1 = true;
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                }
            }
            let mut bare = Bare(&all_names, false);
            let _ = sqlparser::ast::Visit::visit(&s.projection, &mut bare);
            let _ = sqlparser::ast::Visit::visit(&s.selection, &mut bare);
            let _ = sqlparser::ast::Visit::visit(&s.from, &mut bare);
            if bare.1 {
                return None;
            }
        }
        if scalars {
            if out.from.len() != 1 {
                return None;
            }
            let mut n = 0;
            for k in 0..out.projection.len() {
                let (sub, name) = match &out.projection[k] {
                    SelectItem::UnnamedExpr(e @ Expr::Subquery(q)) => (q.clone(), output_name(e)),
                    SelectItem::ExprWithAlias {
                        expr: Expr::Subquery(q),
                        alias,
                    } => (q.clone(), ident_value(alias)),
                    _ => continue,
                };
                let (q, outer, items) =
                    self.correlated_aggregate(&sub, Some(&["__pgs_v".to_string()]))?;
                if items.len() != 1 {
                    return None;
                }
                let alias = format!("__pgs_sq{n}");
                n += 1;
                out.from[0].joins.push(join(q, &alias, &outer)?);
                let v = col(&alias, "__pgs_v");
                out.projection[k] = SelectItem::ExprWithAlias {
                    expr: if items[0].1 { coalesce(v) } else { v },
                    alias: Ident::with_quote('"', name),
                };
            }
        }
        Some(out)
    }

    /// A FROM list as a tree: its items cross-joined left to right.
    fn bind_from(&mut self, from: &[TableWithJoins]) -> Result<Tree> {
        let mut tree: Option<Tree> = None;
        for twj in from {
            let t = self.bind_table_with_joins(twj)?;
            let lateral = self.lateral_pred.take();
            tree = Some(match tree {
                None => match lateral {
                    // LATERAL first in FROM: nothing to its left, a plain filter.
                    Some(pred) => Tree::Filter {
                        input: Box::new(t),
                        text: "LATERAL ... WHERE".into(),
                        pred,
                    },
                    None => t,
                },
                Some(prev) => Tree::Join {
                    kind: JoinKind::Inner,
                    left: Box::new(prev),
                    right: Box::new(t),
                    on: lateral.unwrap_or_else(|| Expr::Value(Value::Boolean(true).into())),
                    on_text: "TRUE".into(),
                },
            });
        }
        Ok(tree.expect("non-empty FROM"))
    }

    /// Turn the EXISTS / IN subqueries among a WHERE clause's top-level conjuncts into
    /// semi and anti joins over `tree`; the other conjuncts come back, AND-ed, unbound.
    fn where_joins(
        &mut self,
        mut tree: Tree,
        selection: Option<&Expr>,
    ) -> Result<(Tree, Option<Expr>)> {
        let mut rest: Vec<Expr> = Vec::new();
        if let Some(w) = selection {
            for c in conjuncts(w) {
                match self.subquery_join(c)? {
                    Some((kind, right, on)) => {
                        tree = Tree::Join {
                            kind,
                            left: Box::new(tree),
                            right: Box::new(right),
                            on,
                            on_text: c.to_string(),
                        };
                    }
                    None => rest.push(c.clone()),
                }
            }
        }
        let rest = rest.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: sqlparser::ast::BinaryOperator::And,
            right: Box::new(b),
        });
        Ok((tree, rest))
    }

    fn bind_table_with_joins(&mut self, twj: &TableWithJoins) -> Result<Tree> {
        let start = self.frames.last().map_or(0, |f| f.len());
        let mut tree = self.bind_factor(&twj.relation)?;
        // A LATERAL first factor joins what precedes it in the FROM list (bind_from).
        let first_lateral = self.lateral_pred.take();
        for j in &twj.joins {
            let mid = self.frames.last().map_or(0, |f| f.len());
            let right = self.bind_factor(&j.relation)?;
            let lateral = self.lateral_pred.take();
            let (kind, constraint) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, Some(c)),
                JoinOperator::FullOuter(c) => (JoinKind::Full, Some(c)),
                JoinOperator::CrossJoin => (JoinKind::Inner, None),
                other => {
                    let what = format!("{other:?}")
                        .split('(')
                        .next()
                        .unwrap_or("this join")
                        .to_string();
                    return Err(unsupported(
                        self.query,
                        &format!("{what} joins"),
                        Some(&j.relation),
                    ));
                }
            };
            let (on, on_text) = match constraint {
                None | Some(JoinConstraint::None) => {
                    (Expr::Value(Value::Boolean(true).into()), "TRUE".to_string())
                }
                Some(JoinConstraint::On(e)) => (self.bind_expr(e, false)?, e.to_string()),
                Some(JoinConstraint::Using(cols)) => {
                    let names: Vec<String> = cols
                        .iter()
                        .map(|c| {
                            c.0.last()
                                .and_then(|p| p.as_ident())
                                .map(ident_value)
                                .unwrap_or_default()
                        })
                        .collect();
                    self.using_join(start, mid, &names, kind, &j.relation)?
                }
                Some(JoinConstraint::Natural) => {
                    let frame = self.frames.last().cloned().unwrap_or_default();
                    let right_names = self.visible_names(&frame[mid..]);
                    let names: Vec<String> = self
                        .visible_names(&frame[start..mid])
                        .into_iter()
                        .filter(|n| right_names.contains(n))
                        .collect();
                    if names.is_empty() {
                        (Expr::Value(Value::Boolean(true).into()), "TRUE".to_string())
                    } else {
                        self.using_join(start, mid, &names, kind, &j.relation)?
                    }
                }
            };
            let on = match lateral {
                None => on,
                Some(_) if matches!(kind, JoinKind::Right | JoinKind::Full) => {
                    return Err(Error::Invalid(
                        Diagnostic::new(
                            "a LATERAL subquery cannot be on the right of a RIGHT or FULL JOIN",
                        )
                        .with_span(span_range(self.query, j.relation.span())),
                    ))
                }
                // The subquery's rows for a left row are its WHERE's matches: inner and
                // left joins with it are joins on that WHERE and the ON condition.
                Some(pred) => Expr::BinaryOp {
                    left: Box::new(Expr::Nested(Box::new(pred))),
                    op: sqlparser::ast::BinaryOperator::And,
                    right: Box::new(Expr::Nested(Box::new(on))),
                },
            };
            tree = Tree::Join {
                kind,
                left: Box::new(tree),
                right: Box::new(right),
                on,
                on_text,
            };
        }
        self.lateral_pred = first_lateral;
        Ok(tree)
    }

    /// The column names an unqualified reference reaches in `entries`, in order,
    /// each once.
    fn visible_names(&self, entries: &[Entry]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in entries {
            let names: Vec<(String, Hit)> = match *e {
                Entry::Leaf(li) => self.leaves[li]
                    .table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(ci, c)| (c.name.clone(), Hit::Col(li, ci)))
                    .collect(),
                Entry::Virtual(vi) => self.virtuals[vi]
                    .items
                    .iter()
                    .enumerate()
                    .map(|(ii, (n, _))| (n.clone(), Hit::Virtual(vi, ii)))
                    .collect(),
            };
            for (n, h) in names {
                if !n.starts_with("__pgs_") && !self.hidden.contains(&h) && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// The one column named `col` an unqualified reference reaches in `entries`.
    fn using_hit(&self, entries: &[Entry], col: &str, side: &str, f: &TableFactor) -> Result<Hit> {
        let mut hits = Vec::new();
        self.hits_in(entries, &None, col, &mut hits);
        self.virtual_hits_in(entries, &None, col, &mut hits);
        hits.retain(|h| !self.hidden.contains(h));
        match hits.as_slice() {
            [h] => Ok(*h),
            [] => Err(Error::Invalid(
                Diagnostic::new(format!(
                    "column `{col}` specified in USING clause does not exist in {side} table"
                ))
                .with_span(span_range(self.query, f.span())),
            )),
            _ => Err(Error::Invalid(
                Diagnostic::new(format!(
                    "common column name `{col}` appears more than once in {side} table"
                ))
                .with_span(span_range(self.query, f.span())),
            )),
        }
    }

    fn hit_expr(&self, h: Hit) -> Expr {
        match h {
            Hit::Col(leaf, col) => marker(Marker::Col { leaf, col }),
            Hit::Virtual(vi, ii) => Expr::Nested(Box::new(self.virtuals[vi].items[ii].1.clone())),
        }
    }

    /// `JOIN ... USING (names)` between the FROM entries `start..mid` (left) and
    /// `mid..` (right) of the current scope: the condition `l.c = r.c` for each
    /// name, and one merged output column per name (the left column for inner and
    /// left joins, the right one for right joins, `COALESCE(l.c, r.c)` for full
    /// joins) that unqualified references and `*` reach instead of the two sides'.
    fn using_join(
        &mut self,
        start: usize,
        mid: usize,
        names: &[String],
        kind: JoinKind,
        f: &TableFactor,
    ) -> Result<(Expr, String)> {
        let frame = self.frames.last().cloned().unwrap_or_default();
        let mut conds = Vec::new();
        let mut items = Vec::new();
        let mut hide = Vec::new();
        for n in names {
            if items.iter().any(|(m, _)| m == n) {
                return Err(Error::Invalid(
                    Diagnostic::new(format!(
                        "column `{n}` appears more than once in USING clause"
                    ))
                    .with_span(span_range(self.query, f.span())),
                ));
            }
            let lh = self.using_hit(&frame[start..mid], n, "the left", f)?;
            let rh = self.using_hit(&frame[mid..], n, "the right", f)?;
            let (le, re) = (self.hit_expr(lh), self.hit_expr(rh));
            conds.push(Expr::BinaryOp {
                left: Box::new(le.clone()),
                op: sqlparser::ast::BinaryOperator::Eq,
                right: Box::new(re.clone()),
            });
            let merged = match kind {
                JoinKind::Right => re,
                JoinKind::Full => Expr::Function(sqlparser::ast::Function {
                    name: sqlparser::ast::ObjectName(vec![
                        sqlparser::ast::ObjectNamePart::Identifier(Ident::new("COALESCE")),
                    ]),
                    uses_odbc_syntax: false,
                    parameters: sqlparser::ast::FunctionArguments::None,
                    args: sqlparser::ast::FunctionArguments::List(
                        sqlparser::ast::FunctionArgumentList {
                            duplicate_treatment: None,
                            args: vec![
                                sqlparser::ast::FunctionArg::Unnamed(
                                    sqlparser::ast::FunctionArgExpr::Expr(le),
                                ),
                                sqlparser::ast::FunctionArg::Unnamed(
                                    sqlparser::ast::FunctionArgExpr::Expr(re),
                                ),
                            ],
                            clauses: Vec::new(),
                        },
                    ),
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: Vec::new(),
                }),
                _ => le,
            };
            items.push((n.clone(), merged));
            hide.push(lh);
            hide.push(rh);
        }
        self.hidden.extend(hide);
        self.virtuals.push(Virtual {
            alias: String::new(),
            items,
        });
        let vi = self.virtuals.len() - 1;
        if let Some(fr) = self.frames.last_mut() {
            fr.insert(start, Entry::Virtual(vi));
        }
        let on = conds
            .into_iter()
            .reduce(|a, b| Expr::BinaryOp {
                left: Box::new(a),
                op: sqlparser::ast::BinaryOperator::And,
                right: Box::new(b),
            })
            .expect("USING names a column");
        Ok((on, format!("USING ({})", names.join(", "))))
    }

    fn bind_factor(&mut self, f: &TableFactor) -> Result<Tree> {
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    return Err(unsupported(self.query, "table functions in FROM", Some(f)));
                }
                if name.0.len() == 1 {
                    let n = ident_value(name.0[0].as_ident().expect("ident"));
                    if let Some((_, q)) = self.ctes.iter().find(|(c, _)| *c == n).cloned() {
                        let (a, cols) = match alias {
                            Some(a) => (
                                ident_value(&a.name),
                                a.columns.iter().map(|c| ident_value(&c.name)).collect(),
                            ),
                            None => (n.clone(), Vec::new()),
                        };
                        return self.bind_derived(&q, a, &cols, f);
                    }
                }
                let source = self.table(name)?;
                let table = self.sources[source].clone();
                let col_aliases: Vec<String> = alias
                    .iter()
                    .flat_map(|a| a.columns.iter().map(|c| ident_value(&c.name)))
                    .collect();
                let visible_cols = table
                    .columns
                    .iter()
                    .filter(|c| !c.name.starts_with("__pgs_"))
                    .count();
                if col_aliases.len() > visible_cols {
                    return Err(Error::Invalid(
                        Diagnostic::new(format!(
                            "table `{}` has {visible_cols} columns available but {} columns specified",
                            table.name,
                            col_aliases.len()
                        ))
                        .with_span(span_range(self.query, f.span())),
                    ));
                }
                let alias_name = match alias {
                    Some(a) => ident_value(&a.name),
                    None => table.name.name.clone(),
                };
                let frame_has_alias = self.frame_has_alias(&alias_name);
                if frame_has_alias {
                    return Err(Error::Invalid(
                        Diagnostic::new(format!(
                            "table name `{alias_name}` specified more than once"
                        ))
                        .with_span(span_range(self.query, f.span()))
                        .with_help("give each occurrence its own alias"),
                    ));
                }
                self.leaves.push(Leaf {
                    source,
                    alias: alias_name,
                    table,
                    agg: None,
                });
                let idx = self.leaves.len() - 1;
                // `t AS x(a, b)`: the table is reached through a relation `x` whose
                // first columns are renamed (the leaf itself is not in scope).
                let entry = if col_aliases.is_empty() {
                    Entry::Leaf(idx)
                } else {
                    let items = self.leaves[idx]
                        .table
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.name.starts_with("__pgs_"))
                        .enumerate()
                        .map(|(k, (ci, c))| {
                            let name = col_aliases.get(k).cloned().unwrap_or(c.name.clone());
                            (name, marker(Marker::Col { leaf: idx, col: ci }))
                        })
                        .collect();
                    self.virtuals.push(Virtual {
                        alias: self.leaves[idx].alias.clone(),
                        items,
                    });
                    Entry::Virtual(self.virtuals.len() - 1)
                };
                if let Some(frame) = self.frames.last_mut() {
                    frame.push(entry);
                }
                Ok(Tree::Leaf(idx))
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => self.bind_table_with_joins(table_with_joins),
            TableFactor::Derived {
                lateral: false,
                subquery,
                alias,
            } => {
                let Some(alias) = alias else {
                    return Err(Error::Invalid(
                        Diagnostic::new("a subquery in FROM must have an alias")
                            .with_span(span_range(self.query, f.span())),
                    ));
                };
                let cols: Vec<String> =
                    alias.columns.iter().map(|c| ident_value(&c.name)).collect();
                self.bind_derived(subquery, ident_value(&alias.name), &cols, f)
            }
            TableFactor::Derived {
                lateral: true,
                subquery,
                alias,
            } => {
                let Some(alias) = alias else {
                    return Err(Error::Invalid(
                        Diagnostic::new("a subquery in FROM must have an alias")
                            .with_span(span_range(self.query, f.span())),
                    ));
                };
                let cols: Vec<String> =
                    alias.columns.iter().map(|c| ident_value(&c.name)).collect();
                self.bind_lateral(subquery, ident_value(&alias.name), &cols, f)
            }
            _ => Err(unsupported(self.query, "this kind of FROM item", Some(f))),
        }
    }

    /// Resolve a column reference; `None` when it is not one, or not found.
    fn hit_alias(&self, h: &Hit) -> &str {
        match *h {
            Hit::Col(l, _) => &self.leaves[l].alias,
            Hit::Virtual(v, _) => &self.virtuals[v].alias,
        }
    }

    fn try_resolve(&self, e: &Expr) -> Option<Expr> {
        self.resolve(e).ok().flatten()
    }

    /// Resolve `col`, `alias.col` or `schema.table.col`.
    fn resolve(&self, e: &Expr) -> Result<Option<Expr>> {
        if as_marker(e).is_some() {
            return Ok(None);
        }
        let parts: Vec<&Ident> = match e {
            Expr::Identifier(i) => vec![i],
            Expr::CompoundIdentifier(ids) => ids.iter().collect(),
            _ => return Ok(None),
        };
        let names: Vec<String> = parts.iter().map(|i| ident_value(i)).collect();
        let span = expr_range(self.query, e);
        let (qual, col) = match names.as_slice() {
            [c] => (None, c.clone()),
            [t, c] => (Some((None, t.clone())), c.clone()),
            [s, t, c] => (Some((Some(s.clone()), t.clone())), c.clone()),
            _ => {
                return Err(Error::Invalid(
                    Diagnostic::new(format!("cannot resolve `{e}`")).with_span(span),
                ));
            }
        };
        let mut hits = Vec::new();
        for frame in self.frames.iter().rev() {
            self.hits_in(frame, &qual, &col, &mut hits);
            self.virtual_hits_in(frame, &qual, &col, &mut hits);
            if qual.is_none() {
                hits.retain(|h| !self.hidden.contains(h));
            }
            if !hits.is_empty() {
                break;
            }
        }
        self.finish_resolve(e, span, qual, col, hits)
    }

    fn frame_has_alias(&self, alias: &str) -> bool {
        self.frames
            .last()
            .map(|f| {
                f.iter().any(|e| match *e {
                    Entry::Leaf(i) => self.leaves[i].alias == alias,
                    Entry::Virtual(v) => self.virtuals[v].alias == alias,
                })
            })
            .unwrap_or(false)
    }

    fn virtual_hits_in(
        &self,
        frame: &[Entry],
        qual: &Option<(Option<String>, String)>,
        col: &str,
        hits: &mut Vec<Hit>,
    ) {
        for e in frame {
            let Entry::Virtual(vi) = *e else { continue };
            let v = &self.virtuals[vi];
            match qual {
                Some((None, t)) if *t != v.alias => continue,
                Some((Some(_), _)) => continue,
                _ => {}
            }
            if let Some(ii) = v.items.iter().position(|(n, _)| n == col) {
                hits.push(Hit::Virtual(vi, ii));
            }
        }
    }

    fn hits_in(
        &self,
        frame: &[Entry],
        qual: &Option<(Option<String>, String)>,
        col: &str,
        hits: &mut Vec<Hit>,
    ) {
        for e in frame {
            let Entry::Leaf(li) = *e else { continue };
            let l = &self.leaves[li];
            if let Some((schema, t)) = qual {
                let matches = match schema {
                    Some(s) => {
                        *s == l.table.name.schema
                            && *t == l.table.name.name
                            && l.alias == l.table.name.name
                    }
                    None => *t == l.alias,
                };
                if !matches {
                    continue;
                }
            }
            if let Some(ci) = l.table.column_index(col) {
                hits.push(Hit::Col(li, ci));
            }
        }
    }

    fn finish_resolve(
        &self,
        e: &Expr,
        span: Option<std::ops::Range<usize>>,
        qual: Option<(Option<String>, String)>,
        col: String,
        hits: Vec<Hit>,
    ) -> Result<Option<Expr>> {
        match hits.as_slice() {
            [Hit::Col(leaf, col)] => Ok(Some(marker(Marker::Col {
                leaf: *leaf,
                col: *col,
            }))),
            [Hit::Virtual(vi, ii)] => Ok(Some(Expr::Nested(Box::new(
                self.virtuals[*vi].items[*ii].1.clone(),
            )))),
            [] => {
                // The relations in scope, innermost first: table occurrences and
                // inlined subqueries, CTEs and views.
                let visible: Vec<(&str, Vec<&str>)> = self
                    .frames
                    .iter()
                    .rev()
                    .flatten()
                    .map(|entry| match *entry {
                        Entry::Leaf(li) => {
                            let l = &self.leaves[li];
                            (
                                l.alias.as_str(),
                                l.table.columns.iter().map(|c| c.name.as_str()).collect(),
                            )
                        }
                        Entry::Virtual(vi) => {
                            let v = &self.virtuals[vi];
                            (
                                v.alias.as_str(),
                                v.items.iter().map(|(n, _)| n.as_str()).collect(),
                            )
                        }
                    })
                    .collect();
                if let Some((_, t)) = &qual {
                    if !visible.iter().any(|(a, _)| a == t) {
                        let help = nearest(t, visible.iter().map(|(a, _)| *a))
                            .map(|n| format!("did you mean `{n}`?"))
                            .unwrap_or_else(|| format!("the FROM clause has {}", self.aliases()));
                        return Err(Error::Invalid(
                            Diagnostic::new(format!("missing FROM-clause entry for table `{t}`"))
                                .with_span(span)
                                .with_help(help),
                        ));
                    }
                }
                let candidates: Vec<&str> = visible
                    .iter()
                    .filter(|(a, _)| qual.as_ref().map(|(_, t)| t == a).unwrap_or(true))
                    .flat_map(|(_, cols)| cols.iter().copied())
                    .filter(|c| !c.starts_with("__pgs_"))
                    .collect();
                if SYSTEM_COLUMNS.contains(&col.as_str()) {
                    return Err(Error::Invalid(
                        Diagnostic::new(format!(
                            "`{e}` is a system column: a stream table cannot read system columns"
                        ))
                        .with_span(span)
                        .with_help(
                            "system columns change when PostgreSQL rewrites a row and are not \
                             captured; use the table's own columns (its primary key identifies a row)",
                        ),
                    ));
                }
                let mut d = Diagnostic::new(format!("unknown column `{e}`")).with_span(span);
                if let Some(n) = nearest(&col, candidates.into_iter()) {
                    d = d.with_help(format!("a column named `{n}` exists"));
                }
                Err(Error::Invalid(d))
            }
            many => {
                let tables: Vec<String> = many
                    .iter()
                    .map(|h| format!("`{}`", self.hit_alias(h)))
                    .collect();
                Err(Error::Invalid(
                    Diagnostic::new(format!(
                        "column reference `{e}` is ambiguous: {} have it",
                        tables.join(" and ")
                    ))
                    .with_span(span)
                    .with_help(format!(
                        "qualify it, e.g. `{}.{col}`",
                        self.hit_alias(&many[0])
                    )),
                ))
            }
        }
    }

    fn aliases(&self) -> String {
        self.frames
            .iter()
            .rev()
            .flatten()
            .map(|entry| match *entry {
                Entry::Leaf(li) => format!("`{}`", self.leaves[li].alias),
                Entry::Virtual(vi) => format!("`{}`", self.virtuals[vi].alias),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Bind an expression: resolve columns into markers, reject what deltas cannot
    /// re-evaluate. Aggregates are allowed only where `allow_agg`.
    pub fn bind_expr(&self, e: &Expr, allow_agg: bool) -> Result<Expr> {
        struct B<'b, 'c> {
            binder: &'b Binder<'c>,
            allow_agg: bool,
            in_agg: usize,
            err: Option<Error>,
        }
        impl VisitorMut for B<'_, '_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let q = self.binder.query;
                let fail = |s: &mut Self, err: Error| {
                    s.err = Some(err);
                    ControlFlow::Break(())
                };
                match e {
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                        match self.binder.resolve(e) {
                            Ok(Some(x)) => *e = x,
                            Ok(None) => {}
                            Err(err) => return fail(self, err),
                        }
                    }
                    Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                        return fail(self, unsupported(q, "subqueries in expressions", Some(&*e)));
                    }
                    Expr::Function(f) => {
                        let name = function_name(f);
                        if f.over.is_some() && self.binder.allow_windows.get() && self.in_agg == 0 {
                            if let Some(sqlparser::ast::WindowType::NamedWindow(_)) = &f.over {
                                return fail(
                                    self,
                                    unsupported(
                                        q,
                                        "named windows (write the window inline)",
                                        Some(&*e),
                                    ),
                                );
                            }
                            if VOLATILE.contains(&name.as_str()) {
                                // checked below
                            } else {
                                return ControlFlow::Continue(());
                            }
                        }
                        if f.over.is_some() && !VOLATILE.contains(&name.as_str()) {
                            return fail(
                                self,
                                unsupported(
                                    q,
                                    &format!("the window function `{name}(...) OVER (...)`"),
                                    Some(&*e),
                                ),
                            );
                        }
                        if VOLATILE.contains(&name.as_str()) {
                            let err = Error::Unsupported(
                                Diagnostic::new(format!(
                                    "`{name}` is volatile (its value changes between evaluations), so DIFFERENTIAL mode cannot maintain it"
                                ))
                                .with_span(expr_range(q, &*e))
                                .with_help("use FULL mode (mode = \"full\"), or compute the value when writing the source rows"),
                            );
                            return fail(self, err);
                        }
                        if is_aggregate(f) {
                            if !self.allow_agg {
                                let err = Error::Invalid(
                                    Diagnostic::new(format!(
                                        "aggregate functions are not allowed here (`{name}`)"
                                    ))
                                    .with_span(expr_range(q, &*e)),
                                );
                                return fail(self, err);
                            }
                            if self.in_agg > 0 {
                                let err = Error::Invalid(
                                    Diagnostic::new("aggregate function calls cannot be nested")
                                        .with_span(expr_range(q, &*e)),
                                );
                                return fail(self, err);
                            }
                            self.in_agg += 1;
                        }
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::Function(f) = e {
                    if is_aggregate(f) && self.in_agg > 0 {
                        self.in_agg -= 1;
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut out = e.clone();
        let mut b = B {
            binder: self,
            allow_agg,
            in_agg: 0,
            err: None,
        };
        let _ = out.visit(&mut b);
        if let Some(err) = b.err {
            return Err(err);
        }
        // anything still looking like an identifier was not resolved
        Ok(out)
    }
}

/// The PARTITION BY lists of the window functions in a bound expression (one entry
/// per window function; an empty list for a window without PARTITION BY).
pub(crate) fn window_partitions(e: &Expr) -> Vec<Vec<Expr>> {
    struct F(Vec<Vec<Expr>>);
    impl VisitorMut for F {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                if let Some(sqlparser::ast::WindowType::WindowSpec(spec)) = &f.over {
                    self.0.push(spec.partition_by.clone());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let mut f = F(Vec::new());
    let _ = e.visit(&mut f);
    f.0
}

/// Whether the values of a bound expression may carry different numeric scales: it
/// reads a `numeric` column without a declared scale, or mixes decimal literals of
/// different scales.
fn varying_scale(e: &Expr, leaves: &[Leaf]) -> bool {
    if column_markers(e)
        .into_iter()
        .any(|(l, c)| leaves[l].table.columns[c].sql_type == "numeric")
    {
        return true;
    }
    struct S(std::collections::HashSet<usize>);
    impl VisitorMut for S {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = e {
                if let Value::Number(n, _) = &v.value {
                    if let Some(dot) = n.find('.') {
                        self.0.insert(n.len() - dot - 1);
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let mut s = S(Default::default());
    let _ = e.visit(&mut s);
    s.0.len() > 1
}

/// Whether a subquery is a plain select-project-join (what can be inlined or turned
/// into a semi/anti join): no WITH, LIMIT, OFFSET, DISTINCT, GROUP BY, HAVING or
/// aggregates, and a FROM clause.
fn is_simple_spj(q: &Query, sel: &Select) -> bool {
    q.with.is_none()
        && q.limit.is_none()
        && q.offset.is_none()
        && sel.distinct.is_none()
        && sel.having.is_none()
        && !sel.from.is_empty()
        && matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
        && !sel.projection.iter().any(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                contains_aggregate(e)
            }
            _ => false,
        })
}

/// An item of a correlated aggregate: its name, and whether it is 0 (not NULL) over
/// no rows.
type AggItem = (String, bool);

/// Which sides a condition of a correlated subquery names: (its own table, the
/// enclosing query), with `alias` and `cols` the subquery's table. An unqualified
/// name is the table's when it has that column (as PostgreSQL resolves it). `None`
/// for what a rewrite cannot place: a subquery, a window function, an aggregate, a
/// volatile function, a name with more than two parts.
fn correlation_sides(e: &Expr, alias: &str, cols: &[String]) -> Option<(bool, bool)> {
    struct V<'a>(&'a str, &'a [String], bool, bool, bool);
    impl sqlparser::ast::Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(i) => {
                    if self.1.contains(&ident_value(i)) {
                        self.2 = true
                    } else {
                        self.3 = true
                    }
                }
                Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
                    if ident_value(&ids[0]) == self.0 {
                        self.2 = true
                    } else {
                        self.3 = true
                    }
                }
                Expr::CompoundIdentifier(_)
                | Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::InSubquery { .. } => {
                    self.4 = false;
                    return ControlFlow::Break(());
                }
                Expr::Function(f)
                    if f.over.is_some()
                        || is_aggregate(f)
                        || VOLATILE.contains(&function_name(f).as_str()) =>
                {
                    self.4 = false;
                    return ControlFlow::Break(());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(alias, cols, false, false, true);
    let _ = sqlparser::ast::Visit::visit(e, &mut v);
    v.4.then_some((v.2, v.3))
}

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
    expr::render_with(e, &mut |m| match m {
        Marker::Col { leaf, col } => {
            let l = &leaves[leaf];
            Some(expr::raw(format!(
                "{}.{}",
                l.alias, l.table.columns[col].name
            )))
        }
        _ => None,
    })
}

fn display_call(f: &sqlparser::ast::Function, leaves: &[Leaf]) -> String {
    display(&Expr::Function(f.clone()), leaves)
}

/// Map an aggregate call to a counter strategy, or say why there is none.
fn classify_aggregate(
    f: &sqlparser::ast::Function,
) -> std::result::Result<(AggFunc, Option<Expr>), String> {
    let name = function_name(f);
    let plain = f.filter.is_none()
        && f.within_group.is_empty()
        && match &f.args {
            sqlparser::ast::FunctionArguments::List(l) => {
                l.duplicate_treatment != Some(sqlparser::ast::DuplicateTreatment::Distinct)
                    && l.clauses.is_empty()
            }
            _ => true,
        };
    let arg = single_arg(f).ok();
    match (plain, name.as_str(), arg) {
        (true, "count", Some(None)) => Ok((AggFunc::CountStar, None)),
        (true, "count", Some(Some(a))) => Ok((AggFunc::Count, Some(a.clone()))),
        (true, "sum", Some(Some(a))) => Ok((AggFunc::Sum, Some(a.clone()))),
        (true, "avg", Some(Some(a))) => Ok((AggFunc::Avg, Some(a.clone()))),
        _ => Ok((AggFunc::Other, None)),
    }
}

#[allow(dead_code)]
pub(crate) fn is_marker(e: &Expr) -> bool {
    as_marker(e).is_some()
}
