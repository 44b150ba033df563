//! Semi-naive maintenance of `WITH RECURSIVE` under insert-only windows.
//!
//! A recursive query `WITH RECURSIVE r AS (base UNION ALL step) SELECT <r's columns>
//! FROM r` is linear in `r`, and `base` and `step` are inner joins: each is a product
//! of its factors, so for inserted rows `ΔS` of the sources the new derivations are,
//! by the product rule over the factors in any fixed order (here `r` first),
//!
//! ```text
//! Δr = Δbase + Σ_i step(r_old, S_1 old .. S_{i-1} old, ΔS_i, S_{i+1} new ..) + step(Δr, S new ..)
//! ```
//!
//! where `S old = S new − ΔS` and `r_old` is the stored result. The last term is the
//! recursive one, so one recursive CTE seeded with the others computes every new row;
//! they are appended to the storage table. This holds when every window holds only
//! inserts (a delete or update may remove derivations: the refresh then recomputes
//! and applies the difference, as before). Under bag semantics (`UNION ALL`) each new
//! derivation is a new row; appended copies of a row that exists continue its
//! numbering (`__pgs_n`).

use crate::catalog::Table;
use crate::sql::ident::ident_value;
use crate::sql::limits;
use sqlparser::ast::{
    Expr, JoinConstraint, JoinOperator, Query, Select, SelectItem, SetExpr, SetOperator,
    SetQuantifier, TableFactor,
};

/// A recursive query that can be maintained semi-naively, analysed.
#[derive(Debug, Clone)]
pub(crate) struct SemiNaive {
    /// The recursive CTE's columns.
    pub(crate) cte_cols: Vec<String>,
    /// Output column `i` is CTE column `perm[i]`.
    pub(crate) perm: Vec<usize>,
    /// The base case and the recursive step (table names qualified).
    pub(crate) base: Select,
    pub(crate) step: Select,
    /// Their factors, in FROM order.
    pub(crate) base_factors: Vec<Factor>,
    pub(crate) step_factors: Vec<Factor>,
    /// Output columns that the step compares by equality with the sources: the
    /// storage table gets an index on each, so joining the stored result is a lookup.
    pub(crate) lookup_columns: Vec<String>,
    /// Every name the base case and the step mention as a column (the last part of
    /// each column reference): the only source columns the statements read.
    pub(crate) mentioned: Vec<String>,
}

/// One factor of a join: the recursive CTE, or a source table (index into the
/// compiled sources), with the alias the query gives it (or its name).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Factor {
    Cte { alias: String },
    Source { index: usize, alias: String },
}

/// Which state of a factor a term reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Version {
    Old,
    Delta,
    New,
}

