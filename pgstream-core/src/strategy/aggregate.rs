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
        let gnames = numbered_names("__pgs_g", groups.len());
        let names = self.output_names();
        // hidden state columns, in storage order
        let mut state_cols: Vec<Sql> = vec![Sql::ident("__pgs_count")];
        let mut state_full: Vec<Sql> = vec!["count(*) AS \"__pgs_count\"".into()];
        for (k, a) in aggs.iter().enumerate() {
            let arg = a.arg.as_ref().map(|e| self.expr_over(e, "x"));
            let c = Counters::of(k);
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count => {
                    state_full.push(sql!("count({}) AS {}", arg.unwrap(), c.n));
                    state_cols.push(c.n);
                }
                AggFunc::Sum | AggFunc::Avg => {
                    let arg = arg.unwrap();
                    state_full.push(sql!("count({}) AS {}", arg, c.n));
                    state_full.push(sql!("sum({}) AS {}", arg, c.s));
                    state_cols.push(c.n);
                    state_cols.push(c.s);
                }
            }
        }
        let groups_x: Vec<Sql> = groups.iter().map(|g| self.expr_over(g, "x")).collect();
        // Full: the items exactly as written (aggregates evaluated by PostgreSQL).
        let vis_full = self.grouped_items_over_x(&groups_x);
        let gsel = aliased(&groups_x, &gnames);
        let group_by_x = group_by(&groups_x);
        let new_rows = sql!(
            "SELECT {}, {}{}{}, {} AS \"__pgs_row_id\" FROM {} AS x{}{}",
            vis_full.join_sql(", "),
            gsel.join_sql(", "),
            if gsel.is_empty() { "" } else { ", " },
            state_full.join_sql(", "),
            row_id_of(&groups_x),
            self.new_rel(&self.block.tree),
            self.where_clause("x"),
            group_by_x
        );

        // Differential
        let root = self.delta(&self.block.tree);
        let mut dsel: Vec<Sql> = gsel.clone();
        for (k, a) in aggs.iter().enumerate() {
            if let Some(arg) = &a.arg {
                dsel.push(sql!(
                    "{} AS {}",
                    self.expr_over(arg, "x"),
                    Counters::of(k).arg
                ));
            }
        }
        dsel.push(sql!("x.{}", W));
        let mut asel: Vec<Sql> = gnames.clone();
        asel.push(sql!("COALESCE(sum({}), 0)::bigint AS \"__pgs_dcount\"", W));
        for (k, a) in aggs.iter().enumerate() {
            let c = Counters::of(k);
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count | AggFunc::Sum | AggFunc::Avg => {
                    asel.push(sql!(
                        "COALESCE(sum(CASE WHEN {} IS NOT NULL THEN {} ELSE 0 END), 0)::bigint AS {}",
                        c.arg,
                        W,
                        c.dn
                    ));
                    if a.func != AggFunc::Count {
                        asel.push(sql!(
                            "sum({0}) FILTER (WHERE {1} > 0) AS {2}",
                            c.arg,
                            W,
                            c.dp
                        ));
                        asel.push(sql!(
                            "sum({0}) FILTER (WHERE {1} < 0) AS {2}",
                            c.arg,
                            W,
                            c.dm
                        ));
                    }
                }
            }
        }
        let a_groups = qualified_by("a", &gnames);
        let st_match_a = same_row(&row_id_of(&a_groups), "a", &gnames);
        let mut ssel: Vec<Sql> = a_groups.clone();
        ssel.push("(st.\"__pgs_row_id\" IS NOT NULL) AS \"__pgs_exists\"".into());
        ssel.push("st.\"__pgs_ctid\"".into());
        ssel.push(sql!("{} AS \"__pgs_row_id\"", row_id_of(&a_groups)));
        ssel.push("COALESCE(st.\"__pgs_count\", 0) + a.\"__pgs_dcount\" AS \"__pgs_count\"".into());
        for (k, a) in aggs.iter().enumerate() {
            let Counters {
                n, s, dn, dp, dm, ..
            } = Counters::of(k);
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
                        let c = Counters::of(k);
                        let (n, sum) = (sql!("s.{}", c.n), sql!("s.{}", c.s));
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
        let matchp = same_row(&Sql::fixed("s.\"__pgs_row_id\""), "s", &gnames);
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
            sql!("\"__pgs_agg\" AS (SELECT {} FROM \"__pgs_delta\"{})", asel.join_sql(", "), group_by(&gnames)),
            // Each affected group's stored row is looked up through the row-id index
            // (a LATERAL the planner cannot flatten into a hash join over the whole
            // storage table, which the fan-out estimates of the delta terms often
            // made it choose), and its ctid carried to the DELETE and the UPDATE,
            // which then fetch the rows by TID. The ctids are stable for the
            // statement: only refreshes, serialised by the stream table's lock,
            // write the storage table.
            sql!("\"__pgs_src\" AS MATERIALIZED (SELECT s.*, {} FROM (SELECT {} FROM \"__pgs_agg\" AS a LEFT JOIN LATERAL (SELECT st.ctid AS \"__pgs_ctid\", st.* FROM {} AS st WHERE {} OFFSET 0) AS st ON true) AS s)", vis_s.join_sql(", "), ssel.join_sql(", "), st, st_match_a),
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
            body.push(sql!("\"__pgs_ins\" AS (INSERT INTO {} ({}, \"__pgs_row_id\") SELECT {}, s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE NOT s.\"__pgs_exists\" AND s.\"__pgs_count\" > 0 RETURNING 1)", st, stored.join_sql(", "), qualified_by("s", &stored).join_sql(", ")));
            // Under a top-k: the stage after this refresh is its rows of the groups
            // the changes did not touch and the new rows of those they did.
            // (A top-k reads the first rows through the index on its order, each
            // tested against the touched ctids; the query around a stage reads every
            // row: a hash anti join, where `<> ALL (ARRAY(...))` is O(stage × touched).)
            let untouched = if self.around_stage() {
                Sql::fixed("NOT EXISTS (SELECT 1 FROM \"__pgs_src\" AS t WHERE t.\"__pgs_exists\" AND t.\"__pgs_ctid\" = st.ctid)")
            } else {
                Sql::fixed("st.ctid <> ALL (ARRAY(SELECT t.\"__pgs_ctid\" FROM \"__pgs_src\" AS t WHERE t.\"__pgs_exists\"))")
            };
            let kept = sql!(
                "SELECT {} FROM {} AS st WHERE {}",
                self.stage_columns("st"),
                st,
                untouched
            );
            let new = sql!(
                "SELECT {} FROM \"__pgs_src\" AS s WHERE s.\"__pgs_count\" > 0",
                self.stage_columns("s")
            );
            self.top_tail(
                &mut body,
                &kept,
                &new,
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
        self.maintained(&st, &NewRows::Keyed(new_rows), diff, hidden)
    }
}

/// The hidden columns of the `k`-th aggregate call: in the storage table, the count
/// of non-NULL arguments (`n`) and their sum (`s`); in the delta, the argument
/// (`arg`) and, per group, the weighted count (`dn`) and the sums of the inserted
/// (`dp`) and deleted (`dm`) arguments.
struct Counters {
    n: Sql,
    s: Sql,
    arg: Sql,
    dn: Sql,
    dp: Sql,
    dm: Sql,
}

impl Counters {
    fn of(k: usize) -> Counters {
        let name = |s: String| Sql::ident(&s);
        Counters {
            n: name(format!("__pgs_a{k}_n")),
            s: name(format!("__pgs_a{k}_s")),
            arg: name(format!("__pgs_arg{k}")),
            dn: name(format!("__pgs_dn{k}")),
            dp: name(format!("__pgs_dp{k}")),
            dm: name(format!("__pgs_dm{k}")),
        }
    }
}
