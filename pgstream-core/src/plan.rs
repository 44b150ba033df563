//! Planning: parse, bind, and choose a maintenance strategy for the operator tree.

use crate::analyze::functions::{called_functions, reject_volatile};
use crate::analyze::names::query_names;
use crate::bind::Binder;
use crate::catalog::{Catalog, Table};
use crate::error::{Diagnostic, Error, Result};
use crate::ir::{Block, Body, Compiled, OutputColumn, OverStage, Strategy};
use crate::spec::{Mode, StreamTableSpec};
use crate::sql::fragment::Sql;
use crate::sql::ident::ident_value;
use crate::sql::limits;
use crate::sql::parse::span_range;
use crate::sql::walk::cte_names;
use sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, TableFactor, Visit,
    Visitor,
};
use std::collections::HashSet;
use std::ops::ControlFlow;

mod having;
mod outer;

/// Bind `query` (the parsed `spec.query`) and choose the strategy.
pub(crate) fn compile(
    spec: &StreamTableSpec,
    query: &Query,
    catalog: &Catalog,
) -> Result<Compiled> {
    let text = spec.query.as_str();
    let mut query = query.clone();
    if spec.name.name.starts_with("__pgs") || spec.name.name.is_empty() {
        return Err(Error::Invalid(Diagnostic::new(format!(
            "invalid stream table name `{}`",
            spec.name
        ))));
    }

    // Source tables: every table reference that is not a CTE.
    let ctes = cte_names(&query);
    let mut sources: Vec<Table> = Vec::new();
    {
        let mut binder = Binder::new(text, catalog, &mut sources);
        // Table references (not table functions such as `generate_series(...)`).
        struct Tables(Vec<ObjectName>);
        impl Visitor for Tables {
            type Break = ();
            fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table {
                    name, args: None, ..
                } = f
                {
                    self.0.push(name.clone());
                }
                ControlFlow::Continue(())
            }
        }
        let mut tables = Tables(Vec::new());
        let _ = query.visit(&mut tables);
        let names = tables.0;
        for n in &names {
            if n.0.len() == 1 && ctes.contains(&ident_value(n.0[0].as_ident().expect("ident"))) {
                continue;
            }
            binder.table(n)?;
        }
    }
    if sources.is_empty() {
        return Err(Error::Invalid(
            Diagnostic::new("the query reads no table, so there is nothing to maintain")
                .with_help("use a view for constant queries"),
        ));
    }
    if let Some(t) = sources.iter().find(|t| t.name == spec.name) {
        return Err(Error::Invalid(Diagnostic::new(format!(
            "the stream table `{}` cannot read itself",
            t.name
        ))));
    }

    crate::analyze::typecheck::check(text, &query, catalog)?;

    // Try delta rules.
    let mut bind_sources = sources.clone();
    let bound = {
        let mut binder = Binder::new(text, catalog, &mut bind_sources);
        binder.bind_query(&query)
    };
    let bound = bound.map(|mut b| {
        crate::pushdown::push_down(&mut b);
        b
    });
    let is_recursive = query.with.as_ref().map(|w| w.recursive).unwrap_or(false);
    // Window functions over an aggregate of several tables: their partitions are
    // recomputed from the aggregate's rows, which as a leaf are computed from its
    // tables each time; the aggregate kept in a stage (below) serves them from its
    // table instead, as before such aggregates were leaves.
    let bound = match bound {
        Ok(b)
            if spec.mode.compiled_as() == Mode::Differential
                && matches!(b.shape, crate::ir::Shape::Window { .. })
                && b.leaves
                    .iter()
                    .any(|l| l.agg.as_ref().is_some_and(|a| !a.joined.is_empty())) =>
        {
            Err(Error::Unsupported(Diagnostic::new(
                "window functions over an aggregate of several tables",
            )))
        }
        other => other,
    };
    // `ORDER BY ... LIMIT n` over an aggregate or a keyed projection the delta rules
    // maintain: the block is kept whole in a stage table and the stream table holds
    // its first rows.
    let mut over_stage = None;
    let bound = match bound {
        Err(Error::Unsupported(d))
            if spec.mode.compiled_as() == Mode::Differential && is_top_k(&query) =>
        {
            match top_k_over_stage(text, &query, catalog, &sources) {
                Some((block, top, srcs)) => {
                    over_stage = Some(OverStage::TopK(top));
                    bind_sources = srcs;
                    Ok(block)
                }
                None => Err(Error::Unsupported(d)),
            }
        }
        other => other,
    };
    // An aggregate relation (a subquery in FROM, a CTE or a view with GROUP BY) that
    // the delta rules maintain, read by a query that has none: the relation is kept
    // in the stage table and the query around it recomputed over the stage.
    let mut outer_columns = None;
    let bound = match bound {
        Err(Error::Unsupported(d))
            if spec.mode.compiled_as() == Mode::Differential && !is_recursive =>
        {
            // What a recomputation could not reproduce stays rejected.
            nested_recompute_reason(text, &query)?;
            // A `HAVING` with a subquery: the aggregate without it is the relation.
            let around = outer::outer_over_aggregate(text, &query, catalog, &sources, &ctes)
                .or_else(|| {
                    let q = having::having_outside(text, &query, catalog)?;
                    crate::analyze::typecheck::check(text, &q, catalog).ok()?;
                    outer::outer_over_aggregate(text, &q, catalog, &sources, &ctes)
                });
            match around {
                Some((block, outer, srcs)) => {
                    reject_volatile(text, &query)?;
                    outer_columns = Some(output_columns(text, &query, catalog)?);
                    over_stage = Some(OverStage::Query(outer));
                    bind_sources = srcs;
                    Ok(block)
                }
                None => Err(Error::Unsupported(d)),
            }
        }
        other => other,
    };
    let nested = match (&spec.mode.compiled_as(), &bound) {
        (Mode::Differential, Err(Error::Unsupported(d))) if !is_recursive && !is_top_k(&query) => {
            match nested_recompute_reason(text, &query)? {
                Some(reason) => Some(reason),
                None => recompute_reason(&query, d),
            }
        }
        _ => None,
    };

    let (strategy, body, columns) = match (spec.mode.compiled_as(), bound) {
        (Mode::Differential, Ok(block)) => {
            let columns = outer_columns.unwrap_or_else(|| {
                block
                    .items
                    .iter()
                    .map(|(n, _)| OutputColumn {
                        name: n.clone(),
                        sql_type: None,
                        nullable: None,
                    })
                    .collect()
            });
            // binding may order sources differently; keep the binder's order
            sources = bind_sources;
            (Strategy::Incremental, Body::Incremental(block), columns)
        }
        (Mode::Differential, Err(Error::Unsupported(_))) if is_recursive => {
            reject_volatile(text, &query)?;
            let columns: Vec<OutputColumn> = output_columns(text, &query, catalog)?;
            qualify_tables(&mut query, &ctes, &sources);
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            let seminaive = crate::analyze::recursive::analyze(&query, &sources, &names);
            (
                Strategy::RecomputeDiff {
                    reason: if seminaive.is_some() {
                        "WITH RECURSIVE: new rows derived semi-naively when the changes are all inserts, else recomputed".into()
                    } else {
                        "WITH RECURSIVE has no delta rule".into()
                    },
                },
                Body::Recompute {
                    query_sql: Sql::query(&query),
                    seminaive,
                },
                columns,
            )
        }
        (Mode::Differential, Err(Error::Unsupported(_))) if is_top_k(&query) => {
            // A top-k depends on rows outside the changes; the k rows are recomputed
            // when a source changed and only the difference is applied.
            reject_volatile(text, &query)?;
            let columns = output_columns(text, &query, catalog)?;
            qualify_tables(&mut query, &ctes, &sources);
            (
                Strategy::RecomputeDiff {
                    reason: "ORDER BY ... LIMIT: the top rows are recomputed".into(),
                },
                Body::Recompute {
                    query_sql: Sql::query(&query),
                    seminaive: None,
                },
                columns,
            )
        }
        (Mode::Differential, Err(Error::Unsupported(_))) if nested.is_some() => {
            // An aggregate, DISTINCT or LIMIT below the top of the query, a scalar
            // subquery, or any other construct without a delta rule whose result the
            // query determines: recomputing the query is exact.
            reject_volatile(text, &query)?;
            let columns = output_columns(text, &query, catalog)?;
            qualify_tables(&mut query, &ctes, &sources);
            (
                Strategy::RecomputeDiff {
                    reason: nested.unwrap_or_default(),
                },
                Body::Recompute {
                    query_sql: Sql::query(&query),
                    seminaive: None,
                },
                columns,
            )
        }
        (Mode::Differential, Err(e)) => return Err(e),
        (Mode::Full, Err(e @ (Error::Invalid(_) | Error::Syntax(_)))) => return Err(e),
        // (`compiled_as` never gives IMMEDIATE.)
        (Mode::Full | Mode::Immediate, _) => {
            let columns = output_columns(text, &query, catalog)?;
            qualify_tables(&mut query, &ctes, &sources);
            (
                Strategy::Full,
                Body::Recompute {
                    query_sql: Sql::query(&query),
                    seminaive: None,
                },
                columns,
            )
        }
    };
    if columns.is_empty() {
        // `SELECT FROM t`: PostgreSQL allows it, but there is nothing to store.
        let mut top = query.body.as_ref();
        while let SetExpr::SetOperation { left, .. } = top {
            top = left;
        }
        let span = match top {
            SetExpr::Select(s) => span_range(text, s.select_token.0.span),
            _ => None,
        };
        return Err(Error::Invalid(
            Diagnostic::new("the query has no output columns: a stream table needs at least one")
                .with_span(span)
                .with_help("list the columns to keep after SELECT"),
        ));
    }
    for (i, c) in columns.iter().enumerate() {
        if c.name.starts_with("__pgs") {
            return Err(Error::Invalid(Diagnostic::new(format!(
                "the output column `{}` uses the prefix `__pgs`, which pgstream reserves for hidden columns",
                c.name
            ))));
        }
        if columns[..i].iter().any(|d| d.name == c.name) {
            return Err(Error::Invalid(
                Diagnostic::new(format!("the output column `{}` appears twice; a stream table needs distinct column names", c.name))
                    .with_help("give one of them another name with AS"),
            ));
        }
    }
    Ok(Compiled {
        spec: spec.clone(),
        columns,
        sources,
        strategy,
        functions: called_functions(&query),
        expanded_query: spec.query.clone(),
        views: Vec::new(),
        body,
        over_stage,
    })
}

