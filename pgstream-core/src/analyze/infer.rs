//! The type walker: one pass over a query's AST with PostgreSQL's scoping (CTEs,
//! FROM relations with outer-join padding, correlated subqueries) that infers the
//! type and nullability of every expression (`infer_expr`) by the rules of
//! `types`. Entry points: [`annotate`] (output column types), [`check`]
//! (comparisons PostgreSQL cannot make); `nullability` explains a NULL with it.

use super::types::*;
use super::OutputColumn;
use crate::catalog::Catalog;
use crate::error::{Diagnostic, Error, Result};
use crate::sql::ident::{ident_value, qualified};
use crate::sql::parse::expr_range;
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, JoinConstraint, JoinOperator, Query, Select, SelectItem, SetExpr,
    SetOperator, SetQuantifier, TableFactor, TableWithJoins, Value,
};

/// Fill in `sql_type` and `nullable` of `columns`, the compiled output columns of
/// `query`. Columns are matched by position and name; a column that cannot be matched
/// stays unknown.
pub(crate) fn annotate(query: &str, q: &Query, catalog: &Catalog, columns: &mut [OutputColumn]) {
    let mut inf = Infer::new(query, catalog);
    let Some(out) = inf.query(
        q,
        Outer {
            ctes: &[],
            parent: None,
        },
    ) else {
        return;
    };
    for (i, c) in columns.iter_mut().enumerate() {
        let hit = match out.get(i) {
            Some((n, t)) if *n == c.name => Some(t),
            _ => {
                let mut same = out.iter().filter(|(n, _)| *n == c.name);
                match (same.next(), same.next()) {
                    (Some((_, t)), None) => Some(t),
                    _ => None,
                }
            }
        };
        if let Some(t) = hit {
            c.sql_type = t.sql.as_deref().map(|s| {
                if s == "unknown" {
                    "text".to_string()
                } else {
                    s.to_string()
                }
            });
            c.nullable = t.null;
        }
    }
}

/// Comparisons PostgreSQL cannot make: grouping, `DISTINCT`, `UNION` or comparing
/// values of a type without an equality operator (`json`, `xml`, `point`). The error
/// points at the expression and suggests `jsonb` or a cast.
pub(crate) fn check(query: &str, q: &Query, catalog: &Catalog) -> Result<()> {
    let mut inf = Infer::new(query, catalog);
    let _ = inf.query(
        q,
        Outer {
            ctes: &[],
            parent: None,
        },
    );
    match inf.error {
        Some(d) => Err(Error::Invalid(d)),
        None => Ok(()),
    }
}

pub(super) type Columns = Vec<(String, Ty)>;

/// A relation of a FROM clause: its name in the query and its columns (`None` when
/// they are not known, e.g. a table function).
#[derive(Debug, Clone)]
pub(super) struct Rel {
    pub(super) name: String,
    pub(super) cols: Option<Columns>,
}

pub(super) struct Scope<'p> {
    pub(super) rels: Vec<Rel>,
    pub(super) parent: Option<&'p Scope<'p>>,
}

/// How column references outside aggregates behave in the current SELECT.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ctx {
    /// GROUP BY with at least one expression and no grouping sets.
    pub(super) grouped: bool,
    /// ROLLUP, CUBE or GROUPING SETS: grouped columns are NULL in subtotal rows.
    pub(super) grouping_sets: bool,
    /// Inside an aggregate's argument.
    pub(super) in_agg: bool,
}

pub(super) struct Infer<'a> {
    pub(super) text: &'a str,
    pub(super) catalog: &'a Catalog,
    pub(super) error: Option<Diagnostic>,
}

pub(super) type Ctes = [(String, Columns)];

/// What a query is typed in: the CTEs in scope and, for a subquery, the scope of the
/// query around it (its columns can be named).
#[derive(Clone, Copy)]
pub(super) struct Outer<'a> {
    pub(super) ctes: &'a Ctes,
    pub(super) parent: Option<&'a Scope<'a>>,
}

pub(super) fn rename(cols: &mut Columns, names: &[String]) {
    for (c, n) in cols.iter_mut().zip(names) {
        c.0 = n.clone();
    }
}

pub(super) fn pad(rels: &mut [Rel]) {
    for r in rels {
        if let Some(cols) = &mut r.cols {
            for (_, t) in cols {
                t.null = Some(true);
            }
        }
    }
}

