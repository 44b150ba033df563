//! Semi and anti joins (`EXISTS` / `IN (subquery)`, `NOT EXISTS` / `NOT IN`): the
//! left rows with (without) a match, each once. The anti join is exactly the
//! dangling rows of the left side of a LEFT JOIN (`outer_join`), so its delta is
//! that rule's; the semi join is the left side minus the anti join:
//!
//! ```text
//! Δ(L ▷ R) = dangling rule of L against R        Δ(L ⋉ R) = ΔL − Δ(L ▷ R)
//! ```

use super::{IncrementalRenderer, Side};
use crate::ir::{JoinKind, Tree};
use crate::render::{sql, JoinSql, Sql, W};
use sqlparser::ast::Expr;

impl IncrementalRenderer<'_> {
    /// The delta of the semi or anti join `t`; `select` is its select list over
    /// `l`/`r`.
    pub(super) fn semi_join_delta(
        &mut self,
        t: &Tree,
        kind: JoinKind,
        on: &Expr,
        select: &Sql,
        left: Side<'_>,
        right: Side<'_>,
    ) -> String {
        // Anti: the dangling rows of the left side. Semi: ΔL − Δ(anti).
        let semi = kind == JoinKind::Semi;
        let mut terms = Vec::new();
        if semi {
            terms.push(sql!(
                "SELECT {0}, l.{1} AS {1} FROM {2} AS l",
                select,
                W,
                left.delta
            ));
        }
        terms.extend(self.dangling(t, on, left, right, true, semi));
        let name = format!("__pgs_dn{}", self.ctes.len());
        self.ctes
            .push((name.clone(), terms.join_sql("\nUNION ALL ")));
        name
    }
}
