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
    pub(super) fn aggregate_recompute(&mut self) -> Statements {
        let Shape::Aggregate { groups, having, .. } = &self.block.shape else {
            unreachable!()
        };
        let st = self.storage.clone();
        let gnames = numbered_names("__pgs_g", groups.len());
        let groups_x: Vec<Sql> = groups.iter().map(|g| self.expr_over(g, "x")).collect();
        let vis = self.grouped_items_over_x(&groups_x);
        let gsel = aliased(&groups_x, &gnames);
        let group_by_x = group_by(&groups_x);
        let having_sql = having
            .as_ref()
            .map(|h| sql!(" HAVING {}", self.grouped_over_x(h, &groups_x)))
            .unwrap_or_default();
        let select_list = sql!(
            "{}{}{}, {} AS \"__pgs_row_id\"",
            vis.join_sql(", "),
            if gsel.is_empty() { "" } else { ", " },
            gsel.join_sql(", "),
            row_id_of(&groups_x)
        );
        let base = self.new_rel(&self.block.tree);
        let filter = self.block.filter.as_ref().map(|f| self.expr_over(f, "x"));
        let new_rows = sql!(
            "SELECT {} FROM {} AS x{}{}{}",
            select_list,
            base,
            filter
                .as_ref()
                .map(|f| sql!(" WHERE {}", f))
                .unwrap_or_default(),
            group_by_x,
            having_sql
        );
        // Differential: affected keys, then those groups recomputed.
        let root = self.delta(&self.block.tree);
        let and_filter = filter
            .as_ref()
            .map(|f| sql!(" AND ({})", f))
            .unwrap_or_default();
        let keys = sql!(
            "SELECT DISTINCT {} FROM {} AS x{}",
            if gsel.is_empty() {
                Sql::fixed("1 AS \"__pgs_any\"")
            } else {
                gsel.join_sql(", ")
            },
            Sql::ident(&root),
            self.where_clause("x")
        );
        let fresh = if groups.is_empty() {
            // a global aggregate: recompute its one row when anything changed
            // (the gate sits outside: an aggregate over no rows still yields a row)
            sql!(
                "SELECT f.* FROM ({}) AS f WHERE (SELECT EXISTS (SELECT 1 FROM \"__pgs_keys\"))",
                new_rows
            )
        } else {
            let (by_in, by_null) = Self::key_predicates(&groups_x, &gnames);
            sql!(
                "SELECT {0} FROM {1} AS x WHERE {2}{3}{4}{5} \
                 UNION ALL SELECT {0} FROM {1} AS x WHERE {6}{3}{4}{5}",
                select_list,
                base,
                by_in,
                and_filter,
                group_by_x,
                having_sql,
                by_null
            )
        };
        let in_keys = if groups.is_empty() {
            Sql::fixed("EXISTS (SELECT 1 FROM \"__pgs_keys\")")
        } else {
            Self::touched_keys(&gnames)
        };
        // Under the query around a stage, every row of the stage is read: its rows of
        // other keys by a hash anti join on the row id (the keys' `IS NOT DISTINCT
        // FROM` alone is a nested loop, O(stage × keys)).
        let untouched = (self.around_stage() && !groups.is_empty()).then(|| {
            let k_gs: Vec<Sql> = gnames.iter().map(|g| sql!("k.{}", g)).collect();
            sql!(
                "NOT EXISTS (SELECT 1 FROM \"__pgs_keys\" AS k WHERE {} = st.\"__pgs_row_id\" AND {})",
                row_id_of(&k_gs),
                gnames
                    .iter()
                    .map(|g| sql!("st.{0} IS NOT DISTINCT FROM k.{0}", g))
                    .collect::<Vec<_>>()
                    .join_sql(" AND ")
            )
        });
        let diff = self.recompute_keys(&keys, &fresh, &in_keys, untouched.as_ref(), &st);
        let hidden = gnames
            .iter()
            .map(|c| c.as_str().trim_matches('"').to_string())
            .chain([contract::ROW_ID.to_string()])
            .collect();
        self.maintained(&st, &NewRows::Keyed(new_rows), diff, hidden)
    }
}
