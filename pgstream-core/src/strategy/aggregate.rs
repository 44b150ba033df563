//! Aggregation with counters (`count(*)`, `count(x)`, `sum(x)`, `avg(x)` without
//! FILTER, DISTINCT or HAVING): per group the stored counters move by the delta's
//! contribution, `Δcount = Σ w`, `Δsum = Σ w·x`, `Δcount(x) = Σ w·[x IS NOT NULL]`,
//! and the outputs are read from the counters (`sum` and `avg = sum / count(x)` are
//! NULL while `count(x)` is 0); a group whose row count falls to 0 is deleted, a new
//! group is inserted. Work follows the changes, not the group sizes.

use super::*;

impl IncrementalRenderer<'_> {
    pub(super) fn aggregate(&mut self) -> Statements {
        let Shape::Aggregate { groups, aggs, .. } = &self.block.shape else {
            unreachable!()
        };
        let st = self.storage.clone();
        let global = groups.is_empty();
        let gnames: Vec<Sql> = (0..groups.len())
            .map(|k| Sql::ident(&format!("__pgs_g{}", k)))
            .collect();
        let names: Vec<Sql> = self
            .block
            .items
            .iter()
            .map(|(n, _)| Sql::ident(n))
            .collect();
        // hidden state columns, in storage order
        let mut state_cols: Vec<Sql> = vec![Sql::ident("__pgs_count")];
        let mut state_full: Vec<Sql> = vec!["count(*) AS \"__pgs_count\"".into()];
        for (k, a) in aggs.iter().enumerate() {
            let arg = a.arg.as_ref().map(|e| self.expr_over(e, "x"));
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count => {
                    state_cols.push(Sql::ident(&format!("__pgs_a{}_n", k)));
                    state_full.push(sql!(
                        "count({}) AS {}",
                        arg.unwrap(),
                        Sql::ident(&format!("__pgs_a{k}_n"))
                    ));
                }
                AggFunc::Sum | AggFunc::Avg => {
                    let arg = arg.unwrap();
                    state_cols.push(Sql::ident(&format!("__pgs_a{}_n", k)));
                    state_cols.push(Sql::ident(&format!("__pgs_a{}_s", k)));
                    state_full.push(sql!(
                        "count({}) AS {}",
                        arg,
                        Sql::ident(&format!("__pgs_a{k}_n"))
                    ));
                    state_full.push(sql!(
                        "sum({}) AS {}",
                        arg,
                        Sql::ident(&format!("__pgs_a{k}_s"))
                    ));
                }
            }
        }
        let groups_x: Vec<Sql> = groups.iter().map(|g| self.expr_over(g, "x")).collect();
        // Full: the items exactly as written (aggregates evaluated by PostgreSQL).
        let vis_full: Vec<Sql> = self
            .block
            .items
            .iter()
            .map(|(n, e)| {
                let s = expr::render_with(e, &mut |m| match m {
                    Marker::Agg(k) => Some(self.expr_over(&aggs[k].call, "x")),
                    Marker::Grp(k) => Some(sql!("({})", groups_x[k])),
                    Marker::Col { leaf, col: c } => Some(sql!("x.{}", col(leaf, c))),
                });
                sql!("{} AS {}", s, Sql::ident(n))
            })
            .collect();
        let gsel: Vec<Sql> = groups_x
            .iter()
            .zip(&gnames)
            .map(|(e, n)| sql!("{} AS {}", e, n))
            .collect();
        let group_by = if global {
            Sql::default()
        } else {
            sql!(" GROUP BY {}", groups_x.join_sql(", "))
        };
        let new_rows = sql!(
            "SELECT {}, {}{}{}, {} AS \"__pgs_row_id\" FROM {} AS x{}{}",
            vis_full.join_sql(", "),
            gsel.join_sql(", "),
            if gsel.is_empty() { "" } else { ", " },
            state_full.join_sql(", "),
            row_id_of(&groups_x),
            self.new_rel(&self.block.tree),
            self.where_clause("x"),
            group_by
        );

        // Differential
        let root = self.delta(&self.block.tree);
        let mut dsel: Vec<Sql> = gsel.clone();
        for (k, a) in aggs.iter().enumerate() {
            if let Some(arg) = &a.arg {
                dsel.push(sql!(
                    "{} AS {}",
                    self.expr_over(arg, "x"),
                    Sql::ident(&format!("__pgs_arg{k}"))
                ));
            }
        }
        dsel.push(sql!("x.{}", W));
        let mut asel: Vec<Sql> = gnames.clone();
        asel.push(sql!("COALESCE(sum({}), 0)::bigint AS \"__pgs_dcount\"", W));
        for (k, a) in aggs.iter().enumerate() {
            let arg = Sql::ident(&format!("__pgs_arg{}", k));
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count | AggFunc::Sum | AggFunc::Avg => {
                    asel.push(sql!("COALESCE(sum(CASE WHEN {} IS NOT NULL THEN {} ELSE 0 END), 0)::bigint AS {}", arg, W, Sql::ident(&format!("__pgs_dn{k}"))));
                    if a.func != AggFunc::Count {
                        asel.push(sql!(
                            "sum({}) FILTER (WHERE {} > 0) AS {}",
                            arg,
                            W,
                            Sql::ident(&format!("__pgs_dp{k}"))
                        ));
                        asel.push(sql!(
                            "sum({}) FILTER (WHERE {} < 0) AS {}",
                            arg,
                            W,
                            Sql::ident(&format!("__pgs_dm{k}"))
                        ));
                    }
                }
            }
        }
        let a_groups: Vec<Sql> = gnames.iter().map(|g| sql!("a.{}", g)).collect();
        let st_match_a: Vec<Sql> =
            std::iter::once(sql!("st.\"__pgs_row_id\" = {}", row_id_of(&a_groups)))
                .chain(
                    gnames
                        .iter()
                        .map(|g| sql!("st.{0} IS NOT DISTINCT FROM a.{0}", g)),
                )
                .collect();
        let mut ssel: Vec<Sql> = a_groups.clone();
        ssel.push("(st.\"__pgs_row_id\" IS NOT NULL) AS \"__pgs_exists\"".into());
        ssel.push("st.\"__pgs_ctid\"".into());
        ssel.push(sql!("{} AS \"__pgs_row_id\"", row_id_of(&a_groups)));
        ssel.push("COALESCE(st.\"__pgs_count\", 0) + a.\"__pgs_dcount\" AS \"__pgs_count\"".into());
        for (k, a) in aggs.iter().enumerate() {
            let n = Sql::ident(&format!("__pgs_a{}_n", k));
            let s = Sql::ident(&format!("__pgs_a{}_s", k));
            let (dn, dp, dm) = (
                Sql::ident(&format!("__pgs_dn{}", k)),
                Sql::ident(&format!("__pgs_dp{}", k)),
                Sql::ident(&format!("__pgs_dm{}", k)),
            );
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count => ssel.push(sql!("COALESCE(st.{0}, 0) + a.{1} AS {0}", n, dn)),
                AggFunc::Sum | AggFunc::Avg => {
                    ssel.push(sql!("COALESCE(st.{0}, 0) + a.{1} AS {0}", n, dn));
                    ssel.push(sql!("CASE WHEN COALESCE(st.{0}, 0) + a.{1} = 0 THEN NULL ELSE COALESCE(st.{2}, 0) + COALESCE(a.{3}, 0) - COALESCE(a.{4}, 0) END AS {2}", n, dn, s, dp, dm));
                }
            }
        }
        let vis_s: Vec<Sql> = self
            .block
            .items
            .iter()
            .map(|(name, e)| {
                let s = expr::render_with(e, &mut |m| match m {
                    Marker::Grp(k) => Some(sql!("s.{}", gnames[k])),
                    Marker::Agg(k) => {
                        let n = sql!("s.{}", Sql::ident(&format!("__pgs_a{k}_n")));
                        let sum = sql!("s.{}", Sql::ident(&format!("__pgs_a{k}_s")));
                        Some(match aggs[k].func {
                            AggFunc::Other => unreachable!("maintained by group recompute"),
                            AggFunc::CountStar => Sql::fixed("s.\"__pgs_count\""),
                            AggFunc::Count => n,
                            AggFunc::Sum => sql!("(CASE WHEN {} > 0 THEN {} END)", n, sum),
                            AggFunc::Avg => {
                                sql!("(CASE WHEN {0} > 0 THEN {1} / {0}::numeric END)", n, sum)
                            }
                        })
                    }
                    Marker::Col { .. } => None,
                });
                sql!("{} AS {}", s, Sql::ident(name))
            })
            .collect();
        let stored: Vec<Sql> = names
            .iter()
            .chain(&gnames)
            .chain(&state_cols)
            .cloned()
            .collect();
        let matchp: Vec<Sql> =
            std::iter::once(Sql::fixed("st.\"__pgs_row_id\" = s.\"__pgs_row_id\""))
                .chain(
                    gnames
                        .iter()
                        .map(|g| sql!("st.{0} IS NOT DISTINCT FROM s.{0}", g)),
                )
                .collect();
        let matchp = matchp.join_sql(" AND ");
        let set_list: Vec<Sql> = names
            .iter()
            .chain(&state_cols)
            .map(|c| sql!("{0} = s.{0}", c))
            .collect();
        let changed = sql!(
            "ROW({})::text IS DISTINCT FROM ROW({})::text",
            names
                .iter()
                .chain(&state_cols)
                .map(|c| sql!("st.{}", c))
                .collect::<Vec<_>>()
                .join_sql(", "),
            names
                .iter()
                .chain(&state_cols)
                .map(|c| sql!("s.{}", c))
                .collect::<Vec<_>>()
                .join_sql(", ")
        );
        let mut body = vec![
            sql!("\"__pgs_delta\" AS (SELECT {} FROM {} AS x{})", dsel.join_sql(", "), Sql::ident(&root), self.where_clause("x")),
            sql!("\"__pgs_agg\" AS (SELECT {} FROM \"__pgs_delta\"{})", asel.join_sql(", "), if global { Sql::default() } else { sql!(" GROUP BY {}", gnames.join_sql(", ")) }),
            // Each affected group's stored row is looked up through the row-id index
            // (a LATERAL the planner cannot flatten into a hash join over the whole
            // storage table, which the fan-out estimates of the delta terms often
            // made it choose), and its ctid carried to the DELETE and the UPDATE,
            // which then fetch the rows by TID. The ctids are stable for the
            // statement: only refreshes, serialised by the stream table's lock,
            // write the storage table.
            sql!("\"__pgs_src\" AS MATERIALIZED (SELECT s.*, {} FROM (SELECT {} FROM \"__pgs_agg\" AS a LEFT JOIN LATERAL (SELECT st.ctid AS \"__pgs_ctid\", st.* FROM {} AS st WHERE {} OFFSET 0) AS st ON true) AS s)", vis_s.join_sql(", "), ssel.join_sql(", "), st, st_match_a.join_sql(" AND ")),
            sql!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
        ];
        let tail = if global {
            body.push(sql!("\"__pgs_upd\" AS (UPDATE {} AS st SET {} FROM \"__pgs_src\" AS s WHERE {} AND {} RETURNING 1)", st, set_list.join_sql(", "), matchp, changed));
            Sql::fixed("SELECT (SELECT count(*) FROM \"__pgs_upd\") AS \"rows_changed\"")
        } else {
            let by_tid = |cond: &'static str| {
                sql!("st.ctid = ANY (ARRAY(SELECT t.\"__pgs_ctid\" FROM \"__pgs_src\" AS t WHERE t.\"__pgs_exists\" AND t.\"__pgs_count\" {}))", cond)
            };
            body.push(sql!(
                "\"__pgs_del\" AS (DELETE FROM {} AS st WHERE {} RETURNING 1)",
                st,
                by_tid("= 0")
            ));
            body.push(sql!("\"__pgs_upd\" AS (UPDATE {} AS st SET {} FROM \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" <> 0 AND {} AND st.ctid = s.\"__pgs_ctid\" AND {} RETURNING 1)", st, set_list.join_sql(", "), by_tid("<> 0"), changed));
            body.push(sql!("\"__pgs_ins\" AS (INSERT INTO {} ({}, \"__pgs_row_id\") SELECT {}, s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE NOT s.\"__pgs_exists\" AND s.\"__pgs_count\" > 0 RETURNING 1)", st, stored.join_sql(", "), stored.iter().map(|c| sql!("s.{}", c)).collect::<Vec<_>>().join_sql(", ")));
            // Under a top-k: the stage after this refresh is its rows of the groups
            // the changes did not touch and the new rows of those they did.
            let after = sql!("SELECT {} FROM {} AS st WHERE st.ctid <> ALL (ARRAY(SELECT t.\"__pgs_ctid\" FROM \"__pgs_src\" AS t WHERE t.\"__pgs_exists\")) \
                 UNION ALL SELECT {} FROM \"__pgs_src\" AS s WHERE s.\"__pgs_count\" > 0", self.stage_columns("st"), st, self.stage_columns("s"));
            self.top_tail(
                &mut body,
                &after,
                &Sql::fixed("SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_upd\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\""),
            )
        };
        let diff = self.finish(body, &tail);
        let hidden = gnames
            .iter()
            .chain(&state_cols)
            .map(|c| c.as_str().trim_matches('"').to_string())
            .chain([contract::ROW_ID.to_string()])
            .collect();
        let _ = self.compiled;
        self.maintained(&st, &new_rows, diff, hidden)
    }
}
