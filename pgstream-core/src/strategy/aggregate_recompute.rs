//! Aggregation without counter rules (MIN, MAX, string_agg, FILTER, DISTINCT
//! aggregates, HAVING, ...): the group keys the delta touches (old and new images)
//! are collected, those groups alone are recomputed from the current sources and
//! the difference is applied (`recompute_keys`):
//!
//! ```text
//! Δγ(R) = γ(σ_{k ∈ keys(ΔR)} R_new) − stored rows with k ∈ keys(ΔR)
//! ```

use super::*;

impl IncrementalRenderer<'_> {
    /// Aggregates without counter rules (MIN, MAX, string_agg, FILTER, DISTINCT
    /// aggregates, HAVING, ...): the group keys that the window touches are collected
    /// from the delta (old and new images), those groups alone are recomputed from the
    /// current sources, and the difference is applied. Cost: the changes plus the rows
    /// of the affected groups.
    pub(super) fn aggregate_recompute(&mut self) -> Artifacts {
        let Shape::Aggregate {
            groups,
            aggs,
            having,
            ..
        } = &self.block.shape
        else {
            unreachable!()
        };
        let st = self.storage.clone();
        let gnames: Vec<String> = (0..groups.len())
            .map(|k| qi(&format!("__pgs_g{k}")))
            .collect();
        let groups_x: Vec<String> = groups.iter().map(|g| self.expr_over(g, "x")).collect();
        let full = |e: &Expr| {
            expr::render_with(e, &mut |m| match m {
                Marker::Agg(k) => Some(raw(self.expr_over(&aggs[k].call, "x"))),
                Marker::Grp(k) => Some(raw(format!("({})", groups_x[k]))),
                Marker::Col { leaf, col: c } => Some(raw(format!("x.{}", col(leaf, c)))),
            })
        };
        let vis: Vec<String> = self
            .block
            .items
            .iter()
            .map(|(n, e)| format!("{} AS {}", full(e), qi(n)))
            .collect();
        let gsel: Vec<String> = groups_x
            .iter()
            .zip(&gnames)
            .map(|(e, n)| format!("{e} AS {n}"))
            .collect();
        let group_by = if groups.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", groups_x.join(", "))
        };
        let having_sql = having
            .as_ref()
            .map(|h| format!(" HAVING {}", full(h)))
            .unwrap_or_default();
        let select_list = format!(
            "{}{}{}, {} AS \"__pgs_row_id\"",
            vis.join(", "),
            if gsel.is_empty() { "" } else { ", " },
            gsel.join(", "),
            row_id_of(&groups_x)
        );
        let base = self.new_rel(&self.block.tree);
        let filter = self.block.filter.as_ref().map(|f| self.expr_over(f, "x"));
        let new_rows = format!(
            "SELECT {select_list} FROM {base} AS x{}{group_by}{having_sql}",
            filter
                .as_ref()
                .map(|f| format!(" WHERE {f}"))
                .unwrap_or_default()
        );
        // Differential: affected keys, then those groups recomputed.
        let root = self.delta(&self.block.tree);
        let and_filter = filter
            .as_ref()
            .map(|f| format!(" AND ({f})"))
            .unwrap_or_default();
        let keys = format!(
            "SELECT DISTINCT {} FROM {} AS x{}",
            if gsel.is_empty() {
                "1 AS \"__pgs_any\"".to_string()
            } else {
                gsel.join(", ")
            },
            qi(&root),
            self.where_clause("x")
        );
        let fresh = if groups.is_empty() {
            // a global aggregate: recompute its one row when anything changed
            // (the gate sits outside: an aggregate over no rows still yields a row)
            format!(
                "SELECT f.* FROM ({new_rows}) AS f WHERE (SELECT EXISTS (SELECT 1 FROM \"__pgs_keys\"))"
            )
        } else {
            let (by_in, by_null) = Self::key_predicates(&groups_x, &gnames);
            format!(
                "SELECT {select_list} FROM {base} AS x WHERE {by_in}{and_filter}{group_by}{having_sql} \
                 UNION ALL SELECT {select_list} FROM {base} AS x WHERE {by_null}{and_filter}{group_by}{having_sql}"
            )
        };
        let in_keys = if groups.is_empty() {
            "EXISTS (SELECT 1 FROM \"__pgs_keys\")".to_string()
        } else {
            Self::touched_keys(&gnames)
        };
        let diff = self.recompute_keys(&keys, &fresh, &in_keys, &st);
        let hidden = gnames
            .iter()
            .map(|c| c.trim_matches('"').to_string())
            .chain([contract::ROW_ID.to_string()])
            .collect();
        self.maintained(&st, &new_rows, diff, hidden)
    }
}
