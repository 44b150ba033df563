//! Aggregate subqueries kept as one relation (a leaf): `(SELECT g, agg(x) FROM t
//! GROUP BY g) AS s` in FROM, and a correlated scalar aggregate LEFT JOINed on its
//! correlation keys (`strategy::aggregate_subquery` maintains them); over one table,
//! or several comma-separated ones whose group keys are over one of them.

use super::*;
use crate::sql::limits;

impl Binder<'_> {
    /// `(SELECT g, agg(x) FROM t [WHERE ...] GROUP BY g [HAVING ...]) AS alias` (or
    /// `SELECT DISTINCT g FROM t ...`): an aggregate over one table whose every GROUP
    /// BY expression is an output column becomes one leaf, identified by its group
    /// keys (see [`AggLeaf`]). Over several comma-separated tables (`FROM t, u WHERE
    /// ...`) too, with `GROUP BY` expressions all over one of them, which becomes the
    /// leaf's first table ([`AggLeaf::joined`] the others). `None` when the subquery
    /// is not of that form (the caller then tries to inline it).
    pub(super) fn aggregate_leaf(
        &mut self,
        q: &Query,
        alias: &str,
        col_names: &[String],
        f: &TableFactor,
    ) -> Result<Option<Tree>> {
        let flat = inner_joins_as_conditions(q);
        let q = flat.as_ref().unwrap_or(q);
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return Ok(None);
        };
        // `SELECT DISTINCT a, b` is `GROUP BY a, b`.
        let distinct_items: Vec<Expr>;
        let no_groups: Vec<Expr> = Vec::new();
        let groups = match (&sel.group_by, &sel.distinct) {
            (GroupByExpr::Expressions(g, m), None) if !g.is_empty() && m.is_empty() => g,
            // An aggregate without GROUP BY (`SELECT sum(x) FROM t`): one group, keyed
            // by nothing, at most one row. Every item must be over aggregates only.
            (GroupByExpr::Expressions(g, m), None)
                if g.is_empty()
                    && m.is_empty()
                    && sel.projection.iter().all(|item| match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            contains_aggregate(e)
                        }
                        _ => false,
                    }) =>
            {
                &no_groups
            }
            (GroupByExpr::Expressions(g, _), Some(sqlparser::ast::Distinct::Distinct))
                if g.is_empty() && sel.having.is_none() =>
            {
                let mut v = Vec::new();
                for item in &sel.projection {
                    match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }
                            if !contains_aggregate(e) =>
                        {
                            v.push(e.clone())
                        }
                        _ => return Ok(None),
                    }
                }
                distinct_items = v;
                &distinct_items
            }
            _ => return Ok(None),
        };
        if q.with.is_some()
            || limits::limits_rows(q)
            || sel.top.is_some()
            || sel.qualify.is_some()
            || !sel.named_window.is_empty()
            || sel.from.is_empty()
            || sel.from.iter().any(|t| !t.joins.is_empty())
            // Over several tables, grouped: the groups the changes touch are found
            // through the join (an aggregate of the whole join is not kept this way).
            || (sel.from.len() > 1 && groups.is_empty())
        {
            return Ok(None);
        }
        // The tables, comma-separated: plain tables, not CTEs, without column aliases.
        let mut from_tables = Vec::new();
        for t in &sel.from {
            let TableFactor::Table {
                name,
                alias: t_alias,
                args: None,
                ..
            } = &t.relation
            else {
                return Ok(None);
            };
            if t_alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                return Ok(None);
            }
            if let [part] = name.0.as_slice() {
                if part
                    .as_ident()
                    .is_some_and(|i| self.cte(&ident_value(i)).is_some())
                {
                    return Ok(None);
                }
            }
            from_tables.push((name, t_alias));
        }
        // No subqueries or window functions inside.
        struct Plain(bool);
        impl sqlparser::ast::Visitor for Plain {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                let bad = crate::sql::walk::is_subquery(e)
                    || matches!(e, Expr::Function(f) if f.over.is_some());
                if bad {
                    self.0 = false;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            }
        }
        let mut plain = Plain(true);
        let _ = sqlparser::ast::Visit::visit(q, &mut plain);
        if !plain.0 {
            return Ok(None);
        }
        let mut items: Vec<(String, &Expr)> = Vec::new();
        for item in &sel.projection {
            match item {
                SelectItem::UnnamedExpr(e) => items.push((output_name(e), e)),
                SelectItem::ExprWithAlias { expr: e, alias } => items.push((ident_value(alias), e)),
                _ => return Ok(None),
            }
        }
        // Each GROUP BY expression is an output column (by its text or its position).
        let mut key_cols = Vec::new();
        let mut group_exprs: Vec<&Expr> = Vec::new();
        for g in groups {
            let pos = match g {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n.parse::<usize>().ok().and_then(|k| k.checked_sub(1)),
                    _ => None,
                },
                _ => items
                    .iter()
                    .position(|(_, e)| e.to_string() == g.to_string()),
            };
            let Some(pos) = pos.filter(|p| *p < items.len()) else {
                return Ok(None);
            };
            if !key_cols.contains(&pos) {
                key_cols.push(pos);
                group_exprs.push(items[pos].1);
            }
        }
        // Bind the parts against the tables alone, for their errors (unknown columns,
        // volatile functions, misplaced aggregates); the markers are not kept.
        let mark = self.leaves.len();
        // Per table: its source, its alias inside the subquery, the columns read.
        let mut inner: Vec<(usize, String, Vec<usize>)> = Vec::new();
        for (name, t_alias) in &from_tables {
            let source = self.table(name)?;
            let table = self.sources[source].clone();
            let inner_alias = t_alias
                .as_ref()
                .map(|a| ident_value(&a.name))
                .unwrap_or_else(|| table.name.name.clone());
            let used: Vec<usize> = table
                .primary_key
                .iter()
                .filter_map(|k| table.column_index(k))
                .collect();
            self.leaves.push(Leaf {
                source,
                alias: inner_alias.clone(),
                table,
                agg: None,
                func: None,
            });
            inner.push((source, inner_alias, used));
        }
        self.frames
            .push((mark..self.leaves.len()).map(Entry::Leaf).collect());
        let checked = (|| {
            let mut bound = Vec::new();
            for (_, e) in &items {
                bound.push(self.bind_expr(e, true)?);
            }
            if let Some(w) = &sel.selection {
                bound.push(self.bind_expr(w, false)?);
            }
            let mut groups = Vec::new();
            for g in &group_exprs {
                groups.push(self.bind_expr(g, false)?);
            }
            if let Some(h) = &sel.having {
                bound.push(self.bind_expr(h, true)?);
            }
            Ok::<(Vec<Expr>, Vec<Expr>), Error>((bound, groups))
        })();
        self.frames.pop();
        self.leaves.truncate(mark);
        let (bound, bound_groups) = checked?;
        for e in bound.iter().chain(&bound_groups) {
            for (l, c) in column_markers(e) {
                let Some((_, _, used)) = l.checked_sub(mark).and_then(|k| inner.get_mut(k)) else {
                    // a name of an enclosing query: not a plain subquery in FROM
                    return Ok(None);
                };
                if !used.contains(&c) {
                    used.push(c);
                }
            }
        }
        for (_, _, used) in &mut inner {
            used.sort_unstable();
        }
        // Over several tables the group keys are all over one, which comes first.
        if inner.len() > 1 {
            let mut over: Vec<usize> = bound_groups
                .iter()
                .flat_map(column_markers)
                .map(|(l, _)| l - mark)
                .collect();
            over.sort_unstable();
            over.dedup();
            let [first] = over[..] else {
                return Ok(None);
            };
            let t = inner.remove(first);
            inner.insert(0, t);
        }
        let mut inner = inner.into_iter();
        let (source, inner_alias, used) = inner.next().expect("a table");
        let joined: Vec<crate::ir::JoinedTable> = inner
            .map(|(source, alias, used)| crate::ir::JoinedTable {
                source,
                alias,
                used,
            })
            .collect();
        let table = self.sources[source].clone();
        let mut names: Vec<String> = items.iter().map(|(n, _)| n.clone()).collect();
        if col_names.len() > names.len() {
            return Ok(None);
        }
        // The output types, for NULL padding and the types of expressions over them.
        let item_sql: Vec<Sql> = items.iter().map(|(_, e)| Sql::expr(e)).collect();
        // The leaf's own query as an AST (the items under their names, the table by its
        // qualified name under the inner alias, grouped by the key expressions), typed
        // by the walker without printing and parsing it again.
        let mut leaf_sel = (**sel).clone();
        leaf_sel.distinct = None;
        leaf_sel.projection = items
            .iter()
            .zip(&names)
            .map(|((_, e), n)| SelectItem::ExprWithAlias {
                expr: (*e).clone(),
                alias: Ident::with_quote('"', n.clone()),
            })
            .collect();
        // Each table by its qualified name under its alias (the first is the one the
        // group keys are over, wherever the query wrote it).
        let mut renamed = Vec::new();
        for (s, a) in std::iter::once((source, &inner_alias))
            .chain(joined.iter().map(|j| (j.source, &j.alias)))
        {
            let t = &self.sources[s];
            // A plain table's item (the first's), renamed.
            let mut item = leaf_sel.from[0].clone();
            if let TableFactor::Table { name, alias, .. } = &mut item.relation {
                *name = sqlparser::ast::ObjectName::from(vec![
                    Ident::with_quote('"', t.name.schema.clone()),
                    Ident::with_quote('"', t.name.name.clone()),
                ]);
                *alias = Some(crate::sql::walk::table_alias(Ident::with_quote(
                    '"',
                    a.clone(),
                )));
            }
            renamed.push(item);
        }
        leaf_sel.from = renamed;
        leaf_sel.group_by = GroupByExpr::Expressions(
            group_exprs.iter().map(|g| (*g).clone()).collect(),
            Vec::new(),
        );
        let mut leaf_query = q.clone();
        leaf_query.order_by = None;
        *leaf_query.body = SetExpr::Select(Box::new(leaf_sel));
        let mut cols: Vec<crate::ir::OutputColumn> = names
            .iter()
            .map(|n| crate::ir::OutputColumn {
                name: n.clone(),
                sql_type: None,
                nullable: None,
            })
            .collect();
        // Its nodes come from the defining query, so their spans point into its text.
        crate::analyze::infer::annotate(self.query, &leaf_query, self.catalog, &mut cols);
        if cols.iter().any(|c| c.sql_type.is_none()) {
            return Ok(None);
        }
        for (n, c) in names.iter_mut().zip(col_names) {
            *n = c.clone();
        }
        if names
            .iter()
            .enumerate()
            .any(|(i, n)| n.is_empty() || names[..i].contains(n))
        {
            return Ok(None);
        }
        if self.frame_has_alias(alias) {
            return Err(Error::Invalid(
                Diagnostic::new(format!("table name `{alias}` specified more than once"))
                    .with_span(span_range(self.query, f.span())),
            ));
        }
        let leaf_table = Table {
            name: crate::spec::QualifiedName::new("", alias),
            columns: names
                .iter()
                .zip(&cols)
                .map(|(n, c)| crate::catalog::Column {
                    name: n.clone(),
                    sql_type: c.sql_type.clone().unwrap_or_default(),
                    nullable: c.nullable.unwrap_or(true),
                })
                .collect(),
            primary_key: key_cols.iter().map(|&k| names[k].clone()).collect(),
            oid: None,
        };
        self.leaves.push(Leaf {
            source,
            alias: alias.to_string(),
            table: leaf_table,
            agg: Some(AggLeaf {
                alias: inner_alias,
                items: item_sql,
                filter: sel.selection.as_ref().map(Sql::expr),
                groups: group_exprs.iter().map(|g| Sql::expr(g)).collect(),
                having: sel.having.as_ref().map(Sql::expr),
                key_cols,
                text: q.to_string(),
                used,
                joined,
                inverse: if groups.is_empty() && sel.having.is_none() {
                    items
                        .iter()
                        .map(|(_, e)| inverse(e, &table))
                        .collect::<Option<Vec<_>>>()
                } else {
                    None
                },
            }),
            func: None,
        });
        let idx = self.leaves.len() - 1;
        if let Some(frame) = self.frames.last_mut() {
            frame.push(Entry::Leaf(idx));
        }
        Ok(Some(Tree::Leaf(idx)))
    }

    /// A correlated aggregate over one table, or several comma-separated (their
    /// conditions in the `WHERE`): `SELECT agg1(x) [AS a1], ... FROM t
    /// WHERE t.k = o.k AND p(t)` (each item one aggregate call, or `+ - * /` over
    /// calls and constants with a call that is not a count, so that the item is NULL
    /// over no rows as the joined value of a missing group is; no GROUP BY,
    /// correlated by equalities between expressions over `t` and expressions over the
    /// enclosing query) as the same aggregates grouped by the correlation keys,
    /// `SELECT t.k AS __pgs_k0, agg1(x) AS a1, ... FROM t WHERE p(t) GROUP BY t.k`,
    /// with the outer expressions to join it on and, per item, its name and whether
    /// it is a `count` (0, not NULL, over no rows). `names` renames the items. `None`
    /// when the subquery is not of that form. An uncorrelated subquery comes back
    /// with no keys and no outer expressions: its aggregates without GROUP BY, one
    /// row (the callers that join on keys refuse it; `where_scalars_as_joins` takes
    /// it as a cross join).
    pub(super) fn correlated_aggregate(
        &self,
        sub: &Query,
        names: Option<&[String]>,
    ) -> Option<(Query, Vec<Expr>, Vec<AggItem>)> {
        use sqlparser::ast::{BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments};
        let flat = inner_joins_as_conditions(sub);
        let sub = flat.as_ref().unwrap_or(sub);
        let SetExpr::Select(inner) = sub.body.as_ref() else {
            return None;
        };
        if sub.with.is_some()
            || limits::limits_rows(sub)
            || inner.distinct.is_some()
            || inner.having.is_some()
            || !matches!(&inner.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            || inner.from.is_empty()
            || inner.from.iter().any(|t| !t.joins.is_empty())
            || !inner.named_window.is_empty()
        {
            return None;
        }
        // The inner tables (comma-separated, their conditions in the WHERE), each
        // with its alias and its columns: the names that resolve inside.
        let mut scope: Vec<(String, Vec<String>)> = Vec::new();
        for t in &inner.from {
            let TableFactor::Table {
                name: tname,
                alias: talias,
                args: None,
                ..
            } = &t.relation
            else {
                return None;
            };
            if talias.as_ref().is_some_and(|a| !a.columns.is_empty())
                || tname.0.len() == 1
                    && tname.0[0]
                        .as_ident()
                        .is_some_and(|i| self.cte(&ident_value(i)).is_some())
            {
                return None;
            }
            let q = qualified(tname);
            let table = self
                .catalog
                .lookup((tname.0.len() > 1).then_some(q.schema.as_str()), &q.name)?;
            let ia = talias
                .as_ref()
                .map(|a| ident_value(&a.name))
                .unwrap_or_else(|| table.name.name.clone());
            scope.push((ia, table.columns.iter().map(|c| c.name.clone()).collect()));
        }
        // The items: aggregate calls over the inner table only.
        let mut items: Vec<(String, Expr, bool)> = Vec::new();
        for (k, item) in inner.projection.iter().enumerate() {
            let (e, name) = match item {
                SelectItem::UnnamedExpr(e) => (e, output_name(e)),
                SelectItem::ExprWithAlias { expr: e, alias } => (e, ident_value(alias)),
                _ => return None,
            };
            // One aggregate call, or arithmetic over calls and constants that is NULL
            // over no rows as the joined value is: some call in it is not a count
            // (`0.2 * avg(x)`; every operator is strict).
            let mut calls = Vec::new();
            if !strict_over_aggregates(e, &mut calls) {
                return None;
            }
            let bare = matches!(e, Expr::Function(_));
            if calls.is_empty()
                || (!bare
                    && calls
                        .iter()
                        .all(|f| matches!(function_name(f).as_str(), "count" | "regr_count")))
            {
                return None;
            }
            for f in calls {
                if !is_aggregate(f)
                    || VOLATILE.contains(&function_name(f).as_str())
                    || !f.within_group.is_empty()
                {
                    return None;
                }
                let mut parts: Vec<&Expr> = f.filter.iter().map(|x| x.as_ref()).collect();
                match &f.args {
                    FunctionArguments::List(l) => {
                        if !l.clauses.is_empty() {
                            return None;
                        }
                        for a in &l.args {
                            match a {
                                FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => parts.push(x),
                                FunctionArg::Unnamed(_) => {}
                                _ => return None,
                            }
                        }
                    }
                    FunctionArguments::None => {}
                    FunctionArguments::Subquery(_) => return None,
                }
                for x in parts {
                    if correlation_sides(x, &scope)?.1 {
                        return None;
                    }
                }
            }
            let name = match names {
                Some(n) => n.get(k).cloned().unwrap_or(name),
                None => name,
            };
            // the aggregates that are 0 over no rows (the others are NULL)
            let counts = match e {
                Expr::Function(f) => matches!(function_name(f).as_str(), "count" | "regr_count"),
                _ => false,
            };
            items.push((name, e.clone(), counts));
        }
        if items.is_empty() {
            return None;
        }
        let mut keys: Vec<(Expr, Expr)> = Vec::new(); // (inner, outer)
        let mut filters: Vec<Expr> = Vec::new();
        for c in inner.selection.as_ref().map(conjuncts).unwrap_or_default() {
            match correlation_sides(c, &scope)? {
                (_, false) => filters.push(c.clone()),
                (true, true) => {
                    let Expr::BinaryOp {
                        left,
                        op: BinaryOperator::Eq,
                        right,
                    } = c
                    else {
                        return None;
                    };
                    let l = correlation_sides(left, &scope)?;
                    let r = correlation_sides(right, &scope)?;
                    match (l, r) {
                        ((true, false), (false, true)) => {
                            keys.push(((**left).clone(), (**right).clone()))
                        }
                        ((false, true), (true, false)) => {
                            keys.push(((**right).clone(), (**left).clone()))
                        }
                        _ => return None,
                    }
                }
                (false, true) => return None,
            }
        }
        let mut body = (**inner).clone();
        body.projection = keys
            .iter()
            .enumerate()
            .map(|(k, (e, _))| SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::new(format!("__pgs_k{k}")),
            })
            .chain(items.iter().map(|(n, e, _)| SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', n.clone()),
            }))
            .collect();
        body.selection = filters.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        });
        body.group_by =
            GroupByExpr::Expressions(keys.iter().map(|(e, _)| e.clone()).collect(), vec![]);
        let mut subquery = sub.clone();
        subquery.body = Box::new(SetExpr::Select(Box::new(body)));
        subquery.order_by = None;
        Some((
            subquery,
            keys.into_iter().map(|(_, o)| o).collect(),
            items.into_iter().map(|(n, _, c)| (n, c)).collect(),
        ))
    }
}

