//! Filter (`WHERE`, and the `WHERE` of an inlined subquery or CTE inside the join
//! tree). Selection is linear: `Δσ_p(R) = σ_p(ΔR)`, each delta row keeps its weight.

use super::IncrementalRenderer;
use crate::ir::Tree;
use crate::render::{sql, Sql};
use sqlparser::ast::Expr;

impl IncrementalRenderer<'_> {
    /// The delta of `WHERE pred` over `input`: the input's delta rows that pass.
    pub(super) fn filter_delta(&mut self, input: &Tree, pred: &Expr) -> String {
        let d = self.delta(input);
        let name = format!("__pgs_dn{}", self.ctes.len());
        let body = sql!(
            "SELECT l.* FROM {} AS l WHERE {}",
            Sql::ident(&d),
            self.expr_over(pred, "l")
        );
        self.ctes.push((name.clone(), body));
        name
    }
}
