//! An aggregate subquery used as a relation (`(SELECT g, agg(x) FROM
//! t GROUP BY g) AS s` in FROM, or a correlated scalar aggregate LEFT JOINed on its
//! correlation keys): a leaf whose delta recomputes the groups the changes of `t`
//! touch, over `t`'s new state (+1) and its old state (−1); groups whose row did not
//! change cancel:
//!
//! ```text
//! Δs = γ(σ_keys(ΔT) T_new) − γ(σ_keys(ΔT) T_old),   T_old = T_new − ΔT
//! ```
//!
//! Only the window rows that pass the subquery's `WHERE` count (`σ_keys` takes the
//! keys of those): an image the filter rejects is in no group, before or after.
//! Joined on its group keys, it is read only for the keys of the other side's rows
//! (`agg_lookup`); and where its rows reach the result only through such matches (an
//! inner join, the non-preserved side of an outer, semi or anti join), its delta
//! recomputes only the touched keys some row of the other side (new state or delta)
//! carries (`restrict_agg_keys`).
//!
//! Over several tables (`FROM t, u, v WHERE ...`, the group keys over `t`; TPC-H
//! Q2's `min(ps_supplycost)` over partsupp, supplier, nation and region) the keys
//! are those the changes of any table reach through the join, each table's window
//! joined with the others' rows in either state (`joined_touched_keys`), and the old
//! state is every table's:
//!
//! ```text
//! Δs = γ(σ_keys(T_new ⋈ U_new ⋈ V_new)) − γ(σ_keys(T_old ⋈ U_old ⋈ V_old))
//! keys = π_g(ΔT ⋈ (U ∪ ΔU) ⋈ (V ∪ ΔV)) ∪ π_g((T ∪ ΔT) ⋈ ΔU ⋈ (V ∪ ΔV)) ∪ ...
//! ```
//!
//! Without `GROUP BY` (an uncorrelated scalar aggregate, `c_acctbal > (SELECT
//! avg(c_acctbal) FROM customer WHERE ...)`, which `bind::where_scalar` joins as a
//! one-row leaf) the subquery is one group keyed by nothing: when the window holds
//! any row of `t` that passes its `WHERE` it is recomputed over both states, else its delta is empty,
//!
//! ```text
//! Δs = γ(T_new) − γ(T_old)   if σ_filter(ΔT) ≠ ∅,   else ∅
//! ```
//!
//! and the join above it re-evaluates the rows that read it only when its value
//! changed (`L_new ⋈ Δs`); otherwise the other side's delta reads its one row.

use super::*;
use crate::ir::Inverse;