/// The inverse of the item `e` of a one-row aggregate over `table` ([`AggLeaf::inverse`]):
/// `count(*)`, or `count`, `sum`, `avg` (no `DISTINCT`, `FILTER`, `ORDER BY` or
/// `OVER`) of a column of an integer type or of `numeric(p, s)` (every value of one
/// scale: the old sum computed as the new sum less the window's has the scale the
/// sum of the old rows has, so `avg`'s division gives the same digits).
fn inverse(e: &Expr, table: &Table) -> Option<crate::ir::Inverse> {
    use crate::ir::Inverse;
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Expr::Function(f) = e else { return None };
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return None;
    }
    let FunctionArguments::List(l) = &f.args else {
        return None;
    };
    if l.duplicate_treatment.is_some() || !l.clauses.is_empty() || l.args.len() != 1 {
        return None;
    }
    let name = function_name(f);
    let arg = match &l.args[0] {
        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if name == "count" => {
            return Some(Inverse::Count(None))
        }
        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => x,
        _ => return None,
    };
    let column = match arg {
        Expr::Identifier(i) => ident_value(i),
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => ident_value(&ids[1]),
        _ => return None,
    };
    let ty = &table.columns.get(table.column_index(&column)?)?.sql_type;
    let exact = matches!(ty.as_str(), "smallint" | "integer" | "bigint")
        || (ty.starts_with("numeric(") && ty.contains(','));
    let x = Sql::expr(arg);
    match name.as_str() {
        "count" => Some(Inverse::Count(Some(x))),
        "sum" if exact => Some(Inverse::Sum(x)),
        "avg" if exact => Some(Inverse::Avg(x)),
        _ => None,
    }
}

