//! The query around an aggregate relation (`ir::OuterQuery`): a query with no delta
//! rule as a whole that reads one aggregate relation, a subquery in FROM, a CTE or a
//! view with `GROUP BY` (TPC-H Q13 counts the orders of each customer, then the
//! customers of each count; Q15 joins the revenue of each supplier with the supplier
//! and compares it with the maximum over the same relation). The relation is bound
//! as the block and kept in the stage table by its delta rules; the query around it
//! is recomputed over the stage after each refresh. Without this, the whole query
//! was recomputed: the relation over its sources (every lineitem of the quarter for
//! Q15, twice) on every refresh.
//!
//! Every occurrence of the relation must have the same text (a view or a CTE read
//! twice, as Q15 reads `revenue0`); its body is replaced by a read of the visible
//! columns of the stage's rows (`OuterQuery::STAGE`), under the same alias and
//! column aliases, so that the query around it reads what it read before.

use super::*;
use crate::ir::OuterQuery;
use sqlparser::ast::{GroupByExpr, VisitMut, VisitorMut};

/// The block of the aggregate relation that `query` reads, the query around it and
/// the sources (the binder's order), when the query reads exactly one aggregate
/// relation (each occurrence with the same text) that the delta rules maintain as an
/// aggregate with `GROUP BY`. `None` otherwise: the query is then recomputed whole,
/// as before.
pub(super) fn outer_over_aggregate(
    text: &str,
    query: &Query,
    catalog: &Catalog,
    sources: &[Table],
    ctes: &HashSet<String>,
) -> Option<(Block, OuterQuery, Vec<Table>)> {
    if text.to_lowercase().contains(OuterQuery::STAGE) {
        return None;
    }
    let mut found = Relations(Vec::new());
    let _ = query.visit(&mut found);
    if let Some(w) = query.with.as_ref().filter(|w| !w.recursive) {
        for c in &w.cte_tables {
            if aggregate_relation(&c.query) {
                found.0.push(c.query.to_string());
            }
        }
    }
    let relation = found.0.first()?.clone();
    if found.0.iter().any(|r| *r != relation) {
        return None;
    }
    let body = occurrence(query, &relation)?;
    // Bound on its own, a name of the query's CTEs would be read as a table.
    let mut reads_cte = false;
    let _ = sqlparser::ast::visit_relations(&body, |n: &ObjectName| {
        if n.0.len() == 1 && ctes.contains(&ident_value(n.0[0].as_ident().expect("ident"))) {
            reads_cte = true;
        }
        ControlFlow::<()>::Continue(())
    });
    if reads_cte {
        return None;
    }
    let (block, srcs) = bind_grouped_aggregate(text, catalog, sources, &body)?;
    let names: Vec<String> = block.items.iter().map(|(n, _)| n.clone()).collect();
    if names
        .iter()
        .enumerate()
        .any(|(i, n)| names[..i].contains(n))
    {
        return None;
    }
    let read = crate::sql::parse::defining_query(&format!(
        "SELECT {} FROM {}",
        names
            .iter()
            .map(|n| Sql::ident(n).into_string())
            .collect::<Vec<_>>()
            .join(", "),
        Sql::ident(OuterQuery::STAGE).into_string()
    ))
    .ok()?;
    let mut outer = query.clone();
    // A stream table's rows have no order: an `ORDER BY` without a count only sorts.
    if !limits::limits_rows(&outer) && outer.fetch.is_none() {
        outer.order_by = None;
    }
    let mut replace = Replace {
        relation: &relation,
        read: &read,
    };
    let _ = VisitMut::visit(&mut outer, &mut replace);
    if let Some(w) = outer.with.as_mut().filter(|w| !w.recursive) {
        for c in &mut w.cte_tables {
            if c.query.to_string() == relation {
                c.query = read.clone();
            }
        }
    }
    qualify_tables(&mut outer, ctes, &srcs);
    Some((
        block,
        OuterQuery {
            sql: Sql::query(&outer),
            text: relation,
        },
        srcs,
    ))
}

/// An aggregate relation: a `SELECT` with `GROUP BY` expressions, without `ORDER BY`
/// or `LIMIT` (those are not relations the stage can hold).
fn aggregate_relation(q: &Query) -> bool {
    q.order_by.is_none()
        && !limits::limits_rows(q)
        && q.fetch.is_none()
        && matches!(q.body.as_ref(), SetExpr::Select(sel)
            if matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if !g.is_empty()))
}

/// The text of every aggregate relation in FROM (not `LATERAL`: a lateral subquery
/// reads the row of its left side).
struct Relations(Vec<String>);

impl Visitor for Relations {
    type Break = ();
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived {
            lateral, subquery, ..
        } = f
        {
            if aggregate_relation(subquery) {
                if *lateral {
                    // Never the same text as a relation that is not lateral.
                    self.0.push(format!("LATERAL {subquery}"));
                } else {
                    self.0.push(subquery.to_string());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The first occurrence of the relation whose text is `relation`.
fn occurrence(query: &Query, relation: &str) -> Option<Query> {
    struct Find<'a>(&'a str, Option<Query>);
    impl Visitor for Find<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if self.1.is_none() && q.to_string() == self.0 {
                self.1 = Some(q.clone());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut find = Find(relation, None);
    let _ = query.visit(&mut find);
    find.1
}

/// Replaces the body of every derived table whose text is `relation` by `read`.
struct Replace<'a> {
    relation: &'a str,
    read: &'a Query,
}

impl VisitorMut for Replace<'_> {
    type Break = ();
    fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived {
            lateral: false,
            subquery,
            ..
        } = f
        {
            if subquery.to_string() == self.relation {
                **subquery = self.read.clone();
            }
        }
        ControlFlow::Continue(())
    }
}
