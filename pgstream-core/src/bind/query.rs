//! Queries and set operations: `WITH` (CTEs inlined as derived tables), `UNION`,
//! `INTERSECT`, `EXCEPT` [ALL] over projection blocks, and `SELECT DISTINCT ON`.

use super::*;
use crate::sql::limits;

impl Binder<'_> {
    /// Bind a query that DIFFERENTIAL mode maintains with delta rules.
    pub(crate) fn bind_query(&mut self, q: &Query) -> Result<Block> {
        if let Some(w) = &q.with {
            if w.recursive {
                return Err(unsupported_at(
                    self.query,
                    "WITH RECURSIVE (it is maintained by recompute-and-diff)",
                    Some(w.with_token.0.span),
                ));
            }
        }
        let (mark, q) = self.enter_with(q);
        let block = self.bind_query_body(&q);
        self.ctes.truncate(mark);
        block
    }

    /// The CTEs of `q`'s non-recursive `WITH` brought into scope (each body sees the
    /// CTEs of the enclosing queries and the earlier ones of its own `WITH`, as in
    /// PostgreSQL), so that a `WITH` inside a subquery, a CTE body or an `EXISTS`
    /// body is inlined where it is referenced like a top-level one. Returns the
    /// scope's length to restore (`self.ctes.truncate(mark)`) once `q` is bound, and
    /// `q` without its `WITH`. A `WITH RECURSIVE` stays on the query (nothing is
    /// brought into scope), for its binder to refuse.
    pub(super) fn enter_with(&mut self, q: &Query) -> (usize, Query) {
        let mark = self.ctes.len();
        let Some(w) = q.with.as_ref().filter(|w| !w.recursive) else {
            return (mark, q.clone());
        };
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
            let visible = self.ctes.len();
            self.ctes.push((ident_value(&c.alias.name), body, visible));
        }
        let mut rest = q.clone();
        rest.with = None;
        (mark, rest)
    }

    /// The CTE named `name` that a table reference reaches: the innermost in scope.
    pub(super) fn cte(&self, name: &str) -> Option<(Query, usize)> {
        self.ctes
            .iter()
            .rev()
            .find(|(c, ..)| c == name)
            .map(|(_, q, visible)| (q.clone(), *visible))
    }

    /// Bind a CTE's body where it is referenced, in the scope its definition sees:
    /// neither itself (a `WITH` without `RECURSIVE` does not see its own name) nor a
    /// CTE defined after it or inside the referencing query.
    pub(super) fn bind_cte(
        &mut self,
        body: &Query,
        visible: usize,
        alias: String,
        col_names: &[String],
        f: &TableFactor,
    ) -> Result<Tree> {
        let hidden = self.ctes.split_off(visible.min(self.ctes.len()));
        let tree = self.bind_subquery(body, false, alias, col_names, f);
        self.ctes.extend(hidden);
        tree
    }

    fn bind_query_body(&mut self, q: &Query) -> Result<Block> {
        if let Some(l) = limits::limit(q) {
            return Err(unsupported(self.query, "LIMIT", Some(l)));
        }
        if limits::has_offset(q) || q.fetch.is_some() {
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
    pub(super) fn bind_set_operation(&mut self, body: &SetExpr) -> Result<Block> {
        fn flatten<'e>(
            e: &'e SetExpr,
            out: &mut Vec<&'e SetExpr>,
            ops: &mut Vec<(sqlparser::ast::SetOperator, bool)>,
        ) {
            if let Some((op, quantifier, left, right)) = crate::sql::walk::set_operation(e) {
                flatten(left, out, ops);
                ops.push((op, quantifier == sqlparser::ast::SetQuantifier::All));
                flatten(right, out, ops);
                return;
            }
            match e {
                SetExpr::Query(q)
                    if q.with.is_none() && q.order_by.is_none() && limits::limit(q).is_none() =>
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
                "a mix of set operators in one query",
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
    pub(super) fn bind_distinct_on(
        &mut self,
        s: &Select,
        order_by: Option<&OrderBy>,
    ) -> Result<Block> {
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
                order.push((resolve(self, &o.expr)?, Sql::ast(&o.options)));
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
}
