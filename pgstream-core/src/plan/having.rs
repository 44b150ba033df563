//! `HAVING` with a subquery (TPC-H Q11: the parts whose value exceeds a fraction of
//! the total, `HAVING sum(...) > (SELECT sum(...) * 0.0001 FROM ...)`): no delta rule
//! filters groups by a value computed over other rows, so the query as a whole had
//! none and was recomputed. Written as the same aggregate without `HAVING`, in FROM,
//! and the condition over its rows around it, the aggregate is a relation the stage
//! can keep (`outer::outer_over_aggregate`), and only the condition is evaluated
//! again on each refresh, over the stage's rows.
//!
//! `SELECT k, sum(v) AS s FROM t GROUP BY k HAVING sum(v) > (SELECT ...)` becomes
//! `SELECT h.k, h.s FROM (SELECT k, sum(v) AS s, sum(v) AS __pgs_h0 FROM t GROUP BY k)
//! AS h WHERE h.__pgs_h0 > (SELECT ...)`: each aggregate call and each column the
//! condition reads outside its subqueries (a grouping column) becomes a column of the
//! relation. The subqueries are left as they are: a correlated one reads the group's
//! columns, which the relation has under the same names when they are output
//! columns; the rewritten query is type-checked, and a reference that no longer
//! resolves keeps the query whole (recomputed, as before).

use super::*;
use crate::sql::walk::{is_aggregate, output_name};
use sqlparser::ast::{
    FunctionArguments, GroupByExpr, Select, TableWithJoins, VisitMut, VisitorMut,
};

/// The alias of the aggregate relation in the rewritten query.
const RELATION: &str = "__pgs_having";

/// `query` with its `HAVING` outside its aggregate, when the `HAVING` holds a
/// subquery and the query is a plain `SELECT ... GROUP BY` (no `DISTINCT`, window
/// function, `LIMIT` or `OFFSET`; named output columns). Its `ORDER BY` is dropped:
/// without a count it only sorts (a stream table's rows have no order).
pub(super) fn having_outside(text: &str, query: &Query, catalog: &Catalog) -> Option<Query> {
    let SetExpr::Select(sel) = query.body.as_ref() else {
        return None;
    };
    let having = sel.having.as_ref()?;
    if !has_subquery(having)
        || sel.distinct.is_some()
        || !matches!(&sel.group_by, GroupByExpr::Expressions(g, m) if !g.is_empty() && m.is_empty())
        || limits::limits_rows(query)
        || !sel.named_window.is_empty()
        || sel.qualify.is_some()
    {
        return None;
    }
    let mut names = Vec::new();
    for item in &sel.projection {
        let (e, name) = match item {
            SelectItem::UnnamedExpr(e) => (e, output_name(e)),
            SelectItem::ExprWithAlias { expr, alias } => (expr, ident_value(alias)),
            _ => return None,
        };
        if has_window(e) || name.starts_with("__pgs") || names.contains(&name) {
            return None;
        }
        names.push(name);
    }
    if !self_contained_subqueries(having) {
        return None;
    }
    let outputs: Vec<(String, String)> = sel
        .projection
        .iter()
        .zip(&names)
        .filter_map(|(item, n)| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                Some((e.to_string(), n.clone()))
            }
            _ => None,
        })
        .collect();
    // With the scalar subqueries over the aggregate's own rows decomposed, unless a
    // `sum` so decomposed is not exact (floats: a sum of sums rounds otherwise).
    let (condition, inner) = [true, false].into_iter().find_map(|decompose| {
        let mut condition = having.clone();
        let mut lift = Lift {
            depth: 0,
            lifted: Vec::new(),
            outputs: outputs.clone(),
            own: decompose.then_some((&sel.from, &sel.selection)),
            summed: Vec::new(),
        };
        let _ = VisitMut::visit(&mut condition, &mut lift);
        let mut inner = sel.as_ref().clone();
        inner.having = None;
        for (i, e) in lift.lifted.iter().enumerate() {
            inner.projection.push(SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', hidden(i)),
            });
        }
        if !lift.summed.is_empty() && !exact_sums(text, &inner, catalog, &lift.summed) {
            return None;
        }
        Some((condition, inner))
    })?;
    let condition = condition.to_string().replace(
        &format!(
            "{} AS {}",
            Sql::ident(SELF).into_string(),
            Sql::ident(RELATION).into_string()
        ),
        &format!("({}) AS {}", inner, Sql::ident(RELATION).into_string()),
    );
    let relation = Sql::ident(RELATION).into_string();
    let outer = format!(
        "SELECT {} FROM ({}) AS {} WHERE {}",
        names
            .iter()
            .map(|n| format!("{}.{}", relation, Sql::ident(n).into_string()))
            .collect::<Vec<_>>()
            .join(", "),
        inner,
        relation,
        condition,
    );
    let mut rewritten = crate::sql::parse::defining_query(&outer).ok()?;
    rewritten.with = query.with.clone();
    Some(*rewritten)
}

