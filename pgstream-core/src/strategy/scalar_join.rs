//! Inner join with a one-row aggregate leaf (an aggregate without `GROUP BY`,
//! `bind::where_scalar`'s `c_acctbal > (SELECT avg(c_acctbal) FROM customer ...)`)
//! whose columns nothing but the join's condition reads. The product rule
//! (`join`) gives `ΔL ⋈ s_new + L_new ⋈ Δs − ΔL ⋈ Δs`; when the value moves, `Δs` is
//! `{(old, −1), (new, +1)}`, and `L_new ⋈ Δs` would pass every row of `L` twice,
//! once per value. Since nothing above reads `s`'s columns, a row of `L` for which
//! the condition `c` holds under both values (or under neither) contributes nothing,
//! so only the rows whose condition differs are kept, with the weight of the
//! difference:
//!
//! ```text
//! Δ(L ⋈_c s) = ΔL ⋈_c s_new
//!            + Σ_{l ∈ L_new − ΔL} ([c(l, new)] − [c(l, old)]) · (l, new)
//! ```
//!
//! (`[p]` is 1 when `p` is true, else 0; a missing `new` or `old` row, as under a
//! `HAVING`, makes its `[c]` 0). For `x > (SELECT avg(x) ...)` that is the rows
//! between the old and the new average, not the whole of `L` twice; the joins above
//! then see a few rows. When `s` did not change, the second term is empty without
//! reading `L` (a one-time filter on `Δs`).
//!
//! When the leaf's column appears in one conjunct of `c` only, as a side of a
//! comparison (`=`, `<>`, `<`, `<=`, `>`, `>=`) whose other side `x` reads `L`
//! alone, a row can flip only if `x` lies between the old and the new value: the
//! comparison with both values (same outcome on either side of that range, or at
//! neither value for `=` and `<>`) is then the same, and so is `c`. The second term
//! says so as a restriction of `L`, `x BETWEEN LEAST(old, new) AND GREATEST(old,
//! new)` (`x = ANY (ARRAY[old, new])` for `=` and `<>`) with the values read from
//! `Δs` by init plans, which PostgreSQL evaluates before the rest of `L`'s conditions
//! (TPC-H Q22's `substring(c_phone ...)` of every customer) and which an index on
//! `x` turns into a range scan. It holds only when both values exist and are not
//! NULL (a missing or NULL value makes `c` not true for every row, so all rows true
//! under the other value flip): the term is split in two, each behind a one-time
//! filter on `Δs`'s count of values.

use super::{col, IncrementalRenderer, W};
use crate::ir::marker::{self as expr, Marker};
use crate::ir::{block_markers, Tree};
use crate::render::{sql, JoinSql, Sql};
use sqlparser::ast::Expr;

