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
    pub(super) fn project_bag(&mut self) -> Statements {
        let b = self.block;
        let root = self.delta(&b.tree);
        let names: Vec<String> = b.items.iter().map(|(n, _)| n.clone()).collect();
        let (new_vis, delta_vis) = self.branch_selects(b, &root, &names);
        self.bag(&new_vis, &delta_vis)
    }

    /// Bag maintenance from the current rows and the delta (see `project_bag`).
    pub(super) fn bag(&mut self, new_vis: &Sql, delta_vis: &Sql) -> Statements {
        let st = self.storage.clone();
        let names = self.output_names();
        let text_of =
            |q: &'static str| sql!("ROW({})::text", qualified_by(q, &names).join_sql(", "));
        let new_rows = sql!("SELECT q2.*, {} AS \"__pgs_row_id\" FROM (SELECT q.*, row_number() OVER (PARTITION BY {}) AS \"__pgs_n\" FROM ({}) AS q) AS q2", row_hash(&text_of("q2"), &Sql::fixed("0")), text_of("q"), new_vis);
        let cols = names.join_sql(", ");
        let (net_sel, net_by) = self.net_grouping(&names);
        // The stored copies of a net change's row (`s`, or `s0`).
        let same_value = |s: &'static str| {
            sql!(
                "st.\"__pgs_row_id\" = {0}.\"__pgs_rid\" AND {1} = {0}.\"__pgs_t\"",
                s,
                text_of("st")
            )
        };
        let body = vec![
            sql!("\"__pgs_delta\" AS ({})", delta_vis),
            sql!("\"__pgs_net\" AS (SELECT d.*, {0} AS \"__pgs_t\" FROM (SELECT {1}, sum({2}) AS {2} FROM \"__pgs_delta\" GROUP BY {3} HAVING sum({2}) <> 0) AS d)", text_of("d"), net_sel, W, net_by),
            sql!("\"__pgs_src\" AS MATERIALIZED (SELECT s0.*, (SELECT count(*) FROM {} AS st WHERE {}) AS \"__pgs_c\" FROM (SELECT n.*, {} AS \"__pgs_rid\" FROM \"__pgs_net\" AS n) AS s0)", st, same_value("s0"), row_hash(&Sql::fixed("n.\"__pgs_t\""), &Sql::fixed("0"))),
            sql!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            sql!("\"__pgs_del\" AS (DELETE FROM {0} AS st USING \"__pgs_src\" AS s WHERE s.{1} < 0 AND {2} AND st.\"__pgs_n\" > s.\"__pgs_c\" + s.{1} RETURNING 1)", st, W, same_value("s")),
            sql!("\"__pgs_ins\" AS (INSERT INTO {0} ({1}, \"__pgs_n\", \"__pgs_row_id\") SELECT {2}, s.\"__pgs_c\" + g.i, s.\"__pgs_rid\" FROM \"__pgs_src\" AS s CROSS JOIN LATERAL pg_catalog.generate_series(1, s.{3}::bigint) AS g(i) WHERE s.{3} > 0 RETURNING 1)", st, cols, qualified_by("s", &names).join_sql(", "), W),
        ];
        let diff = self.finish(
            body,
            &Sql::fixed("SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\""),
        );
        self.maintained(
            &st,
            &NewRows::Copies(Copies::shared_id(new_rows, new_vis.clone(), names.len())),
            diff,
            vec!["__pgs_n".into(), contract::ROW_ID.into()],
        )
    }

    pub(super) fn project(&mut self) -> Statements {
        if !self.block.keyed_rows() {
            return self.project_bag();
        }
        let st = self.storage.clone();
        let names = self.output_names();
        let keys_x = self.key_exprs("x");
        let knames = numbered_names("__pgs_k", keys_x.len());
        let hidden: Vec<String> = (0..keys_x.len())
            .map(|k| format!("__pgs_k{}", k))
            .chain([contract::ROW_ID.to_string()])
            .collect();
        // full
        let vis_x: Vec<Sql> = self
            .block
            .items
            .iter()
            .map(|(n, e)| sql!("{} AS {}", self.expr_over(e, "x"), Sql::ident(n)))
            .collect();
        let key_sel = aliased(&keys_x, &knames);
        let new_rows = sql!(
            "SELECT {}, {}, {} AS \"__pgs_row_id\" FROM {} AS x{}",
            vis_x.join_sql(", "),
            key_sel.join_sql(", "),
            row_id_of(&keys_x),
            self.new_rel(&self.block.tree),
            self.where_clause("x")
        );
        // differential
        let root = self.delta(&self.block.tree);
        let all_cols: Vec<Sql> = names.iter().chain(&knames).cloned().collect();
        let (net_sel, net_by) = self.net_grouping(&all_cols);
        let kn_s = qualified_by("s", &knames);
        let matchp = same_row(&Sql::fixed("s.\"__pgs_row_id\""), "s", &knames);
        let body = vec![
            sql!("\"__pgs_delta\" AS (SELECT {}, {}, x.{} FROM {} AS x{})", vis_x.join_sql(", "), key_sel.join_sql(", "), W, Sql::ident(&root), self.where_clause("x")),
            sql!("\"__pgs_net\" AS (SELECT {0}, sum({1}) AS {1} FROM \"__pgs_delta\" GROUP BY {2} HAVING sum({1}) <> 0)", net_sel, W, net_by),
            sql!("\"__pgs_src\" AS MATERIALIZED (SELECT DISTINCT ON ({0}) s.*, {1} AS \"__pgs_row_id\" FROM \"__pgs_net\" AS s ORDER BY {0}, s.{2} DESC)", kn_s.join_sql(", "), row_id_of(&kn_s), W),
            sql!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            sql!("\"__pgs_del\" AS (DELETE FROM {} AS st USING \"__pgs_src\" AS s WHERE s.{} < 0 AND {} RETURNING 1)", st, W, matchp),
            sql!("\"__pgs_upd\" AS (UPDATE {} AS st SET {} FROM \"__pgs_src\" AS s WHERE s.{} > 0 AND {} RETURNING 1)", st, names.iter().map(|n| sql!("{0} = s.{0}", n)).collect::<Vec<_>>().join_sql(", "), W, matchp),
            sql!("\"__pgs_ins\" AS (INSERT INTO {0} ({1}, \"__pgs_row_id\") SELECT {2}, s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE s.{3} > 0 AND NOT EXISTS (SELECT 1 FROM {0} AS st WHERE {4}) RETURNING 1)", st, all_cols.join_sql(", "), qualified_by("s", &all_cols).join_sql(", "), W, matchp),
        ];
        // Under a top-k: the stage after this refresh is its rows the changes did not
        // touch and the new rows of those they did. The untouched rows are a filter
        // on the stage's own rows (their row locations, collected once), not a join:
        // the first rows are then read through the index on the order (an anti join
        // read the whole stage, 1,000,000 rows for a top 50).
        let mut body = body;
        let kept = sql!(
            "SELECT {} FROM {} AS st WHERE st.ctid <> ALL (ARRAY(SELECT st.ctid FROM {} AS st, \"__pgs_src\" AS s WHERE {}))",
            self.stage_columns("st"),
            st,
            st,
            matchp
        );
        let new = sql!(
            "SELECT {} FROM \"__pgs_src\" AS s WHERE s.{} > 0",
            self.stage_columns("s"),
            W
        );
        let tail = self.top_tail(
            &mut body,
            &kept,
            &new,
            &Sql::fixed("SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_upd\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\""),
        );
        let diff = self.finish(body, &tail);
        self.maintained(&st, &NewRows::Keyed(new_rows), diff, hidden)
    }
}
