//! Predicate pushdown on a bound block, before any delta rule is derived.
//!
//! The binder leaves the conditions where the query writes them: a comma join is an
//! inner join `ON TRUE` and its conditions are in the WHERE, above the whole join. A
//! delta rule derived from that tree joins each change with whole tables and filters
//! afterwards (a cartesian product per delta term). [`push_down`] rewrites the tree:
//!
//! - every WHERE conjunct, every conjunct of an inner join's ON and of an inlined
//!   subquery's WHERE (a `Tree::Filter`) goes to the lowest node whose inputs bind
//!   all its columns: a conjunct over one table filters that table's leaf (its delta
//!   and its current rows), a conjunct over several becomes part of the ON of the
//!   join that brings its last table in;
//! - a maximal region of inner joins is rebuilt left-deep, its inputs taken in the
//!   order the query names them, starting with the first input linked to another,
//!   except that the next input is the first one linked to those already joined by some condition (`FROM part, supplier, partsupp` with
//!   `p_partkey = ps_partkey AND s_suppkey = ps_suppkey` joins `part`, `partsupp`,
//!   `supplier`), so that no join is without a condition when the query links its
//!   sides;
//! - nothing moves below the nullable side of an outer join: a WHERE conjunct over
//!   a LEFT JOIN's right side stays above it. An ON conjunct of a LEFT JOIN over its
//!   right side alone filters that side (and symmetrically for RIGHT JOIN); an ON
//!   conjunct of a semi or anti join over its subquery alone filters the subquery,
//!   and one of a semi join over its left side alone filters the left side;
//! - conjuncts with a subquery, a volatile function, an aggregate, or no column at
//!   all stay where they are (the top of their inner-join region);
//! - a semi or anti join (`EXISTS`, `IN`) over a LEFT JOIN whose condition does not
//!   read the LEFT JOIN's right side goes below it ([`filters_before_outer_joins`]),
//!   so that it restricts the rows a correlated scalar aggregate is read and
//!   recomputed for.
//!
//! A set-returning function applied to each row of its input (`Tree::Lateral`)
//! takes the conditions over its input alone into the input; the others stay above
//! it.
//!
//! Equalities stay whole conjuncts of the ON they land in, so the keyed paths of the
//! renderer (`keyed_condition`, `agg_lookup`) still find their join keys. An
//! aggregate-subquery leaf is never wrapped in a filter when a join can take the
//! condition instead, so it keeps its lookup by group keys.

use crate::ir::marker::{self as expr, Marker};
use crate::ir::{Block, JoinKind, Leaf, Shape, Tree};
use crate::sql::fragment::Sql;
use crate::sql::walk::{function_name, AGGREGATES, VOLATILE};
use sqlparser::ast::{BinaryOperator, Expr, Value, Visit, Visitor};
use std::ops::ControlFlow;

/// Push the conditions of `b` (and of each branch of a set operation) down its join
/// tree. The result computes the same rows.
pub(crate) fn push_down(b: &mut Block) {
    if let Shape::SetOp { branches, .. } = &mut b.shape {
        for br in branches.iter_mut() {
            push_down(br);
        }
    }
    let tree = std::mem::replace(&mut b.tree, Tree::Leaf(0));
    b.tree = filters_before_outer_joins(tree, &b.leaves);
    let out = b.tree.out_leaves();
    let mut keep = Vec::new();
    let mut preds = Vec::new();
    if let Some(f) = b.filter.take() {
        for c in conjuncts(&f) {
            let cols = expr::column_markers(&c);
            if pushable(&c) && cols.iter().all(|(l, _)| out.contains(l)) {
                preds.push(c);
            } else {
                keep.push(c);
            }
        }
    }
    let tree = std::mem::replace(&mut b.tree, Tree::Leaf(0));
    b.tree = sink(tree, preds, &b.leaves);
    b.filter = and(keep);
    b.filter_text = b.filter.as_ref().map(|f| text(f, &b.leaves));
}