/// A top-level `ORDER BY ... LIMIT n` over a block the delta rules maintain as an
/// aggregate with `GROUP BY` or as a projection whose rows are identified by their
/// leaves' keys (`Block::keyed_rows`): the block bound without its `ORDER BY` and `LIMIT`,
/// and the order and count, when every `ORDER BY` item names an output column (by
/// name or position) and `n` is a number. `None` otherwise (the query is then
/// recomputed, as before).
fn top_k_over_stage(
    text: &str,
    query: &Query,
    catalog: &Catalog,
    sources: &[Table],
) -> Option<(Block, crate::ir::TopK, Vec<Table>)> {
    use sqlparser::ast::{OrderByKind, Value};
    let limit = match limits::limit(query)? {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<u64>().ok()?,
            _ => return None,
        },
        _ => return None,
    };
    if limits::has_limit_by(query) {
        return None;
    }
    let order_by = query.order_by.as_ref()?;
    if order_by.interpolate.is_some() {
        return None;
    }
    let OrderByKind::Expressions(items) = &order_by.kind else {
        return None;
    };
    let mut inner = query.clone();
    inner.order_by = None;
    limits::clear_limit(&mut inner);
    let (block, srcs) = bind_stage_block(text, catalog, sources, &inner, true)?;
    let mut order = Vec::new();
    for o in items {
        if o.with_fill.is_some() {
            return None;
        }
        let column = match &o.expr {
            Expr::Identifier(id) if block.items.iter().any(|(n, _)| *n == ident_value(id)) => {
                let name = ident_value(id);
                block.items.iter().position(|(n, _)| *n == name)?
            }
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n
                    .parse::<usize>()
                    .ok()?
                    .checked_sub(1)
                    .filter(|&i| i < block.items.len())?,
                _ => return None,
            },
            // An expression of the select list, as written there (`ORDER BY o.placed_at`
            // for the item `o.placed_at`): the same value over the same row.
            e => written_item(&inner, e).filter(|&i| i < block.items.len())?,
        };
        order.push((column, Sql::ast(&o.options)));
    }
    let text = format!(
        "ORDER BY {} LIMIT {limit}",
        items
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Some((block, crate::ir::TopK { order, limit, text }, srcs))
}