impl IncrementalRenderer<'_> {
    /// The aggregate subquery of leaf `i` over `from` (a relation with its table's
    /// columns), its rows restricted by `cond` (SQL over the table's alias) before
    /// grouping, its outputs named `__pgs_c<i>_<j>`. A group is all the rows with its
    /// key values, so restricting the rows by the key values yields exactly the
    /// groups with those values.
    pub(super) fn agg_sql(&self, i: usize, from: &Sql, cond: Option<&Sql>) -> Sql {
        self.agg_sql_with(i, from, cond, &[])
    }

    /// [`Self::agg_sql`] with the aggregates `extra` computed beside its items, in the
    /// same scan.
    fn agg_sql_with(&self, i: usize, from: &Sql, cond: Option<&Sql>, extra: &[Sql]) -> Sql {
        self.agg_sql_over(i, from, None, cond, extra)
    }

    /// [`Self::agg_sql_with`] with the relations `joined` (one per table the subquery
    /// joins beside its first, [`crate::ir::AggLeaf::joined`]) in place of those
    /// tables; `None`: the tables themselves (their new state).
    fn agg_sql_over(
        &self,
        i: usize,
        from: &Sql,
        joined: Option<&[Sql]>,
        cond: Option<&Sql>,
        extra: &[Sql],
    ) -> Sql {
        let a = self.block.leaves[i].agg.as_ref().expect("aggregate leaf");
        let mut from = sql!("{} AS {}", from, Sql::ident(&a.alias));
        for (k, j) in a.joined.iter().enumerate() {
            let rel = match joined {
                Some(rels) => rels[k].clone(),
                None => Sql::qualified(&self.compiled.sources[j.source].name),
            };
            from = sql!("{}, {} AS {}", from, rel, Sql::ident(&j.alias));
        }
        let items: Vec<Sql> = a
            .items
            .iter()
            .enumerate()
            .map(|(j, e)| sql!("{} AS {}", e, col(i, j)))
            .chain(extra.iter().cloned())
            .collect();
        let conds: Vec<Sql> = a
            .filter
            .iter()
            .chain(cond)
            .map(|c| sql!("({})", c))
            .collect();
        sql!(
            "SELECT {} FROM {}{}{}{}",
            items.join_sql(", "),
            from,
            if conds.is_empty() {
                Sql::default()
            } else {
                sql!(" WHERE {}", conds.join_sql(" AND "))
            },
            group_by(&a.groups),
            a.having
                .as_ref()
                .map(|h| sql!(" HAVING {}", h))
                .unwrap_or_default()
        )
    }

    /// The delta of an aggregate subquery (leaf `i`): the groups whose keys the window
    /// rows of its table carry (old and new images) are recomputed over the table's
    /// new state (+1) and its old state (−1, the new state less the window's new
    /// images plus its old images); groups whose row did not change cancel.
    pub(super) fn agg_delta(&mut self, i: usize) -> String {
        let name = format!("__pgs_d{}", i);
        if self.ctes.iter().any(|(n, _)| *n == name) {
            return name;
        }
        let l = &self.block.leaves[i];
        let a = l.agg.as_ref().expect("aggregate leaf");
        let base = &self.compiled.sources[l.source];
        let win = self.window_cte(l.source, base);
        let alias = Sql::ident(&a.alias);
        let qual = Sql::qualified(&base.name);
        if a.groups.is_empty() {
            // One group over the whole table: recomputed over the new and the old
            // state when the window holds a row of the table, else no change (the
            // condition is a one-time filter: the table is not read).
            let changed = sql!(
                "EXISTS (SELECT 1 FROM {} AS {}{})",
                Sql::ident(&win),
                alias,
                relevant(a)
            );
            // The new value once, for this delta and for the terms that read the
            // leaf's current row (`new_rel`).
            let value = scalar_value(i);
            let old_body = match &a.inverse {
                Some(inverse) => {
                    let (value_body, old) = self.inverted(i, inverse, &win);
                    self.ctes.push((value.clone(), value_body));
                    sql!("{} WHERE {}", old, changed)
                }
                None => {
                    self.ctes
                        .push((value.clone(), self.agg_sql(i, &qual, None)));
                    sql!(
                        "SELECT * FROM ({}) AS \"__pgs_g\" WHERE {}",
                        self.agg_sql(i, &self.old_state(i, &win, &Sql::fixed("TRUE")), None),
                        changed
                    )
                }
            };
            let new_body = sql!(
                "SELECT * FROM {} AS \"__pgs_g\" WHERE {}",
                Sql::ident(&value),
                changed
            );
            return self.agg_delta_of(i, name, new_body, old_body);
        }
        let kn = numbered_names("__pgs_k", a.groups.len());
        let keys = format!("__pgs_sk{}", i);
        let key_items = a
            .groups
            .iter()
            .zip(&kn)
            .map(|(g, n)| sql!("({}) AS {}", g, n))
            .collect::<Vec<_>>()
            .join_sql(", ");
        let touched = if a.joined.is_empty() {
            sql!(
                "SELECT DISTINCT {} FROM {} AS {}{}",
                key_items,
                Sql::ident(&win),
                alias,
                relevant(a)
            )
        } else {
            // Computed once (a materialized CTE), read by each restriction below.
            let raw = format!("__pgs_st{}", i);
            let body = self.joined_touched_keys(i, &key_items, &win);
            self.ctes.push((raw.clone(), body));
            sql!("SELECT * FROM {}", Sql::ident(&raw))
        };
        // Only the keys the other side of the join carries, when it restricts them
        // (`restrict_agg_keys`).
        // One semi join per relation (the other side's new state, its delta), not one
        // over their union: the planner can then probe the new state's tables by
        // index for each key instead of computing it whole.
        let touched = match self.agg_keys.iter().find(|(leaf, _)| *leaf == i) {
            Some((_, probes)) => probes
                .iter()
                .map(|p| {
                    sql!(
                        "SELECT \"__pgs_t\".* FROM ({}) AS \"__pgs_t\" WHERE {}",
                        touched,
                        p
                    )
                })
                .collect::<Vec<_>>()
                .join_sql(" UNION "),
            None => touched,
        };
        self.ctes.push((keys.clone(), touched));
        // The groups with those keys: by `IN` when no key is NULL (an index serves
        // it), NULL-safely otherwise. The keys' alias is reserved, so an alias inside
        // the subquery cannot hide it.
        let gs: Vec<Sql> = a.groups.iter().map(|g| sql!("({})", g)).collect();
        let kk = |n: &Sql| sql!("\"__pgs_kk\".{}", n);
        let all_set = kn
            .iter()
            .map(|n| sql!("{} IS NOT NULL", kk(n)))
            .collect::<Vec<_>>()
            .join_sql(" AND ");
        let by_in = sql!(
            "({}) IN (SELECT {} FROM {} AS \"__pgs_kk\" WHERE {})",
            gs.join_sql(", "),
            kn.iter().map(kk).collect::<Vec<_>>().join_sql(", "),
            Sql::ident(&keys),
            all_set
        );
        let any_null = kn
            .iter()
            .map(|n| sql!("{} IS NULL", kk(n)))
            .collect::<Vec<_>>()
            .join_sql(" OR ");
        let by_null = sql!("(SELECT EXISTS (SELECT 1 FROM {0} AS \"__pgs_kk\" WHERE {1})) AND EXISTS (SELECT 1 FROM {0} AS \"__pgs_kk\" WHERE ({1}) AND {2})", Sql::ident(&keys), any_null, kn.iter()
                .zip(&gs)
                .map(|(n, g)| sql!("{} IS NOT DISTINCT FROM {}", kk(n), g))
                .collect::<Vec<_>>()
                .join_sql(" AND "));
        if a.joined.is_empty() {
            let new_body = sql!(
                "({}) UNION ALL ({})",
                self.agg_sql(i, &qual, Some(&by_in)),
                self.agg_sql(i, &qual, Some(&by_null))
            );
            let old_body = sql!(
                "({}) UNION ALL ({})",
                self.agg_sql(i, &self.old_state(i, &win, &sql!("({})", by_in)), None),
                self.agg_sql(i, &self.old_state(i, &win, &sql!("({})", by_null)), None)
            );
            return self.agg_delta_of(i, name, new_body, old_body);
        }
        // Over several tables, each group whose key has no NULL is computed for its
        // key (`LATERAL`): its rows are found from the key by the first table's index
        // and the joins, where a restriction by `IN` let the planner join the tables
        // whole and keep the keys' groups at the end (TPC-H Q2: every European
        // supplier's parts for one part's minimum).
        let per_key = keys_equal(&a.groups, "\"__pgs_kk\"");
        let lateral = |body: Sql| {
            sql!(
                "SELECT \"__pgs_s\".* FROM {} AS \"__pgs_kk\" CROSS JOIN LATERAL ({}) AS \"__pgs_s\" WHERE {}",
                Sql::ident(&keys),
                body,
                all_set
            )
        };
        let new_body = sql!(
            "({}) UNION ALL ({})",
            lateral(self.agg_sql(i, &qual, Some(&per_key))),
            self.agg_sql(i, &qual, Some(&by_null))
        );
        // The joined tables in their old state too (unrestricted: the first table's
        // rows, restricted to the touched keys, are joined to them).
        let mut joined_old: Vec<Sql> = Vec::new();
        for j in &a.joined {
            let base = &self.compiled.sources[j.source];
            let w = self.window_cte(j.source, base);
            joined_old.push(old_state_of(
                base,
                &Sql::ident(&j.alias),
                &j.used,
                &Sql::ident(&w),
                &Sql::fixed("TRUE"),
            ));
        }
        let old_of = |cond: &Sql| {
            self.agg_sql_over(
                i,
                &self.old_state(i, &win, &sql!("({})", cond)),
                Some(&joined_old),
                None,
                &[],
            )
        };
        let old_body = sql!(
            "({}) UNION ALL ({})",
            lateral(old_of(&per_key)),
            old_of(&by_null)
        );
        self.agg_delta_of(i, name, new_body, old_body)
    }

    /// The group keys (`key_items`, over the tables' aliases) of an aggregate leaf
    /// `i` over several tables that the changes touch: for each table, its window's
    /// images (the first's is `win`) joined with the tables before it in their
    /// current state and the tables after it in either state (current rows and window
    /// images: `T_old ⊆ T_new ∪ images`), under the subquery's `WHERE`. A group whose
    /// rows changed has a changed row of some table among them; in the term of the
    /// first such table the rows of the tables before it are unchanged (current) and
    /// those after it in one state or the other, so its key is found. A key found
    /// that way whose rows did not change costs a recompute whose old and new rows
    /// cancel.
    fn joined_touched_keys(&mut self, i: usize, key_items: &Sql, win: &str) -> Sql {
        let l = &self.block.leaves[i];
        let a = l.agg.as_ref().expect("aggregate leaf").clone();
        let first = (l.source, a.alias.clone(), a.used.clone());
        let tables: Vec<(usize, String, Vec<usize>)> = std::iter::once(first)
            .chain(
                a.joined
                    .iter()
                    .map(|j| (j.source, j.alias.clone(), j.used.clone())),
            )
            .collect();
        let wins: Vec<String> = tables
            .iter()
            .enumerate()
            .map(|(k, (s, _, _))| {
                if k == 0 {
                    win.to_string()
                } else {
                    let base = self.compiled.sources[*s].clone();
                    self.window_cte(*s, &base)
                }
            })
            .collect();
        let either = |k: usize| {
            let (s, _, used) = &tables[k];
            let base = &self.compiled.sources[*s];
            let cols = used
                .iter()
                .filter_map(|&c| base.columns.get(c))
                .map(|c| Sql::ident(&c.name))
                .collect::<Vec<_>>()
                .join_sql(", ");
            sql!(
                "(SELECT {0} FROM {1} UNION ALL SELECT {0} FROM {2})",
                cols,
                Sql::qualified(&base.name),
                Sql::ident(&wins[k])
            )
        };
        // The term of table `k` reads the tables before it in their current state
        // only: a group whose rows changed is found by the term of the first table
        // whose row changed, where the tables before it hold their unchanged rows. A
        // plain table there is read through its indexes from the window's rows (an
        // either state is a `UNION ALL` with a window, which the planner scanned
        // whole: TPC-H Q2's partsupp for a changed supplier).
        (0..tables.len())
            .map(|k| {
                let from = (0..tables.len())
                    .map(|m| {
                        let rel = if m == k {
                            Sql::ident(&wins[m])
                        } else if m < k {
                            Sql::qualified(&self.compiled.sources[tables[m].0].name)
                        } else {
                            either(m)
                        };
                        sql!("{} AS {}", rel, Sql::ident(&tables[m].1))
                    })
                    .collect::<Vec<_>>()
                    .join_sql(", ");
                sql!("SELECT {} FROM {}{}", key_items, from, relevant(&a))
            })
            .collect::<Vec<_>>()
            .join_sql(" UNION ")
    }

    /// The one-row leaf `i` whose items `inverse` undoes, kept as running counts and
    /// sums in its state table (`contract::scalar_state_table`, one row, written by
    /// every refresh in the same statement): the body of its new value's CTE and a
    /// query of its old value. The new parts are the stored ones plus the sums of the
    /// window `win`'s images that pass the subquery's `WHERE`; the old value follows
    /// from the new one and those sums:
    ///
    /// ```text
    /// count_new = count_stored + Σ w        sum_new = sum_stored + Σ x·w   (NULL when count_new = 0)
    /// count_old = count_new − Σ w           sum_old = sum_new − Σ x·w
    /// avg       = sum::numeric / count::numeric
    /// ```
    ///
    /// (`Σ` over the window's images, `w` = ±1, `x` not NULL, `Σ x·w` computed as the
    /// sum of the added values less the sum of the removed ones; `avg` divides as
    /// PostgreSQL's does). Q22's average then reads no customer: the refresh costs
    /// the window, not the table. When the state table holds no row (it always does
    /// after the full refresh that populates the stream table), the parts are
    /// computed from the table instead, and stored.
    fn inverted(&mut self, i: usize, inverse: &[Inverse], win: &str) -> (Sql, Sql) {
        let l = &self.block.leaves[i];
        let a = l.agg.as_ref().expect("aggregate leaf");
        let alias = Sql::ident(&a.alias);
        let (mut deltas, mut olds, mut news, mut adds) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (j, inv) in inverse.iter().enumerate() {
            let (n, s) = (part_name("n", j), part_name("s", j));
            let old_n = sql!("(p.{} - COALESCE(d.{}, 0))", n, n);
            let new_n = sql!("(st.{} + COALESCE(d.{}, 0))", n, n);
            adds.push(sql!("{}::bigint AS {}", new_n, n));
            match inv {
                Inverse::Count(x) => {
                    deltas.push(match x {
                        Some(x) => sql!("sum({}) FILTER (WHERE ({}) IS NOT NULL) AS {}", W, x, n),
                        None => sql!("sum({}) AS {}", W, n),
                    });
                    olds.push(sql!("{}::bigint AS {}", old_n, col(i, j)));
                    news.push(sql!("p.{} AS {}", n, col(i, j)));
                }
                Inverse::Sum(x) | Inverse::Avg(x) => {
                    // The values the window adds less those it takes away, not
                    // `sum(x * w)`: `-2147483648 * -1` does not fit an integer (the
                    // refresh that deleted such a row failed). A window's weights
                    // are ±1: keyed images telescope, keyless ones are not netted.
                    deltas.push(sql!(
                        "sum({0}) FILTER (WHERE ({1}) IS NOT NULL) AS {2}, \
                         COALESCE(sum({1}) FILTER (WHERE {0} > 0), 0) - COALESCE(sum({1}) FILTER (WHERE {0} < 0), 0) AS {3}",
                        W,
                        x,
                        n,
                        s
                    ));
                    adds.push(sql!(
                        "CASE WHEN {0} = 0 THEN NULL ELSE COALESCE(st.{1}, 0) + COALESCE(d.{1}, 0) END AS {1}",
                        new_n,
                        s
                    ));
                    let old_s = sql!("(COALESCE(p.{}, 0) - COALESCE(d.{}, 0))", s, s);
                    let (o, v) = match inv {
                        Inverse::Avg(_) => (
                            sql!("CASE WHEN {0} = 0 THEN NULL ELSE {1}::numeric / {0}::numeric END", old_n, old_s),
                            sql!("CASE WHEN p.{0} = 0 THEN NULL ELSE p.{1}::numeric / p.{0}::numeric END", n, s),
                        ),
                        _ => (
                            sql!("CASE WHEN {} = 0 THEN NULL ELSE {} END", old_n, old_s),
                            sql!("p.{}", s),
                        ),
                    };
                    olds.push(sql!("{} AS {}", o, col(i, j)));
                    news.push(sql!("{} AS {}", v, col(i, j)));
                }
            }
        }
        let state = self.scalar_state(i);
        let state_parts = inverse_parts(inverse);
        let parts = format!("__pgs_sp{}", i);
        let window_sums = sql!(
            "(SELECT {} FROM {} AS {}{}) AS d",
            deltas.join_sql(", "),
            Sql::ident(win),
            alias,
            relevant(a)
        );
        let scanned = self.scalar_parts_sql(
            i,
            &state_parts,
            Some(&sql!("(SELECT NOT EXISTS (SELECT 1 FROM {}))", state)),
        );
        self.ctes.push((
            parts.clone(),
            sql!(
                "SELECT {}, p.* FROM (SELECT {} FROM {} AS st CROSS JOIN {} UNION ALL {}) AS p",
                news.join_sql(", "),
                adds.join_sql(", "),
                state,
                window_sums,
                scanned
            ),
        ));
        // The state after this refresh, in the same statement (its snapshot: the
        // update and the insert read the state as it was before it).
        let cols = state_parts
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
            .join_sql(", ");
        let parts_name = Sql::ident(&parts);
        let writes = [
            ("pu", sql!("UPDATE {0} SET ({1}) = (SELECT {1} FROM {2}) RETURNING 1", state, cols, parts_name)),
            ("pi", sql!("INSERT INTO {0} ({1}) SELECT {1} FROM {2} WHERE NOT EXISTS (SELECT 1 FROM {0}) RETURNING 1", state, cols, parts_name)),
        ];
        for (k, body) in writes {
            self.ctes.push((format!("__pgs_{k}{i}"), body));
        }
        if !self.states.contains(&i) {
            self.states.push(i);
        }
        let value = sql!(
            "SELECT {} FROM {}",
            (0..a.items.len())
                .map(|j| col(i, j))
                .collect::<Vec<_>>()
                .join_sql(", "),
            Sql::ident(&parts)
        );
        let old = sql!(
            "SELECT {} FROM {} AS p CROSS JOIN {}",
            olds.join_sql(", "),
            Sql::ident(&parts),
            window_sums
        );
        (value, old)
    }

    /// The state table of the one-row leaf `i`, quoted and qualified.
    fn scalar_state(&self, i: usize) -> Sql {
        sql!(
            "{}.{}",
            Sql::ident(contract::CATALOG_SCHEMA),
            Sql::ident(&contract::scalar_state_table(self.ctx.st_id, i))
        )
    }

    /// `SELECT <parts> FROM <table> AS <alias> WHERE <filter> [AND cond HAVING cond]`:
    /// the counts and sums `parts` (`(name, aggregate)`) of the one-row leaf `i` over
    /// its table; no row when `cond` does not hold.
    fn scalar_parts_sql(&self, i: usize, parts: &[(Sql, Sql)], cond: Option<&Sql>) -> Sql {
        let l = &self.block.leaves[i];
        let a = l.agg.as_ref().expect("aggregate leaf");
        let base = &self.compiled.sources[l.source];
        let conds: Vec<Sql> = a
            .filter
            .iter()
            .map(|c| sql!("({})", c))
            .chain(cond.cloned())
            .collect();
        // An aggregate without GROUP BY has its one row even when WHERE passes no
        // row: `cond` is also its HAVING (and in WHERE, the table is not read when
        // it does not hold).
        sql!(
            "SELECT {} FROM {} AS {}{}{}",
            parts
                .iter()
                .map(|(n, e)| sql!("{} AS {}", e, n))
                .collect::<Vec<_>>()
                .join_sql(", "),
            Sql::qualified(&base.name),
            Sql::ident(&a.alias),
            if conds.is_empty() {
                Sql::default()
            } else {
                sql!(" WHERE {}", conds.join_sql(" AND "))
            },
            cond.map(|c| sql!(" HAVING {}", c)).unwrap_or_default()
        )
    }

    /// The state tables of the one-row leaves kept by running sums ([`Self::inverted`]):
    /// their creation (storage DDL, in the order given), and the CTEs of a full refresh
    /// that store their parts computed from the tables, in the full refresh's
    /// snapshot.
    pub(super) fn scalar_states(&self) -> (Vec<Sql>, Vec<(String, Sql)>) {
        let (mut ddl, mut resets) = (Vec::new(), Vec::new());
        for &i in &self.states {
            let a = self.block.leaves[i].agg.as_ref().expect("aggregate leaf");
            let parts = inverse_parts(a.inverse.as_deref().expect("an inverse"));
            let state = self.scalar_state(i);
            let scan = self.scalar_parts_sql(i, &parts, None);
            ddl.push(sql!("CREATE TABLE {} AS {} WITH NO DATA", state, scan));
            resets.push((
                format!("__pgs_rd{}", i),
                sql!("DELETE FROM {} RETURNING 1", state),
            ));
            resets.push((
                format!("__pgs_ri{}", i),
                sql!("INSERT INTO {} {} RETURNING 1", state, scan),
            ));
        }
        (ddl, resets)
    }

    /// The delta CTE `name` of aggregate leaf `i` from its rows over the new state
    /// (`new_body`) and the old state (`old_body`): the rows of one that the other
    /// lacks, +1 and −1.
    fn agg_delta_of(&mut self, i: usize, name: String, new_body: Sql, old_body: Sql) -> String {
        let (sn, so) = (format!("__pgs_sn{}", i), format!("__pgs_so{}", i));
        self.ctes.push((sn.clone(), new_body));
        self.ctes.push((so.clone(), old_body));
        self.ctes.push((
            name.clone(),
            sql!("SELECT n.*, 1::smallint AS {0} FROM {1} AS n WHERE NOT EXISTS (SELECT 1 FROM {2} AS o WHERE o::text = n::text) \
                 UNION ALL SELECT o.*, (-1)::smallint AS {0} FROM {2} AS o WHERE NOT EXISTS (SELECT 1 FROM {1} AS n WHERE n::text = o::text)", W, Sql::ident(&sn), Sql::ident(&so)),
        ));
        name
    }

    /// The old state of aggregate leaf `i`'s table (the columns its subquery reads),
    /// from its new state and the window `win`, its rows restricted by `cond` in
    /// each part (a restriction above the UNION would not reach the table's index).
    fn old_state(&self, i: usize, win: &str, cond: &Sql) -> Sql {
        let l = &self.block.leaves[i];
        let a = l.agg.as_ref().expect("aggregate leaf");
        let base = &self.compiled.sources[l.source];
        old_state_of(base, &Sql::ident(&a.alias), &a.used, &Sql::ident(win), cond)
    }

    /// The current row of the one-row leaf `i` (an aggregate without GROUP BY) as a
    /// relation: the CTE its delta computed, when it did (for the terms of the same
    /// statement only).
    pub(super) fn scalar_new_rel(&self, i: usize) -> Option<Sql> {
        let value = scalar_value(i);
        self.ctes
            .iter()
            .any(|(n, _)| *n == value)
            .then(|| sql!("(SELECT * FROM {})", Sql::ident(&value)))
    }

    /// When `t` is an aggregate subquery leaf and `on` compares each of its group key
    /// columns by equality with an expression over `other` (leaves of the other
    /// side), the subquery restricted to the keys of the other side's row `q`, as a
    /// `LATERAL` relation: a delta term then reads only the groups its rows join.
    pub(super) fn agg_lookup(
        &self,
        t: &Tree,
        on: &Expr,
        other: &[usize],
        q: &'static str,
    ) -> Option<Sql> {
        let Tree::Leaf(i) = t else { return None };
        let a = self.block.leaves[*i].agg.as_ref()?;
        let found = self.agg_key_exprs(*i, on, other, q)?;
        // The other side's key values are taken in a scope of their own, so that an
        // alias inside the subquery cannot hide the other side's alias `q`.
        let found: Vec<Sql> = found.iter().map(|x| sql!("({})", x)).collect();
        let key_list = aliased(&found, &numbered_names("__pgs_k", found.len())).join_sql(", ");
        let conds = keys_equal(&a.groups, "\"__pgs_key\"");
        let base = &self.compiled.sources[self.block.leaves[*i].source];
        Some(sql!("LATERAL (SELECT \"__pgs_s\".* FROM (SELECT {}) AS \"__pgs_key\" CROSS JOIN LATERAL ({}) AS \"__pgs_s\")", key_list, self.agg_sql(*i, &Sql::qualified(&base.name), Some(&conds))))
    }

    /// For each group key of the aggregate subquery leaf `i`, the expression over the
    /// leaves `other` (rendered over the relation `q`) that `on` compares it with by
    /// equality; `None` unless every key has one.
    fn agg_key_exprs(
        &self,
        i: usize,
        on: &Expr,
        other: &[usize],
        q: &'static str,
    ) -> Option<Vec<Sql>> {
        let a = self.block.leaves[i].agg.as_ref()?;
        if a.key_cols.is_empty() {
            // one row keyed by nothing: no key to look up or restrict by
            return None;
        }
        let mut parts = Vec::new();
        conjuncts(on, &mut parts);
        let mut found: Vec<Option<Sql>> = vec![None; a.key_cols.len()];
        for e in parts {
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = unnest(e)
            else {
                continue;
            };
            for (side, rest) in [(left, right), (right, left)] {
                let Some(Marker::Col { leaf, col: c }) = expr::as_marker(unnest(side)) else {
                    continue;
                };
                let Some(k) = a.key_cols.iter().position(|&kc| kc == c) else {
                    continue;
                };
                if leaf == i
                    && !has_subquery(rest)
                    && expr::column_markers(rest)
                        .iter()
                        .all(|(x, _)| other.contains(x))
                {
                    found[k] = Some(self.expr_over(rest, q));
                }
            }
        }
        found.into_iter().collect()
    }

    /// Before the delta of the join `left kind right ON on` is derived: when one side
    /// is an aggregate subquery leaf joined on all its group keys and its rows reach
    /// the join's delta only through matches with the other side (an inner join,
    /// or the non-preserved side of an outer, semi or anti join), only the groups
    /// whose keys some row of the other side carries (new state or delta, which
    /// covers the old state) can change the result: its delta recomputes just those
    /// (`agg_delta`). Q17's `avg(l_quantity)` per part is recomputed for the changed
    /// lineitems' parts of the right brand and container, not for every changed part.
    /// Returns the delta of the other side (derived first, since the restriction
    /// reads it) and whether the aggregate is the left side.
    pub(super) fn restrict_agg_keys(
        &mut self,
        kind: JoinKind,
        left: &Tree,
        right: &Tree,
        on: &Expr,
    ) -> Option<(String, bool)> {
        let (agg, other, agg_is_left) = match (left, right) {
            (_, Tree::Leaf(i))
                if self.block.leaves[*i].agg.is_some()
                    && matches!(
                        kind,
                        JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti
                    ) =>
            {
                (*i, left, false)
            }
            (Tree::Leaf(i), _)
                if self.block.leaves[*i].agg.is_some()
                    && matches!(kind, JoinKind::Inner | JoinKind::Right) =>
            {
                (*i, right, true)
            }
            _ => return None,
        };
        let found = self.agg_key_exprs(agg, on, &other.leaves(), "o")?;
        let other_delta = self.delta(other);
        let same = keys_equal(&found, "\"__pgs_t\"");
        self.agg_keys.push((
            agg,
            [self.new_rel(other), Sql::ident(&other_delta)]
                .iter()
                .map(|rel| sql!("EXISTS (SELECT 1 FROM {} AS o WHERE {})", rel, same))
                .collect(),
        ));
        Some((other_delta, agg_is_left))
    }
}