/// A semi or anti join over a LEFT JOIN whose condition does not read the LEFT
/// JOIN's right side moves below it: `(A ⟕ G) ⋉ P = (A ⋉ P) ⟕ G` (and with ▷),
/// since whether a row of `A ⟕ G` has a match in `P` depends on its `A` part
/// alone, and each row of `A` yields the same rows of `A ⟕ G` either way. The
/// binder puts the `EXISTS` / `IN` joins of a `WHERE` above its `FROM`, where a
/// correlated scalar aggregate is a LEFT JOIN (`bind::where_scalar`); below it,
/// they restrict the rows the aggregate is read for, and the groups its changes
/// recompute (`restrict_agg_keys` reads the new state and delta of the LEFT JOIN's
/// left side): TPC-H Q20's `ps_availqty > (SELECT 0.5 * sum(l_quantity) ...)`
/// is recomputed for the changed lineitems of `forest` parts only.
fn filters_before_outer_joins(t: Tree, leaves: &[Leaf]) -> Tree {
    match t {
        Tree::Leaf(_) => t,
        Tree::Filter { input, pred, text } => Tree::Filter {
            input: Box::new(filters_before_outer_joins(*input, leaves)),
            pred,
            text,
        },
        Tree::Lateral {
            kind,
            input,
            func,
            on,
            on_text,
        } => Tree::Lateral {
            kind,
            input: Box::new(filters_before_outer_joins(*input, leaves)),
            func,
            on,
            on_text,
        },
        Tree::Join {
            kind,
            left,
            right,
            on,
            on_text,
        } => semi_below_left_joins(
            kind,
            filters_before_outer_joins(*left, leaves),
            filters_before_outer_joins(*right, leaves),
            on,
            on_text,
            leaves,
        ),
    }
}

/// The join `left kind right ON on`, its inputs already rewritten: a semi or anti
/// join goes below each LEFT JOIN at the top of `left` whose right side its
/// condition does not read (see [`filters_before_outer_joins`]), and below an inner
/// join with an aggregate leaf (`(A ⋈ G) ⋉ P = (A ⋉ P) ⋈ G` likewise: a correlated
/// scalar aggregate compared in `WHERE` is joined inner, `bind::where_scalar`).
fn semi_below_left_joins(
    kind: JoinKind,
    left: Tree,
    right: Tree,
    on: Expr,
    on_text: Sql,
    leaves: &[Leaf],
) -> Tree {
    match left {
        Tree::Join {
            kind: g_kind,
            left: a,
            right: g,
            on: g_on,
            on_text: g_on_text,
        } if matches!(kind, JoinKind::Semi | JoinKind::Anti)
            && (g_kind == JoinKind::Left
                || (g_kind == JoinKind::Inner && is_agg_leaf(&g, leaves)))
            && !g.leaves().iter().any(|l| leaves_of(&on).contains(l)) =>
        {
            Tree::Join {
                kind: g_kind,
                left: Box::new(semi_below_left_joins(kind, *a, right, on, on_text, leaves)),
                right: g,
                on: g_on,
                on_text: g_on_text,
            }
        }
        left => Tree::Join {
            kind,
            left: Box::new(left),
            right: Box::new(right),
            on,
            on_text,
        },
    }
}

/// The AND-ed parts of an expression, parentheses around conjunctions dropped, and
/// the conjuncts common to every branch of a disjunction taken out of it
/// ([`factor_or`]).
pub(crate) fn conjuncts(e: &Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryOp { left, op, right } if *op == BinaryOperator::And => {
            [conjuncts(left), conjuncts(right)].concat()
        }
        Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        } => factor_or(e),
        Expr::Nested(inner) => match inner.as_ref() {
            Expr::BinaryOp {
                op: BinaryOperator::And | BinaryOperator::Or,
                ..
            }
            | Expr::Nested(_) => conjuncts(inner),
            _ => vec![e.clone()],
        },
        Expr::Value(v) if v.value == Value::Boolean(true) => Vec::new(),
        other => vec![other.clone()],
    }
}

/// The OR-ed parts of an expression, parentheses around disjunctions dropped.
fn disjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryOp { left, op, right } if *op == BinaryOperator::Or => {
            [disjuncts(left), disjuncts(right)].concat()
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::Or,
                    ..
                } | Expr::Nested(_)
            ) =>
        {
            disjuncts(inner)
        }
        other => vec![other],
    }
}

