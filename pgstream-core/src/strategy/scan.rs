//! Scan of a source table (a leaf of the join tree). Its delta is the source's
//! change buffer restricted to the refresh window (`render::window`): every row
//! image with weight +1 (new) or −1 (old), netted per primary key, so `ΔR` is
//! exactly `R_new − R_old` as a Z-set. Columns the query does not read stay NULL.

use super::IncrementalRenderer;
use crate::render::window::window_sql;
use crate::render::{col, qi, unread_null, W};

impl IncrementalRenderer<'_> {
    /// The delta of leaf `i`: the window of its source, under the uniform column
    /// names `__pgs_c<i>_<col>`.
    pub(super) fn scan_delta(&mut self, i: usize) -> String {
        let l = &self.block.leaves[i];
        let win = format!("__pgs_win{}", l.source);
        if !self.ctes.iter().any(|(n, _)| *n == win) {
            self.ctes.push((
                win.clone(),
                window_sql(
                    self.ctx,
                    l.source,
                    Some(&l.table),
                    &self.compiled.buffer_columns(l.source),
                ),
            ));
        }
        // The buffer holds the columns some consumer reads; this one reads
        // `buffer_columns`, the others are never looked at.
        let needed = self.compiled.buffer_columns(l.source);
        let cols: Vec<String> = l
            .table
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| unread_null("b", c, &needed, col(i, j)))
            .collect();
        let name = format!("__pgs_d{i}");
        self.ctes.push((
            name.clone(),
            format!("SELECT {}, b.{W} FROM {} AS b", cols.join(", "), qi(&win)),
        ));
        name
    }
}