/// Whether `e` is an aggregate call, a constant, or `+ - * /` (and parentheses,
/// unary minus) over those: an expression that is NULL when one of its calls is.
/// The calls are collected into `calls`.
fn strict_over_aggregates<'e>(e: &'e Expr, calls: &mut Vec<&'e sqlparser::ast::Function>) -> bool {
    use sqlparser::ast::{BinaryOperator as B, UnaryOperator as U};
    match e {
        Expr::Function(f) if is_aggregate(f) && f.over.is_none() => {
            calls.push(f);
            true
        }
        Expr::Value(_) => true,
        Expr::Nested(x) => strict_over_aggregates(x, calls),
        Expr::UnaryOp {
            op: U::Minus | U::Plus,
            expr,
        } => strict_over_aggregates(expr, calls),
        Expr::BinaryOp {
            left,
            op: B::Plus | B::Minus | B::Multiply | B::Divide,
            right,
        } => strict_over_aggregates(left, calls) && strict_over_aggregates(right, calls),
        _ => false,
    }
}

/// `q` with the inner joins of its `FROM` written as comma-separated tables and their
/// `ON` conditions AND-ed into its `WHERE` (`FROM t JOIN u ON c` is `FROM t, u WHERE
/// c`: the same rows), so that an aggregate over them is read like one written with
/// commas. `None` when its `FROM` has no join, or one that is not inner (`LEFT`,
/// `USING`, `NATURAL`, ...).
fn inner_joins_as_conditions(q: &Query) -> Option<Query> {
    use sqlparser::ast::{BinaryOperator, JoinConstraint as C, JoinOperator as J};
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    if sel.from.iter().all(|t| t.joins.is_empty()) {
        return None;
    }
    let mut from = Vec::new();
    let mut conds: Vec<Expr> = sel.selection.iter().cloned().collect();
    for t in &sel.from {
        from.push(TableWithJoins {
            relation: t.relation.clone(),
            joins: Vec::new(),
        });
        for j in &t.joins {
            match &j.join_operator {
                J::Join(C::On(e)) | J::Inner(C::On(e)) => and_parts(e, &mut conds),
                J::CrossJoin(C::None) => {}
                _ => return None,
            }
            from.push(TableWithJoins {
                relation: j.relation.clone(),
                joins: Vec::new(),
            });
        }
    }
    let mut flat = (**sel).clone();
    flat.from = from;
    flat.selection = conds.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    });
    let mut out = q.clone();
    out.body = Box::new(SetExpr::Select(Box::new(flat)));
    Some(out)
}

