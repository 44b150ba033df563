//! Aggregation with counters (`count(*)`, `count(x)`, `sum(x)`, `avg(x)` without
//! FILTER, DISTINCT or HAVING): per group the stored counters move by the delta's
//! contribution, `Δcount = Σ w`, `Δsum = Σ w·x`, `Δcount(x) = Σ w·[x IS NOT NULL]`,
//! and the outputs are read from the counters (`sum` and `avg = sum / count(x)` are
//! NULL while `count(x)` is 0); a group whose row count falls to 0 is deleted, a new
//! group is inserted. Work follows the changes, not the group sizes.

use super::*;

impl IncrementalRenderer<'_> {
    pub(super) fn aggregate(&mut self) -> Artifacts {
        let Shape::Aggregate { groups, aggs, .. } = &self.block.shape else {
            unreachable!()
        };
        let st = self.storage.clone();
        let global = groups.is_empty();
        let gnames: Vec<String> = (0..groups.len())
            .map(|k| qi(&format!("__pgs_g{k}")))
            .collect();
        let names: Vec<String> = self.block.items.iter().map(|(n, _)| qi(n)).collect();
        // hidden state columns, in storage order
        let mut state_cols: Vec<String> = vec![qi("__pgs_count")];
        let mut state_full: Vec<String> = vec!["count(*) AS \"__pgs_count\"".into()];
        for (k, a) in aggs.iter().enumerate() {
            let arg = a.arg.as_ref().map(|e| self.expr_over(e, "x"));
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count => {
                    state_cols.push(qi(&format!("__pgs_a{k}_n")));
                    state_full.push(format!(
                        "count({}) AS {}",
                        arg.unwrap(),
                        qi(&format!("__pgs_a{k}_n"))
                    ));
                }
                AggFunc::Sum | AggFunc::Avg => {
                    let arg = arg.unwrap();
                    state_cols.push(qi(&format!("__pgs_a{k}_n")));
                    state_cols.push(qi(&format!("__pgs_a{k}_s")));
                    state_full.push(format!("count({arg}) AS {}", qi(&format!("__pgs_a{k}_n"))));
                    state_full.push(format!("sum({arg}) AS {}", qi(&format!("__pgs_a{k}_s"))));
                }
            }
        }
        let groups_x: Vec<String> = groups.iter().map(|g| self.expr_over(g, "x")).collect();
        // Full: the items exactly as written (aggregates evaluated by PostgreSQL).
        let vis_full: Vec<String> = self
            .block
            .items
            .iter()
            .map(|(n, e)| {
                let s = expr::render_with(e, &mut |m| match m {
                    Marker::Agg(k) => Some(raw(self.expr_over(&aggs[k].call, "x"))),
                    Marker::Grp(k) => Some(raw(format!("({})", groups_x[k]))),
                    Marker::Col { leaf, col: c } => Some(raw(format!("x.{}", col(leaf, c)))),
                });
                format!("{s} AS {}", qi(n))
            })
            .collect();
        let gsel: Vec<String> = groups_x
            .iter()
            .zip(&gnames)
            .map(|(e, n)| format!("{e} AS {n}"))
            .collect();
        let group_by = if global {
            String::new()
        } else {
            format!(" GROUP BY {}", groups_x.join(", "))
        };
        let new_rows = format!(
            "SELECT {}, {}{}{}, {} AS \"__pgs_row_id\" FROM {} AS x{}{group_by}",
            vis_full.join(", "),
            gsel.join(", "),
            if gsel.is_empty() { "" } else { ", " },
            state_full.join(", "),
            row_id_of(&groups_x),
            self.new_rel(&self.block.tree),
            self.where_clause("x")
        );

        // Differential
        let root = self.delta(&self.block.tree);
        let mut dsel: Vec<String> = gsel.clone();
        for (k, a) in aggs.iter().enumerate() {
            if let Some(arg) = &a.arg {
                dsel.push(format!(
                    "{} AS {}",
                    self.expr_over(arg, "x"),
                    qi(&format!("__pgs_arg{k}"))
                ));
            }
        }
        dsel.push(format!("x.{W}"));
        let mut asel: Vec<String> = gnames.clone();
        asel.push(format!("COALESCE(sum({W}), 0)::bigint AS \"__pgs_dcount\""));
        for (k, a) in aggs.iter().enumerate() {
            let arg = qi(&format!("__pgs_arg{k}"));
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count | AggFunc::Sum | AggFunc::Avg => {
                    asel.push(format!(
                        "COALESCE(sum(CASE WHEN {arg} IS NOT NULL THEN {W} ELSE 0 END), 0)::bigint AS {}",
                        qi(&format!("__pgs_dn{k}"))
                    ));
                    if a.func != AggFunc::Count {
                        asel.push(format!(
                            "sum({arg}) FILTER (WHERE {W} > 0) AS {}",
                            qi(&format!("__pgs_dp{k}"))
                        ));
                        asel.push(format!(
                            "sum({arg}) FILTER (WHERE {W} < 0) AS {}",
                            qi(&format!("__pgs_dm{k}"))
                        ));
                    }
                }
            }
        }
        let a_groups: Vec<String> = gnames.iter().map(|g| format!("a.{g}")).collect();
        let st_match_a: Vec<String> =
            std::iter::once(format!("st.\"__pgs_row_id\" = {}", row_id_of(&a_groups)))
                .chain(
                    gnames
                        .iter()
                        .map(|g| format!("st.{g} IS NOT DISTINCT FROM a.{g}")),
                )
                .collect();
        let mut ssel: Vec<String> = a_groups.clone();
        ssel.push("(st.\"__pgs_row_id\" IS NOT NULL) AS \"__pgs_exists\"".into());
        ssel.push("st.\"__pgs_ctid\"".into());
        ssel.push(format!("{} AS \"__pgs_row_id\"", row_id_of(&a_groups)));
        ssel.push("COALESCE(st.\"__pgs_count\", 0) + a.\"__pgs_dcount\" AS \"__pgs_count\"".into());
        for (k, a) in aggs.iter().enumerate() {
            let n = qi(&format!("__pgs_a{k}_n"));
            let s = qi(&format!("__pgs_a{k}_s"));
            let (dn, dp, dm) = (
                qi(&format!("__pgs_dn{k}")),
                qi(&format!("__pgs_dp{k}")),
                qi(&format!("__pgs_dm{k}")),
            );
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count => ssel.push(format!("COALESCE(st.{n}, 0) + a.{dn} AS {n}")),
                AggFunc::Sum | AggFunc::Avg => {
                    ssel.push(format!("COALESCE(st.{n}, 0) + a.{dn} AS {n}"));
                    ssel.push(format!(
                        "CASE WHEN COALESCE(st.{n}, 0) + a.{dn} = 0 THEN NULL ELSE COALESCE(st.{s}, 0) + COALESCE(a.{dp}, 0) - COALESCE(a.{dm}, 0) END AS {s}"
                    ));
                }
            }
        }
        let vis_s: Vec<String> = self
            .block
            .items
            .iter()
            .map(|(name, e)| {
                let s = expr::render_with(e, &mut |m| match m {
                    Marker::Grp(k) => Some(raw(format!("s.{}", gnames[k]))),
                    Marker::Agg(k) => {
                        let n = format!("s.{}", qi(&format!("__pgs_a{k}_n")));
                        let sum = format!("s.{}", qi(&format!("__pgs_a{k}_s")));
                        Some(raw(match aggs[k].func {
                            AggFunc::Other => unreachable!("maintained by group recompute"),
                            AggFunc::CountStar => "s.\"__pgs_count\"".to_string(),
                            AggFunc::Count => n,
                            AggFunc::Sum => format!("(CASE WHEN {n} > 0 THEN {sum} END)"),
                            AggFunc::Avg => {
                                format!("(CASE WHEN {n} > 0 THEN {sum} / {n}::numeric END)")
                            }
                        }))
                    }
                    Marker::Col { .. } => None,
                });
                format!("{s} AS {}", qi(name))
            })
            .collect();
        let stored: Vec<String> = names
            .iter()
            .chain(&gnames)
            .chain(&state_cols)
            .cloned()
            .collect();
        let matchp: Vec<String> =
            std::iter::once("st.\"__pgs_row_id\" = s.\"__pgs_row_id\"".to_string())
                .chain(
                    gnames
                        .iter()
                        .map(|g| format!("st.{g} IS NOT DISTINCT FROM s.{g}")),
                )
                .collect();
        let matchp = matchp.join(" AND ");
        let set_list: Vec<String> = names
            .iter()
            .chain(&state_cols)
            .map(|c| format!("{c} = s.{c}"))
            .collect();
        let changed = format!(
            "ROW({})::text IS DISTINCT FROM ROW({})::text",
            names
                .iter()
                .chain(&state_cols)
                .map(|c| format!("st.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            names
                .iter()
                .chain(&state_cols)
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut body = vec![
            format!("\"__pgs_delta\" AS (SELECT {} FROM {} AS x{})", dsel.join(", "), qi(&root), self.where_clause("x")),
            format!(
                "\"__pgs_agg\" AS (SELECT {} FROM \"__pgs_delta\"{})",
                asel.join(", "),
                if global { String::new() } else { format!(" GROUP BY {}", gnames.join(", ")) }
            ),
            // Each affected group's stored row is looked up through the row-id index
            // (a LATERAL the planner cannot flatten into a hash join over the whole
            // storage table, which the fan-out estimates of the delta terms often
            // made it choose), and its ctid carried to the DELETE and the UPDATE,
            // which then fetch the rows by TID. The ctids are stable for the
            // statement: only refreshes, serialised by the stream table's lock,
            // write the storage table.
            format!(
                "\"__pgs_src\" AS MATERIALIZED (SELECT s.*, {} FROM (SELECT {} FROM \"__pgs_agg\" AS a LEFT JOIN LATERAL (SELECT st.ctid AS \"__pgs_ctid\", st.* FROM {st} AS st WHERE {} OFFSET 0) AS st ON true) AS s)",
                vis_s.join(", "),
                ssel.join(", "),
                st_match_a.join(" AND ")
            ),
            format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
        ];
        let tail = if global {
            body.push(format!(
                "\"__pgs_upd\" AS (UPDATE {st} AS st SET {} FROM \"__pgs_src\" AS s WHERE {matchp} AND {changed} RETURNING 1)",
                set_list.join(", ")
            ));
            "SELECT (SELECT count(*) FROM \"__pgs_upd\") AS \"rows_changed\"".to_string()
        } else {
            let by_tid = |cond: &str| {
                format!(
                    "st.ctid = ANY (ARRAY(SELECT t.\"__pgs_ctid\" FROM \"__pgs_src\" AS t WHERE t.\"__pgs_exists\" AND t.\"__pgs_count\" {cond}))"
                )
            };
            body.push(format!(
                "\"__pgs_del\" AS (DELETE FROM {st} AS st WHERE {} RETURNING 1)",
                by_tid("= 0")
            ));
            body.push(format!(
                "\"__pgs_upd\" AS (UPDATE {st} AS st SET {} FROM \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" <> 0 AND {} AND st.ctid = s.\"__pgs_ctid\" AND {changed} RETURNING 1)",
                set_list.join(", "),
                by_tid("<> 0")
            ));
            body.push(format!(
                "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_row_id\") SELECT {scols}, s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE NOT s.\"__pgs_exists\" AND s.\"__pgs_count\" > 0 RETURNING 1)",
                cols = stored.join(", "),
                scols = stored.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
            ));
            // Under a top-k: the stage after this refresh is its rows of the groups
            // the changes did not touch and the new rows of those they did.
            let after = format!(
                "SELECT {} FROM {st} AS st WHERE st.ctid <> ALL (ARRAY(SELECT t.\"__pgs_ctid\" FROM \"__pgs_src\" AS t WHERE t.\"__pgs_exists\")) \
                 UNION ALL SELECT {} FROM \"__pgs_src\" AS s WHERE s.\"__pgs_count\" > 0",
                self.stage_columns("st"),
                self.stage_columns("s")
            );
            self.top_tail(
                &mut body,
                &after,
                "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_upd\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
            )
        };
        let diff = self.finish(body, &tail);
        let hidden = gnames
            .iter()
            .chain(&state_cols)
            .map(|c| c.trim_matches('"').to_string())
            .chain([contract::ROW_ID.to_string()])
            .collect();
        let _ = self.compiled;
        self.maintained(&st, &new_rows, diff, hidden)
    }
}
