//! Correlated scalar aggregates in `WHERE` as joins (TPC-H Q17's `l_quantity <
//! (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)`): the
//! subquery, grouped by its correlation keys, becomes an aggregate leaf `LEFT JOIN`ed
//! on them, and the comparison reads its value. The aggregate is then maintained
//! by the leaf's rule (the groups the changes of its table touch are recomputed)
//! and the comparison by the delta rules above it, instead of the whole query.
//!
//! An uncorrelated one (TPC-H Q22's `c_acctbal > (SELECT avg(c_acctbal) FROM
//! customer WHERE ...)`) is the same aggregate without GROUP BY, one row, `CROSS
//! JOIN`ed: its leaf changes only when its value does, and then the join above it
//! re-evaluates the rows that read it.

use super::*;

impl Binder<'_> {
    /// `... WHERE ... x op (SELECT agg(y) FROM t WHERE t.k = o.k AND p(t)) ...`, for
    /// comparison conjuncts at the top level of the `WHERE` whose operand is a
    /// scalar subquery [`Binder::correlated_aggregate`] takes (one item): the subquery
    /// becomes `LEFT JOIN (SELECT t.k AS __pgs_k0, agg(y) AS __pgs_v FROM t WHERE p(t)
    /// GROUP BY t.k) AS __pgs_wq<n> ON __pgs_k0 = o.k` and the operand reads
    /// `__pgs_v` (a `count` as `COALESCE(__pgs_v, 0)`): for each outer row the value
    /// the subquery would give, since the grouped subquery has at most one row per
    /// key. The `FROM` items are made one (`a, b` as `a CROSS JOIN b`, the same
    /// rows) so that the join sees every outer table; not when an item after the
    /// first has a RIGHT or FULL join, which that would regroup. `None` when there is
    /// nothing to rewrite.
    pub(super) fn where_scalars_as_joins(&self, s: &Select) -> Option<Select> {
        use sqlparser::ast::{BinaryOperator as B, Join, JoinOperator as JO};
        let selection = s.selection.as_ref()?;
        if s.from.is_empty()
            || s.from[1..].iter().any(|t| {
                t.joins.iter().any(|j| {
                    !matches!(
                        j.join_operator,
                        JO::Inner(_)
                            | JO::Join(_)
                            | JO::Left(_)
                            | JO::LeftOuter(_)
                            | JO::CrossJoin(_)
                    )
                })
            })
        {
            return None;
        }
        let col = |alias: &str| {
            Expr::CompoundIdentifier(vec![Ident::new(alias), Ident::with_quote('"', "__pgs_v")])
        };
        let mut joins: Vec<Join> = Vec::new();
        let mut parts: Vec<Expr> = Vec::new();
        for c in conjuncts(selection) {
            let mut c = c.clone();
            if let Expr::BinaryOp { left, op, right } = &mut c {
                if matches!(op, B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq) {
                    for side in [left, right] {
                        let Expr::Subquery(q) = side.as_ref() else {
                            continue;
                        };
                        let Some((sub, outer, items)) =
                            self.correlated_aggregate(q, Some(&["__pgs_v".to_string()]))
                        else {
                            continue;
                        };
                        if items.len() != 1 {
                            continue;
                        }
                        let alias = format!("__pgs_wq{}", joins.len());
                        if outer.is_empty() {
                            // Uncorrelated: the aggregate without GROUP BY is one
                            // row, whatever the table holds (a count is 0 over no
                            // rows), so every outer row joins it.
                            joins.push(derived_join(
                                sub,
                                &alias,
                                JO::CrossJoin(sqlparser::ast::JoinConstraint::None),
                            ));
                            **side = col(&alias);
                            continue;
                        }
                        let on = outer.iter().enumerate().map(|(k, o)| {
                            crate::sql::walk::binary(
                                Expr::CompoundIdentifier(vec![
                                    Ident::new(&alias),
                                    Ident::with_quote('"', format!("__pgs_k{k}")),
                                ]),
                                B::Eq,
                                Expr::Nested(Box::new(o.clone())),
                            )
                        });
                        let on = crate::sql::walk::and_all(on)?;
                        // A missing group reads as NULL (not a count), and a comparison
                        // with NULL is never true, so the conjunct drops the outer rows
                        // without a group: an inner join gives the same rows, and its
                        // delta rule is the plain one (TPC-H Q2's statement: 45 → 35 KB,
                        // its planning with it).
                        let op = if items[0].1 {
                            JO::LeftOuter(JoinConstraint::On(on))
                        } else {
                            JO::Inner(JoinConstraint::On(on))
                        };
                        joins.push(derived_join(sub, &alias, op));
                        let v = col(&alias);
                        **side = if items[0].1 {
                            crate::sql::walk::call("coalesce", vec![v, crate::sql::walk::zero()])
                        } else {
                            v
                        };
                    }
                }
            }
            parts.push(c);
        }
        if joins.is_empty() {
            return None;
        }
        let mut out = s.clone();
        let rest: Vec<TableWithJoins> = out.from.drain(1..).collect();
        for t in rest {
            out.from[0].joins.push(Join {
                relation: t.relation,
                global: false,
                join_operator: JO::CrossJoin(sqlparser::ast::JoinConstraint::None),
            });
            out.from[0].joins.extend(t.joins);
        }
        out.from[0].joins.extend(joins);
        out.selection = parts.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: B::And,
            right: Box::new(b),
        });
        Some(out)
    }
}

/// `... <op> (sub) AS alias`.
fn derived_join(sub: Query, alias: &str, op: sqlparser::ast::JoinOperator) -> sqlparser::ast::Join {
    sqlparser::ast::Join {
        relation: TableFactor::Derived {
            lateral: false,
            subquery: Box::new(sub),
            alias: Some(crate::sql::walk::table_alias(Ident::new(alias))),
            sample: None,
        },
        global: false,
        join_operator: op,
    }
}
