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
use crate::render::{sql, JoinSql, Sql, W};
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
        let (left_delta, right_delta) = (Sql::ident(&left_delta), Sql::ident(&right_delta));
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
            return self.semi_join_delta(t, kind, on, left_side, right_side);
        }
        // An aggregate subquery joined on its group keys is read for the keys of the
        // other side's delta only.
        let right_for_left = self
            .agg_lookup(right, on, &left_leaves, "l")
            .unwrap_or_else(|| right_new.clone());
        let left_delta_term = sql!(
            "SELECT {0}, l.{1} AS {1} FROM {2} AS l JOIN {3} AS r ON {4}",
            select,
            W,
            left_delta,
            right_for_left,
            on_lr
        );
        // A lookup reads the delta's rows: the delta comes first (LATERAL).
        let (first, second) = match self.agg_lookup(left, on, &right_leaves, "r") {
            Some(lookup) => (sql!("{} AS r", right_delta), sql!("{} AS l", lookup)),
            None => (sql!("{} AS l", left_new), sql!("{} AS r", right_delta)),
        };
        let right_delta_term = sql!(
            "SELECT {0}, r.{1} AS {1} FROM {2} JOIN {3} ON {4}",
            select,
            W,
            first,
            second,
            on_lr
        );
        let mut terms = vec![
            left_delta_term,
            right_delta_term,
            sql!(
                "SELECT {0}, -(l.{1} * r.{1}) AS {1} FROM {2} AS l JOIN {3} AS r ON {4}",
                select,
                W,
                left_delta,
                right_delta,
                on_lr
            ),
        ];
        if matches!(kind, JoinKind::Left | JoinKind::Full) {
            terms.extend(self.dangling(t, on, left_side, right_side, true, false));
        }
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            terms.extend(self.dangling(t, on, right_side, left_side, false, false));
        }
        let name = format!("__pgs_dn{}", self.ctes.len());
        self.ctes
            .push((name.clone(), terms.join_sql("\nUNION ALL ")));
        name
    }
}