impl IncrementalRenderer<'_> {
    /// The one-row aggregate leaf on the right of the inner join `on`, when nothing
    /// but `on` reads its columns.
    pub(super) fn scalar_join_leaf(&self, right: &Tree, on: &Expr) -> Option<usize> {
        let Tree::Leaf(i) = right else { return None };
        let a = self.block.leaves[*i].agg.as_ref()?;
        if !a.groups.is_empty() {
            return None;
        }
        let mut all = Vec::new();
        block_markers(self.block, &mut all);
        let uses = |ms: &[(usize, usize)]| ms.iter().filter(|(l, _)| l == i).count();
        let in_on = uses(&expr::column_markers(on));
        (in_on > 0 && uses(&all) == in_on).then_some(*i)
    }

    /// The delta of the inner join `t` (`left JOIN right ON on`) whose right side is
    /// the one-row aggregate leaf `i` of [`Self::scalar_join_leaf`], as a CTE name.
    pub(super) fn scalar_join_delta(
        &mut self,
        t: &Tree,
        left: &Tree,
        right: &Tree,
        i: usize,
        on: &Expr,
    ) -> String {
        let left_delta = Sql::ident(&self.delta(left));
        let right_delta = Sql::ident(&self.delta(right));
        let left_leaves = left.leaves();
        let left_new = self.new_rel(left);
        // the leaf's new row as its delta computed it (a CTE), not computed again
        let right_new = self
            .scalar_new_rel(i)
            .unwrap_or_else(|| self.new_rel(right));
        let select = self.select_list(t, &left_leaves, "l", "r");
        // `on` over the left row `l` and the leaf's row `alias`.
        let over = |alias: &'static str| {
            expr::render_with(on, &mut |m| match m {
                Marker::Col { leaf, col: c } => Some(sql!(
                    "{}.{}",
                    if leaf == i { alias } else { "l" },
                    col(leaf, c)
                )),
                _ => None,
            })
        };
        let moved = sql!(
            "((CASE WHEN {} THEN 1 ELSE 0 END) - (CASE WHEN {} THEN 1 ELSE 0 END))",
            over("r"),
            over("\"__pgs_o\"")
        );
        // The new row (`r`) and the old one, each or NULLs when missing; no row at
        // all when the leaf did not change.
        let pair = sql!(
            "(SELECT 1 WHERE EXISTS (SELECT 1 FROM {0})) AS \"__pgs_z\" \
             LEFT JOIN (SELECT * FROM {0} WHERE {1} > 0) AS r ON TRUE \
             LEFT JOIN (SELECT * FROM {0} WHERE {1} < 0) AS \"__pgs_o\" ON TRUE",
            right_delta,
            W
        );
        let on_lr = over("r");
        let flips = sql!(
            "SELECT {0}, ({1})::smallint AS {2} FROM {3} CROSS JOIN {4} AS l WHERE {1} <> 0",
            select,
            moved,
            W,
            pair,
            left_new
        );
        let flips = match flip_range(on, i) {
            None => flips,
            Some((x, c, equality)) => {
                let x = expr::render_with(x, &mut |m| match m {
                    Marker::Col { leaf, col: c } => Some(sql!("l.{}", col(leaf, c))),
                    _ => None,
                });
                let v = col(i, c);
                // `=` and `<>` need the type's equality only; the bounds of a range
                // its ordering (LEAST/GREATEST: `min` and `max` do not exist for
                // every ordered type, boolean and uuid among them).
                let range = if equality {
                    sql!(
                        "({0}) = ANY (ARRAY(SELECT {1} FROM {2}))",
                        x,
                        v,
                        right_delta
                    )
                } else {
                    let new = sql!("(SELECT {} FROM {} WHERE {} > 0)", v, right_delta, W);
                    let old = sql!("(SELECT {} FROM {} WHERE {} < 0)", v, right_delta, W);
                    sql!(
                        "({0}) BETWEEN LEAST({1}, {2}) AND GREATEST({1}, {2})",
                        x,
                        new,
                        old
                    )
                };
                sql!(
                    "{0} AND (SELECT count({1}) FROM {2}) = 2 AND {3}\n\
                     UNION ALL {0} AND (SELECT count(*) = 1 OR count(*) > count({1}) FROM {2})",
                    flips,
                    v,
                    right_delta,
                    range
                )
            }
        };
        let terms = [
            sql!("SELECT {0}, l.{1} AS {1} FROM {2} AS l JOIN {3} AS r ON {4}", select, W, left_delta, right_new, on_lr),
            flips,
            sql!("SELECT {0}, (-(l.{1} * {2}))::smallint AS {1} FROM {3} CROSS JOIN {4} AS l WHERE {2} <> 0", select, W, moved, pair, left_delta),
        ];
        let name = format!("__pgs_dn{}", self.ctes.len());
        self.ctes
            .push((name.clone(), terms.join_sql("\nUNION ALL ")));
        name
    }
}

/// The side `x` over the left input and the column of leaf `i` when exactly one
/// conjunct of `on` reads the leaf, and it compares `x` with the leaf's bare column
/// (`=`, `<>`, `<`, `<=`, `>`, `>=`, either way round): the rows whose condition
/// differs between two values of the column have `x` between them, and for `=` and
/// `<>` (the third item) equal to one of them.
fn flip_range(on: &Expr, i: usize) -> Option<(&Expr, usize, bool)> {
    use sqlparser::ast::BinaryOperator as Op;
    let mut parts = Vec::new();
    crate::sql::walk::conjuncts(on, &mut parts);
    let reads = |e: &Expr| expr::column_markers(e).iter().any(|(l, _)| *l == i);
    let mut with_leaf = parts.into_iter().filter(|p| reads(p));
    let part = with_leaf.next()?;
    if with_leaf.next().is_some() {
        return None;
    }
    let Expr::BinaryOp { left, op, right } = crate::sql::walk::unnest(part) else {
        return None;
    };
    if !matches!(
        op,
        Op::Eq | Op::NotEq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq
    ) {
        return None;
    }
    let bare = |e: &Expr| match expr::as_marker(crate::sql::walk::unnest(e)) {
        Some(Marker::Col { leaf, col }) if leaf == i => Some(col),
        _ => None,
    };
    let (x, c) = match (bare(left), bare(right)) {
        (Some(c), None) => (right.as_ref(), c),
        (None, Some(c)) => (left.as_ref(), c),
        _ => return None,
    };
    let equality = matches!(op, Op::Eq | Op::NotEq);
    (!reads(x) && !expr::column_markers(x).is_empty()).then_some((x, c, equality))
}