/// Whether two `FROM` lists print the same.
fn same_text(a: &[TableWithJoins], b: &[TableWithJoins]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_string() == y.to_string())
}

/// An expression from its text (generated here).
fn parse_expression(text: &str) -> Option<Expr> {
    let q = crate::sql::parse::defining_query(&format!("SELECT {text}")).ok()?;
    match *q.body {
        SetExpr::Select(s) => match s.projection.into_iter().next()? {
            SelectItem::UnnamedExpr(e) => Some(e),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the relation's `columns` that a decomposed subquery sums are of integer
/// or numeric type (`inner` the relation): a sum of their sums is exact.
fn exact_sums(text: &str, inner: &Select, catalog: &Catalog, columns: &[String]) -> bool {
    let Ok(q) = crate::sql::parse::defining_query(&inner.to_string()) else {
        return false;
    };
    let Ok(mut out) = output_columns(text, &q, catalog) else {
        return false;
    };
    crate::analyze::infer::annotate(text, &q, catalog, &mut out);
    columns.iter().all(|c| {
        out.iter().any(|o| {
            o.name == *c
                && o.sql_type.as_deref().is_some_and(|t| {
                    matches!(t, "smallint" | "integer" | "bigint") || t.starts_with("numeric")
                })
        })
    })
}

/// The name of the relation's `i`th column for the condition.
fn hidden(i: usize) -> String {
    format!("__pgs_h{i}")
}

/// Replaces, outside subqueries, each aggregate call and each column reference of
/// the condition by a column of the relation: the output column with the same text
/// (Q11's `sum(ps_supplycost * ps_availqty)` is its `value`), else a new one
/// (collected, each text once).
struct Lift<'a> {
    depth: usize,
    lifted: Vec<Expr>,
    /// The text of each output expression, with the output column's name.
    outputs: Vec<(String, String)>,
    /// The aggregate's `FROM` and `WHERE`, when scalar subqueries over the same rows
    /// are decomposed over its groups ([`Lift::decomposed`]).
    own: Option<(&'a Vec<TableWithJoins>, &'a Option<Expr>)>,
    /// The relation's columns summed by a decomposed subquery.
    summed: Vec<String>,
}

/// The placeholder the relation's body replaces in a decomposed subquery.
const SELF: &str = "__pgs_having_self";

impl Lift<'_> {
    /// The relation's column for `e` (an aggregate call or a column of the group): the
    /// output column with the same text, else a new one.
    fn column(&mut self, e: &Expr) -> String {
        let text = e.to_string();
        match self.outputs.iter().find(|(t, _)| *t == text) {
            Some((_, name)) => name.clone(),
            None => match self.lifted.iter().position(|l| l.to_string() == text) {
                Some(i) => hidden(i),
                None => {
                    self.lifted.push(e.clone());
                    hidden(self.lifted.len() - 1)
                }
            },
        }
    }

    /// A scalar subquery over the aggregate's own rows (the same `FROM` and `WHERE`,
    /// no `GROUP BY`: TPC-H Q11's total) whose aggregates are `sum`, `count`, `min`
    /// or `max` (plain: no `DISTINCT`, `FILTER` or order), as the same aggregates over
    /// the relation's groups: a sum of the groups' sums, counts (0 over none), the
    /// least of their minimums, the greatest of their maximums. The relation is read
    /// twice around the stage, so the subquery is not evaluated over the sources.
    fn decomposed(&mut self, q: &Query) -> Option<Expr> {
        let (from, selection) = self.own?;
        let SetExpr::Select(s) = q.body.as_ref() else {
            return None;
        };
        if q.with.is_some()
            || q.order_by.is_some()
            || limits::limits_rows(q)
            || s.distinct.is_some()
            || s.having.is_some()
            || !matches!(&s.group_by, GroupByExpr::Expressions(g, m) if g.is_empty() && m.is_empty())
            || !same_text(&s.from, from)
            || s.selection.as_ref().map(ToString::to_string)
                != selection.as_ref().map(ToString::to_string)
            || s.projection.len() != 1
        {
            return None;
        }
        let mut item = match &s.projection[0] {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
            _ => return None,
        };
        struct Over<'l, 'a> {
            lift: &'l mut Lift<'a>,
            ok: bool,
            summed: Vec<String>,
        }
        impl VisitorMut for Over<'_, '_> {
            type Break = ();
            fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
                self.ok = false;
                ControlFlow::Break(())
            }
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let relation = Sql::ident(RELATION).into_string();
                match e {
                    // One this visitor wrote, over the relation.
                    Expr::Function(_) if e.to_string().contains(&format!("{relation}.")) => {
                        ControlFlow::Continue(())
                    }
                    Expr::Function(f) if is_aggregate(f) => {
                        let name = crate::sql::walk::function_name(f);
                        let plain = f.filter.is_none()
                            && f.within_group.is_empty()
                            && matches!(&f.args, FunctionArguments::List(l)
                                if l.duplicate_treatment.is_none() && l.clauses.is_empty());
                        let outer = match name.as_str() {
                            "sum" | "count" => "sum",
                            "min" | "max" => name.as_str(),
                            _ => "",
                        };
                        if !plain || outer.is_empty() {
                            self.ok = false;
                            return ControlFlow::Break(());
                        }
                        let column = self.lift.column(e);
                        let read = format!(
                            "{}({}.{})",
                            outer,
                            Sql::ident(RELATION).into_string(),
                            Sql::ident(&column).into_string()
                        );
                        if name == "sum" {
                            self.summed.push(column);
                        }
                        let text = if name == "count" {
                            format!("COALESCE({read}, 0)")
                        } else {
                            read
                        };
                        *e = match parse_expression(&text) {
                            Some(x) => x,
                            None => {
                                self.ok = false;
                                return ControlFlow::Break(());
                            }
                        };
                        ControlFlow::Continue(())
                    }
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                        // A column outside an aggregate: not one row per relation.
                        if !e.to_string().starts_with(&relation) {
                            self.ok = false;
                            return ControlFlow::Break(());
                        }
                        ControlFlow::Continue(())
                    }
                    _ => ControlFlow::Continue(()),
                }
            }
        }
        let lifted = self.lifted.len();
        let mut over = Over {
            lift: self,
            ok: true,
            summed: Vec::new(),
        };
        let _ = VisitMut::visit(&mut item, &mut over);
        let (ok, summed) = (over.ok, over.summed);
        if !ok {
            self.lifted.truncate(lifted);
            return None;
        }
        self.summed.extend(summed);
        let sql = format!(
            "(SELECT {} FROM {} AS {})",
            item,
            Sql::ident(SELF).into_string(),
            Sql::ident(RELATION).into_string()
        );
        parse_expression(&sql)
    }
}