/// The position of the select-list item of `q` written as `e` (its expression, with
/// or without an alias), when `q` is one `SELECT` without `*` (whose positions are
/// then the output columns').
fn written_item(q: &Query, e: &Expr) -> Option<usize> {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    let text = e.to_string();
    let mut found = None;
    for (i, item) in sel.projection.iter().enumerate() {
        match item {
            SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. } => {
                if found.is_none() && x.to_string() == text {
                    found = Some(i);
                }
            }
            _ => return None,
        }
    }
    found
}

/// `q` bound as a block the delta rules maintain as an aggregate with `GROUP BY`
/// (its conditions pushed down), with the sources in the binder's order; `None` when
/// it is not one. What a stage under a query around it holds.
fn bind_grouped_aggregate(
    text: &str,
    catalog: &Catalog,
    sources: &[Table],
    q: &Query,
) -> Option<(Block, Vec<Table>)> {
    bind_stage_block(text, catalog, sources, q, false)
}

/// [`bind_grouped_aggregate`], and with `rows` also a projection whose rows are
/// identified by their leaves' keys (`Block::keyed_rows`; a bag's copies have no key
/// the stage's changes could be matched by). What a stage under a top-k holds.
fn bind_stage_block(
    text: &str,
    catalog: &Catalog,
    sources: &[Table],
    q: &Query,
    rows: bool,
) -> Option<(Block, Vec<Table>)> {
    let mut srcs = sources.to_vec();
    let mut block = {
        let mut binder = Binder::new(text, catalog, &mut srcs);
        binder.bind_query(q).ok()?
    };
    match &block.shape {
        crate::ir::Shape::Aggregate { groups, .. } if !groups.is_empty() => {}
        crate::ir::Shape::Project if rows && block.keyed_rows() => {}
        _ => return None,
    }
    crate::pushdown::push_down(&mut block);
    Some((block, srcs))
}

