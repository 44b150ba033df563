//! Why an output column can be NULL, in words, for the macro's error message.

use super::infer::*;
use crate::catalog::Catalog;
use crate::sql::ident::ident_value;
use crate::sql::parse;
use crate::sql::walk::{function_name, AGGREGATES};
use sqlparser::ast::{
    BinaryOperator as B, Expr, GroupByExpr, JoinOperator, SelectItem, SetExpr, Value,
};

/// Why the output column `column` of the top-level SELECT can be NULL, in words, for
/// the macro's error message: an outer join padding a relation, a nullable source
/// column, an aggregate over no rows, CASE without ELSE, ... `None` when no single
/// cause is found (or the query is not a plain SELECT).
pub(crate) fn null_reason(query: &str, catalog: &Catalog, column: &str) -> Option<String> {
    use sqlparser::ast::{Visit, Visitor};
    use std::ops::ControlFlow;

    let q = parse::last_query(query)?;
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let item = s.projection.iter().find_map(|i| match i {
        SelectItem::ExprWithAlias { expr, alias } if ident_value(alias) == column => Some(expr),
        SelectItem::UnnamedExpr(e) if crate::sql::walk::output_name(e) == column => Some(e),
        _ => None,
    })?;
    let mut inf = Infer::new(query, catalog);
    let empty = Scope {
        rels: vec![],
        parent: None,
    };
    // each relation of FROM with the join that pads it, if any
    let mut rels: Vec<(Rel, Option<&'static str>)> = Vec::new();
    // the relations of one FROM item, none padded yet
    let unpadded = |inf: &mut Infer<'_>,
                    f: &sqlparser::ast::TableFactor|
     -> Vec<(Rel, Option<&'static str>)> {
        inf.factor(f, &[], &empty)
            .into_iter()
            .map(|r| (r, None))
            .collect()
    };
    for twj in &s.from {
        let mut group = unpadded(&mut inf, &twj.relation);
        for j in &twj.joins {
            let mut right = unpadded(&mut inf, &j.relation);
            let (l, r) = match &j.join_operator {
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => (None, Some("LEFT JOIN")),
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) => (Some("RIGHT JOIN"), None),
                JoinOperator::FullOuter(_) => (Some("FULL JOIN"), Some("FULL JOIN")),
                _ => (None, None),
            };
            for (side, how) in [(&mut group, l), (&mut right, r)] {
                if let Some(how) = how {
                    for g in side.iter_mut() {
                        g.1.get_or_insert(how);
                    }
                }
            }
            group.extend(right);
        }
        rels.extend(group);
    }
    let grouped = matches!(&s.group_by, GroupByExpr::Expressions(e, _) if !e.is_empty());
    let table = rels
        .first()
        .map(|(r, _)| r.name.clone())
        .unwrap_or_default();

    struct V<'r> {
        rels: &'r [(Rel, Option<&'static str>)],
        pub(super) grouped: bool,
        table: String,
        reason: Option<String>,
    }
    impl V<'_> {
        fn column(&self, qual: Option<&str>, name: &str) -> Option<String> {
            let (rel, how) = self.rels.iter().find(|(r, _)| {
                qual.is_none_or(|q| q == r.name)
                    && r.cols
                        .as_ref()
                        .is_some_and(|c| c.iter().any(|(n, _)| n == name))
            })?;
            let t = rel.cols.as_ref()?.iter().find(|(n, _)| n == name)?;
            let rel = &rel.name;
            match how {
                Some(how) => Some(format!(
                    "the {how} pads `{rel}` with NULL for a row that has no match, so `{rel}.{name}` can be NULL"
                )),
                None if t.1.null == Some(true) => Some(format!(
                    "`{rel}.{name}` can be NULL: its table does not declare it NOT NULL"
                )),
                None => None,
            }
        }
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let reason = match e {
                Expr::Identifier(i) => self.column(None, &ident_value(i)),
                Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                    let n = ids.len();
                    self.column(Some(&ident_value(&ids[n - 2])), &ident_value(&ids[n - 1]))
                }
                Expr::Function(f) if f.over.is_none() => {
                    let name = function_name(f);
                    if name == "nullif" {
                        Some("NULLIF gives NULL when its two arguments are equal".to_string())
                    } else if !AGGREGATES.contains(&name.as_str()) || name == "count" {
                        None
                    } else if f.filter.is_some() {
                        Some(format!(
                            "`{name}(...) FILTER (...)` is NULL for a group where no row passes the filter"
                        ))
                    } else if !self.grouped {
                        Some(format!(
                            "`{name}` over no rows is NULL, and without GROUP BY the stream table has one row even when `{}` is empty",
                            self.table
                        ))
                    } else {
                        None
                    }
                }
                Expr::Case {
                    else_result: None, ..
                } => Some("CASE without ELSE is NULL when no WHEN matches".to_string()),
                Expr::Subquery(_) => Some(
                    "a scalar subquery is NULL when it returns no row, or when its value is"
                        .to_string(),
                ),
                Expr::BinaryOp {
                    op: B::LongArrow | B::Arrow,
                    ..
                } => Some("`->` and `->>` give NULL for a missing key".to_string()),
                Expr::Value(v) if matches!(v.value, Value::Null) => {
                    Some("the expression contains NULL".to_string())
                }
                _ => None,
            };
            if reason.is_some() {
                self.reason = reason;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V {
        rels: &rels,
        grouped,
        table,
        reason: None,
    };
    let _ = item.visit(&mut v);
    v.reason
}
