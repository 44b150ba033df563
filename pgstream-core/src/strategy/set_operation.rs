//! Set operations. UNION ALL is a bag of the branches' rows (`Δ(A ∪all B) = ΔA +
//! ΔB`); UNION keeps each distinct row with its multiplicity in `__pgs_count` and
//! shows it while the count is positive; INTERSECT and EXCEPT [ALL] recompute just
//! the rows whose values the changes touch (`recompute_keys`).

use super::*;

impl IncrementalRenderer<'_> {
    /// Set operations. UNION ALL is a bag of the branches' rows; UNION keeps each
    /// distinct row with its multiplicity in `__pgs_count`; INTERSECT and EXCEPT
    /// [ALL] recompute just the rows whose values the changes touch.
    pub(super) fn setop(&mut self) -> Artifacts {
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
        let names: Vec<String> = b.items.iter().map(|(n, _)| qi(n)).collect();
        let cols = names.join(", ");
        let st = self.storage.clone();
        match (op, all) {
            (SetOpKind::Union, true) => {
                let new_vis = news.join(" UNION ALL ");
                let delta_vis = deltas.join(" UNION ALL ");
                self.bag(&new_vis, &delta_vis)
            }
            (SetOpKind::Union, false) => {
                let u_names: Vec<String> = names.iter().map(|n| format!("u.{n}")).collect();
                let new_rows = format!(
                    "SELECT {cols}, count(*) AS \"__pgs_count\", {} AS \"__pgs_row_id\" FROM ({}) AS u GROUP BY {cols}",
                    row_id_of(&u_names),
                    news.join(" UNION ALL ")
                );
                let a_names: Vec<String> = names.iter().map(|n| format!("a.{n}")).collect();
                let matchp: Vec<String> =
                    std::iter::once("st.\"__pgs_row_id\" = s.\"__pgs_row_id\"".to_string())
                        .chain(
                            names
                                .iter()
                                .map(|n| format!("st.{n} IS NOT DISTINCT FROM s.{n}")),
                        )
                        .collect();
                let matchp = matchp.join(" AND ");
                let st_a: Vec<String> =
                    std::iter::once(format!("st.\"__pgs_row_id\" = {}", row_id_of(&a_names)))
                        .chain(
                            names
                                .iter()
                                .map(|n| format!("st.{n} IS NOT DISTINCT FROM a.{n}")),
                        )
                        .collect();
                let body = vec![
                    format!("\"__pgs_delta\" AS ({})", deltas.join(" UNION ALL ")),
                    format!("\"__pgs_agg\" AS (SELECT {cols}, sum({W})::bigint AS \"__pgs_dcount\" FROM \"__pgs_delta\" GROUP BY {cols})"),
                    format!(
                        "\"__pgs_src\" AS MATERIALIZED (SELECT {}, {} AS \"__pgs_row_id\", (st.\"__pgs_row_id\" IS NOT NULL) AS \"__pgs_exists\", COALESCE(st.\"__pgs_count\", 0) + a.\"__pgs_dcount\" AS \"__pgs_count\" FROM \"__pgs_agg\" AS a LEFT JOIN {st} AS st ON {})",
                        a_names.join(", "),
                        row_id_of(&a_names),
                        st_a.join(" AND ")
                    ),
                    format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
                    format!("\"__pgs_del\" AS (DELETE FROM {st} AS st USING \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" = 0 AND {matchp} RETURNING 1)"),
                    format!("\"__pgs_upd\" AS (UPDATE {st} AS st SET \"__pgs_count\" = s.\"__pgs_count\" FROM \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" <> 0 AND st.\"__pgs_count\" <> s.\"__pgs_count\" AND {matchp} RETURNING 1)"),
                    format!(
                        "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_count\", \"__pgs_row_id\") SELECT {}, s.\"__pgs_count\", s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE NOT s.\"__pgs_exists\" AND s.\"__pgs_count\" > 0 RETURNING 1)",
                        names.iter().map(|n| format!("s.{n}")).collect::<Vec<_>>().join(", ")
                    ),
                ];
                // rows changed: only visible changes count (a multiplicity update is bookkeeping)
                let diff = self.finish(
                    body,
                    "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") + 0 * (SELECT count(*) FROM \"__pgs_upd\") AS \"rows_changed\"",
                );
                self.maintained(
                    &st,
                    &new_rows,
                    diff,
                    vec!["__pgs_count".into(), contract::ROW_ID.into()],
                )
            }
            (kind, all) => {
                let sql_op = format!("{}{}", kind.sql(), if *all { " ALL" } else { "" });
                let new_rows = numbered(&format!("({}) {sql_op} ({})", news[0], news[1]));
                let b_names: Vec<String> = names.iter().map(|n| format!("b.{n}")).collect();
                let (by_in, by_null) = Self::key_predicates(&b_names, &names);
                let restrict = |n: &str| {
                    format!("SELECT b.* FROM ({n}) AS b WHERE {by_in} UNION ALL SELECT b.* FROM ({n}) AS b WHERE {by_null}")
                };
                let fresh = numbered(&format!(
                    "({}) {sql_op} ({})",
                    restrict(&news[0]),
                    restrict(&news[1])
                ));
                let keys = format!(
                    "SELECT DISTINCT {cols} FROM ({}) AS d",
                    deltas.join(" UNION ALL ")
                );
                let in_keys = Self::touched_keys(&names);
                let diff = self.recompute_keys(&keys, &fresh, &in_keys, &st);
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
