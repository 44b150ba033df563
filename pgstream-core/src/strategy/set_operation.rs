//! Set operations. UNION ALL is a bag of the branches' rows (`Δ(A ∪all B) = ΔA +
//! ΔB`); UNION keeps each distinct row with its multiplicity in `__pgs_count` and
//! shows it while the count is positive; INTERSECT and EXCEPT [ALL] recompute just
//! the rows whose values the changes touch (`recompute_keys`).

use super::*;

impl IncrementalRenderer<'_> {
    /// Set operations. UNION ALL is a bag of the branches' rows; UNION keeps each
    /// distinct row with its multiplicity in `__pgs_count`; INTERSECT and EXCEPT
    /// [ALL] recompute just the rows whose values the changes touch.
    pub(super) fn setop(&mut self) -> Statements {
        let b = self.block;
        let Shape::SetOp { op, all, branches } = &b.shape else {
            unreachable!()
        };
        let mut news = Vec::new();
        let mut deltas = Vec::new();
        let out_names: Vec<String> = b.items.iter().map(|(n, _)| n.clone()).collect();
        for br in branches {
            let root = self.delta(&br.tree);
            let (n, d) = self.branch_selects(br, &root, &out_names);
            news.push(n);
            deltas.push(d);
        }
        let names = self.output_names();
        let cols = names.join_sql(", ");
        let st = self.storage.clone();
        match (op, all) {
            (SetOpKind::Union, true) => {
                let new_vis = news.join_sql(" UNION ALL ");
                let delta_vis = deltas.join_sql(" UNION ALL ");
                self.bag(&new_vis, &delta_vis)
            }
            (SetOpKind::Union, false) => {
                let u_names = qualified_by("u", &names);
                let new_rows = sql!("SELECT {0}, count(*) AS \"__pgs_count\", {1} AS \"__pgs_row_id\" FROM ({2}) AS u GROUP BY {0}", cols, row_id_of(&u_names), news.join_sql(" UNION ALL "));
                let a_names = qualified_by("a", &names);
                let matchp = same_row(&Sql::fixed("s.\"__pgs_row_id\""), "s", &names);
                let st_a = same_row(&row_id_of(&a_names), "a", &names);
                let body = vec![
                    sql!("\"__pgs_delta\" AS ({})", deltas.join_sql(" UNION ALL ")),
                    sql!("\"__pgs_agg\" AS (SELECT {0}, sum({1})::bigint AS \"__pgs_dcount\" FROM \"__pgs_delta\" GROUP BY {0})", cols, W),
                    sql!("\"__pgs_src\" AS MATERIALIZED (SELECT {}, {} AS \"__pgs_row_id\", (st.\"__pgs_row_id\" IS NOT NULL) AS \"__pgs_exists\", COALESCE(st.\"__pgs_count\", 0) + a.\"__pgs_dcount\" AS \"__pgs_count\" FROM \"__pgs_agg\" AS a LEFT JOIN {} AS st ON {})", a_names.join_sql(", "), row_id_of(&a_names), st, st_a),
                    sql!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
                    sql!("\"__pgs_del\" AS (DELETE FROM {} AS st USING \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" = 0 AND {} RETURNING 1)", st, matchp),
                    sql!("\"__pgs_upd\" AS (UPDATE {} AS st SET \"__pgs_count\" = s.\"__pgs_count\" FROM \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" <> 0 AND st.\"__pgs_count\" <> s.\"__pgs_count\" AND {} RETURNING 1)", st, matchp),
                    sql!("\"__pgs_ins\" AS (INSERT INTO {} ({}, \"__pgs_count\", \"__pgs_row_id\") SELECT {}, s.\"__pgs_count\", s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE NOT s.\"__pgs_exists\" AND s.\"__pgs_count\" > 0 RETURNING 1)", st, cols, qualified_by("s", &names).join_sql(", ")),
                ];
                // rows changed: only visible changes count (a multiplicity update is bookkeeping)
                let diff = self.finish(
                    body,
                    &Sql::fixed("SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") + 0 * (SELECT count(*) FROM \"__pgs_upd\") AS \"rows_changed\""),
                );
                let hidden = vec!["__pgs_count".into(), contract::ROW_ID.into()];
                self.maintained(&st, &NewRows::Keyed(new_rows), diff, hidden)
            }
            (kind, all) => {
                let sql_op = sql!("{}{}", kind.sql(), if *all { " ALL" } else { "" });
                let new_rows = NewRows::Copies(Copies::numbered(
                    sql!("({}) {} ({})", news[0], sql_op, news[1]),
                    names.len(),
                ));
                let b_names = qualified_by("b", &names);
                let (by_in, by_null) = Self::key_predicates(&b_names, &names);
                let restrict = |n: &Sql| {
                    sql!("SELECT b.* FROM ({0}) AS b WHERE {1} UNION ALL SELECT b.* FROM ({0}) AS b WHERE {2}", n, by_in, by_null)
                };
                let fresh = numbered(&sql!(
                    "({}) {} ({})",
                    restrict(&news[0]),
                    sql_op,
                    restrict(&news[1])
                ));
                let keys = sql!(
                    "SELECT DISTINCT {} FROM ({}) AS d",
                    cols,
                    deltas.join_sql(" UNION ALL ")
                );
                let in_keys = Self::touched_keys(&names);
                let diff = self.recompute_keys(&keys, &fresh, &in_keys, None, &st);
                self.maintained(
                    &st,
                    &new_rows,
                    diff,
                    vec!["__pgs_n".into(), contract::ROW_ID.into()],
                )
            }
        }
    }
}