/// Resolve a column reference in the scope, then in the enclosing scopes.
pub(super) fn resolve(sc: &Scope, qual: Option<&str>, name: &str) -> Option<Ty> {
    let mut hits: Vec<&Ty> = Vec::new();
    let mut opaque = false;
    for r in &sc.rels {
        if qual.is_some_and(|q| q != r.name) {
            continue;
        }
        match &r.cols {
            Some(cols) => hits.extend(cols.iter().filter(|(n, _)| n == name).map(|(_, t)| t)),
            None => opaque = true,
        }
    }
    match hits.as_slice() {
        [] if opaque => Some(Ty::unknown()),
        [] => sc.parent.and_then(|p| resolve(p, qual, name)),
        [one] => Some((*one).clone()),
        // a column merged by USING or NATURAL
        many => Some(Ty {
            sql: common(&many.iter().map(|t| t.sql.clone()).collect::<Vec<_>>()),
            null: if many.iter().all(|t| t.null == Some(false)) {
                Some(false)
            } else {
                None
            },
        }),
    }
}

/// UNION, INTERSECT and EXCEPT: the common type per column; the left branch names them.
pub(super) fn combine(
    op: &SetOperator,
    _q: &SetQuantifier,
    l: Option<Columns>,
    r: Option<Columns>,
) -> Option<Columns> {
    let l = l?;
    let Some(r) = r else {
        return Some(l.into_iter().map(|(n, _)| (n, Ty::unknown())).collect());
    };
    if l.len() != r.len() {
        return None;
    }
    Some(
        l.into_iter()
            .zip(r)
            .map(|((n, a), (_, b))| {
                let sql = common(&[a.sql.clone(), b.sql.clone()]);
                let null = match op {
                    SetOperator::Intersect => match (a.null, b.null) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    SetOperator::Except => a.null,
                    _ => strict([a.null, b.null]),
                };
                (n, Ty { sql, null })
            })
            .collect(),
    )
}

pub(super) fn first_select(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::Query(q) => first_select(&q.body),
        SetExpr::SetOperation { left, .. } => first_select(left),
        _ => None,
    }
}

impl<'a> Infer<'a> {
    pub(super) fn new(text: &'a str, catalog: &'a Catalog) -> Self {
        Infer {
            text,
            catalog,
            error: None,
        }
    }

    pub(super) fn report(&mut self, d: Diagnostic) {
        if self.error.is_none() {
            self.error = Some(d);
        }
    }

    /// The output columns of a query, or `None` when they cannot be determined.
    pub(super) fn query(&mut self, q: &Query, outer: Outer<'_>) -> Option<Columns> {
        let Outer { ctes, parent } = outer;
        let mut env: Vec<(String, Columns)> = ctes.to_vec();
        if let Some(w) = &q.with {
            for c in &w.cte_tables {
                let name = ident_value(&c.alias.name);
                let rename = |cols: Columns| -> Columns {
                    if c.alias.columns.is_empty() {
                        cols
                    } else {
                        cols.into_iter()
                            .zip(&c.alias.columns)
                            .map(|((_, t), cd)| (ident_value(&cd.name), t))
                            .collect()
                    }
                };
                let cols = match (w.recursive, c.query.body.as_ref()) {
                    (
                        true,
                        SetExpr::SetOperation {
                            op: SetOperator::Union,
                            set_quantifier,
                            left,
                            right,
                        },
                    ) => {
                        // The non-recursive term fixes the types; the recursive term can
                        // only add NULLs. Iterate until nullability is stable.
                        let mut cols = self
                            .set_expr(left, Outer { ctes: &env, parent })
                            .map(rename);
                        for _ in 0..4 {
                            let Some(cur) = cols.clone() else { break };
                            let mut inner = env.clone();
                            inner.push((name.clone(), cur.clone()));
                            let r = self.set_expr(
                                right,
                                Outer {
                                    ctes: &inner,
                                    parent,
                                },
                            );
                            let next =
                                combine(&SetOperator::Union, set_quantifier, Some(cur.clone()), r)
                                    .map(|n| {
                                        // names and types stay those of the first term
                                        cur.iter()
                                            .zip(n)
                                            .map(|((name, t), (_, u))| {
                                                (
                                                    name.clone(),
                                                    Ty {
                                                        sql: t.sql.clone(),
                                                        null: u.null,
                                                    },
                                                )
                                            })
                                            .collect::<Columns>()
                                    });
                            if next == cols {
                                break;
                            }
                            cols = next;
                        }
                        cols
                    }
                    _ => self
                        .query(&c.query, Outer { ctes: &env, parent })
                        .map(rename),
                };
                env.push((name, cols.unwrap_or_default()));
            }
        }
        self.set_expr(&q.body, Outer { ctes: &env, parent })
    }

