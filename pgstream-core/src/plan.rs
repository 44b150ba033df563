//! Planning: parse, bind, and choose a maintenance strategy for the operator tree.

use crate::bind::Binder;
use crate::catalog::{Catalog, Table};
use crate::error::{Diagnostic, Error, Result};
use crate::ir::{Artifacts, RenderContext, SourceBinding};
use crate::ir::{Block, Body, Compiled, JoinKind, OutputColumn, Shape, Strategy, Tree};
use crate::spec::{Mode, StreamTableSpec};
use crate::sql::ident::ident_value;
use crate::sql::parse::{self, expr_range, span_range};
use crate::sql::walk::{cte_names, function_name, VOLATILE};
use sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, TableFactor, Visit,
    Visitor,
};
use std::collections::HashSet;
use std::ops::ControlFlow;

impl Compiled {
    /// Render the SQL artifacts with the database's object ids.
    pub fn render(&self, ctx: &RenderContext) -> Artifacts {
        crate::strategy::render(self, ctx)
    }

    /// A render context with placeholder ids (stream table 0; source oids taken from
    /// the catalog when known, else 0, 1, ...), for `explain` and snapshot tests.
    pub fn placeholder_context(&self) -> RenderContext {
        RenderContext {
            st_id: 0,
            sources: self
                .sources
                .iter()
                .enumerate()
                .map(|(i, t)| SourceBinding {
                    oid: t.oid.unwrap_or(i as u32),
                })
                .collect(),
        }
    }

    /// One line saying how the stream table is maintained (the root's strategy, as in
    /// [`Compiled::explain`]); the runtime records it for `pgstream.pgs_status()`.
    pub fn strategy_summary(&self) -> String {
        let base = self.root_summary();
        match &self.body {
            Body::Incremental(b)
                if b.leaves.iter().any(|l| l.agg.is_some())
                    || matches!(&b.shape, Shape::SetOp { branches, .. }
                        if branches.iter().any(|br| br.leaves.iter().any(|l| l.agg.is_some()))) =>
            {
                format!(
                    "{base}; each aggregate subquery (in FROM, or a correlated scalar aggregate, LEFT JOINed on its correlation keys) recomputes the groups the changes of its table touch (old and new state) and is read by group key"
                )
            }
            _ => base,
        }
    }

    fn root_summary(&self) -> String {
        match (&self.body, &self.strategy) {
            (_, Strategy::Full) => {
                "full: recompute and apply the difference on every refresh".into()
            }
            (_, Strategy::RecomputeDiff { reason }) => {
                format!("recompute and apply the difference when a source changed ({reason})")
            }
            (Body::Incremental(b), _) => match &b.shape {
                Shape::Project => "incremental: delta rules".into(),
                Shape::Aggregate {
                    recompute: false, ..
                } => "incremental: delta rules, per-group counters".into(),
                Shape::Aggregate {
                    recompute: true, ..
                } => "incremental: delta rules, recompute the groups the changes touch".into(),
                Shape::Window {
                    distinct_on: Some(_),
                    ..
                } => "incremental: recompute the DISTINCT ON keys the changes touch".into(),
                Shape::Window { partition, .. } if partition.is_empty() => {
                    "recompute the whole result when anything changed (window without PARTITION BY)"
                        .into()
                }
                Shape::Window { .. } => {
                    "incremental: recompute the partitions the changes touch".into()
                }
                Shape::SetOp { op, all, .. } => match (op, all) {
                    (crate::ir::SetOpKind::Union, _) => {
                        "incremental: delta rules, multiplicities".into()
                    }
                    _ => format!(
                        "incremental: recompute the rows the changes touch ({}{})",
                        op.sql(),
                        if *all { " ALL" } else { "" }
                    ),
                },
            },
            (Body::Recompute { .. }, Strategy::Incremental) => "incremental".into(),
        }
    }

