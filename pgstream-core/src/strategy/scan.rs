//! Scan of a source table (a leaf of the join tree). Its delta is the source's
//! change buffer restricted to the refresh window (`render::window`): every row
//! image with weight +1 (new) or −1 (old), netted per primary key, so `ΔR` is
//! exactly `R_new − R_old` as a Z-set. Columns the query does not read stay NULL.

use super::IncrementalRenderer;
use crate::render::{sql, JoinSql, Sql, W};

impl IncrementalRenderer<'_> {
    /// The delta of leaf `i`: the window of its source, under the uniform column
    /// names `__pgs_c<i>_<col>`.
    pub(super) fn scan_delta(&mut self, i: usize) -> String {
        let l = &self.block.leaves[i];
        let win = self.window_cte(l.source, &l.table);
        let cols = self.leaf_columns(i, "b");
        let name = format!("__pgs_d{}", i);
        self.ctes.push((
            name.clone(),
            sql!(
                "SELECT {}, b.{} FROM {} AS b",
                cols.join_sql(", "),
                W,
                Sql::ident(&win)
            ),
        ));
        name
    }
}