/// The AND-ed parts of `e` (`walk::conjuncts`), an `OR` in parentheses again (AND-ed
/// with other parts, it must not bind to them when printed).
fn and_parts(e: &Expr, out: &mut Vec<Expr>) {
    let mut parts = Vec::new();
    crate::sql::walk::conjuncts(e, &mut parts);
    out.extend(parts.into_iter().map(|p| match p {
        Expr::BinaryOp {
            op: sqlparser::ast::BinaryOperator::Or,
            ..
        } => Expr::Nested(Box::new(p.clone())),
        _ => p.clone(),
    }));
}

/// Which sides a condition of a correlated subquery names: (its own tables, the
/// enclosing query), with `scope` the subquery's tables (alias, columns). An
/// unqualified name is a table's when one has that column (as PostgreSQL resolves
/// it: the innermost scope first). `None`
/// for what a rewrite cannot place: a subquery, a window function, an aggregate, a
/// volatile function, a name with more than two parts.
fn correlation_sides(e: &Expr, scope: &[(String, Vec<String>)]) -> Option<(bool, bool)> {
    struct V<'a>(&'a [(String, Vec<String>)], bool, bool, bool);
    impl sqlparser::ast::Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(i) => {
                    let name = ident_value(i);
                    if self.0.iter().any(|(_, cols)| cols.contains(&name)) {
                        self.1 = true
                    } else {
                        self.2 = true
                    }
                }
                Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
                    let alias = ident_value(&ids[0]);
                    if self.0.iter().any(|(a, _)| *a == alias) {
                        self.1 = true
                    } else {
                        self.2 = true
                    }
                }
                e if matches!(e, Expr::CompoundIdentifier(_))
                    || crate::sql::walk::is_subquery(e) =>
                {
                    self.3 = false;
                    return ControlFlow::Break(());
                }
                Expr::Function(f)
                    if f.over.is_some()
                        || is_aggregate(f)
                        || VOLATILE.contains(&function_name(f).as_str()) =>
                {
                    self.3 = false;
                    return ControlFlow::Break(());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(scope, false, false, true);
    let _ = sqlparser::ast::Visit::visit(e, &mut v);
    v.3.then_some((v.1, v.2))
}