impl VisitorMut for Lift<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        if let Expr::Subquery(q) = e {
            if let Some(d) = self.decomposed(q) {
                // Its aggregates read the relation: inside it (a query) nothing is
                // lifted again.
                *e = d;
                return ControlFlow::Continue(());
            }
        }
        let lift = match e {
            Expr::Function(f) => is_aggregate(f),
            Expr::Identifier(_) => true,
            Expr::CompoundIdentifier(parts) => {
                parts.first().map(ident_value).as_deref() != Some(RELATION)
            }
            _ => false,
        };
        if lift {
            let column = self.column(e);
            *e = Expr::CompoundIdentifier(vec![
                Ident::with_quote('"', RELATION),
                Ident::with_quote('"', column),
            ]);
        }
        ControlFlow::Continue(())
    }
}

/// Whether each subquery of the condition qualifies its columns only by the relations
/// it reads itself: a column qualified by a table of the aggregate (`e.salary`) would
/// not resolve around it. (An unqualified column that the subquery's tables lack is
/// the group's: a grouping column, which the relation has under its output name.)
fn self_contained_subqueries(condition: &Expr) -> bool {
    #[derive(Default)]
    struct Names {
        defined: HashSet<String>,
        qualifiers: HashSet<String>,
        depth: usize,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            let (name, alias) = match f {
                TableFactor::Table { name, alias, .. } => (
                    name.0.last().and_then(|p| p.as_ident()).map(ident_value),
                    alias.as_ref(),
                ),
                TableFactor::Derived { alias, .. } | TableFactor::Function { alias, .. } => {
                    (None, alias.as_ref())
                }
                TableFactor::UNNEST { alias, .. } => (None, alias.as_ref()),
                _ => (None, None),
            };
            match alias {
                Some(a) => {
                    self.defined.insert(ident_value(&a.name));
                }
                None => {
                    if let Some(n) = name {
                        self.defined.insert(n);
                    }
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let (Expr::CompoundIdentifier(parts), true) = (e, self.depth > 0) {
                if parts.len() >= 2 {
                    self.qualifiers.insert(ident_value(&parts[parts.len() - 2]));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names::default();
    let _ = condition.visit(&mut names);
    names.qualifiers.is_subset(&names.defined)
}

/// Whether an expression holds a subquery.
fn has_subquery(e: &Expr) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    e.visit(&mut Find).is_break()
}

/// Whether an expression calls a window function.
fn has_window(e: &Expr) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Function(f) if f.over.is_some() => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Find).is_break()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(q: &str) -> Option<String> {
        let catalog = Catalog::from_ddl(
            "CREATE TABLE t (k int, v int, f float8); CREATE TABLE u (k int, x numeric)",
        )
        .unwrap();
        let query = crate::sql::parse::defining_query(q).unwrap();
        having_outside(q, &query, &catalog).map(|r| r.to_string())
    }

    #[test]
    fn a_scalar_over_the_same_rows_is_decomposed_over_the_groups() {
        let r = rewrite(
            "SELECT u.k, sum(u.x * t.v) AS value FROM t, u WHERE t.k = u.k GROUP BY u.k \
             HAVING sum(u.x * t.v) > (SELECT sum(u.x * t.v) * 0.1 + count(*) + max(t.v) \
             FROM t, u WHERE t.k = u.k)",
        )
        .unwrap();
        assert!(
            r.contains(
                "WHERE \"__pgs_having\".\"value\" > (SELECT sum(\"__pgs_having\".\"value\") * 0.1 \
                 + COALESCE(sum(\"__pgs_having\".\"__pgs_h0\"), 0) + max(\"__pgs_having\".\"__pgs_h1\") \
                 FROM (SELECT u.k, sum(u.x * t.v) AS value, count(*) AS \"__pgs_h0\", max(t.v) AS \"__pgs_h1\" \
                 FROM t, u WHERE t.k = u.k GROUP BY u.k) AS \"__pgs_having\")"
            ),
            "{r}"
        );
        // Not over other rows, nor a sum of floats, nor avg.
        for q in [
            "SELECT u.k, sum(u.x) AS s FROM t, u WHERE t.k = u.k GROUP BY u.k \
             HAVING sum(u.x) > (SELECT sum(u.x) FROM t, u WHERE t.k > u.k)",
            "SELECT k, sum(f) AS s FROM t GROUP BY k HAVING sum(f) > (SELECT sum(f) FROM t)",
            "SELECT k, avg(v) AS s FROM t GROUP BY k HAVING avg(v) > (SELECT avg(v) FROM t)",
        ] {
            let r = rewrite(q).unwrap();
            assert!(
                !r.contains("__pgs_having_self") && r.contains("FROM t"),
                "{r}"
            );
            assert_eq!(r.matches("GROUP BY").count(), 1, "{r}");
        }
    }

    #[test]
    fn aggregates_and_grouping_columns_of_the_condition_become_columns() {
        assert_eq!(
            rewrite(
                "SELECT k, sum(v) AS s FROM t GROUP BY k \
                 HAVING sum(v) > (SELECT avg(v) FROM t) AND k <> 3 AND count(*) > 1 \
                 AND max(v) IS NULL ORDER BY s DESC"
            )
            .unwrap(),
            "SELECT \"__pgs_having\".\"k\", \"__pgs_having\".\"s\" FROM (SELECT k, sum(v) AS s, \
             count(*) AS \"__pgs_h0\", max(v) AS \"__pgs_h1\" FROM t GROUP BY k) AS \"__pgs_having\" \
             WHERE \"__pgs_having\".\"s\" > (SELECT avg(v) FROM t) AND \"__pgs_having\".\"k\" <> 3 \
             AND \"__pgs_having\".\"__pgs_h0\" > 1 AND \"__pgs_having\".\"__pgs_h1\" IS NULL"
        );
    }

    #[test]
    fn kept_whole_without_a_subquery_or_with_what_the_rewrite_cannot_keep() {
        for q in [
            "SELECT k, sum(v) AS s FROM t GROUP BY k HAVING sum(v) > 3",
            "SELECT k, sum(v) AS s FROM t GROUP BY k HAVING sum(v) > (SELECT 1) LIMIT 3",
            "SELECT DISTINCT k, sum(v) AS s FROM t GROUP BY k HAVING sum(v) > (SELECT 1)",
            "SELECT * FROM t GROUP BY k HAVING sum(v) > (SELECT 1)",
            "SELECT k, rank() OVER (ORDER BY sum(v)) AS r FROM t GROUP BY k \
             HAVING sum(v) > (SELECT 1)",
            "SELECT t.k, count(*) AS n FROM t GROUP BY t.k \
             HAVING count(*) > (SELECT count(*) FROM u WHERE u.k = t.k)",
            "SELECT sum(v) AS s FROM t HAVING sum(v) > (SELECT 1)",
        ] {
            assert_eq!(rewrite(q), None, "{q}");
        }
    }

    #[test]
    fn an_order_by_is_dropped() {
        let r = rewrite(
            "SELECT k, sum(v) AS s FROM t GROUP BY k HAVING sum(v) > (SELECT 1) ORDER BY sum(v)",
        )
        .unwrap();
        assert!(!r.contains("ORDER BY"), "{r}");
    }
}