/// A disjunction as conjuncts: `(A AND B) OR (A AND C)` is `A AND (B OR C)`, and
/// `A OR (A AND C)` is `A`. Both laws hold in SQL's three-valued logic (Kleene's
/// AND and OR distribute over each other and absorb), so the result filters the
/// same rows. The query writer's form (TPC-H Q19 repeats `p_partkey = l_partkey`
/// in each of three branches) gives PostgreSQL no join key: it does not factor a
/// join condition out of an OR, so a delta term joining part's changes with
/// lineitem scanned the whole table. Factored, the equality is a conjunct like any
/// other: it becomes the join's key, and a condition common to the branches over
/// one table filters that table. Only conjuncts that may move ([`pushable`]: no
/// subquery, no volatile call, which the branches would evaluate separately) are
/// taken out; the disjunction is returned whole when no branch has one in common.
fn factor_or(e: &Expr) -> Vec<Expr> {
    let branches: Vec<Vec<Expr>> = disjuncts(e).into_iter().map(conjuncts).collect();
    let key = |c: &Expr| c.to_string();
    let mut common: Vec<Expr> = Vec::new();
    if let Some((first, rest)) = branches.split_first() {
        for c in first {
            let k = key(c);
            if pushable(c)
                && !common.iter().any(|d| key(d) == k)
                && rest.iter().all(|b| b.iter().any(|d| key(d) == k))
            {
                common.push(c.clone());
            }
        }
    }
    if common.is_empty() || branches.len() < 2 {
        // Parenthesized: the conjunct may be AND-ed with others, and the AST prints
        // operators without parentheses of its own.
        return vec![Expr::Nested(Box::new(e.clone()))];
    }
    let taken: Vec<String> = common.iter().map(key).collect();
    let mut rests = Vec::new();
    for b in branches {
        let rest: Vec<Expr> = b.into_iter().filter(|c| !taken.contains(&key(c))).collect();
        match and(rest) {
            // A branch that was only common conjuncts holds whenever they do.
            None => return common,
            Some(r) => rests.push(Expr::Nested(Box::new(r))),
        }
    }
    let or = rests
        .into_iter()
        .reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::Or,
            right: Box::new(b),
        })
        .expect("two branches or more");
    common.push(Expr::Nested(Box::new(or)));
    common
}