    /// The operator tree with the strategy per node, followed by the generated SQL.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "stream table {} ({} mode)\n",
            self.spec.name, self.spec.mode
        ));
        out.push_str(&format!(
            "output columns: {}\n\n",
            self.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(&format!("strategy: {}\n\n", self.strategy_summary()));
        out.push_str("operator tree:\n");
        match &self.body {
            Body::Incremental(b) => explain_block(b, &mut out),
            Body::Recompute { .. } => {
                let why = match &self.strategy {
                    Strategy::RecomputeDiff { reason } => {
                        format!("recompute-and-diff when a source changed ({reason})")
                    }
                    _ => "recompute-and-diff on every refresh (FULL mode)".to_string(),
                };
                out.push_str(&format!(
                    "  Query                                   strategy: {why}\n"
                ));
                for s in &self.sources {
                    out.push_str(&format!("    Scan {}                 strategy: change buffer (used to detect changes)\n", s.name));
                }
            }
        }
        let a = self.render(&self.placeholder_context());
        out.push_str("\nstorage table:\n");
        for s in &a.storage_ddl {
            out.push_str(&format!("  {s};\n"));
        }
        out.push_str("\nfull refresh:\n");
        out.push_str(&indent(&a.full_refresh));
        if let Some(d) = &a.differential_refresh {
            out.push_str("\ndifferential refresh:\n");
            out.push_str(&indent(d));
        }
        out
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

fn explain_block(b: &Block, out: &mut String) {
    let mut lines: Vec<(usize, String, String)> = Vec::new();
    let mut depth = 0;
    match &b.shape {
        Shape::Aggregate {
            group_texts,
            aggs,
            recompute,
            having,
            ..
        } => {
            let calls: Vec<String> = aggs.iter().map(|a| a.text.clone()).collect();
            let group = if group_texts.is_empty() {
                "(global: exactly one row)".to_string()
            } else {
                group_texts.join(", ")
            };
            let having = having.as_ref().map(|_| " HAVING ...").unwrap_or("");
            let strategy = if *recompute {
                "recompute only the groups the changes touch, apply the difference"
            } else {
                "per-group counters in hidden columns (__pgs_count, sums and non-NULL counts)"
            };
            lines.push((
                depth,
                format!("Aggregate group by {group}: {}{having}", calls.join(", ")),
                strategy.into(),
            ));
            depth += 1;
        }
        Shape::Window {
            partition,
            distinct_on,
        } => {
            let strategy = if distinct_on.is_some() {
                "recompute the DISTINCT ON keys the changes touch, apply the difference"
            } else if partition.is_empty() {
                "recompute the whole result when anything changed (no PARTITION BY)"
            } else {
                "recompute the partitions the changes touch, apply the difference"
            };
            lines.push((
                depth,
                format!(
                    "{} {}",
                    if distinct_on.is_some() {
                        "DistinctOn"
                    } else {
                        "Window"
                    },
                    b.items
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                strategy.into(),
            ));
            depth += 1;
        }
        Shape::SetOp { op, all, branches } => {
            let strategy = match (op, all) {
                (crate::ir::SetOpKind::Union, true) => {
                    "bag of the branches' delta rows (multiplicities)"
                }
                (crate::ir::SetOpKind::Union, false) => "multiplicity counter per distinct row",
                _ => "recompute the rows whose values the changes touch, apply the difference",
            };
            lines.push((
                depth,
                format!(
                    "{}{} of {} queries",
                    op.sql(),
                    if *all { " ALL" } else { "" },
                    branches.len()
                ),
                strategy.into(),
            ));
            depth += 1;
        }
        Shape::Project => {
            lines.push((
                depth,
                format!(
                    "Project {}",
                    b.items
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "apply to delta rows; net effect per source primary keys".into(),
            ));
            depth += 1;
        }
    }
    fn tree(t: &Tree, b: &Block, depth: usize, lines: &mut Vec<(usize, String, String)>) {
        match t {
            Tree::Filter { input, text, .. } => {
                lines.push((
                    depth,
                    format!("Filter {text}"),
                    "apply to delta rows, weights carried".into(),
                ));
                tree(input, b, depth + 1, lines);
            }
            Tree::Leaf(i) => {
                let l = &b.leaves[*i];
                match &l.agg {
                    None => lines.push((
                        depth,
                        format!("Scan {} AS {}", l.table.name, l.alias),
                        "change buffer window (Z-set: -old, +new)".into(),
                    )),
                    Some(a) => lines.push((
                        depth,
                        format!("AggregateSubquery ({}) AS {}", a.text, l.alias),
                        "delta: the groups the changes touch, recomputed over the new (+1) and old (-1) state; joined to other deltas by its group keys".into(),
                    )),
                }
            }
            Tree::Join {
                kind,
                left,
                right,
                on_text,
                ..
            } => {
                let strat = match kind {
                    JoinKind::Semi => {
                        "left delta minus the anti-join delta (matches counted, not multiplied)"
                    }
                    JoinKind::Anti => {
                        "left rows without a match: recounted for the keys the changes touch"
                    }
                    JoinKind::Inner => "bilinear: dL⋈R + L⋈dR - dL⋈dR",
                    JoinKind::Left | JoinKind::Right => {
                        "bilinear inner part + dangling rows recounted for affected keys"
                    }
                    JoinKind::Full => "bilinear inner part + dangling rows of both sides recounted",
                };
                lines.push((depth, format!("{} ON {on_text}", kind.sql()), strat.into()));
                tree(left, b, depth + 1, lines);
                tree(right, b, depth + 1, lines);
            }
        }
    }
    let branches: Vec<&Block> = match &b.shape {
        Shape::SetOp { branches, .. } => branches.iter().collect(),
        _ => vec![b],
    };
    let several = branches.len() > 1;
    for (i, br) in branches.iter().enumerate() {
        let mut d = depth;
        if several {
            lines.push((
                d,
                format!("Branch {}", i + 1),
                "its delta rows, weights carried".into(),
            ));
            d += 1;
        }
        if let Some(f) = &br.filter_text {
            lines.push((
                d,
                format!("Filter {f}"),
                "apply to delta rows, weights carried".into(),
            ));
            d += 1;
        }
        tree(&br.tree, br, d, &mut lines);
    }
    for (d, op, strat) in lines {
        let left = format!("{}{}", "  ".repeat(d + 1), op);
        out.push_str(&format!("{left:<60} strategy: {strat}\n"));
    }
}

pub(crate) fn compile(spec: &StreamTableSpec, catalog: &Catalog) -> Result<Compiled> {
    let text = spec.query.as_str();
    let mut query = parse::defining_query(text)?;
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
        let mut binder = Binder {
            query: text,
            catalog,
            sources: &mut sources,
            leaves: Vec::new(),
            frames: vec![Vec::new()],
            virtuals: Vec::new(),
            ctes: Vec::new(),
            allow_windows: std::cell::Cell::new(false),
            lateral_pred: None,
            hidden: Vec::new(),
        };
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

    crate::typecheck::check(text, &query, catalog)?;

    // Try delta rules.
    let mut bind_sources = sources.clone();
    let bound = {
        let mut binder = Binder {
            query: text,
            catalog,
            sources: &mut bind_sources,
            leaves: Vec::new(),
            frames: vec![Vec::new()],
            virtuals: Vec::new(),
            ctes: Vec::new(),
            allow_windows: std::cell::Cell::new(false),
            lateral_pred: None,
            hidden: Vec::new(),
        };
        binder.bind_query(&query)
    };
    let bound = bound.and_then(|b| check_keys(text, b)).map(|mut b| {
        crate::pushdown::push_down(&mut b);
        b
    });
    let is_recursive = query.with.as_ref().map(|w| w.recursive).unwrap_or(false);
    let nested = match (&spec.mode, &bound) {
        (Mode::Differential, Err(Error::Unsupported(_))) if !is_recursive && !is_top_k(&query) => {
            nested_recompute_reason(text, &query)?
        }
        _ => None,
    };

    let (strategy, body, columns) = match (spec.mode, bound) {
        (Mode::Differential, Ok(block)) => {
            let columns = block
                .items
                .iter()
                .map(|(n, _)| OutputColumn {
                    name: n.clone(),
                    sql_type: None,
                    nullable: None,
                })
                .collect();
            // binding may order sources differently; keep the binder's order
            sources = bind_sources;
            (Strategy::Incremental, Body::Incremental(block), columns)
        }
        (Mode::Differential, Err(Error::Unsupported(_))) if is_recursive => {
            reject_volatile(text, &query)?;
            let columns: Vec<OutputColumn> = output_columns(text, &query, catalog)?;
            qualify_tables(&mut query, &ctes, &sources);
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            let seminaive = crate::seminaive::analyze(&query, &sources, &names);
            (
                Strategy::RecomputeDiff {
                    reason: if seminaive.is_some() {
                        "WITH RECURSIVE: new rows derived semi-naively when the changes are all inserts, else recomputed".into()
                    } else {
                        "WITH RECURSIVE has no delta rule".into()
                    },
                },
                Body::Recompute {
                    query_sql: query.to_string(),
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
                    query_sql: query.to_string(),
                    seminaive: None,
                },
                columns,
            )
        }
        (Mode::Differential, Err(Error::Unsupported(_))) if nested.is_some() => {
            // An aggregate, DISTINCT or LIMIT below the top of the query, or a scalar
            // subquery: no delta rule yet, but recomputing the query is exact.
            reject_volatile(text, &query)?;
            let columns = output_columns(text, &query, catalog)?;
            qualify_tables(&mut query, &ctes, &sources);
            (
                Strategy::RecomputeDiff {
                    reason: nested.unwrap_or_default(),
                },
                Body::Recompute {
                    query_sql: query.to_string(),
                    seminaive: None,
                },
                columns,
            )
        }
        (Mode::Differential, Err(e)) => return Err(e),
        (Mode::Full, Err(e @ (Error::Invalid(_) | Error::Syntax(_)))) => return Err(e),
        (Mode::Full, _) => {
            let columns = output_columns(text, &query, catalog)?;
            qualify_tables(&mut query, &ctes, &sources);
            (
                Strategy::Full,
                Body::Recompute {
                    query_sql: query.to_string(),
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
    })
}

/// Every bound block has a delta rule: a query without GROUP BY identifies its rows
/// by the sources' primary keys, or, when a source has none, as a bag of full rows
/// with multiplicities.
fn check_keys(_text: &str, b: Block) -> Result<Block> {
    Ok(b)
}

/// `... ORDER BY ... LIMIT n` at the top of the query (without OFFSET): deterministic
/// enough to maintain when the ORDER BY is.
fn is_top_k(q: &Query) -> bool {
    q.limit.is_some()
        && q.offset.is_none()
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
            let what = if q.limit.is_some() || q.offset.is_some() || q.fetch.is_some() {
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
            if !top
                && (q.limit.is_some() || q.offset.is_some() || q.fetch.is_some())
                && !has_order(q)
            {
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
                if (q.limit.is_some() || q.offset.is_some() || q.fetch.is_some()) && !has_order(q) {
                    // rejected when its query is visited, for its LIMIT
                    return ControlFlow::Continue(());
                }
                let one_row = match q.body.as_ref() {
                    SetExpr::Select(sel) => {
                        (q.limit.is_none()
                            && q.offset.is_none()
                            && q.fetch.is_none()
                            && matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
                            && aggregates(sel))
                            || (has_order(q)
                                && q.offset.is_none()
                                && q.fetch.is_none()
                                && matches!(&q.limit, Some(Expr::Value(v))
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

/// Every function the query calls, as `(schema, name)`.
fn called_functions(q: &Query) -> Vec<(Option<String>, String)> {
    struct V(Vec<(Option<String>, String)>);
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                let parts: Vec<String> = f
                    .name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident())
                    .map(ident_value)
                    .collect();
                let entry = match parts.as_slice() {
                    [n] => (None, n.clone()),
                    [.., s, n] => (Some(s.clone()), n.clone()),
                    [] => return ControlFlow::Continue(()),
                };
                if !self.0.contains(&entry) {
                    self.0.push(entry);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(Vec::new());
    let _ = q.visit(&mut v);
    v.0
}

/// Recomputation re-evaluates the whole query, so a volatile function would make
/// every refresh rewrite rows that did not change: rejected in DIFFERENTIAL mode.
fn reject_volatile(text: &str, q: &Query) -> Result<()> {
    struct V<'a>(&'a str, Option<Error>);
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                let name = function_name(f);
                if VOLATILE.contains(&name.as_str()) {
                    self.1 = Some(Error::Unsupported(
                        Diagnostic::new(format!(
                            "`{name}` is volatile (its value changes between evaluations), so DIFFERENTIAL mode cannot maintain it"
                        ))
                        .with_span(expr_range(self.0, e))
                        .with_help("use FULL mode (mode = \"full\"), or compute the value when writing the source rows"),
                    ));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(text, None);
    let _ = q.visit(&mut v);
    v.1.map_or(Ok(()), Err)
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
                    || match &j.join_operator {
                        JoinOperator::Join(c)
                        | JoinOperator::Inner(c)
                        | JoinOperator::Left(c)
                        | JoinOperator::LeftOuter(c)
                        | JoinOperator::Right(c)
                        | JoinOperator::RightOuter(c)
                        | JoinOperator::FullOuter(c) => {
                            matches!(c, JoinConstraint::Using(_) | JoinConstraint::Natural)
                        }
                        JoinOperator::CrossJoin => false,
                        _ => true,
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

type CteScope = Vec<(String, Vec<String>)>;

pub(crate) fn query_names(
    q: &Query,
    catalog: &Catalog,
    outer: &[(String, Vec<String>)],
) -> std::result::Result<Vec<String>, String> {
    let mut scope: CteScope = outer.to_vec();
    if let Some(w) = &q.with {
        for c in &w.cte_tables {
            let name = ident_value(&c.alias.name);
            let cols = if !c.alias.columns.is_empty() {
                c.alias
                    .columns
                    .iter()
                    .map(|cd| ident_value(&cd.name))
                    .collect()
            } else {
                // a recursive CTE names its columns by its non-recursive term
                query_names(&c.query, catalog, &scope)?
            };
            scope.push((name, cols));
        }
    }
    set_names(&q.body, catalog, &scope)
}

fn set_names(
    body: &SetExpr,
    catalog: &Catalog,
    scope: &CteScope,
) -> std::result::Result<Vec<String>, String> {
    match body {
        SetExpr::Select(s) => {
            let mut out = Vec::new();
            for item in &s.projection {
                match item {
                    SelectItem::UnnamedExpr(e) => out.push(crate::sql::walk::output_name(e)),
                    SelectItem::ExprWithAlias { alias, .. } => out.push(ident_value(alias)),
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                        let qual = match item {
                            SelectItem::QualifiedWildcard(
                                sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                                _,
                            ) => n.0.last().and_then(|p| p.as_ident()).map(ident_value),
                            SelectItem::QualifiedWildcard(k, _) => {
                                return Err(format!("cannot determine the columns of `{k}`"))
                            }
                            _ => None,
                        };
                        for twj in &s.from {
                            let mut factors = vec![&twj.relation];
                            factors.extend(twj.joins.iter().map(|j| &j.relation));
                            for f in factors {
                                out.extend(factor_names(f, catalog, scope, qual.as_deref())?);
                            }
                        }
                    }
                }
            }
            Ok(out)
        }
        SetExpr::Query(q) => query_names(q, catalog, scope),
        SetExpr::SetOperation { left, .. } => set_names(left, catalog, scope),
        SetExpr::Values(v) => Ok((1..=v.rows.first().map(|r| r.len()).unwrap_or(0))
            .map(|i| format!("column{i}"))
            .collect()),
        _ => Err("cannot determine the output columns of this query".into()),
    }
}

fn factor_names(
    f: &TableFactor,
    catalog: &Catalog,
    scope: &CteScope,
    qual: Option<&str>,
) -> std::result::Result<Vec<String>, String> {
    match f {
        TableFactor::Table { name, alias, .. } => {
            let q = crate::sql::ident::qualified(name);
            let alias_name = alias
                .as_ref()
                .map(|a| ident_value(&a.name))
                .unwrap_or_else(|| q.name.clone());
            if let Some(qual) = qual {
                if qual != alias_name {
                    return Ok(vec![]);
                }
            }
            if let Some(a) = alias {
                if !a.columns.is_empty() {
                    return Ok(a.columns.iter().map(|c| ident_value(&c.name)).collect());
                }
            }
            if name.0.len() == 1 {
                if let Some((_, cols)) = scope.iter().rev().find(|(n, _)| *n == q.name) {
                    return Ok(cols.clone());
                }
            }
            let schema = (name.0.len() > 1).then_some(q.schema.as_str());
            if let Some(t) = catalog.lookup(schema, &q.name) {
                return Ok(t.columns.iter().map(|c| c.name.clone()).collect());
            }
            catalog
                .lookup_view(schema, &q.name)
                .and_then(|v| catalog.view_columns(&v.name))
                .ok_or_else(|| format!("unknown table `{name}`"))
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let alias_name = alias.as_ref().map(|a| ident_value(&a.name));
            if let Some(qual) = qual {
                if alias_name.as_deref() != Some(qual) {
                    return Ok(vec![]);
                }
            }
            let mut names = query_names(subquery, catalog, scope)?;
            if let Some(a) = alias {
                for (n, c) in names.iter_mut().zip(&a.columns) {
                    *n = ident_value(&c.name);
                }
            }
            Ok(names)
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            let mut out = factor_names(&table_with_joins.relation, catalog, scope, qual)?;
            for j in &table_with_joins.joins {
                out.extend(factor_names(&j.relation, catalog, scope, qual)?);
            }
            Ok(out)
        }
        _ => Err(
            "cannot determine the output columns of `*` over this FROM item; list the columns"
                .into(),
        ),
    }
}