    pub(super) fn set_expr(&mut self, body: &SetExpr, outer: Outer<'_>) -> Option<Columns> {
        let Outer { ctes, parent } = outer;
        match body {
            SetExpr::Select(s) => self.select(s, outer),
            SetExpr::Query(q) => self.query(q, outer),
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                let l = self.set_expr(left, outer);
                let r = self.set_expr(right, outer);
                let out = combine(op, set_quantifier, l, r);
                let dedup = !matches!(
                    set_quantifier,
                    SetQuantifier::All | SetQuantifier::AllByName
                );
                if dedup {
                    if let Some(cols) = &out {
                        for (i, (name, t)) in cols.iter().enumerate() {
                            let span = first_select(left)
                                .and_then(|s| s.projection.get(i))
                                .and_then(|item| match item {
                                    SelectItem::UnnamedExpr(e)
                                    | SelectItem::ExprWithAlias { expr: e, .. } => {
                                        expr_range(self.text, e)
                                    }
                                    _ => None,
                                });
                            self.incomparable(t, true, &format!("{op} (without ALL) removes duplicate rows, so it compares the column `{name}`"), span, name);
                        }
                    }
                }
                out
            }
            SetExpr::Values(v) => {
                let scope = Scope {
                    rels: vec![],
                    parent,
                };
                let rows: Vec<Vec<Ty>> = v
                    .rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|e| self.expr(e, &scope, ctes, Ctx::default()))
                            .collect()
                    })
                    .collect();
                let width = rows.first()?.len();
                Some(
                    (0..width)
                        .map(|i| {
                            let col: Vec<&Ty> = rows.iter().filter_map(|r| r.get(i)).collect();
                            (
                                format!("column{}", i + 1),
                                Ty {
                                    sql: common(
                                        &col.iter().map(|t| t.sql.clone()).collect::<Vec<_>>(),
                                    ),
                                    null: strict(col.iter().map(|t| t.null)),
                                },
                            )
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }

    pub(super) fn select(&mut self, s: &Select, outer: Outer<'_>) -> Option<Columns> {
        let Outer { ctes, parent } = outer;
        let mut rels = Vec::new();
        for twj in &s.from {
            let lateral = Scope {
                rels: rels.clone(),
                parent,
            };
            let more = self.table_with_joins(twj, ctes, &lateral);
            rels.extend(more);
        }
        let scope = Scope { rels, parent };

        let (group, grouping_sets) = match &s.group_by {
            GroupByExpr::Expressions(exprs, mods) => {
                let sets = !mods.is_empty()
                    || exprs.iter().any(|e| {
                        matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_))
                    });
                (exprs.clone(), sets)
            }
            GroupByExpr::All(_) => (vec![], true),
        };
        let ctx = Ctx {
            grouped: !group.is_empty() && !grouping_sets,
            grouping_sets,
            in_agg: false,
        };

        // WHERE and HAVING: only for the equality check
        if let Some(w) = &s.selection {
            self.expr(w, &scope, ctes, Ctx::default());
        }
        if let Some(h) = &s.having {
            self.expr(h, &scope, ctes, ctx);
        }

        let mut out: Columns = Vec::new();
        let mut items: Vec<Option<&Expr>> = Vec::new();
        let mut complete = true;
        for item in &s.projection {
            match item {
                // `expr AS (a, b)` is not PostgreSQL's: the binder refuses it.
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAliases { expr: e, .. } => {
                    out.push((
                        crate::sql::walk::output_name(e),
                        self.expr(e, &scope, ctes, ctx),
                    ));
                    items.push(Some(e));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    out.push((ident_value(alias), self.expr(expr, &scope, ctes, ctx)));
                    items.push(Some(expr));
                }
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    let qual = match item {
                        SelectItem::QualifiedWildcard(k, _) => {
                            Some(k.to_string().to_lowercase().rsplit('.').next()?.to_string())
                        }
                        _ => None,
                    };
                    for r in &scope.rels {
                        if qual.as_ref().is_some_and(|q| *q != r.name) {
                            continue;
                        }
                        match &r.cols {
                            Some(cols) => {
                                for c in cols.iter().filter(|(n, _)| !n.starts_with("__pgs_")) {
                                    let mut c = c.clone();
                                    if grouping_sets {
                                        c.1.null = Some(true);
                                    }
                                    out.push(c);
                                    items.push(None);
                                }
                            }
                            None => complete = false,
                        }
                    }
                }
            }
        }

        // Grouping and DISTINCT compare values.
        for g in &group {
            let exprs: Vec<&Expr> = match g {
                Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
                    sets.iter().flatten().collect()
                }
                e => vec![e],
            };
            for e in exprs {
                // GROUP BY 2 or GROUP BY <output name>
                let t = match e {
                    Expr::Value(v) => match &v.value {
                        Value::Number(n, _) => n
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| out.get(i.wrapping_sub(1)))
                            .map(|(_, t)| t.clone())
                            .unwrap_or_default(),
                        _ => Ty::unknown(),
                    },
                    Expr::Identifier(i) if resolve(&scope, None, &ident_value(i)).is_none() => out
                        .iter()
                        .find(|(n, _)| *n == ident_value(i))
                        .map(|(_, t)| t.clone())
                        .unwrap_or_default(),
                    _ => self.expr(e, &scope, ctes, Ctx::default()),
                };
                self.incomparable(
                    &t,
                    true,
                    "GROUP BY compares the values of this expression",
                    expr_range(self.text, e),
                    &e.to_string(),
                );
            }
        }
        match &s.distinct {
            Some(Distinct::Distinct) => {
                for (i, (name, t)) in out.iter().enumerate() {
                    let span = items
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|e| expr_range(self.text, e));
                    self.incomparable(
                        t,
                        true,
                        &format!("DISTINCT compares the values of the column `{name}`"),
                        span,
                        name,
                    );
                }
            }
            Some(Distinct::On(exprs)) => {
                for e in exprs {
                    let t = self.expr(e, &scope, ctes, ctx);
                    self.incomparable(
                        &t,
                        true,
                        "DISTINCT ON compares the values of this expression",
                        expr_range(self.text, e),
                        &e.to_string(),
                    );
                }
            }
            None | Some(Distinct::All) => {}
        }
        complete.then_some(out)
    }

    /// The relations of one FROM item, with outer-join padding applied.
    pub(super) fn table_with_joins(
        &mut self,
        twj: &TableWithJoins,
        ctes: &Ctes,
        outer: &Scope,
    ) -> Vec<Rel> {
        let mut rels = self.factor(&twj.relation, ctes, outer);
        for j in &twj.joins {
            let lateral = Scope {
                rels: outer.rels.iter().chain(&rels).cloned().collect(),
                parent: outer.parent,
            };
            let mut right = self.factor(&j.relation, ctes, &lateral);
            let (pad_left, pad_right, constraint) = match &j.join_operator {
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (false, true, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (true, false, Some(c)),
                JoinOperator::FullOuter(c) => (true, true, Some(c)),
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, false, Some(c)),
                _ => (false, false, None),
            };
            // the join condition sees both sides before padding
            let both = Scope {
                rels: outer
                    .rels
                    .iter()
                    .chain(&rels)
                    .chain(&right)
                    .cloned()
                    .collect(),
                parent: outer.parent,
            };
            match constraint {
                Some(JoinConstraint::On(on)) => {
                    self.expr(on, &both, ctes, Ctx::default());
                }
                Some(JoinConstraint::Using(cols)) => {
                    for c in cols {
                        let name = c.to_string().to_lowercase();
                        if let Some(t) = resolve(&both, None, &name) {
                            self.incomparable(
                                &t,
                                true,
                                &format!("the join compares `{name}` on both sides"),
                                None,
                                &name,
                            );
                        }
                    }
                }
                _ => {}
            }
            if pad_left {
                pad(&mut rels);
            }
            if pad_right {
                pad(&mut right);
            }
            rels.extend(right);
        }
        rels
    }

    pub(super) fn factor(&mut self, f: &TableFactor, ctes: &Ctes, outer: &Scope) -> Vec<Rel> {
        match f {
            f if super::srf::item(f).is_some() => {
                let Some(Ok(item)) = super::srf::item(f) else {
                    return vec![Rel {
                        name: String::new(),
                        cols: None,
                    }];
                };
                let types: Vec<Vec<Ty>> = item
                    .calls
                    .iter()
                    .map(|c| {
                        c.args
                            .iter()
                            .map(|a| self.expr(a, outer, ctes, Ctx::default()))
                            .collect()
                    })
                    .collect();
                let cols = super::srf::columns(&item, &types).ok().map(|cols| {
                    cols.into_iter()
                        .filter(|(n, _)| n != "__pgs_ord")
                        .collect::<Columns>()
                });
                vec![Rel {
                    name: item.rel_name(),
                    cols,
                }]
            }
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let q = qualified(name);
                let rel_name = alias
                    .as_ref()
                    .map(|a| ident_value(&a.name))
                    .unwrap_or_else(|| q.name.clone());
                let mut cols = if args.is_some() {
                    None
                } else if let Some((_, cols)) = (name.0.len() == 1)
                    .then(|| ctes.iter().rev().find(|(n, _)| *n == q.name))
                    .flatten()
                {
                    Some(cols.clone())
                } else {
                    self.catalog
                        .lookup((name.0.len() > 1).then_some(q.schema.as_str()), &q.name)
                        .map(|t| {
                            t.columns
                                .iter()
                                .map(|c| {
                                    (
                                        c.name.clone(),
                                        Ty::new(&canonical(&c.sql_type), Some(c.nullable)),
                                    )
                                })
                                .collect()
                        })
                };
                if let (Some(a), Some(c)) = (alias, cols.as_mut()) {
                    rename_by_alias(c, a);
                }
                vec![Rel {
                    name: rel_name,
                    cols,
                }]
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                let parent = if *lateral { Some(outer) } else { outer.parent };
                let mut cols = self.query(subquery, Outer { ctes, parent });
                if let (Some(a), Some(c)) = (alias, cols.as_mut()) {
                    rename_by_alias(c, a);
                }
                vec![Rel {
                    name: alias
                        .as_ref()
                        .map(|a| ident_value(&a.name))
                        .unwrap_or_default(),
                    cols,
                }]
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let rels = self.table_with_joins(table_with_joins, ctes, outer);
                match alias {
                    // an aliased join hides the names inside it
                    Some(a) => {
                        let cols = rels
                            .iter()
                            .map(|r| r.cols.clone())
                            .collect::<Option<Vec<Columns>>>()
                            .map(|v| v.concat());
                        vec![Rel {
                            name: ident_value(&a.name),
                            cols,
                        }]
                    }
                    None => rels,
                }
            }
            other => {
                let name = match other {
                    TableFactor::Function { alias, .. }
                    | TableFactor::UNNEST { alias, .. }
                    | TableFactor::TableFunction { alias, .. } => alias.as_ref(),
                    _ => None,
                }
                .map(|a| ident_value(&a.name))
                .unwrap_or_default();
                vec![Rel { name, cols: None }]
            }
        }
    }
}