/// The old state of table `base` read as `alias` (its columns `used`), from its new
/// state and its window `w`, its rows restricted by `cond` in each part (a
/// restriction above the UNION would not reach the table's index).
fn old_state_of(base: &Table, alias: &Sql, used: &[usize], w: &Sql, cond: &Sql) -> Sql {
    let qual = Sql::qualified(&base.name);
    let t = used
        .iter()
        .filter_map(|&c| base.columns.get(c))
        .map(|c| sql!("{}.{}", alias, Sql::ident(&c.name)))
        .collect::<Vec<_>>()
        .join_sql(", ");
    if base.primary_key.is_empty() {
        sql!(
            "(SELECT {0} FROM {1} AS {2} WHERE {3} \
             UNION ALL SELECT {0} FROM {4} AS {2} WHERE {2}.{5} < 0 AND {3} \
             EXCEPT ALL SELECT {0} FROM {4} AS {2} WHERE {2}.{5} > 0 AND {3})",
            t,
            qual,
            alias,
            cond,
            w,
            W
        )
    } else {
        // The rows without a new image, by `NOT IN` over the primary key (never
        // NULL): a hashed subplan, where `NOT EXISTS` was planned as a nested loop
        // over the window for every row (its size is underestimated).
        let key = |q: &Sql| {
            base.primary_key
                .iter()
                .map(|k| sql!("{}.{}", q, Sql::ident(k)))
                .collect::<Vec<_>>()
                .join_sql(", ")
        };
        sql!(
            "(SELECT {0} FROM {1} AS {2} WHERE {3} AND ({4}) NOT IN \
             (SELECT {5} FROM {6} AS \"__pgs_b\" WHERE \"__pgs_b\".{7} > 0) \
             UNION ALL SELECT {0} FROM {6} AS {2} WHERE {2}.{7} < 0 AND {3})",
            t,
            qual,
            alias,
            cond,
            key(alias),
            key(&Sql::fixed("\"__pgs_b\"")),
            w,
            W
        )
    }
}

