//! Projection (a query without GROUP BY, windows or set operations): linear, so the
//! delta of the output is the projected delta of the join tree, `Δπ(R) = π(ΔR)`.
//! A row is identified by the primary keys of its leaves (`key_exprs`); the net
//! change per row id is applied (deleted, updated or inserted). Over a source
//! without a primary key the result is a bag (`project_bag`): copies of a row are
//! numbered among equal rows and the net change per distinct row adds or removes
//! copies.

use super::*;

impl IncrementalRenderer<'_> {
    /// A query without GROUP BY over a source without a primary key is a bag: each
    /// copy of a row is a storage row, numbered `__pgs_n` = 1..c among equal rows, and
    /// all copies share the row id (a hash of the row's text). The window's net change
    /// per distinct row removes the highest-numbered copies or appends new ones.
    pub(super) fn project_bag(&mut self) -> Artifacts {
        let b = self.block;
        let root = self.delta(&b.tree);
        let names: Vec<String> = b.items.iter().map(|(n, _)| n.clone()).collect();
        let (new_vis, delta_vis) = self.branch_selects(b, &root, &names);
        self.bag(&new_vis, &delta_vis)
    }

    /// Bag maintenance from the current rows and the delta (see `project_bag`).
    pub(super) fn bag(&mut self, new_vis: &str, delta_vis: &str) -> Artifacts {
        let st = self.storage.clone();
        let names: Vec<String> = self.block.items.iter().map(|(n, _)| qi(n)).collect();
        let text_of = |q: &str| {
            format!(
                "ROW({})::text",
                names
                    .iter()
                    .map(|n| format!("{q}.{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let new_rows = format!(
            "SELECT q2.*, {} AS \"__pgs_row_id\" FROM (SELECT q.*, row_number() OVER (PARTITION BY {}) AS \"__pgs_n\" FROM ({new_vis}) AS q) AS q2",
            row_hash(&text_of("q2"), "0"),
            text_of("q"),
        );
        let cols = names.join(", ");
        let (net_sel, net_by) = self.net_grouping(&names);
        let same_value = format!(
            "st.\"__pgs_row_id\" = s.\"__pgs_rid\" AND {} = s.\"__pgs_t\"",
            text_of("st")
        );
        let body = vec![
            format!("\"__pgs_delta\" AS ({delta_vis})"),
            format!(
                "\"__pgs_net\" AS (SELECT d.*, {} AS \"__pgs_t\" FROM (SELECT {}, sum({W}) AS {W} FROM \"__pgs_delta\" GROUP BY {} HAVING sum({W}) <> 0) AS d)",
                text_of("d"),
                net_sel,
                net_by
            ),
            format!(
                "\"__pgs_src\" AS MATERIALIZED (SELECT s0.*, (SELECT count(*) FROM {st} AS st WHERE {}) AS \"__pgs_c\" FROM (SELECT n.*, {} AS \"__pgs_rid\" FROM \"__pgs_net\" AS n) AS s0)",
                same_value.replace("s.", "s0."),
                row_hash("n.\"__pgs_t\"", "0")
            ),
            format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            format!(
                "\"__pgs_del\" AS (DELETE FROM {st} AS st USING \"__pgs_src\" AS s WHERE s.{W} < 0 AND {same_value} AND st.\"__pgs_n\" > s.\"__pgs_c\" + s.{W} RETURNING 1)"
            ),
            format!(
                "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_n\", \"__pgs_row_id\") SELECT {}, s.\"__pgs_c\" + g.i, s.\"__pgs_rid\" FROM \"__pgs_src\" AS s CROSS JOIN LATERAL pg_catalog.generate_series(1, s.{W}::bigint) AS g(i) WHERE s.{W} > 0 RETURNING 1)",
                names.iter().map(|n| format!("s.{n}")).collect::<Vec<_>>().join(", ")
            ),
        ];
        let diff = self.finish(
            body,
            "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        );
        self.maintained(
            &st,
            &new_rows,
            diff,
            vec!["__pgs_n".into(), contract::ROW_ID.into()],
        )
    }

    pub(super) fn project(&mut self) -> Artifacts {
        if self.block.tree.out_leaves().iter().any(|&i| {
            // an aggregate leaf without GROUP BY has at most one row: keyed by nothing
            let l = &self.block.leaves[i];
            l.table.primary_key.is_empty() && l.agg.is_none()
        }) || self.key_exprs("x").is_empty()
        {
            return self.project_bag();
        }
        let st = self.storage.clone();
        let names: Vec<String> = self.block.items.iter().map(|(n, _)| qi(n)).collect();
        let keys_x = self.key_exprs("x");
        let knames: Vec<String> = (0..keys_x.len())
            .map(|k| qi(&format!("__pgs_k{k}")))
            .collect();
        let hidden: Vec<String> = (0..keys_x.len())
            .map(|k| format!("__pgs_k{k}"))
            .chain([contract::ROW_ID.to_string()])
            .collect();
        // full
        let vis_x: Vec<String> = self
            .block
            .items
            .iter()
            .map(|(n, e)| format!("{} AS {}", self.expr_over(e, "x"), qi(n)))
            .collect();
        let key_sel: Vec<String> = keys_x
            .iter()
            .zip(&knames)
            .map(|(e, n)| format!("{e} AS {n}"))
            .collect();
        let new_rows = format!(
            "SELECT {}, {}, {} AS \"__pgs_row_id\" FROM {} AS x{}",
            vis_x.join(", "),
            key_sel.join(", "),
            row_id_of(&keys_x),
            self.new_rel(&self.block.tree),
            self.where_clause("x")
        );
        // differential
        let root = self.delta(&self.block.tree);
        let all_cols: Vec<String> = names.iter().chain(&knames).cloned().collect();
        let (net_sel, net_by) = self.net_grouping(&all_cols);
        let kn_s: Vec<String> = knames.iter().map(|k| format!("s.{k}")).collect();
        let matchp: Vec<String> =
            std::iter::once("st.\"__pgs_row_id\" = s.\"__pgs_row_id\"".to_string())
                .chain(
                    knames
                        .iter()
                        .map(|k| format!("st.{k} IS NOT DISTINCT FROM s.{k}")),
                )
                .collect();
        let matchp = matchp.join(" AND ");
        let body = vec![
            format!(
                "\"__pgs_delta\" AS (SELECT {}, {}, x.{W} FROM {} AS x{})",
                vis_x.join(", "),
                key_sel.join(", "),
                qi(&root),
                self.where_clause("x")
            ),
            format!(
                "\"__pgs_net\" AS (SELECT {}, sum({W}) AS {W} FROM \"__pgs_delta\" GROUP BY {} HAVING sum({W}) <> 0)",
                net_sel,
                net_by
            ),
            format!(
                "\"__pgs_src\" AS MATERIALIZED (SELECT DISTINCT ON ({k}) s.*, {rid} AS \"__pgs_row_id\" FROM \"__pgs_net\" AS s ORDER BY {k}, s.{W} DESC)",
                k = kn_s.join(", "),
                rid = row_id_of(&kn_s)
            ),
            format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            format!("\"__pgs_del\" AS (DELETE FROM {st} AS st USING \"__pgs_src\" AS s WHERE s.{W} < 0 AND {matchp} RETURNING 1)"),
            format!(
                "\"__pgs_upd\" AS (UPDATE {st} AS st SET {} FROM \"__pgs_src\" AS s WHERE s.{W} > 0 AND {matchp} RETURNING 1)",
                names.iter().map(|n| format!("{n} = s.{n}")).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_row_id\") SELECT {scols}, s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE s.{W} > 0 AND NOT EXISTS (SELECT 1 FROM {st} AS st WHERE {matchp}) RETURNING 1)",
                cols = all_cols.join(", "),
                scols = all_cols.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
            ),
        ];
        let diff = self.finish(
            body,
            "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_upd\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        );
        self.maintained(&st, &new_rows, diff, hidden)
    }
}
