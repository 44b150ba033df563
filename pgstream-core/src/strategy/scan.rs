//! Scan of a source table (a leaf of the join tree). Its delta is the source's
//! change buffer restricted to the refresh window (`render::window`): every row
//! image with weight +1 (new) or −1 (old), netted per primary key, so `ΔR` is
//! exactly `R_new − R_old` as a Z-set. Columns the query does not read stay NULL.
//!
//! A source read by several leaves (a self join, TPC-H Q8's two nations) has one
//! window for all of them, netted over the columns any of them reads and restricted
//! by none. Each leaf's delta then nets the window again over the columns it reads
//! itself, when it reads fewer (Q8's supplier nation reads `n_name`, the customer
//! nation `n_regionkey`: a nation that changes region is no change of the supplier
//! nation, where its two images went up through the joins of every supplier,
//! lineitem and order of that nation to cancel at the top), and keeps the rows that
//! pass the leaf's restriction (`prefilter`).

use super::IncrementalRenderer;
use crate::ir::{block_markers, Shape};
use crate::render::window::netted_rows;
use crate::render::{sql, JoinSql, Sql, W};

impl IncrementalRenderer<'_> {
    /// The delta of leaf `i`: the window of its source, under the uniform column
    /// names `__pgs_c<i>_<col>`.
    pub(super) fn scan_delta(&mut self, i: usize) -> String {
        let l = &self.block.leaves[i];
        let win = self.window_cte(l.source, &l.table);
        let cols = self.leaf_columns(i, "b");
        let mut rows = Sql::ident(&win);
        let mut restriction = Vec::new();
        // A set operation's branches share the windows (and `self.block` is the
        // first branch's): as they are.
        if !matches!(self.block.shape, Shape::SetOp { .. }) {
            // Netted over columns other leaves read (none when `i` reads the source
            // alone): again over its own.
            let read = self.columns_read(i);
            let netted_over = self.compiled.buffer_columns(l.source);
            if !l.table.primary_key.is_empty() && netted_over.iter().any(|c| !read.contains(c)) {
                let all = sql!("SELECT * FROM {}", Sql::ident(&win));
                rows = sql!(
                    "({})",
                    netted_rows(&l.table, &read, &all, "__pgs_keep_leaf")
                );
            }
            if self.window_reader(l.source) != Some(i) {
                restriction = self.leaf_restrictions(i, &Sql::fixed("b"), &mut vec![i]);
            }
        }
        let name = format!("__pgs_d{}", i);
        self.ctes.push((
            name.clone(),
            sql!(
                "SELECT {}, b.{} FROM {} AS b{}",
                cols.join_sql(", "),
                W,
                rows,
                if restriction.is_empty() {
                    Sql::default()
                } else {
                    sql!(" WHERE {}", restriction.join_sql(" AND "))
                }
            ),
        ));
        name
    }

    /// The columns of leaf `i` (a plain leaf) the block reads, its primary key among
    /// them.
    fn columns_read(&self, i: usize) -> Vec<String> {
        let mut markers = Vec::new();
        block_markers(self.block, &mut markers);
        let table = &self.block.leaves[i].table;
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(c, col)| table.primary_key.contains(&col.name) || markers.contains(&(i, *c)))
            .map(|(_, col)| col.name.clone())
            .collect()
    }
}