/// The CTE that holds the new row of the one-row leaf `i` (materialized: its name
/// starts with `__pgs_s`).
/// The columns of a one-row leaf's state (`__pgs_n<j>`, and `__pgs_s<j>` for a sum or
/// an average) with the aggregate that computes each over its table: per item, the
/// count of its rows (or of its argument's non-NULL values) and the sum.
fn inverse_parts(inverse: &[Inverse]) -> Vec<(Sql, Sql)> {
    let mut out = Vec::new();
    for (j, inv) in inverse.iter().enumerate() {
        match inv {
            Inverse::Count(None) => out.push((part_name("n", j), Sql::fixed("count(*)"))),
            Inverse::Count(Some(x)) => out.push((part_name("n", j), sql!("count({})", x))),
            Inverse::Sum(x) | Inverse::Avg(x) => {
                out.push((part_name("n", j), sql!("count({})", x)));
                out.push((part_name("s", j), sql!("sum({})", x)));
            }
        }
    }
    out
}

/// `"__pgs_<kind><j>"`: the count (`n`) or the sum (`s`) of item `j` of a one-row
/// leaf, in its state table and in the CTEs that read and write it.
fn part_name(kind: &str, j: usize) -> Sql {
    Sql::ident(&format!("__pgs_{kind}{j}"))
}

fn scalar_value(i: usize) -> String {
    format!("__pgs_sv{}", i)
}

/// ` WHERE (filter)` of an aggregate leaf's subquery, for its window rows: an image
/// that the filter rejects is in no group, before or after, so it changes none.
fn relevant(a: &crate::ir::AggLeaf) -> Sql {
    a.filter
        .as_ref()
        .map(|f| sql!(" WHERE ({})", f))
        .unwrap_or_default()
}

/// `(e0) = q."__pgs_k0" AND (e1) = q."__pgs_k1" ...`: the expressions `exprs` equal
/// the key columns of the relation `q`.
fn keys_equal(exprs: &[Sql], q: &'static str) -> Sql {
    exprs
        .iter()
        .zip(numbered_names("__pgs_k", exprs.len()))
        .map(|(e, k)| sql!("({}) = {}.{}", e, q, k))
        .collect::<Vec<_>>()
        .join_sql(" AND ")
}
