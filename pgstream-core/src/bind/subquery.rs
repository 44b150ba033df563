//! Subqueries: `EXISTS` / `IN (subquery)` and their negations as semi and anti joins,
//! derived tables and `LATERAL` subqueries inlined into the join tree, and scalar
//! subqueries rewritten as joins.

use super::*;
use crate::sql::limits;
use crate::sql::walk::{and_all, binary};

impl Binder<'_> {
    /// `EXISTS (q)`, `NOT EXISTS (q)`, `x IN (q)`, `x NOT IN (q)` as a semi or anti
    /// join of the subquery's FROM, with its WHERE (and the IN comparison) as the
    /// join condition. `NOT IN` follows SQL: a NULL comparison counts as a match, so
    /// `x NOT IN (q)` keeps a row only when every comparison is false.
    pub(super) fn subquery_join(&mut self, c: &Expr) -> Result<Option<(JoinKind, Tree, Expr)>> {
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
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::Subquery(subquery),
                negated,
                ..
            } => (*negated, subquery, Some(expr.as_ref())),
            _ => return Ok(None),
        };
        // `EXISTS (WITH c AS (...) SELECT ...)`: the CTEs are inlined like those of
        // the query.
        let (mark, q) = self.enter_with(subquery);
        let q = membership_body(q, lhs.is_none());
        let result = match self.semi_join(c, negated, &q, lhs) {
            // A grouped body that is not an aggregate subquery over one table (over a
            // join, or naming the outer query): say so in the EXISTS/IN's words.
            Err(Error::Unsupported(d)) if is_wrapped(&q) && !d.message.contains("volatile") => {
                Err(unsupported(
                    self.query,
                    "subqueries with GROUP BY in EXISTS/IN other than an uncorrelated one over one table",
                    Some(c),
                ))
            }
            other => other,
        };
        self.ctes.truncate(mark);
        result.map(Some)
    }

    /// The semi or anti join of [`Binder::subquery_join`] over the subquery `q`
    /// (without `WITH`, simplified by [`membership_body`]).
    fn semi_join(
        &mut self,
        c: &Expr,
        negated: bool,
        q: &Query,
        lhs: Option<&Expr>,
    ) -> Result<(JoinKind, Tree, Expr)> {
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
        // Scalar aggregates in its WHERE as joins, as in a top-level SELECT.
        let in_where = self.where_scalars_as_joins(sel);
        let sel = in_where.as_ref().unwrap_or(sel);
        self.frames.push(Vec::new());
        let result = (|| {
            let right = self.bind_from(&sel.from)?;
            // EXISTS/IN conjuncts of the body: semi and anti joins inside it (TPC-H
            // Q20's `ps_partkey IN (SELECT p_partkey ...)` in an IN body), when they
            // name only the body's tables.
            let (right, rest) = self.where_joins(right, sel.selection.as_ref())?;
            if !self_contained(&right, &right.leaves()) {
                return Err(unsupported(
                    self.query,
                    "an EXISTS/IN subquery whose own subqueries name the enclosing query",
                    Some(c),
                ));
            }
            let mut conds: Vec<Expr> = Vec::new();
            if let Some(w) = &rest {
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
        result
    }

    /// The SELECT of a subquery that is inlined (select-project-join, without WITH),
    /// else the error naming `what` (`subqueries in FROM`, `LATERAL subqueries`) or
    /// `complex` (what makes it more than that).
    pub(super) fn spj_select<'q>(
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

    /// A subquery in FROM, `LATERAL` or not. `(WITH c AS (...) SELECT ...) AS s`: the
    /// CTEs are inlined where the body references them, as at the top of the query.
    pub(super) fn bind_subquery(
        &mut self,
        q: &Query,
        lateral: bool,
        alias: String,
        col_names: &[String],
        f: &TableFactor,
    ) -> Result<Tree> {
        if q.with.as_ref().is_some_and(|w| !w.recursive) {
            let (mark, body) = self.enter_with(q);
            let tree = self.bind_subquery(&body, lateral, alias, col_names, f);
            self.ctes.truncate(mark);
            return tree;
        }
        if !lateral {
            return self.bind_derived(q, alias, col_names, f);
        }
        // `LATERAL (SELECT ... FROM ... WHERE ...) AS alias`: like a subquery in FROM,
        // except that its WHERE may name the tables to its left. The WHERE is left in
        // `lateral_pred` for the join that brings the subquery in (its condition), so it
        // is evaluated where both sides are known; anything else in the subquery must
        // stay within it.
        let sel = self.spj_select(
            q,
            f,
            "LATERAL subqueries",
            "LATERAL subqueries with GROUP BY, aggregates, DISTINCT, LIMIT or WITH (they need a delta rule for an aggregate below a join)",
        )?;
        // Its WHERE is bound over the subquery's tables: one that reads a CTE or a
        // subquery has no delta rule here yet (recomputed instead).
        let reads_relation = sel.from.iter().any(|t| {
            std::iter::once(&t.relation)
                .chain(t.joins.iter().map(|j| &j.relation))
                .any(|f| match f {
                    TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => true,
                    TableFactor::Table { name, .. } => {
                        name.0.len() == 1
                            && name.0[0]
                                .as_ident()
                                .is_some_and(|i| self.cte(&ident_value(i)).is_some())
                    }
                    _ => false,
                })
        });
        if reads_relation && sel.selection.is_some() {
            return Err(unsupported(
                self.query,
                "LATERAL subqueries whose WHERE reads a CTE or a subquery",
                Some(f),
            ));
        }
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
        // Scalar aggregates in its WHERE as joins, as in a top-level SELECT.
        let in_where = self.where_scalars_as_joins(sel);
        let sel = in_where.as_ref().unwrap_or(sel);
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
                let text = Sql::expr(&w);
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
    pub(super) fn scalar_subqueries_as_joins(&self, s: &Select) -> Option<Select> {
        use sqlparser::ast::{BinaryOperator, Join, JoinOperator as JO, VisitMut, VisitorMut};
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
            JO::CrossJoin(_) => true,
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
        let coalesce =
            |e: Expr| crate::sql::walk::call("coalesce", vec![e, crate::sql::walk::zero()]);
        let join = |subquery: Query, alias: &str, outer: &[Expr]| -> Option<Join> {
            let on = outer.iter().enumerate().map(|(k, o)| {
                binary(
                    col(alias, &format!("__pgs_k{k}")),
                    BinaryOperator::Eq,
                    Expr::Nested(Box::new(o.clone())),
                )
            });
            let on = and_all(on)?;
            Some(Join {
                relation: TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(subquery),
                    alias: Some(crate::sql::walk::table_alias(Ident::new(alias))),
                    sample: None,
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
                ..
            } = f
            else {
                return None;
            };
            let names: Vec<String> = crate::sql::ident::column_aliases(alias);
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
}

/// Whether every condition inside `t` names only the leaves `within` (the columns
/// of a subquery's own tables, not of the query around it).
fn self_contained(t: &Tree, within: &[usize]) -> bool {
    let own = |e: &Expr| column_markers(e).iter().all(|(l, _)| within.contains(l));
    match t {
        Tree::Leaf(_) => true,
        Tree::Filter { input, pred, .. } => own(pred) && self_contained(input, within),
        Tree::Join {
            left, right, on, ..
        } => own(on) && self_contained(left, within) && self_contained(right, within),
        Tree::Lateral { input, on, .. } => own(on) && self_contained(input, within),
    }
}

/// The alias of the derived table that [`membership_body`] wraps a grouped body in.
const GROUPED_BODY: &str = "__pgs_grouped";

/// Whether `q` is a body that [`membership_body`] wrapped.
fn is_wrapped(q: &Query) -> bool {
    matches!(q.body.as_ref(), SetExpr::Select(sel)
        if matches!(sel.from.as_slice(), [TableWithJoins { relation: TableFactor::Derived { alias: Some(a), .. }, .. }]
            if a.name.value == GROUPED_BODY))
}

/// The body of an `EXISTS` (`exists`) or `IN` subquery, simplified to what decides
/// membership, so that more bodies are semi or anti joins:
///
/// - `ORDER BY` without `LIMIT`/`OFFSET` orders nothing that membership sees;
/// - `DISTINCT` (without `LIMIT`) does not change which values occur;
/// - `LIMIT n` with a literal `n >= 1` (no `OFFSET`) under `EXISTS` keeps a row
///   exactly when there is one;
/// - a body with `GROUP BY` becomes a subquery in FROM of a plain body, which is
///   an aggregate subquery leaf when it is one over one table: `x IN (SELECT k FROM
///   t GROUP BY k HAVING ...)` reads `(SELECT k FROM t GROUP BY k HAVING ...) AS
///   s(v)` and compares `x` with `s.v`; `EXISTS (SELECT ... GROUP BY g)` reads the
///   groups `(SELECT g ... GROUP BY g ...)` (its select list does not matter).
///
/// Anything else comes back as it was.
fn membership_body(mut q: Query, exists: bool) -> Query {
    use sqlparser::ast::{Distinct, Expr as E, Ident};
    let SetExpr::Select(_) = q.body.as_ref() else {
        return q;
    };
    if exists
        && !limits::has_offset(&q)
        && q.fetch.is_none()
        && matches!(limits::limit(&q), Some(E::Value(v))
            if matches!(&v.value, Value::Number(n, _) if n.parse::<u64>().is_ok_and(|n| n >= 1)))
    {
        limits::clear_limit(&mut q);
    }
    if limits::limits_rows(&q) {
        return q;
    }
    q.order_by = None;
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return q;
    };
    if matches!(sel.distinct, Some(Distinct::Distinct)) {
        sel.distinct = None;
    }
    let grouped =
        matches!(&sel.group_by, GroupByExpr::Expressions(g, m) if !g.is_empty() && m.is_empty());
    if !grouped || sel.distinct.is_some() {
        return q;
    }
    // GROUP BY positions name items of the select list, which is about to change.
    let items: Vec<E> = sel
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                Some(e.clone())
            }
            _ => None,
        })
        .collect();
    if items.len() != sel.projection.len() || (!exists && items.len() != 1) {
        return q;
    }
    let GroupByExpr::Expressions(groups, _) = &mut sel.group_by else {
        return q;
    };
    for g in groups.iter_mut() {
        if let E::Value(v) = g {
            let Value::Number(n, _) = &v.value else {
                return q;
            };
            match n
                .parse::<usize>()
                .ok()
                .and_then(|k| items.get(k.wrapping_sub(1)))
            {
                Some(e) => *g = e.clone(),
                None => return q,
            }
        }
    }
    // The leaf's columns: the compared value (IN), then the groups, which identify
    // its rows.
    let mut projection = Vec::new();
    if !exists {
        projection.push(SelectItem::ExprWithAlias {
            expr: items[0].clone(),
            alias: Ident::with_quote('"', "__pgs_v"),
        });
    }
    for (k, g) in groups.iter().enumerate() {
        projection.push(SelectItem::ExprWithAlias {
            expr: g.clone(),
            alias: Ident::with_quote('"', format!("__pgs_k{k}")),
        });
    }
    sel.projection = projection;
    let item = if exists {
        E::Value(Value::Number("1".into(), false).into())
    } else {
        E::CompoundIdentifier(vec![
            Ident::new(GROUPED_BODY),
            Ident::with_quote('"', "__pgs_v"),
        ])
    };
    let shell = (**sel).clone();
    let inner = q.clone();
    let outer = Select {
        projection: vec![SelectItem::UnnamedExpr(item)],
        from: vec![TableWithJoins {
            relation: TableFactor::Derived {
                lateral: false,
                subquery: Box::new(inner),
                alias: Some(crate::sql::walk::table_alias(Ident::new(GROUPED_BODY))),
                sample: None,
            },
            joins: Vec::new(),
        }],
        selection: None,
        group_by: GroupByExpr::Expressions(Vec::new(), Vec::new()),
        having: None,
        named_window: Vec::new(),
        qualify: None,
        distinct: None,
        ..shell
    };
    Query {
        body: Box::new(SetExpr::Select(Box::new(outer))),
        ..q
    }
}

/// Whether a subquery is a plain select-project-join (what can be inlined or turned
/// into a semi/anti join): no WITH, LIMIT, OFFSET, DISTINCT, GROUP BY, HAVING or
/// aggregates, and a FROM clause.
fn is_simple_spj(q: &Query, sel: &Select) -> bool {
    q.with.is_none()
        && limits::limit(q).is_none()
        && !limits::has_offset(q)
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
