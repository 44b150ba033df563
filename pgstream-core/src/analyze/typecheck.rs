//! A coarse type check of set operations (UNION, INTERSECT, EXCEPT, and the two terms
//! of a recursive CTE): when one branch yields a boolean and the other text or a
//! number at the same position, PostgreSQL will reject the query at run time with
//! "UNION types text and boolean cannot be matched". The tutorial's
//! `tree.path || '' > '' || d.name` is that case; catching it here makes it a
//! compile error with a pointer and a fix.

use crate::catalog::{Catalog, Table};
use crate::error::{Diagnostic, Error, Result};
use crate::sql::ident::{ident_value, qualified};
use crate::sql::parse::expr_range;
use sqlparser::ast::{
    BinaryOperator, Expr, Query, Select, SelectItem, SetExpr, TableFactor, UnaryOperator, Value,
    Visit, Visitor,
};
use std::ops::ControlFlow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coarse {
    Bool,
    Text,
    Number,
    Unknown,
}

impl Coarse {
    fn name(self) -> &'static str {
        match self {
            Coarse::Bool => "boolean",
            Coarse::Text => "text",
            Coarse::Number => "a number",
            Coarse::Unknown => "unknown",
        }
    }
}

fn of_sql_type(t: &str) -> Coarse {
    let t = t.to_ascii_lowercase();
    if t == "boolean" {
        Coarse::Bool
    } else if t == "text"
        || t.starts_with("character")
        || t.starts_with("varchar")
        || t.starts_with("char")
    {
        Coarse::Text
    } else if ["integer", "bigint", "smallint", "real", "double precision"].contains(&t.as_str())
        || t.starts_with("numeric")
    {
        Coarse::Number
    } else {
        Coarse::Unknown
    }
}

struct Scope<'a> {
    tables: Vec<(String, &'a Table)>,
}

fn scope<'a>(s: &Select, catalog: &'a Catalog) -> Scope<'a> {
    let mut tables = Vec::new();
    for twj in &s.from {
        for f in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table { name, alias, .. } = f {
                let q = qualified(name);
                if let Some(t) =
                    catalog.lookup((name.0.len() > 1).then_some(q.schema.as_str()), &q.name)
                {
                    let a = alias
                        .as_ref()
                        .map(|a| ident_value(&a.name))
                        .unwrap_or(q.name.clone());
                    tables.push((a, t));
                }
            }
        }
    }
    Scope { tables }
}

fn coarse(e: &Expr, sc: &Scope) -> Coarse {
    use BinaryOperator as B;
    match e {
        Expr::BinaryOp { op, left, right } => match op {
            B::Gt | B::Lt | B::GtEq | B::LtEq | B::Eq | B::NotEq | B::And | B::Or => Coarse::Bool,
            B::StringConcat => Coarse::Text,
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                let (l, r) = (coarse(left, sc), coarse(right, sc));
                if l == Coarse::Number && r == Coarse::Number {
                    Coarse::Number
                } else {
                    Coarse::Unknown
                }
            }
            _ => Coarse::Unknown,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        }
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::In {
            target: sqlparser::ast::InTarget::List(_),
            ..
        }
        | Expr::Between { .. }
        | Expr::Exists { .. } => Coarse::Bool,
        Expr::Nested(inner) => coarse(inner, sc),
        Expr::Value(v) => match &v.value {
            Value::Boolean(_) => Coarse::Bool,
            Value::Number(..) => Coarse::Number,
            _ => Coarse::Unknown, // a string literal is of type unknown until coerced
        },
        Expr::Identifier(i) => {
            let c = ident_value(i);
            let hits: Vec<&crate::catalog::Column> = sc
                .tables
                .iter()
                .filter_map(|(_, t)| t.columns.iter().find(|col| col.name == c))
                .collect();
            match hits.as_slice() {
                [one] => of_sql_type(&one.sql_type),
                _ => Coarse::Unknown,
            }
        }
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
            let (a, c) = (ident_value(&ids[0]), ident_value(&ids[1]));
            sc.tables
                .iter()
                .find(|(al, _)| *al == a)
                .and_then(|(_, t)| t.columns.iter().find(|col| col.name == c))
                .map(|col| of_sql_type(&col.sql_type))
                .unwrap_or(Coarse::Unknown)
        }
        _ => Coarse::Unknown,
    }
}

fn items<'e>(body: &'e SetExpr, catalog: &Catalog) -> Option<Vec<(&'e Expr, Coarse)>> {
    match body {
        SetExpr::Select(s) => {
            let sc = scope(s, catalog);
            let mut out = Vec::new();
            for item in &s.projection {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        out.push((e, coarse(e, &sc)))
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        SetExpr::Query(q) => items(&q.body, catalog),
        _ => None,
    }
}

/// Check every set operation of the query.
pub(crate) fn check(text: &str, q: &Query, catalog: &Catalog) -> Result<()> {
    struct V<'a> {
        text: &'a str,
        catalog: &'a Catalog,
        err: Option<Error>,
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            let mut bodies = vec![q.body.as_ref()];
            if let Some(w) = &q.with {
                bodies.extend(w.cte_tables.iter().map(|c| c.query.body.as_ref()));
            }
            for body in bodies {
                if let SetExpr::SetOperation {
                    op, left, right, ..
                } = body
                {
                    let (Some(l), Some(r)) =
                        (items(left, self.catalog), items(right, self.catalog))
                    else {
                        continue;
                    };
                    for (pos, ((le, lt), (re, rt))) in l.iter().zip(r.iter()).enumerate() {
                        let clash = *lt != *rt && *lt != Coarse::Unknown && *rt != Coarse::Unknown;
                        if !clash {
                            continue;
                        }
                        let (culprit, ct, other) = if *rt == Coarse::Bool {
                            (re, rt, lt)
                        } else {
                            (le, lt, rt)
                        };
                        let mut d = Diagnostic::new(format!(
                            "{op} types cannot be matched: column {} is {} in one branch and {} in the other",
                            pos + 1,
                            other.name(),
                            ct.name()
                        ))
                        .with_span(expr_range(self.text, *culprit));
                        let shown = culprit.to_string();
                        if *ct == Coarse::Bool && shown.contains("'' > ''") {
                            d = d.with_help(
                                "`'' > ''` compares two empty strings, so the expression is a boolean; to put ` > ` between the names, write the string literal ' > '",
                            );
                        } else if *ct == Coarse::Bool {
                            d = d.with_help("this expression is a comparison, so its value is a boolean; cast it or change it to match the other branch");
                        }
                        self.err = Some(Error::Invalid(d));
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V {
        text,
        catalog,
        err: None,
    };
    let _ = q.visit(&mut v);
    match v.err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