/// The types of `args`, expressions over the relations `rels` (name, and per column
/// its name, type and nullability): the arguments of a function in FROM, for the
/// binder.
pub(crate) fn arg_types(
    text: &str,
    catalog: &Catalog,
    args: &[&Expr],
    rels: Vec<RelColumns>,
) -> Vec<Ty> {
    let scope = Scope {
        rels: rels
            .into_iter()
            .map(|(name, cols)| Rel {
                name,
                cols: Some(
                    cols.into_iter()
                        .map(|(n, sql, null)| (n, Ty { sql, null }))
                        .collect(),
                ),
            })
            .collect(),
        parent: None,
    };
    let mut inf = Infer::new(text, catalog);
    args.iter()
        .map(|a| inf.expr(a, &scope, &[], Ctx::default()))
        .collect()
}

/// A relation for [`arg_types`]: its name and its columns (name, type, nullability).
pub(crate) type RelColumns = (String, Vec<(String, Option<String>, Option<bool>)>);

/// Rename the columns of a relation by the column list of its alias (`AS a(x, y)`).
pub(super) fn rename_by_alias(cols: &mut Columns, alias: &sqlparser::ast::TableAlias) {
    let names: Vec<String> = alias.columns.iter().map(|c| ident_value(&c.name)).collect();
    rename(cols, &names);
}