/// `Some` when the (qualified) query has the shape this module maintains.
pub(crate) fn analyze(q: &Query, sources: &[Table], outputs: &[String]) -> Option<SemiNaive> {
    let with = q.with.as_ref()?;
    if !with.recursive
        || with.cte_tables.len() != 1
        || q.order_by.is_some()
        || limits::limit(q).is_some()
    {
        return None;
    }
    let cte = &with.cte_tables[0];
    let name = ident_value(&cte.alias.name);
    let body = &cte.query;
    if body.with.is_some() || body.order_by.is_some() || limits::limit(body).is_some() {
        return None;
    }
    let SetExpr::SetOperation {
        op: SetOperator::Union,
        set_quantifier: SetQuantifier::All,
        left,
        right,
    } = body.body.as_ref()
    else {
        return None;
    };
    let (SetExpr::Select(base), SetExpr::Select(step)) = (left.as_ref(), right.as_ref()) else {
        return None;
    };
    let plain = |s: &Select| {
        s.distinct.is_none()
            && s.having.is_none()
            && matches!(&s.group_by, sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
            && s.named_window.is_empty()
            && s.qualify.is_none()
            && s.projection.iter().all(|i| {
                matches!(
                    i,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            })
    };
    if !plain(base) || !plain(step) {
        return None;
    }
    let base_factors = factors(base, &name, sources)?;
    let step_factors = factors(step, &name, sources)?;
    let ctes_in = |f: &[Factor]| f.iter().filter(|x| matches!(x, Factor::Cte { .. })).count();
    if ctes_in(&base_factors) != 0 || ctes_in(&step_factors) != 1 {
        return None;
    }
    // No subqueries anywhere in the base or the step (they could read `r` or a
    // source outside the factors).
    if has_subquery(base) || has_subquery(step) {
        return None;
    }
    // The CTE's columns: its column list, else the base case's output names.
    let aliases = crate::sql::ident::column_aliases(&cte.alias);
    let cte_cols: Vec<String> = if !aliases.is_empty() {
        aliases
    } else {
        base.projection
            .iter()
            .map(|i| match i {
                SelectItem::ExprWithAlias { alias, .. } => Some(ident_value(alias)),
                SelectItem::UnnamedExpr(Expr::Identifier(id)) => Some(ident_value(id)),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => p.last().map(ident_value),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?
    };
    if cte_cols.len() != base.projection.len() || cte_cols.len() != step.projection.len() {
        return None;
    }
    // The outer query: every CTE column once, plainly, from the CTE alone.
    let SetExpr::Select(outer) = q.body.as_ref() else {
        return None;
    };
    if !plain(outer) || outer.selection.is_some() || outer.from.len() != 1 {
        return None;
    }
    let from = &outer.from[0];
    if !from.joins.is_empty() {
        return None;
    }
    let TableFactor::Table {
        name: rel, alias, ..
    } = &from.relation
    else {
        return None;
    };
    if rel.0.len() != 1 || rel.0[0].as_ident().map(ident_value) != Some(name.clone()) {
        return None;
    }
    if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return None;
    }
    let mut perm = Vec::new();
    for item in &outer.projection {
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return None,
        };
        let col = match e {
            Expr::Identifier(id) => ident_value(id),
            Expr::CompoundIdentifier(p) if p.len() == 2 => ident_value(&p[1]),
            _ => return None,
        };
        perm.push(cte_cols.iter().position(|c| *c == col)?);
    }
    let mut seen = perm.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != cte_cols.len() || perm.len() != outputs.len() {
        return None;
    }
    let cte_alias = step_factors.iter().find_map(|f| match f {
        Factor::Cte { alias } => Some(alias.clone()),
        _ => None,
    })?;
    let mut conds: Vec<&Expr> = step.selection.iter().collect();
    for twj in &step.from {
        for j in &twj.joins {
            if let JoinOperator::Join(JoinConstraint::On(e))
            | JoinOperator::Inner(JoinConstraint::On(e)) = &j.join_operator
            {
                conds.push(e);
            }
        }
    }
    let mut lookup_columns = Vec::new();
    for c in conds {
        for col in equalities_on(c, &cte_alias) {
            if let Some(j) = cte_cols.iter().position(|x| *x == col) {
                if let Some(i) = perm.iter().position(|&p| p == j) {
                    if !lookup_columns.contains(&outputs[i]) {
                        lookup_columns.push(outputs[i].clone());
                    }
                }
            }
        }
    }
    let mut mentioned = Vec::new();
    for s in [base.as_ref(), step.as_ref()] {
        let _ = sqlparser::ast::visit_expressions(s, |e: &Expr| {
            match e {
                Expr::Identifier(id) => mentioned.push(ident_value(id)),
                Expr::CompoundIdentifier(p) => mentioned.extend(p.last().map(ident_value)),
                _ => {}
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    Some(SemiNaive {
        mentioned,
        cte_cols,
        perm,
        base: base.as_ref().clone(),
        step: step.as_ref().clone(),
        base_factors,
        step_factors,
        lookup_columns,
    })
}

/// The columns of `alias` that a conjunct of `e` compares by `=` with an expression
/// that does not name `alias`.
fn equalities_on(e: &Expr, alias: &str) -> Vec<String> {
    use sqlparser::ast::BinaryOperator;
    let names_alias = |x: &Expr| {
        use sqlparser::ast::{Visit, Visitor};
        struct F<'a>(&'a str, bool);
        impl Visitor for F<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
                if let Expr::CompoundIdentifier(p) = e {
                    if p.len() == 2 && ident_value(&p[0]) == self.0 {
                        self.1 = true;
                    }
                }
                std::ops::ControlFlow::Continue(())
            }
        }
        let mut f = F(alias, false);
        let _ = x.visit(&mut f);
        f.1
    };
    let col_of = |x: &Expr| match x {
        Expr::CompoundIdentifier(p) if p.len() == 2 && ident_value(&p[0]) == alias => {
            Some(ident_value(&p[1]))
        }
        _ => None,
    };
    match e {
        Expr::Nested(inner) => equalities_on(inner, alias),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut v = equalities_on(left, alias);
            v.extend(equalities_on(right, alias));
            v
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => match (col_of(left), col_of(right)) {
            (Some(c), None) if !names_alias(right) => vec![c],
            (None, Some(c)) if !names_alias(left) => vec![c],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The factors of an inner-join FROM clause, in order; `None` for anything else.
fn factors(s: &Select, cte: &str, sources: &[Table]) -> Option<Vec<Factor>> {
    let mut out = Vec::new();
    for twj in &s.from {
        out.push(factor(&twj.relation, cte, sources)?);
        for j in &twj.joins {
            match &j.join_operator {
                JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) => {}
                _ => return None,
            }
            out.push(factor(&j.relation, cte, sources)?);
        }
    }
    Some(out)
}

fn factor(f: &TableFactor, cte: &str, sources: &[Table]) -> Option<Factor> {
    let TableFactor::Table {
        name, alias, args, ..
    } = f
    else {
        return None;
    };
    if args.is_some() || alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return None;
    }
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(ident_value))
        .collect::<Option<_>>()?;
    let alias = alias.as_ref().map(|a| ident_value(&a.name));
    match parts.as_slice() {
        [n] if n == cte => Some(Factor::Cte {
            alias: alias.unwrap_or_else(|| n.clone()),
        }),
        [schema, n] => {
            let index = sources
                .iter()
                .position(|t| t.name.schema == *schema && t.name.name == *n)?;
            Some(Factor::Source {
                index,
                alias: alias.unwrap_or_else(|| n.clone()),
            })
        }
        _ => None,
    }
}

fn has_subquery(s: &Select) -> bool {
    use sqlparser::ast::{Visit, Visitor};
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _q: &Query) -> std::ops::ControlFlow<()> {
            self.0 = true;
            std::ops::ControlFlow::Break(())
        }
    }
    let mut f = Finder(false);
    let _ = s.visit(&mut f);
    f.0
}

impl SemiNaive {
    /// The columns of source `t` that the refresh statements read, in table order:
    /// those the query mentions, and the primary key. A column it does not read may
    /// be dropped, renamed or added without changing these statements' meaning.
    pub(crate) fn read_columns<'t>(&self, t: &'t Table) -> Vec<&'t str> {
        t.columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| {
                self.mentioned.iter().any(|m| m == c) || t.primary_key.iter().any(|k| k == c)
            })
            .collect()
    }
}