/// `... ORDER BY ... LIMIT n [OFFSET m]` at the top of the query: deterministic
/// enough to maintain when the ORDER BY is.
fn is_top_k(q: &Query) -> bool {
    limits::limit(q).is_some()
        && q.fetch.is_none()
        && q.order_by.as_ref().is_some_and(|o| match &o.kind {
            sqlparser::ast::OrderByKind::Expressions(e) => !e.is_empty(),
            _ => false,
        })
}

/// Why the query is maintained by recompute-and-diff in DIFFERENTIAL mode although
/// it is neither recursive nor a top-k: it holds, below its top, a construct that
/// has no delta rule yet but whose recomputation is exact, namely a subquery in FROM,
/// a CTE, a view body or a `LATERAL` subquery with `GROUP BY`, aggregates, `DISTINCT`
/// or `ORDER BY ... LIMIT`, or a scalar subquery that returns at most one row (an
/// aggregate without `GROUP BY`, or `ORDER BY ... LIMIT 1`). `None` when it holds none.
///
/// What a recomputation could not reproduce stays rejected, so that the stream table
/// equals the query evaluated afresh: `LIMIT`/`OFFSET` without `ORDER BY` or
/// `DISTINCT ON` below the top (which rows qualify is not determined), and a scalar
/// subquery that may return more than one row (PostgreSQL would fail the refresh).
/// Volatile functions are rejected by the caller.
fn nested_recompute_reason(text: &str, q: &Query) -> Result<Option<String>> {
    use sqlparser::ast::{Distinct, GroupByExpr};
    fn has_order(q: &Query) -> bool {
        q.order_by.as_ref().is_some_and(|o| match &o.kind {
            sqlparser::ast::OrderByKind::Expressions(e) => !e.is_empty(),
            _ => false,
        })
    }
    fn aggregates(sel: &sqlparser::ast::Select) -> bool {
        sel.having.is_some()
            || !matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            || sel.projection.iter().any(|i| match i {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    crate::sql::walk::contains_aggregate(e)
                }
                _ => false,
            })
    }
    struct V<'a> {
        text: &'a str,
        top: *const Query,
        reason: Option<String>,
        err: Option<Error>,
    }
    impl V<'_> {
        fn fail(&mut self, what: &str, node: &dyn crate::bind::SpannedDyn) -> ControlFlow<()> {
            self.err = Some(crate::bind::unsupported(self.text, what, Some(node)));
            ControlFlow::Break(())
        }
        fn found(&mut self, reason: String) {
            if self.reason.is_none() {
                self.reason = Some(reason);
            }
        }
        /// A subquery in FROM, a CTE body or a view body (a derived table after
        /// view expansion).
        fn relation(&mut self, q: &Query) {
            let what = if limits::limits_rows(q) {
                Some("ORDER BY ... LIMIT")
            } else {
                match q.body.as_ref() {
                    SetExpr::Select(sel) if aggregates(sel) => Some("GROUP BY or an aggregate"),
                    SetExpr::Select(sel) if matches!(sel.distinct, Some(Distinct::Distinct)) => {
                        Some("DISTINCT")
                    }
                    _ => None,
                }
            };
            if let Some(what) = what {
                self.found(format!(
                    "{what} in a subquery, CTE or view: no delta rule for it below the top of the query yet"
                ));
            }
        }
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            let top = std::ptr::eq(q, self.top);
            if !top && (limits::limits_rows(q)) && !has_order(q) {
                return self.fail(
                    "LIMIT or OFFSET without ORDER BY in a subquery (which rows qualify is not determined)",
                    q,
                );
            }
            if !top {
                if let SetExpr::Select(sel) = q.body.as_ref() {
                    if matches!(sel.distinct, Some(Distinct::On(_))) {
                        return self.fail("subqueries in FROM, CTEs or views with DISTINCT ON", q);
                    }
                }
            }
            if let Some(w) = &q.with {
                if !w.recursive {
                    for c in &w.cte_tables {
                        self.relation(&c.query);
                    }
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Derived { subquery, .. } = f {
                self.relation(subquery);
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Subquery(q) = e {
                if (limits::limits_rows(q)) && !has_order(q) {
                    // rejected when its query is visited, for its LIMIT
                    return ControlFlow::Continue(());
                }
                let one_row = match q.body.as_ref() {
                    SetExpr::Select(sel) => {
                        (limits::limit(q).is_none()
                            && !limits::has_offset(q)
                            && q.fetch.is_none()
                            && matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
                            && aggregates(sel))
                            || (has_order(q)
                                && !limits::has_offset(q)
                                && q.fetch.is_none()
                                && matches!(limits::limit(q), Some(Expr::Value(v))
                                    if matches!(&v.value, sqlparser::ast::Value::Number(n, _) if n == "1" || n == "0")))
                    }
                    _ => false,
                };
                if !one_row {
                    return self.fail(
                        "scalar subqueries that may return more than one row (only an aggregate without GROUP BY, or ORDER BY ... LIMIT 1, is recomputed)",
                        e,
                    );
                }
                self.found("a scalar subquery: no delta rule for it yet".to_string());
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V {
        text,
        top: q as *const Query,
        reason: None,
        err: None,
    };
    let _ = q.visit(&mut v);
    match v.err {
        Some(e) => Err(e),
        None => Ok(v.reason),
    }
}

/// Why a query that the binder refused with `refusal` (and that holds none of the
/// constructs [`nested_recompute_reason`] names) is maintained by recompute-and-diff:
/// the construct the refusal names has no delta rule yet, but the query determines
/// its result, so recomputing it when a source changed and applying the difference
/// is exact (a subquery under `OR`, a mix of set operators, window functions over a
/// `GROUP BY`, `DISTINCT` with `GROUP BY`, ...). `None` for what a recomputation
/// could not reproduce, whose refusal stands: `LIMIT` without `ORDER BY` or `OFFSET`
/// at the top of the query (which rows qualify is not determined) and volatile
/// functions (their value changes between evaluations).
fn recompute_reason(q: &Query, refusal: &Diagnostic) -> Option<String> {
    if limits::limits_rows(q) {
        return None;
    }
    let what = refusal
        .message
        .strip_prefix("DIFFERENTIAL mode cannot maintain ")?
        .strip_suffix(" yet")?;
    Some(format!("{what}: no delta rule for it yet"))
}

/// Rewrite every table reference to its schema-qualified, quoted name, so the query
/// means the same under the pinned `search_path` of the refresh.
fn qualify_tables(q: &mut Query, ctes: &HashSet<String>, sources: &[Table]) {
    let _ = sqlparser::ast::visit_relations_mut(q, |n: &mut ObjectName| {
        if n.0.len() == 1 && ctes.contains(&ident_value(n.0[0].as_ident().expect("ident"))) {
            return ControlFlow::<()>::Continue(());
        }
        let q = crate::sql::ident::qualified(n);
        let explicit = n.0.len() > 1;
        if let Some(t) = sources
            .iter()
            .find(|t| t.name.name == q.name && (!explicit || t.name.schema == q.schema))
        {
            *n = ObjectName(vec![
                ObjectNamePart::Identifier(Ident::with_quote('"', t.name.schema.clone())),
                ObjectNamePart::Identifier(Ident::with_quote('"', t.name.name.clone())),
            ]);
        }
        ControlFlow::Continue(())
    });
    // Unaliased references like `departments.id` keep working: PostgreSQL names the
    // relation by its table name whether or not the schema is written.
    expand_wildcards(q, sources);
}

/// Replace each `*` and `alias.*` over source tables by the columns they stand for
/// now (`alias.column`, quoted), in every SELECT of the query: the stored statement
/// then reads the columns the query had when it was compiled, so a column added to a
/// source later changes neither the output nor a set operation's arity. A wildcard
/// over a subquery, a CTE or a table function, or in a SELECT whose joins merge
/// columns (`USING`, `NATURAL`), stays as written.
fn expand_wildcards(q: &mut Query, sources: &[Table]) {
    use sqlparser::ast::{
        JoinConstraint, JoinOperator, Select, SelectItemQualifiedWildcardKind, TableWithJoins,
        VisitMut, VisitorMut, WildcardAdditionalOptions,
    };
    /// `(name the FROM item is referred to by, its columns when it is a source table
    /// without a column alias list)`.
    fn items(f: &TableFactor, sources: &[Table], out: &mut Vec<(String, Option<Vec<Ident>>)>) {
        match f {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let source = (name.0.len() == 2)
                    .then(|| crate::sql::ident::qualified(name))
                    .and_then(|qn| {
                        sources
                            .iter()
                            .find(|t| t.name.schema == qn.schema && t.name.name == qn.name)
                    });
                let refname = alias
                    .as_ref()
                    .map(|a| ident_value(&a.name))
                    .unwrap_or_else(|| source.map(|t| t.name.name.clone()).unwrap_or_default());
                let cols = source
                    .filter(|_| alias.as_ref().is_none_or(|a| a.columns.is_empty()))
                    .map(|t| {
                        t.columns
                            .iter()
                            .map(|c| Ident::with_quote('"', c.name.clone()))
                            .collect()
                    });
                out.push((refname, cols));
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => joined(table_with_joins, sources, out),
            TableFactor::Derived { alias, .. } | TableFactor::NestedJoin { alias, .. } => {
                out.push((
                    alias
                        .as_ref()
                        .map(|a| ident_value(&a.name))
                        .unwrap_or_default(),
                    None,
                ));
            }
            _ => out.push((String::new(), None)),
        }
    }
    fn joined(
        twj: &TableWithJoins,
        sources: &[Table],
        out: &mut Vec<(String, Option<Vec<Ident>>)>,
    ) {
        items(&twj.relation, sources, out);
        for j in &twj.joins {
            items(&j.relation, sources, out);
        }
    }
    fn merges_columns(twj: &TableWithJoins) -> bool {
        let nested = |f: &TableFactor| match f {
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => merges_columns(table_with_joins),
            _ => false,
        };
        nested(&twj.relation)
            || twj.joins.iter().any(|j| {
                nested(&j.relation)
                    || match crate::sql::walk::join_constraint(&j.join_operator) {
                        Some(c) => matches!(c, JoinConstraint::Using(_) | JoinConstraint::Natural),
                        None => !matches!(j.join_operator, JoinOperator::CrossJoin(_)),
                    }
            })
    }
    fn expand(s: &mut Select, sources: &[Table]) {
        if s.from.is_empty() || s.from.iter().any(merges_columns) {
            return;
        }
        let mut from = Vec::new();
        for twj in &s.from {
            joined(twj, sources, &mut from);
        }
        let columns = |(refname, cols): &(String, Option<Vec<Ident>>)| {
            cols.as_ref().map(|cols| {
                cols.iter()
                    .map(|c| {
                        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                            Ident::with_quote('"', refname.clone()),
                            c.clone(),
                        ]))
                    })
                    .collect::<Vec<_>>()
            })
        };
        let plain = WildcardAdditionalOptions::default();
        let mut out = Vec::with_capacity(s.projection.len());
        for item in std::mem::take(&mut s.projection) {
            let expanded = match &item {
                SelectItem::Wildcard(o)
                    if WildcardAdditionalOptions {
                        wildcard_token: plain.wildcard_token.clone(),
                        ..o.clone()
                    } == plain =>
                {
                    from.iter()
                        .map(columns)
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.concat())
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    o,
                ) if n.0.len() == 1
                    && WildcardAdditionalOptions {
                        wildcard_token: plain.wildcard_token.clone(),
                        ..o.clone()
                    } == plain =>
                {
                    let name = ident_value(n.0[0].as_ident().expect("ident"));
                    let mut hits = from.iter().filter(|(r, _)| *r == name);
                    match (hits.next(), hits.next()) {
                        (Some(hit), None) => columns(hit),
                        _ => None,
                    }
                }
                _ => None,
            };
            match expanded {
                Some(items) => out.extend(items),
                None => out.push(item),
            }
        }
        s.projection = out;
    }
    fn body(b: &mut SetExpr, sources: &[Table]) {
        match b {
            SetExpr::Select(s) => expand(s, sources),
            SetExpr::SetOperation { left, right, .. } => {
                body(left, sources);
                body(right, sources);
            }
            _ => {}
        }
    }
    struct Expand<'a>(&'a [Table]);
    impl VisitorMut for Expand<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            body(&mut q.body, self.0);
            ControlFlow::Continue(())
        }
    }
    let _ = q.visit(&mut Expand(sources));
}

/// Output column names of a query maintained by recomputation, as PostgreSQL names them.
fn output_columns(text: &str, q: &Query, catalog: &Catalog) -> Result<Vec<OutputColumn>> {
    let names = query_names(q, catalog, &[]).map_err(|m| Error::Invalid(Diagnostic::new(m)))?;
    let _ = text;
    Ok(names
        .into_iter()
        .map(|name| OutputColumn {
            name,
            sql_type: None,
            nullable: None,
        })
        .collect())
}
