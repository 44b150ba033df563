//! Semi and anti joins (`EXISTS` / `IN (subquery)`, `NOT EXISTS` / `NOT IN`): the
//! left rows with (without) a match, each once. The anti join is exactly the
//! dangling rows of the left side of a LEFT JOIN (`outer_join`), so its delta is
//! that rule's; the semi join is the left side minus the anti join:
//!
//! ```text
//! Δ(L ▷ R) = dangling rule of L against R        Δ(L ⋉ R) = ΔL − Δ(L ▷ R)
//! ```
//!
//! where `ΔL − (ΔL ▷ R_new)`, the part of the semi join's delta that `ΔL` makes, is
//! rendered as `ΔL ⋉ R_new`: the changed rows without a match never leave it.

use super::{IncrementalRenderer, Side};
use crate::ir::{JoinKind, Tree};
use crate::render::JoinSql;
use sqlparser::ast::Expr;

impl IncrementalRenderer<'_> {
    /// The delta of the semi or anti join `t`.
    pub(super) fn semi_join_delta(
        &mut self,
        t: &Tree,
        kind: JoinKind,
        on: &Expr,
        left: Side<'_>,
        right: Side<'_>,
    ) -> String {
        // Anti: the dangling rows of the left side. Semi: ΔL − Δ(anti), whose ΔL
        // part is the rows of ΔL with a match (`dangling` with `negate`).
        let semi = kind == JoinKind::Semi;
        let terms = self.dangling(t, on, left, right, true, semi);
        let name = format!("__pgs_dn{}", self.ctes.len());
        self.ctes
            .push((name.clone(), terms.join_sql("\nUNION ALL ")));
        name
    }
}