/// The conjunction of `parts` (`None` when empty).
fn and(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

fn true_expr() -> Expr {
    Expr::Value(Value::Boolean(true).into())
}

/// Whether a conjunct may move to another node of the tree: it reads columns, and
/// has no subquery, no volatile function, no aggregate or window call.
fn pushable(e: &Expr) -> bool {
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let bad = match e {
                e if crate::sql::walk::is_subquery(e) => true,
                Expr::Function(f) => {
                    let name = function_name(f);
                    f.over.is_some()
                        || VOLATILE.contains(&name.as_str())
                        || AGGREGATES.contains(&name.as_str())
                }
                _ => matches!(
                    expr::as_marker(e),
                    Some(Marker::Agg(_)) | Some(Marker::Grp(_))
                ),
            };
            if bad {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = Finder(false);
    let _ = e.visit(&mut f);
    !f.0 && !expr::column_markers(e).is_empty()
}

/// The leaves a conjunct reads.
fn leaves_of(e: &Expr) -> Vec<usize> {
    let mut v: Vec<usize> = expr::column_markers(e)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn within(e: &Expr, leaves: &[usize]) -> bool {
    leaves_of(e).iter().all(|l| leaves.contains(l))
}

/// A bound expression as text for explain: each column as `alias.column`.
pub(crate) fn text(e: &Expr, leaves: &[Leaf]) -> Sql {
    expr::shown(e, leaves)
}

/// `t` under the filter `preds` (itself when there is none).
fn wrap(t: Tree, preds: Vec<Expr>, leaves: &[Leaf]) -> Tree {
    match and(preds) {
        None => t,
        Some(pred) => Tree::Filter {
            input: Box::new(t),
            text: text(&pred, leaves),
            pred,
        },
    }
}

fn is_agg_leaf(t: &Tree, leaves: &[Leaf]) -> bool {
    matches!(t, Tree::Leaf(i) if leaves[*i].agg.is_some())
}

/// `σ_preds(t)` with every condition inside `t` and in `preds` as low as it can go.
/// Each of `preds` is pushable and reads only `t`'s output leaves.
fn sink(t: Tree, preds: Vec<Expr>, leaves: &[Leaf]) -> Tree {
    match t {
        Tree::Leaf(_) => wrap(t, preds, leaves),
        // A function applied to each input row: a condition over the input alone
        // filters the input (its preserved side for LEFT JOIN LATERAL too); one
        // that reads the function's columns stays above.
        Tree::Lateral {
            kind,
            input,
            func,
            on,
            on_text,
        } => {
            let input_out = input.out_leaves();
            let (down, above): (Vec<Expr>, Vec<Expr>) =
                preds.into_iter().partition(|p| within(p, &input_out));
            let input = sink(*input, down, leaves);
            wrap(
                Tree::Lateral {
                    kind,
                    input: Box::new(input),
                    func,
                    on,
                    on_text,
                },
                above,
                leaves,
            )
        }
        Tree::Filter { .. }
        | Tree::Join {
            kind: JoinKind::Inner,
            ..
        } => region(t, preds, leaves),
        Tree::Join {
            kind,
            left,
            right,
            on,
            on_text,
        } => {
            let (left_out, right_out) = (left.out_leaves(), right.out_leaves());
            let mut to_left = Vec::new();
            let mut to_right = Vec::new();
            let mut above = Vec::new();
            for p in preds {
                // A filter on the output commutes with the join only on its
                // preserved side (semi and anti joins output their left side).
                let left_ok = matches!(kind, JoinKind::Left | JoinKind::Semi | JoinKind::Anti);
                if left_ok && within(&p, &left_out) {
                    to_left.push(p);
                } else if kind == JoinKind::Right && within(&p, &right_out) {
                    to_right.push(p);
                } else {
                    above.push(p);
                }
            }
            let mut stay = Vec::new();
            let parts = conjuncts(&on);
            // Rebuilt when a disjunction's shared conjuncts came out of it (its key
            // is then a conjunct of its own for the keyed paths of the renderer).
            let mut changed = and(parts.clone()).map(|p| p.to_string()) != Some(on.to_string());
            for c in parts {
                // An ON condition over the side whose rows are only looked up (the
                // nullable side, the subquery) restricts that side; over the left
                // side of a semi join it restricts the left side.
                let movable = pushable(&c);
                let nullable_right =
                    matches!(kind, JoinKind::Left | JoinKind::Semi | JoinKind::Anti);
                if movable
                    && nullable_right
                    && within(&c, &right_out)
                    && !is_agg_leaf(&right, leaves)
                {
                    to_right.push(c);
                    changed = true;
                } else if movable
                    && matches!(kind, JoinKind::Right | JoinKind::Semi)
                    && within(&c, &left_out)
                    && !is_agg_leaf(&left, leaves)
                {
                    to_left.push(c);
                    changed = true;
                } else {
                    stay.push(c);
                }
            }
            let left = sink(*left, to_left, leaves);
            let right = sink(*right, to_right, leaves);
            let (on, on_text) = if changed {
                let on = and(stay).unwrap_or_else(true_expr);
                let t = text(&on, leaves);
                (on, t)
            } else {
                (on, on_text)
            };
            wrap(
                Tree::Join {
                    kind,
                    left: Box::new(left),
                    right: Box::new(right),
                    on,
                    on_text,
                },
                above,
                leaves,
            )
        }
    }
}

/// Flatten a region of inner joins and filters into its inputs (the subtrees that
/// are neither) and its conditions.
fn flatten(t: Tree, items: &mut Vec<Tree>, conds: &mut Vec<Expr>, stuck: &mut Vec<Expr>) {
    let cond = match t {
        Tree::Filter { input, pred, .. } => {
            flatten(*input, items, conds, stuck);
            pred
        }
        Tree::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on,
            ..
        } => {
            flatten(*left, items, conds, stuck);
            flatten(*right, items, conds, stuck);
            on
        }
        other => return items.push(other),
    };
    let (pushable, not): (Vec<Expr>, Vec<Expr>) = conjuncts(&cond).into_iter().partition(pushable);
    conds.extend(pushable);
    stuck.extend(not);
}

/// A region of inner joins and filters, rebuilt left-deep with each condition at the
/// lowest join that binds its columns.
fn region(t: Tree, preds: Vec<Expr>, leaves: &[Leaf]) -> Tree {
    let mut items = Vec::new();
    let mut conds = preds;
    let mut stuck = Vec::new();
    flatten(t, &mut items, &mut conds, &mut stuck);
    let outs: Vec<Vec<usize>> = items.iter().map(|i| i.out_leaves()).collect();
    let all: Vec<usize> = outs.iter().flatten().copied().collect();
    // A condition that reads anything else (none should) stays at the top.
    let (conds, other): (Vec<Expr>, Vec<Expr>) = conds.into_iter().partition(|c| within(c, &all));
    stuck.extend(other);
    // The inputs each condition reads.
    let reads: Vec<Vec<usize>> = conds
        .iter()
        .map(|c| {
            let ls = leaves_of(c);
            (0..items.len())
                .filter(|&k| ls.iter().any(|l| outs[k].contains(l)))
                .collect()
        })
        .collect();
    // Conditions of one input filter it, unless it is an aggregate subquery joined
    // to others (its ON keeps them, and its lookup by group keys).
    let mut own: Vec<Vec<Expr>> = vec![Vec::new(); items.len()];
    let mut joins: Vec<(Expr, Vec<usize>)> = Vec::new();
    for (c, r) in conds.into_iter().zip(reads) {
        match r.as_slice() {
            [k] if items.len() == 1 || !is_agg_leaf(&items[*k], leaves) => own[*k].push(c),
            [] => stuck.push(c),
            _ => joins.push((c, r)),
        }
    }
    // Join order: as written, but next the first input linked to those joined.
    // The first input is the first one that some condition links to another (an
    // input linked to nothing, a true cross join, comes after the linked ones).
    let first = (0..items.len())
        .find(|k| {
            joins
                .iter()
                .any(|(_, r)| r.contains(k) && r.iter().any(|x| x != k))
        })
        .unwrap_or(0);
    let mut order = vec![first];
    let mut rest: Vec<usize> = (0..items.len()).filter(|k| *k != first).collect();
    while !rest.is_empty() {
        let linked = rest.iter().position(|&k| {
            joins.iter().any(|(_, r)| {
                r.contains(&k)
                    && r.iter().any(|x| *x != k)
                    && r.iter().all(|x| *x == k || order.contains(x))
            })
        });
        order.push(rest.remove(linked.unwrap_or(0)));
    }
    let mut slots: Vec<Option<Tree>> = items.into_iter().map(Some).collect();
    let mut placed: Vec<usize> = Vec::new();
    let mut tree: Option<Tree> = None;
    for k in order {
        let item = slots[k].take().expect("each input once");
        let sub = sink(item, std::mem::take(&mut own[k]), leaves);
        placed.push(k);
        tree = Some(match tree {
            None => sub,
            Some(prev) => {
                let mut on = Vec::new();
                let mut i = 0;
                while i < joins.len() {
                    if joins[i].1.iter().all(|x| placed.contains(x)) {
                        on.push(joins.remove(i).0);
                    } else {
                        i += 1;
                    }
                }
                let on = and(on).unwrap_or_else(true_expr);
                Tree::Join {
                    kind: JoinKind::Inner,
                    left: Box::new(prev),
                    right: Box::new(sub),
                    on_text: text(&on, leaves),
                    on,
                }
            }
        });
    }
    // A condition of an aggregate subquery alone in the first place (no join took
    // it) and one over several inputs that no join took cannot remain: every join
    // took the conditions its inputs bind, so only the one-input case is left.
    let mut tree = tree.expect("a region has an input");
    let leftover: Vec<Expr> = joins.into_iter().map(|(c, _)| c).collect();
    stuck.extend(leftover);
    let agg_own: Vec<Expr> = own.into_iter().flatten().collect();
    stuck.extend(agg_own);
    if !stuck.is_empty() {
        tree = wrap(tree, stuck, leaves);
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Body, Compiled, Strategy};

    use crate::testing::{tpch_queries as tpch, TPCH_SCHEMA};

    use crate::testing::compile_differential as compile;

    /// Every conjunct of the block: its filter, and the filters and join conditions
    /// of its tree.
    fn all_conjuncts(b: &Block) -> Vec<Expr> {
        fn walk(t: &Tree, out: &mut Vec<Expr>) {
            match t {
                Tree::Leaf(_) => {}
                Tree::Filter { input, pred, .. } => {
                    out.extend(conjuncts(pred));
                    walk(input, out);
                }
                Tree::Lateral { input, on, .. } => {
                    out.extend(conjuncts(on));
                    walk(input, out);
                }
                Tree::Join {
                    left, right, on, ..
                } => {
                    out.extend(conjuncts(on));
                    walk(left, out);
                    walk(right, out);
                }
            }
        }
        let mut out: Vec<Expr> = b.filter.iter().flat_map(conjuncts).collect();
        walk(&b.tree, &mut out);
        out
    }

    /// The inner joins of `t` that have no condition although some conjunct of the
    /// query reads both their sides (their ON text).
    fn unlinked_joins(t: &Tree, all: &[Expr], out: &mut Vec<String>) {
        match t {
            Tree::Leaf(_) => {}
            Tree::Filter { input, .. } => unlinked_joins(input, all, out),
            Tree::Lateral { input, .. } => unlinked_joins(input, all, out),
            Tree::Join { left, right, .. } => {
                if let Tree::Join {
                    kind: JoinKind::Inner,
                    on,
                    on_text,
                    ..
                } = t
                {
                    let (left_leaves, right_leaves) = (left.leaves(), right.leaves());
                    let links = all.iter().any(|c| {
                        let ls = leaves_of(c);
                        ls.iter().any(|l| left_leaves.contains(l))
                            && ls.iter().any(|l| right_leaves.contains(l))
                    });
                    if conjuncts(on).is_empty() && links {
                        out.push(on_text.to_string());
                    }
                }
                unlinked_joins(left, all, out);
                unlinked_joins(right, all, out);
            }
        }
    }

    fn blocks(c: &Compiled) -> Vec<&Block> {
        match &c.body {
            Body::Incremental(b) => match &b.shape {
                Shape::SetOp { branches, .. } => branches.iter().collect(),
                _ => vec![b],
            },
            Body::Recompute { .. } => Vec::new(),
        }
    }

    /// Checks a compiled query: no inner join without a condition when the query
    /// links its sides (in the bound tree and in the rendered delta statement), and
    /// no condition left in the block's filter that could have moved.
    fn check(c: &Compiled, q: &str) {
        for b in blocks(c) {
            let all = all_conjuncts(b);
            let mut bad = Vec::new();
            unlinked_joins(&b.tree, &all, &mut bad);
            assert!(
                bad.is_empty(),
                "join without its condition in\n{q}\n{}",
                c.explain()
            );
            if let Some(f) = &b.filter {
                for p in conjuncts(f) {
                    assert!(
                        !pushable(&p),
                        "{} left above the joins in\n{q}",
                        text(&p, &b.leaves)
                    );
                }
            }
        }
        let sql = c
            .render(&c.placeholder_context())
            .differential_refresh
            .unwrap_or_default();
        for t in ["AS r ON true", "AS l ON true"] {
            assert!(!sql.contains(t), "a delta term without a condition:\n{sql}");
        }
    }

    #[test]
    fn tpch_joins_have_their_conditions() {
        let queries = tpch();
        assert_eq!(queries.len(), 22);
        let mut incremental = Vec::new();
        for (n, q) in &queries {
            let c = compile(q, TPCH_SCHEMA);
            check(&c, q);
            eprintln!("Q{n}: {:?}", c.strategy);
            if c.strategy == Strategy::Incremental {
                incremental.push(*n);
                // Every inner join of these queries has a condition.
                let mut trivial = Vec::new();
                for b in blocks(&c) {
                    unlinked_joins(&b.tree, &[], &mut trivial);
                    fn any_trivial(t: &Tree) -> bool {
                        match t {
                            Tree::Leaf(_) => false,
                            Tree::Filter { input, .. } => any_trivial(input),
                            Tree::Lateral { input, .. } => any_trivial(input),
                            Tree::Join {
                                kind: JoinKind::Inner,
                                on,
                                ..
                            } if conjuncts(on).is_empty() => true,
                            Tree::Join { left, right, .. } => {
                                any_trivial(left) || any_trivial(right)
                            }
                        }
                    }
                    assert!(
                        !any_trivial(&b.tree),
                        "Q{n}: a join without condition\n{}",
                        c.explain()
                    );
                }
            }
        }
        // Those the delta rules maintain (the others are recomputed).
        for n in [5, 7, 8, 9] {
            assert!(
                incremental.contains(&n),
                "Q{n} is not incremental: {incremental:?}"
            );
        }
    }

    const SCHEMA: &str = "
        CREATE TABLE a (id int PRIMARY KEY, x int, v int);
        CREATE TABLE b (id int PRIMARY KEY, a_id int, c_id int, w int);
        CREATE TABLE c (id int PRIMARY KEY, name text);
        CREATE TABLE d (id int PRIMARY KEY, c_id int, z int);";

    fn tree_of(c: &Compiled) -> &Block {
        blocks(c)[0]
    }

    /// The sides and the condition of the join at the top of `c`'s tree.
    fn top_join(c: &Compiled) -> (&Tree, &Tree, &Expr) {
        match &tree_of(c).tree {
            Tree::Join {
                left, right, on, ..
            } => (left, right, on),
            _ => panic!("{}", c.explain()),
        }
    }

    #[test]
    fn comma_joins_get_their_conditions() {
        for q in [
            "SELECT a.id, c.name FROM a, b, c WHERE a.id = b.a_id AND b.c_id = c.id AND a.v > 5",
            "SELECT a.id, c.name FROM a, c, b WHERE a.id = b.a_id AND b.c_id = c.id",
            "SELECT a.id FROM a CROSS JOIN b JOIN c ON true WHERE c.id = b.c_id AND b.a_id = a.id",
            "SELECT s.id, d.z FROM (SELECT a.id, b.c_id FROM a, b WHERE a.id = b.a_id) AS s, d WHERE d.c_id = s.c_id",
            "WITH s AS (SELECT a.id, b.c_id FROM a, b WHERE a.id = b.a_id) SELECT s.id, d.z FROM s, d WHERE d.c_id = s.c_id AND d.z > 1",
            "SELECT a.id, d.z FROM a, b LEFT JOIN c ON c.id = b.c_id, d WHERE a.id = b.a_id AND d.c_id = b.c_id",
            "SELECT c.name, count(*) AS n FROM a, b, c WHERE a.id = b.a_id AND b.c_id = c.id GROUP BY c.name",
            "SELECT a.id FROM a, b WHERE a.id = b.a_id AND EXISTS (SELECT 1 FROM d, c WHERE d.c_id = c.id AND c.id = b.c_id)",
        ] {
            check(&compile(q, SCHEMA), q);
        }
    }

    const ORG: &str = "
        CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, parent_id int);
        CREATE TABLE employees (id int PRIMARY KEY, name text, department_id int, salary numeric(10,2));
        CREATE TABLE projects (id int PRIMARY KEY, department_id int NOT NULL, budget int);";

    /// The queries of tests/tests/e2e/oracle_pushdown.rs: maintained by delta rules, no
    /// join without its condition.
    #[test]
    fn oracle_pushdown_queries_are_incremental() {
        for q in [
            "SELECT e.id, d.name, p.id AS pid FROM employees e, departments d, projects p WHERE e.department_id = d.id AND p.department_id = d.id AND e.salary > 10 AND p.budget < 5",
            "SELECT p.id AS pid, e.id AS eid, up.name AS parent FROM projects p, employees e, departments d, departments up WHERE up.id = d.parent_id AND p.department_id = d.id AND e.department_id = d.id AND up.name <> e.name",
            "SELECT d.id, e.id AS eid, p.id AS pid, e.salary FROM departments d LEFT JOIN employees e ON e.department_id = d.id AND e.salary > 5, projects p WHERE p.department_id = d.id AND (e.salary IS NULL OR e.salary < 30) AND p.budget > 1",
            "SELECT d.id, d.name FROM departments d LEFT JOIN employees e ON e.department_id = d.id WHERE e.id IS NULL AND d.parent_id IS NOT NULL",
            "SELECT d.id, e.id AS eid FROM employees e RIGHT JOIN departments d ON d.id = e.department_id WHERE d.parent_id > 1 AND e.name IS DISTINCT FROM 'x'",
            "SELECT d.name, count(*) AS n, sum(e.salary) AS s FROM employees e, departments d, projects p WHERE e.department_id = d.id AND p.department_id = d.id AND p.budget > 2 GROUP BY d.name",
            "SELECT s.eid, p.id AS pid FROM (SELECT e.id AS eid, d.id AS did FROM employees e, departments d WHERE e.department_id = d.id AND d.name > 'c') AS s, projects p WHERE p.department_id = s.did AND p.budget <> s.eid",
            "SELECT d.id, d.name FROM departments d WHERE d.parent_id IS NOT NULL AND EXISTS (SELECT 1 FROM employees e, projects p WHERE e.department_id = p.department_id AND p.department_id = d.id AND e.salary > 3)",
            "SELECT e.id, d.id AS did, p.id AS pid FROM employees e JOIN departments d ON d.id = e.department_id AND e.salary > 10 AND d.parent_id IS NOT NULL JOIN projects p ON p.department_id = d.id AND p.budget = e.id % 5",
            "WITH staff AS (SELECT e.id, e.salary, d.parent_id FROM employees e, departments d WHERE d.id = e.department_id) SELECT s.id, p.id AS pid FROM staff s, projects p, departments up WHERE up.id = s.parent_id AND p.department_id = up.id AND s.salary < 40",
            "SELECT d.id FROM departments d, projects p WHERE p.department_id = d.id AND p.budget > 0 AND NOT EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id AND e.salary > 20)",
        ] {
            let c = compile(q, ORG);
            assert_eq!(c.strategy, Strategy::Incremental, "{q}");
            check(&c, q);
        }
    }

    #[test]
    fn one_table_conditions_filter_the_leaf() {
        let q = "SELECT a.id FROM a, b WHERE a.id = b.a_id AND a.v > 5 AND b.w < 3";
        let c = compile(q, SCHEMA);
        let b = tree_of(&c);
        assert!(b.filter.is_none());
        let Tree::Join {
            left, right, on, ..
        } = &b.tree
        else {
            panic!("{:?}", b.tree)
        };
        assert_eq!(conjuncts(on).len(), 1);
        assert!(
            matches!(left.as_ref(), Tree::Filter { input, .. } if matches!(input.as_ref(), Tree::Leaf(0)))
        );
        assert!(
            matches!(right.as_ref(), Tree::Filter { input, .. } if matches!(input.as_ref(), Tree::Leaf(1)))
        );
    }

    #[test]
    fn nothing_moves_below_the_nullable_side() {
        // c.name IS NULL keeps the rows without a match: above the join.
        let q = "SELECT b.id FROM b LEFT JOIN c ON c.id = b.c_id WHERE c.name IS NULL AND b.w > 1";
        let c = compile(q, SCHEMA);
        let b = tree_of(&c);
        let Tree::Filter { input, text, .. } = &b.tree else {
            panic!("{}", c.explain())
        };
        assert_eq!(text.as_str(), "c.name IS NULL");
        let Tree::Join {
            kind, left, right, ..
        } = input.as_ref()
        else {
            panic!("{}", c.explain())
        };
        assert_eq!(*kind, JoinKind::Left);
        assert!(matches!(left.as_ref(), Tree::Filter { .. }));
        assert!(matches!(right.as_ref(), Tree::Leaf(_)));
        // An ON condition over the nullable side alone filters that side.
        let q = "SELECT b.id FROM b LEFT JOIN c ON c.id = b.c_id AND c.name <> 'x' AND b.w > 1";
        let c = compile(q, SCHEMA);
        let (left, right, on) = top_join(&c);
        assert!(matches!(left, Tree::Leaf(_)), "{}", c.explain());
        assert!(matches!(right, Tree::Filter { .. }), "{}", c.explain());
        assert_eq!(conjuncts(on).len(), 2, "{}", c.explain());
    }

    fn parse(sql: &str) -> Expr {
        sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    /// `ref.0.0 > <sql>`: a column of leaf 0 compared with the expression `sql`.
    fn with_col(sql: &str) -> Expr {
        Expr::BinaryOp {
            left: Box::new(expr::marker(Marker::Col { leaf: 0, col: 0 })),
            op: BinaryOperator::Gt,
            right: Box::new(parse(sql)),
        }
    }

    #[test]
    fn subqueries_and_volatile_calls_stay_in_place() {
        assert!(pushable(&with_col("1 + 2")));
        assert!(!pushable(&with_col("(SELECT 1)")));
        assert!(!pushable(&with_col("random()")));
        assert!(!pushable(&with_col("max(1)")));
        assert!(!pushable(&parse("1 > 2")));
    }

    #[test]
    fn or_branches_give_their_shared_conjuncts() {
        // TPC-H Q19's shape: the equality in every branch becomes the join's key
        // and a shared one-table condition filters its table.
        let q = "SELECT a.id FROM a, b WHERE (a.id = b.a_id AND b.w > 1 AND a.v = 1) \
                 OR (a.id = b.a_id AND b.w > 1 AND a.v = 2 AND b.c_id = 3)";
        let c = compile(q, SCHEMA);
        assert!(tree_of(&c).filter.is_none());
        let (left, right, on) = top_join(&c);
        let parts: Vec<String> = conjuncts(on)
            .iter()
            .map(|p| text(p, &tree_of(&c).leaves).to_string())
            .collect();
        assert_eq!(parts[0], "a.id = b.a_id", "{}", c.explain());
        assert_eq!(parts.len(), 2, "{}", c.explain());
        assert_eq!(parts[1], "((a.v = 1) OR (a.v = 2 AND b.c_id = 3))");
        assert!(matches!(left, Tree::Leaf(0)), "{}", c.explain());
        assert!(
            matches!(right, Tree::Filter { input, .. } if matches!(input.as_ref(), Tree::Leaf(1)))
        );

        // Absorption: a branch of shared conjuncts only is the whole condition.
        let c = compile("SELECT a.id FROM a, b WHERE (a.id = b.a_id AND a.v = 1) OR (a.id = b.a_id AND a.v = 1 AND b.w = 2)", SCHEMA);
        let (_, _, on) = top_join(&c);
        assert_eq!(conjuncts(on).len(), 1, "{}", c.explain());

        // Nothing shared (the equality written the other way round): the OR stays
        // whole.
        {
            let q = "SELECT a.id FROM a, b WHERE (a.id = b.a_id AND a.v = 1) OR (b.a_id = a.id AND a.v = 2)";
            let c = compile(q, SCHEMA);
            let ors = all_conjuncts(tree_of(&c))
                .iter()
                .filter(|p| p.to_string().contains(" OR "))
                .count();
            assert_eq!(ors, 1, "{q}: {}", c.explain());
        }

        // A volatile call shared by the branches is evaluated in each: not taken out.
        let col = with_col;
        let branch = |a: Expr, b: Expr| {
            Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(a),
                op: BinaryOperator::And,
                right: Box::new(b),
            }))
        };
        let or = |a: Expr, b: Expr| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::Or,
            right: Box::new(b),
        };
        let volatile = or(
            branch(col("random()"), col("1")),
            branch(col("random()"), col("2")),
        );
        assert_eq!(factor_or(&volatile).len(), 1);
        let stable = or(branch(col("3"), col("1")), branch(col("3"), col("2")));
        assert_eq!(factor_or(&stable).len(), 2);
    }

    #[test]
    fn an_unlinked_input_joins_last() {
        let q = "SELECT a.id, b.id AS bid FROM c, a, b WHERE a.id = b.a_id";
        let c = compile(q, SCHEMA);
        let (left, right, on) = top_join(&c);
        assert!(conjuncts(on).is_empty(), "{}", c.explain());
        assert!(matches!(right, Tree::Leaf(0)), "{}", c.explain());
        assert!(matches!(left, Tree::Join { on, .. } if !conjuncts(on).is_empty()));
    }
}
