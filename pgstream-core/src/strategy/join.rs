//! Inner join (and the inner part of outer joins). The product rule over the two
//! sides' current states (`L`, `R`) and deltas:
//!
//! ```text
//! Δ(L ⋈ R) = ΔL ⋈ R_new  +  L_new ⋈ ΔR  −  ΔL ⋈ ΔR
//! ```
//!
//! (`L_new ⋈ R_new − L_old ⋈ R_old` with `L_old = L_new − ΔL`). Weights multiply.
//! An aggregate subquery on one side, joined on its group keys, is read only for the
//! keys of the other side's delta rows (`aggregate_subquery::agg_lookup`). LEFT,
//! RIGHT and FULL joins add the dangling rows of their preserved sides
//! (`outer_join`); semi and anti joins have their own rule (`semi_join`).

use super::{IncrementalRenderer, Side};
use crate::ir::{JoinKind, Tree};
use crate::render::{qi, W};
use sqlparser::ast::Expr;

impl IncrementalRenderer<'_> {
    /// The delta of the join `t` (`left kind right ON on`), as a CTE name.
    pub(super) fn join_delta(
        &mut self,
        t: &Tree,
        kind: JoinKind,
        left: &Tree,
        right: &Tree,
        on: &Expr,
    ) -> String {
        // An aggregate subquery side recomputes only the groups the other side joins.
        let (left_delta, right_delta) = match self.restrict_agg_keys(kind, left, right, on) {
            Some((other_delta, false)) => (other_delta, self.delta(right)),
            Some((other_delta, true)) => (self.delta(left), other_delta),
            None => (self.delta(left), self.delta(right)),
        };
        let (left_leaves, right_leaves) = (left.leaves(), right.leaves());
        let (left_new, right_new) = (self.new_rel(left), self.new_rel(right));
        let select = self.select_list(t, &left_leaves, "l", "r");
        let on_lr = self.on(on, &left_leaves, &right_leaves);
        let (left_delta, right_delta) = (qi(&left_delta), qi(&right_delta));
        let (left_out, right_out) = (left.out_leaves(), right.out_leaves());
        let left_side = Side {
            leaves: &left_leaves,
            out: &left_out,
            new: &left_new,
            delta: &left_delta,
        };
        let right_side = Side {
            leaves: &right_leaves,
            out: &right_out,
            new: &right_new,
            delta: &right_delta,
        };
        if matches!(kind, JoinKind::Semi | JoinKind::Anti) {
            return self.semi_join_delta(t, kind, on, &select, left_side, right_side);
        }
        // An aggregate subquery joined on its group keys is read for the keys of the
        // other side's delta only.
        let left_delta_term = match self.agg_lookup(right, on, &left_leaves, "l") {
            Some(lookup) => format!(
                "SELECT {select}, l.{W} AS {W} FROM {left_delta} AS l JOIN {lookup} AS r ON {on_lr}"
            ),
            None => format!(
                "SELECT {select}, l.{W} AS {W} FROM {left_delta} AS l JOIN {right_new} AS r ON {on_lr}"
            ),
        };
        let right_delta_term = match self.agg_lookup(left, on, &right_leaves, "r") {
            Some(lookup) => format!(
                "SELECT {select}, r.{W} AS {W} FROM {right_delta} AS r JOIN {lookup} AS l ON {on_lr}"
            ),
            None => format!(
                "SELECT {select}, r.{W} AS {W} FROM {left_new} AS l JOIN {right_delta} AS r ON {on_lr}"
            ),
        };
        let mut terms = vec![
            left_delta_term,
            right_delta_term,
            format!("SELECT {select}, -(l.{W} * r.{W}) AS {W} FROM {left_delta} AS l JOIN {right_delta} AS r ON {on_lr}"),
        ];
        if matches!(kind, JoinKind::Left | JoinKind::Full) {
            terms.extend(self.dangling(t, on, left_side, right_side, true, false));
        }
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            terms.extend(self.dangling(t, on, right_side, left_side, false, false));
        }
        let name = format!("__pgs_dn{}", self.ctes.len());
        self.ctes.push((name.clone(), terms.join("\nUNION ALL ")));
        name
    }
}
