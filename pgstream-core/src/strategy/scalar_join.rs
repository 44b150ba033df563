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

use super::{col, qi, IncrementalRenderer, W};
use crate::ir::marker::{self as expr, raw, Marker};
use crate::ir::{block_markers, Tree};
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
        let left_delta = qi(&self.delta(left));
        let right_delta = qi(&self.delta(right));
        let left_leaves = left.leaves();
        let left_new = self.new_rel(left);
        // the leaf's new row as its delta computed it (a CTE), not computed again
        let right_new = self
            .scalar_new_rel(i)
            .unwrap_or_else(|| self.new_rel(right));
        let select = self.select_list(t, &left_leaves, "l", "r");
        // `on` over the left row `l` and the leaf's row `alias`.
        let over = |alias: &str| {
            expr::render_with(on, &mut |m| match m {
                Marker::Col { leaf, col: c } => Some(raw(format!(
                    "{}.{}",
                    if leaf == i { alias } else { "l" },
                    col(leaf, c)
                ))),
                _ => None,
            })
        };
        let moved = format!(
            "((CASE WHEN {} THEN 1 ELSE 0 END) - (CASE WHEN {} THEN 1 ELSE 0 END))",
            over("r"),
            over("\"__pgs_o\"")
        );
        // The new row (`r`) and the old one, each or NULLs when missing; no row at
        // all when the leaf did not change.
        let pair = format!(
            "(SELECT 1 WHERE EXISTS (SELECT 1 FROM {right_delta})) AS \"__pgs_z\" \
             LEFT JOIN (SELECT * FROM {right_delta} WHERE {W} > 0) AS r ON TRUE \
             LEFT JOIN (SELECT * FROM {right_delta} WHERE {W} < 0) AS \"__pgs_o\" ON TRUE"
        );
        let on_lr = over("r");
        let terms = [
            format!(
                "SELECT {select}, l.{W} AS {W} FROM {left_delta} AS l JOIN {right_new} AS r ON {on_lr}"
            ),
            format!(
                "SELECT {select}, ({moved})::smallint AS {W} FROM {pair} CROSS JOIN {left_new} AS l WHERE {moved} <> 0"
            ),
            format!(
                "SELECT {select}, (-(l.{W} * {moved}))::smallint AS {W} FROM {pair} CROSS JOIN {left_delta} AS l WHERE {moved} <> 0"
            ),
        ];
        let name = format!("__pgs_dn{}", self.ctes.len());
        self.ctes.push((name.clone(), terms.join("\nUNION ALL ")));
        name
    }
}
