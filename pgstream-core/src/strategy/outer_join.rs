//! LEFT, RIGHT and FULL joins: the inner join's rule (`join`) plus the delta of the
//! dangling, NULL-padded rows of each preserved side `P` against the other side `O`:
//!
//! ```text
//! ΔP ▷ O_new  +  Σ_{a ∈ P_old matching ΔO} P_old(a)·([cnt_new(a)=0] − [cnt_old(a)=0])
//! ```
//!
//! where `cnt_old = cnt_new − Σ weights of matching ΔO rows` and `P_old = P_new − ΔP`
//! (see [`IncrementalRenderer::dangling`]). A row of `P` gains (loses) its padded row when its last
//! match goes (its first match comes). The anti join reuses this rule (`semi_join`).
//! When the condition has key equalities (`o.k = f(p)`), the rows of `P_old` a change
//! can reach are found by key (an index lookup), even with other conditions over both
//! sides (`<>`, as in TPC-H Q21), and the unmatched rows of `ΔP` are probed row by row.

use super::*;

impl IncrementalRenderer<'_> {
    /// Delta of the dangling (NULL-padded) rows of the preserved side `p` of an outer
    /// join against the other side `o`:
    /// `ΔP ▷ O_new  +  Σ_{a ∈ P_old matching ΔO} P_old(a)·([cnt_new(a)=0] − [cnt_old(a)=0])`
    /// where `cnt_old = cnt_new − Σ weights of matching ΔO rows` and `P_old = P_new − ΔP`.
    ///
    /// Only whether `cnt_new` is 0 and whether it equals the sum `d` of the matching
    /// ΔO weights matter, so the count stops at `max(d, 0) + 1` matches: its cost
    /// follows the changes, not the fan-out of the join. When the join condition is
    /// made of equalities between columns of `o` and expressions over `p` (the usual
    /// foreign-key join), ΔO is summed per join key first and joined to the rows of
    /// `P_old` with that key (an index lookup), instead of summing ΔO for every row of
    /// `P_old`.
    ///
    /// With `negate` (the semi join, `Δ(P ⋉ O) = ΔP − Δ(P ▷ O)`), the terms are
    /// those of `ΔP − Δ(P ▷ O)`: the first is `ΔP ⋉ O_new` (the rows of ΔP with a
    /// match, their weights kept) instead of ΔP and its unmatched rows negated, which
    /// would cancel only when consolidated, after every operator above had read both
    /// (TPC-H Q20: the changed partsupps of parts not named `forest%` went twice
    /// through the aggregate lookups above the semi join); the others are negated.
    pub(super) fn dangling(
        &self,
        t: &Tree,
        on: &Expr,
        p: Side<'_>,
        o: Side<'_>,
        p_is_left: bool,
        negate: bool,
    ) -> Vec<Sql> {
        let (p_alias, o_alias) = if p_is_left { ("l", "r") } else { ("r", "l") };
        let on_lr = if p_is_left {
            self.on(on, p.leaves, o.leaves)
        } else {
            self.on(on, o.leaves, p.leaves)
        };
        let sign = if negate { "-" } else { "" };
        let padded = self.padded_list(t, p.leaves, p_alias);
        let (other_new, other_delta, preserved_new, preserved_delta) =
            (o.new, o.delta, p.new, p.delta);
        // An aggregate subquery on the other side, joined on its group keys, is read
        // for the keys of the preserved side's row only (when the other side is that
        // subquery alone: not under a filter).
        let lookup = match o.leaves {
            [i] if self.block.leaves[*i].agg.is_some()
                && *other_new == self.new_rel(&Tree::Leaf(*i)) =>
            {
                self.agg_lookup(&Tree::Leaf(*i), on, p.leaves, p_alias)
            }
            _ => None,
        };
        let other_new = lookup.as_ref().unwrap_or(other_new);
        let pcols: Vec<Sql> = self
            .cols_of(p.out)
            .into_iter()
            .map(|(l, c)| col(l, c))
            .collect();
        let pcols_list = pcols.join_sql(", ");
        // ΔP's unmatched rows, or with `negate` its matched ones (see above).
        let (first_sign, not, probe) = if negate {
            ("", "", "c.n > 0")
        } else {
            (sign, "NOT ", "c.n = 0")
        };
        let first = sql!("SELECT {0}, {1}{2}.{3} AS {3} FROM {4} AS {2} WHERE {8}EXISTS (SELECT 1 FROM {5} AS {6} WHERE {7})", padded, first_sign, p_alias, W, preserved_delta, other_new, o_alias, on_lr, Sql::fixed(not));
        let capped_count = |d: &'static str| {
            sql!("CROSS JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM {} AS {} WHERE {} LIMIT GREATEST({}, 0)::bigint + 1) AS m) AS c", other_new, o_alias, on_lr, d)
        };
        let flip = |d: &'static str| {
            sql!(
                "{0}{1}.{2} * ((c.n = 0)::int - (c.n - {3} = 0)::int) AS {2}",
                sign,
                p_alias,
                W,
                d
            )
        };
        let changed = |d: &'static str| sql!("(c.n = 0) <> (c.n - {} = 0)", d);
        if let Some(keyed) = self.keyed_condition(on, p.leaves, o.leaves) {
            // ΔO summed per key; P_old = P_new − ΔP as two terms, so that each joins
            // the (small) keyed sums through the indexes of its own relation.
            let keys: Vec<Sql> = keyed.keys.iter().map(|&(l, c)| col(l, c)).collect();
            let key_list = keys
                .iter()
                .map(|k| sql!("{}.{}", o_alias, k))
                .collect::<Vec<_>>()
                .join_sql(", ");
            let filter = if keyed.o_only.is_empty() {
                Sql::default()
            } else {
                let conds: Vec<Sql> = keyed
                    .o_only
                    .iter()
                    .map(|e| self.expr_over(e, o_alias))
                    .collect();
                sql!(" WHERE {}", conds.join_sql(" AND "))
            };
            // With conditions over both sides beyond the keys, the keys only select
            // the rows of P_old (an index lookup) and the matching ΔO weights are
            // summed per row.
            let (dg, per_row, d) = if keyed.mixed.is_empty() {
                (
                    sql!("(SELECT {0}, COALESCE(sum({1}.{2}), 0) AS \"__pgs_dn\" FROM {3} AS {1}{4} GROUP BY {0}) AS dg", key_list, o_alias, W, other_delta, filter),
                    Sql::default(),
                    "dg.\"__pgs_dn\"",
                )
            } else {
                (
                    sql!("(SELECT DISTINCT {} FROM {} AS {}{}) AS dg", key_list, other_delta, o_alias, filter),
                    sql!(" CROSS JOIN LATERAL (SELECT COALESCE(sum({0}.{1}), 0) AS n FROM {2} AS {0} WHERE {3}) AS d", o_alias, W, other_delta, on_lr),
                    "d.n",
                )
            };
            let join_on = keyed
                .p_side
                .iter()
                .map(|e| {
                    expr::render_with(e, &mut |m| match m {
                        Marker::Col { leaf, col: c } => Some(sql!(
                            "{}.{}",
                            if o.leaves.contains(&leaf) {
                                "dg"
                            } else {
                                p_alias
                            },
                            col(leaf, c)
                        )),
                        _ => None,
                    })
                })
                .collect::<Vec<_>>()
                .join_sql(" AND ");
            let term = |rel: &Sql| {
                sql!(
                    "SELECT {}, {} FROM {} JOIN {} AS {} ON {}{} {} WHERE {}",
                    padded,
                    flip(d),
                    dg,
                    rel,
                    p_alias,
                    join_on,
                    per_row,
                    capped_count(d),
                    changed(d)
                )
            };
            // ΔP's rows without a match, probed row by row (the key finds the
            // matches through an index), like the counts above: a NOT EXISTS lets
            // the planner hash the whole other side when it overestimates ΔP.
            let first = sql!(
                "SELECT {0}, {1}{2}.{3} AS {3} FROM {4} AS {2} {5} WHERE {6}",
                padded,
                first_sign,
                p_alias,
                W,
                preserved_delta,
                capped_count("0"),
                Sql::fixed(probe)
            );
            return vec![
                first,
                term(&sql!(
                    "(SELECT {}, 1 AS {} FROM {} AS p0)",
                    pcols_list,
                    W,
                    preserved_new
                )),
                term(&sql!(
                    "(SELECT {0}, -{1} AS {1} FROM {2})",
                    pcols_list,
                    W,
                    preserved_delta
                )),
            ];
        }
        // Without keys, every row of P_old is tested against ΔO: the uncorrelated
        // `EXISTS (SELECT 1 FROM ΔO)` is a one-time filter that skips the whole term
        // when ΔO is empty (TPC-H Q16's `NOT IN` over suppliers, whose changes rarely
        // touch the complaints: the planner read all of partsupp ⋈ part, 20 ms, to
        // probe an empty delta).
        let p_old = sql!(
            "(SELECT {0}, 1 AS {1} FROM {2} AS p0 UNION ALL SELECT {0}, -{1} FROM {3})",
            pcols_list,
            W,
            preserved_new,
            preserved_delta
        );
        vec![
            first,
            sql!("SELECT {0}, {1} FROM {2} AS {3} \
                 CROSS JOIN LATERAL (SELECT COALESCE(sum({4}.{5}), 0) AS n FROM {6} AS {4} WHERE {7}) AS d \
                 {8} \
                 WHERE EXISTS (SELECT 1 FROM {6}) AND EXISTS (SELECT 1 FROM {6} AS {4} WHERE {7}) AND {9}", padded, flip("d.n"), p_old, p_alias, o_alias, W, other_delta, on_lr, capped_count("d.n"), changed("d.n")),
        ]
    }

    /// Split a join condition for [`Self::dangling`]: `Some` when it is a conjunction
    /// of equalities `o.column = expression over p` (at least one), conditions on `p`
    /// alone, conditions on `o` alone and other conditions over both (without
    /// subqueries), and the key columns can be grouped.
    pub(super) fn keyed_condition(
        &self,
        on: &Expr,
        p: &[usize],
        o: &[usize],
    ) -> Option<KeyedCondition> {
        let mut parts = Vec::new();
        conjuncts(on, &mut parts);
        let mut k = KeyedCondition {
            keys: Vec::new(),
            p_side: Vec::new(),
            o_only: Vec::new(),
            mixed: Vec::new(),
        };
        for e in parts {
            let cols = expr::column_markers(e);
            if has_subquery(e) {
                return None;
            }
            if cols.iter().all(|(l, _)| p.contains(l)) {
                k.p_side.push(e.clone());
                continue;
            }
            if cols.iter().all(|(l, _)| o.contains(l)) {
                k.o_only.push(e.clone());
                continue;
            }
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = e
            else {
                k.mixed.push(e.clone());
                continue;
            };
            let (l, r) = (unnest(left), unnest(right));
            let key = |side: &Expr, other: &Expr| match expr::as_marker(side) {
                Some(Marker::Col { leaf, col }) if o.contains(&leaf) => expr::column_markers(other)
                    .iter()
                    .all(|(x, _)| p.contains(x))
                    .then_some((leaf, col)),
                _ => None,
            };
            let Some(kc) = key(l, r).or_else(|| key(r, l)) else {
                k.mixed.push(e.clone());
                continue;
            };
            let ty = self.block.leaves[kc.0].table.columns[kc.1]
                .sql_type
                .to_ascii_lowercase();
            let base = ty.split(['(', '[']).next().unwrap_or("").trim();
            if UNGROUPABLE.contains(&base) {
                return None;
            }
            if !k.keys.contains(&kc) {
                k.keys.push(kc);
            }
            k.p_side.push(e.clone());
        }
        (!k.keys.is_empty()).then_some(k)
    }
}

/// A join condition split for the keyed dangling-row term.
pub(crate) struct KeyedCondition {
    /// The columns of the other side compared by equality with the preserved side.
    keys: Vec<(usize, usize)>,
    /// The conjuncts that join the keys to the preserved side (the equalities) or
    /// test the preserved side alone.
    p_side: Vec<Expr>,
    /// The conjuncts on the other side alone (a filter before grouping).
    o_only: Vec<Expr>,
    /// The other conjuncts over both sides (`l2.l_suppkey <> l1.l_suppkey` in TPC-H
    /// Q21): the keys still find the rows of `P` a change can reach, but the sum of
    /// the matching ΔO weights is taken per row of `P`.
    mixed: Vec<Expr>,
}
